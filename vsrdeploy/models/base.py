"""``RecurrentVSR``: the common face of every network (validation, whole-clip and windowed runs)."""
from __future__ import annotations

from typing import ClassVar, Iterable, Iterator

import torch
from torch import nn

from ..errors import InputError
from .budget import DEFAULT_BATCH_BYTES, LargestOp, trace_largest_ops
from .cells import Cell, TorchRunner
from .schedule import Schedule
from .streaming import stream_network
from .tiles import DEFAULT_TILE_OVERLAP


class RecurrentVSR(nn.Module):
    arch: ClassVar[str] = ""
    default_config: ClassVar[dict] = {}
    #: option -> (low, high) bounds beyond ``registry.COMMON_LIMITS`` (checked before building)
    config_limits: ClassVar[dict] = {}
    #: released model name -> constructor arguments (shown by ``vsrdeploy models``)
    upstream_configs: ClassVar[dict] = {}
    schedule_class: ClassVar[type[Schedule]] = Schedule
    scale: ClassVar[int] = 4
    #: smallest LR height/width the network accepts
    min_size: ClassVar[int] = 16
    #: frames are reflect-padded (bottom/right) to a multiple of this, outputs cropped back
    pad_multiple: int = 1

    # -- to be provided by each network -------------------------------------------------
    def build_cells(self) -> dict[str, Cell]:
        raise NotImplementedError

    def config(self) -> dict:
        raise NotImplementedError

    @staticmethod
    def infer_config(sd: dict) -> dict:
        raise NotImplementedError

    @staticmethod
    def detect(keys) -> bool:
        raise NotImplementedError

    @property
    def min_frames(self) -> int:
        return 1

    # -- shared -------------------------------------------------------------------------
    @property
    def cells(self) -> dict[str, Cell]:
        cells = self.__dict__.get("_cells")
        if cells is None:
            cells = self.build_cells()
            object.__setattr__(self, "_cells", cells)  # not registered: the weights belong to self
        return cells

    @property
    def largest_ops(self) -> dict[str, LargestOp]:
        """Each cell's largest single operation as a line in LR pixels (``models.budget``), traced on the meta device
        once per network (a bundle's manifest records the same lines)."""
        ops = self.__dict__.get("_largest_ops")
        if ops is None:
            ops = trace_largest_ops(self)
            object.__setattr__(self, "_largest_ops", ops)
        return ops

    def schedule(self) -> Schedule:
        return self.schedule_class(self)

    def check_frames(self, lrs) -> None:
        if not isinstance(lrs, torch.Tensor):
            raise InputError(f"frames must be a torch.Tensor (N, T, 3, H, W), got {type(lrs).__name__}")
        if lrs.dim() != 5 or lrs.shape[2] != 3:
            raise InputError(f"frames must have shape (N, T, 3, H, W) (RGB, float in [0, 1]); "
                             f"got {tuple(lrs.shape)}")
        if not lrs.is_floating_point():
            raise InputError(f"frames must be floating point in [0, 1], got dtype {lrs.dtype}; "
                             "divide 8-bit frames by 255")
        if lrs.shape[1] < self.min_frames:
            raise InputError(f"{self.arch} needs at least {self.min_frames} frames, got {lrs.shape[1]}")

    @property
    def min_input_size(self) -> int:
        """Smallest input height/width (``min_size`` unless the network works below input resolution)."""
        return self.min_size

    def check_frame_size(self, h: int, w: int) -> None:
        """For fixed shapes (``--static-shape``). Streams pad smaller frames (reflect) up to
        ``min_input_size`` and crop the output back, in the Python API and the CLI alike."""
        m = self.min_input_size
        if h < m or w < m:
            raise InputError(f"{self.arch} needs frames of at least {m}x{m} pixels, got {w}x{h} (WxH)")

    def stream(self, frames: Iterable[torch.Tensor], window: int | None = None, lookahead: int = 0,
               stats: dict | None = None, batch_bytes: int | str | None = DEFAULT_BATCH_BYTES, tile=None,
               tile_overlap: int = DEFAULT_TILE_OVERLAP, memory_budget=None, spill="auto") -> Iterator[torch.Tensor]:
        """Upscale an iterable of (N, 3, H, W) frames window by window, yielding (N, 3, 4H, 4W).

        See :meth:`stream_cells` for ``batch_bytes``, ``tile``, ``tile_overlap``, ``memory_budget`` and ``spill``.
        """
        def checked(it):
            for x in it:
                if x.dim() != 4 or x.shape[1] != 3:
                    raise InputError(f"each frame must have shape (N, 3, H, W), got {tuple(x.shape)}")
                yield x
        return self.stream_cells(TorchRunner(self.cells), checked(frames), window, lookahead, stats=stats,
                                 batch_bytes=batch_bytes, tile=tile, tile_overlap=tile_overlap,
                                 memory_budget=memory_budget, spill=spill)

    def stream_cells(self, run, frames: Iterable[torch.Tensor], window: int | None, lookahead: int,
                     **options) -> Iterator[torch.Tensor]:
        """This network's schedule over ``frames`` with cells run by ``run``: see
        :func:`vsrdeploy.models.streaming.stream_network` for the options."""
        return stream_network(self, run, frames, window, lookahead, **options)

    def forward(self, lrs: torch.Tensor, window: int | None = None, lookahead: int = 0,
                spill="auto") -> torch.Tensor:
        """``lrs`` (N, T, 3, H, W) RGB in [0, 1] -> (N, T, 3, 4H, 4W), not clamped.

        ``window=None`` runs the whole clip at once (upstream); otherwise see ``schedule.py``. ``spill``: see
        :meth:`stream_cells` (same result either way).
        """
        self.check_frames(lrs)
        t = lrs.shape[1]
        result = None  # filled frame by frame: no list of outputs beside the result
        for i, out in enumerate(self.stream((lrs[:, i] for i in range(t)), window, lookahead, spill=spill)):
            if result is None:
                result = out.new_empty(out.shape[0], t, *out.shape[1:])
            result[:, i] = out
        return result

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.config().items())
