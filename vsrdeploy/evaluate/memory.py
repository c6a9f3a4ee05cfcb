"""Resident memory of this process (psutil, so it works off Linux too), its peak, and the GPU's (torch CUDA
counters) when CUDA is in use."""
from __future__ import annotations

import threading
import time


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
