"""Spilling held features to disk: what a schedule keeps for later branches, beyond a resident limit.

A recurrent schedule holds features of every frame of its span until a later branch (or the other
direction) reads them: BasicVSR++ keeps three 64-channel maps per frame of window + lookahead, ~1.06 GB at
180x320 LR with the default 16 + 8 frames. Those bytes are written once and read a few times, in an order
the schedule knows, so they can live in a file instead of in the process: :class:`SpillFile` writes them
to an anonymous temporary file (``tempfile.TemporaryFile``: on Linux it never has a name, and the kernel
frees it when the process ends, however it ends) and reads each back when asked. A round trip copies
bytes, so the result is bit-identical. The file's pages pass through the kernel's page cache, which is not
the process's memory and which the kernel reclaims under pressure; on a RAM-backed filesystem (tmpfs) that
would only move the bytes, so ``auto`` does not spill there.

:class:`HeldFeatures` is the dict (frame index -> tensor) schedules keep features in; with a spill file it
keeps the first ``resident_bytes`` in memory and spills the rest.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from . import arrays
from .arrays import owned

#: held features kept in memory before spilling starts (per stream). With 256 MB BasicVSR++ (c64n2, 180x320,
#: default window, openvino-cpu) peaked at 1452 MB vs 1995 MB unspilled, in the same time
#: (benchmarks/memory_real_size.py; RESULTS.md, "Held features spilled to disk"); reading a feature back from
#: the page cache costs little next to the cells that use it, so the resident part is kept small: 16 MB (0.3.7;
#: was 64 MB) took that stream from 1245 to 1216 MB over 100 frames at +4% time in one pair of runs (RESULTS.md,
#: "ONNX Runtime's `DeformConv` in row strips")
DEFAULT_RESIDENT_BYTES = 16 * 2**20
#: filesystems whose files are memory: spilling there saves nothing
RAM_FILESYSTEMS = frozenset({"tmpfs", "ramfs", "devtmpfs", "hugetlbfs"})
#: ``auto`` spills only where the filesystem has this much free space beyond what the held state needs
FREE_MARGIN = 2**30


def filesystem_type(path) -> str | None:
    """The filesystem type of the mount holding ``path`` (Linux ``/proc/self/mounts``; None elsewhere)."""
    try:
        real = os.path.realpath(path)
        best, kind = "", None
        with open("/proc/self/mounts", encoding="utf-8") as f:
            for line in f:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = parts[1].replace("\\040", " ")
                inside = real == mount or real.startswith(mount.rstrip("/") + "/")
                if inside and len(mount) >= len(best):
                    best, kind = mount, parts[2]
        return kind
    except OSError:
        return None


@dataclass(frozen=True)
class SpillPlan:
    """Where held features go: ``directory`` None means they stay in memory (``reason`` says why)."""
    directory: str | None
    resident_bytes: int = DEFAULT_RESIDENT_BYTES
    reason: str = ""
    explicit: bool = False  # the user named the directory: failures raise instead of falling back


def plan_spill(spill, held_estimate: int | None, resident_bytes: int = DEFAULT_RESIDENT_BYTES) -> SpillPlan:
    """``spill``: ``"auto"`` (the default: the system temp directory when it is on disk, has room, and the
    schedule's held state, ``held_estimate`` bytes, exceeds ``resident_bytes``), ``"off"`` / ``None`` /
    ``False``, or a directory (always used, checked now)."""
    if spill in (None, False, "off", "none", "no"):
        return SpillPlan(None, resident_bytes, "spill off")
    if spill in (True, "auto", "on"):
        if held_estimate is not None and held_estimate <= resident_bytes:
            return SpillPlan(None, resident_bytes, "held state fits the resident limit")
        directory = tempfile.gettempdir()
        kind = filesystem_type(directory)
        if kind in RAM_FILESYSTEMS:
            return SpillPlan(None, resident_bytes, f"{directory} is {kind} (memory): spilling there saves nothing; "
                                                   "pass --spill DIR on a disk to spill")
        need = (held_estimate or 0) + FREE_MARGIN
        if shutil.disk_usage(directory).free < need:
            return SpillPlan(None, resident_bytes, f"{directory} has less than {need / 2**20:.0f} MB free")
        return SpillPlan(directory, resident_bytes, f"spilling to {directory}")
    if not isinstance(spill, (str, os.PathLike)):
        raise ConfigError(f"spill must be 'auto', 'off' or a directory (got {spill!r})")
    path = Path(spill).expanduser()
    if not path.is_dir():
        raise ConfigError(f"spill directory {str(path)!r} does not exist or is not a directory; create it, or "
                          "use --spill auto (the system temp directory) or --spill off")
    if not os.access(path, os.W_OK | os.X_OK):
        raise ConfigError(f"spill directory {str(path)!r} is not writable; choose another with --spill DIR")
    kind = filesystem_type(path)
    note = f" ({kind}: memory, so this saves nothing)" if kind in RAM_FILESYSTEMS else ""
    return SpillPlan(str(path), resident_bytes, f"spilling to {path}{note}", explicit=True)


def held_bytes_with_spill(schedule, out_bytes, window: int, lookahead: int, resident_bytes: int) -> int | None:
    """What ``schedule`` holds in memory when the outputs of its :meth:`~Schedule.spilled_cells` beyond
    ``resident_bytes`` go to a spill file: the rest of its :meth:`~Schedule.held_bytes` plus the resident part,
    plus four spillable outputs for the steps in flight (read back, or not yet written). ``None`` when the
    schedule does not count what it holds."""
    full = schedule.held_bytes(out_bytes, window, lookahead)
    cells = set(schedule.spilled_cells())
    if full is None or not cells:
        return full
    kept = schedule.held_bytes(lambda cell: 0 if cell in cells else out_bytes(cell), window, lookahead)
    in_flight = 4 * max(out_bytes(cell) for cell in cells)
    return kept + min(full - kept, resident_bytes + in_flight)


def check_spill(spill) -> None:
    """Raise ConfigError now for a bad ``spill`` value or directory; the plan itself waits for the frame size
    (a held state of 0 bytes never reaches ``auto``'s filesystem checks)."""
    plan_spill(spill, 0)


@dataclass(frozen=True)
class _Spilled:
    offset: int
    shape: tuple
    dtype: object  # a numpy or torch dtype
    nbytes: int
    torch: bool  # read back as a torch tensor (else a numpy array)


class SpillFiles:
    """Anonymous spill files kept between streams (an ``Upscaler`` holds one of these): a stream's
    :class:`SpillFile` writes over a kept file from its start instead of growing a new one. Growing a file takes
    fresh page-cache pages, writing over a file's own pages does not: on a Zen 5 VM (ext4) 200-210 MB/s against
    ~11 GB/s, which cost a 12-frame BasicVSR++ INT8 stream at 180x320 19% of its speed and a 48-frame one 6%
    (benchmarks/spill_cost.py; RESULTS.md, "The deformable conv three taps at a time, and where BasicVSR++'s INT8
    stream spends the rest"). A kept file keeps its disk space (the largest held state of a stream so far) until
    :meth:`close`; nothing of an earlier stream is ever read back (handles are per stream)."""

    def __init__(self):
        self._kept: dict[str | None, list] = {}  # directory -> files no stream is using
        self._lock = threading.Lock()

    def take(self, directory: str | None):
        """A kept file in ``directory``, or None."""
        with self._lock:
            files = self._kept.get(directory)
            return files.pop() if files else None

    def give(self, directory: str | None, file) -> None:
        """``file`` is free again (its stream ended)."""
        with self._lock:
            self._kept.setdefault(directory, []).append(file)

    def close(self) -> None:
        """Close every kept file (the kernel frees an anonymous file's space then). Idempotent."""
        with self._lock:
            kept, self._kept = self._kept, {}
        for files in kept.values():
            for f in files:
                f.close()


class SpillFile:
    """Arrays (numpy or torch, on the CPU) written to one anonymous temporary file; space of freed ones is
    reused (same size). With ``files`` (:class:`SpillFiles`) the file is a kept one when there is one, and goes
    back to be kept at :meth:`close`."""

    def __init__(self, plan: SpillPlan, stats: dict | None = None, files: SpillFiles | None = None):
        self.plan = plan
        self._files = files
        self.resident = 0  # bytes of held features kept in memory (HeldFeatures count them here)
        self._file = None
        self._end = 0
        self._free: dict[int, list[int]] = {}
        self._lock = threading.Lock()
        self.failed: str | None = None
        self.stats = stats if stats is not None else {}
        self.stats.setdefault("spilled_bytes", 0)
        self.stats.setdefault("spill_file_bytes", 0)
        self.stats["spill"] = plan.reason

    def wants(self, t) -> bool:
        """Whether ``t`` should go to the file: a CPU array that would take the resident bytes past the limit."""
        return (self.plan.directory is not None and self.failed is None and arrays.on_cpu(t)
                and self.resident + t.nbytes > self.plan.resident_bytes)

    def _open(self):
        if self._file is None and self._files is not None:
            self._file = self._files.take(self.plan.directory)
        if self._file is None:
            self._file = tempfile.TemporaryFile(dir=self.plan.directory, prefix="vsrdeploy-spill-")
        return self._file

    def put(self, t):
        """Write ``t`` and return its handle; on a write error (disk full) in ``auto`` mode, return ``t`` itself
        and keep every later tensor in memory (``stats['spill']`` says why)."""
        view = arrays.as_bytes(t)
        n = view.nbytes
        with self._lock:
            slots = self._free.get(n)
            offset = slots.pop() if slots else self._end
            try:
                f = self._open()
                f.seek(offset)
                f.write(view)
            except OSError as e:
                if self.plan.explicit:
                    raise ConfigError(f"cannot spill held features to {self.plan.directory}: {e}; free space there, "
                                      "choose another with --spill DIR, or use --spill off") from e
                self.failed = f"spill stopped: {e}; held features stay in memory"
                self.stats["spill"] = self.failed
                if slots is not None and offset != self._end:
                    slots.append(offset)
                return t
            if offset == self._end:
                self._end += n
                self.stats["spill_file_bytes"] = self._end
        self.stats["spilled_bytes"] += n
        return _Spilled(offset, tuple(t.shape), t.dtype, n, arrays.is_torch(t))

    def get(self, h: _Spilled):
        out = arrays.empty_like_kind(h.torch, h.shape, h.dtype)
        view = arrays.as_bytes(out)
        with self._lock:
            self._file.seek(h.offset)
            got = self._file.readinto(view)
        if got != h.nbytes:
            raise OSError(f"spill file: read {got} of {h.nbytes} bytes at {h.offset}")
        return out

    def free(self, h: _Spilled) -> None:
        with self._lock:
            self._free.setdefault(h.nbytes, []).append(h.offset)

    def close(self) -> None:
        if self._file is not None:
            if self._files is not None and self.failed is None:
                self._files.give(self.plan.directory, self._file)
            else:
                self._file.close()
            self._file = None


class HeldFeatures(MutableMapping):
    """Frame index -> feature tensor, in memory up to the spill file's resident limit and in the file beyond
    it (``spill=None``: a plain dict). Reading a spilled feature returns a new tensor each time; drop
    features with :meth:`discard` (``pop`` would read a spilled one back first)."""

    def __init__(self, spill: SpillFile | None = None):
        self._items: dict = {}
        self._spill = spill

    def __setitem__(self, key, value) -> None:
        self.discard(key)
        if self._spill is None:
            self._items[key] = value
            return
        if self._spill.wants(value):
            handle = self._spill.put(value)
            if isinstance(handle, _Spilled):
                self._items[key] = handle
                return
        value = owned(value)  # kept as a view of a batch output, it would keep the whole batch resident
        self._items[key] = value
        self._spill.resident += value.nbytes

    def __getitem__(self, key):
        v = self._items[key]
        return self._spill.get(v) if isinstance(v, _Spilled) else v

    def __delitem__(self, key) -> None:
        v = self._items.pop(key)
        if self._spill is not None:
            if isinstance(v, _Spilled):
                self._spill.free(v)
            else:
                self._spill.resident -= v.nbytes

    def discard(self, key) -> None:
        """Drop ``key`` if held, without reading it."""
        if key in self._items:
            del self[key]

    def clear(self) -> None:
        """Drop everything, returning spilled space to the file without reading it back."""
        for key in list(self._items):
            del self[key]

    def __iter__(self):
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key) -> bool:
        return key in self._items


def park(tree, spill: SpillFile):
    """``tree`` (dicts, tuples and lists of arrays and other leaves) with every CPU array written to ``spill``:
    state that waits while other tiles run (:func:`unpark` reads it back; a failed write keeps the tensor)."""
    return arrays.tree_map(lambda v: spill.put(v) if arrays.is_array(v) and arrays.on_cpu(v) else v, tree)


def unpark(tree, spill: SpillFile):
    """``tree`` from :func:`park` with every spilled tensor read back and its space returned to the file."""
    def back(v):
        if not isinstance(v, _Spilled):
            return v
        t = spill.get(v)
        spill.free(v)
        return t
    return arrays.tree_map(back, tree)
