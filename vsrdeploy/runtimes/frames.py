"""Compatibility shim: frame sources and sinks moved to :mod:`vsrdeploy.io` (one module per endpoint).

Kept so that code written against ``vsrdeploy.runtimes.frames`` (parallel branches, users) keeps working;
import from ``vsrdeploy.io`` in new code.
"""
from ..io import (DEFAULT_FPS, FRAME_NAME, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, FrameSink, FrameSource,  # noqa: F401
                  SourceInfo, existing_frames, open_sink, open_source)
