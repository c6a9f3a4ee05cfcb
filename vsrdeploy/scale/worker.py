"""Ray actors: a worker holding one opened ``Upscaler``, and the job's coordinator (bundle + progress).

The classes are plain Python; ``remote_classes()`` wraps them with ``ray.remote`` so that Ray is
imported only when a batch job runs. Workers read their inputs and write their segments through
the file system: on a multi-machine cluster the inputs and OUTDIR must be on a shared file system.
The bundle travels through Ray (from the coordinator actor), so workers need no copy of it.
"""
from __future__ import annotations

import functools
import itertools
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..bundle import Bundle, safe_join
from ..errors import InputError
from ..io import open_source
from .jobdir import JobDir
from .segments import Segment, segment_outputs

#: backends that want a GPU per worker (Ray resource ``num_gpus=1``); every other one takes ``threads`` CPUs
GPU_BACKENDS = frozenset({"torch-cuda", "ort-cuda", "ort-trt", "tensorrt", "openvino-gpu"})


def pack_bundle(bundle: Bundle) -> dict[str, bytes]:
    """A bundle's files (manifest and everything it lists) as {relative path: bytes}."""
    files = {"manifest.json": (bundle.path / "manifest.json").read_bytes()}
    for rel in bundle.manifest["files"]:
        files[rel] = bundle.file(rel).read_bytes()
    return files


def unpack_bundle(files: dict[str, bytes], root: Path) -> Bundle:
    for rel, data in files.items():
        target = safe_join(root, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return Bundle(root)  # verifies the sha256 of every file


@dataclass
class SegmentTask:
    source: str  # input video or image directory
    outdir: str
    name: str  # output name (job directory key)
    segment: Segment
    window: int
    lookahead: int
    key: str  # progress key, unique per segment of the job


class SegmentWorker:
    """Holds one bundle opened on one backend; turns segment tasks into segment directories."""

    def __init__(self, index: int, coordinator: str, backend: str, threads: int | None):
        """``coordinator``: the name of the job's ``JobCoordinator`` actor, which hands out the bundle and counts
        progress (looked up by name: an actor handle among the arguments makes Ray warn about restarts)."""
        import ray

        from ..runtimes.engine import Upscaler

        self.index = index
        self.progress = coordinator = ray.get_actor(coordinator)
        self._tmp = tempfile.TemporaryDirectory(prefix="vsrdeploy-bundle-")
        bundle = unpack_bundle(ray.get(coordinator.bundle_files.remote()), Path(self._tmp.name) / "bundle.vsr")
        options = {"threads": threads} if threads else {}  # the torch backend sets PyTorch's threads from it
        self.upscaler = Upscaler.create(bundle, backend, **options)
        self.host = socket.gethostname()

    def process(self, task: SegmentTask) -> dict:
        seg = task.segment
        job = JobDir(Path(task.outdir), task.name)
        t0 = time.perf_counter()
        if job.is_done(seg.index):  # a retried task whose first attempt finished
            return {"worker": self.index, "segment": seg.index, "name": task.name, "frames": 0, "seconds": 0.0}
        with open_source(task.source, notice=lambda m: None) as src:
            frames = itertools.islice(src, seg.read_start, None)
            outputs = self._counted(segment_outputs(self.upscaler, frames, seg, task.window, task.lookahead),
                                    task.key)
            count = job.write_segment(seg.index, outputs, {"worker": self.index, "host": self.host,
                                                           "start": seg.start, "end": seg.end,
                                                           "warmup": seg.warmup})
        if count != seg.frames:
            raise InputError(f"{task.source}: segment {seg.index} expected {seg.frames} frames, got {count}; "
                             "the input changed during the job: rerun with --force")
        seconds = time.perf_counter() - t0
        return {"worker": self.index, "segment": seg.index, "name": task.name, "frames": count,
                "seconds": seconds, "host": self.host}

    def _counted(self, frames, key: str):
        for n, frame in enumerate(frames, 1):
            yield frame
            self.progress.report.remote(key, n)


class JobCoordinator:
    """Holds the bundle's files for workers (a restarted worker fetches them again) and counts frames
    done per segment, as reported by workers; a retried segment counts once (the max)."""

    def __init__(self, bundle_files: dict[str, bytes]):
        self._bundle_files = bundle_files
        self.done: dict[str, int] = {}

    def bundle_files(self) -> dict[str, bytes]:
        return self._bundle_files

    def report(self, key: str, frames: int) -> None:
        self.done[key] = max(self.done.get(key, 0), frames)

    def total(self) -> int:
        return sum(self.done.values())


@functools.cache
def remote_classes():
    """(worker actor class, coordinator actor class), wrapped by ``ray.remote``."""
    import ray

    return ray.remote(SegmentWorker), ray.remote(num_cpus=0)(JobCoordinator)
