"""Resident memory of this process (psutil, so it works off Linux too), its peak, and the GPU's (torch CUDA
counters) when CUDA is in use."""
from __future__ import annotations

import ctypes
import ctypes.util
import threading
import time

#: allocations from this size up are served by mmap and handed back to the OS when freed
MMAP_THRESHOLD_BYTES = 1 << 20
_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
_mmap_threshold_set = False


def return_large_frees_to_os() -> None:
    """glibc only, once per process: fix malloc's mmap threshold at 1 MB.

    By default glibc raises that threshold after each large free (up to 32 MB), so later feature maps
    of a few MB to 32 MB come from the heap, and the heap keeps their pages after they are freed.
    Streaming at 180x320 LR held ~300 MB more for that reason (1.53 GB vs 1.24 GB peak RSS, BasicVSR
    c64 on torch, benchmarks/RESULTS.md). Same effect as ``MALLOC_MMAP_THRESHOLD_=1048576``.
    """
    global _mmap_threshold_set
    if _mmap_threshold_set:
        return
    _mmap_threshold_set = True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt"):
            libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
    except OSError:  # not glibc: nothing to do
        pass


def rss_mb() -> float:
    """Resident memory now (MB)."""
    import psutil
    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (MB): VmHWM on Linux, the peak working set on Windows,
    ``ru_maxrss`` elsewhere; NaN where none of them exists."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import psutil
    peak = getattr(psutil.Process().memory_info(), "peak_wset", None)
    if peak is not None:
        return peak / 2**20
    try:
        import resource
        import sys
        scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on the BSDs
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
    except (ImportError, OSError):
        return float("nan")


def gpu_peak_mb() -> float:
    """Peak memory torch's CUDA allocator handed out in this process (MB); NaN without CUDA in use."""
    import sys
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available() or not torch.cuda.is_initialized():
        return float("nan")
    return torch.cuda.max_memory_allocated() / 2**20


class PeakRSS:
    """``with PeakRSS() as m: ...`` then ``m.peak_mb`` (peak RSS) and ``m.increase_mb`` (over the start)."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.start_mb = self.peak_mb = float("nan")
        self._stop = threading.Event()

    def _sample(self):
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, rss_mb())
            time.sleep(self.interval)

    def __enter__(self):
        self.start_mb = self.peak_mb = rss_mb()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())

    @property
    def increase_mb(self) -> float:
        return self.peak_mb - self.start_mb
