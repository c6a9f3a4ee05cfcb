"""The machine's measured FP32 GEMM peak: the best rate of a large square ``torch.mm`` on the given threads.

The number per-cell efficiency is judged against (``bench --profile``): a cell that reaches most of this
rate is as fast as the CPU's matrix kernels allow at FP32, and only less work (reduced precision, reused
results) makes it faster. Best-of a few repetitions, so a busy moment on a shared machine lowers it less.
"""
from __future__ import annotations

import time

#: side of the square matrices: large enough for the BLAS kernels' steady state, small enough for ~1 s
DEFAULT_SIZE = 2048
DEFAULT_REPEAT = 5


def measure_gemm_peak(threads: int | None = None, size: int = DEFAULT_SIZE, repeat: int = DEFAULT_REPEAT) -> dict:
    """``{"gflops", "size", "repeat", "threads", "best_s"}``: FP32 ``torch.mm`` of two ``size`` x ``size``
    matrices, one untimed warm-up then ``repeat`` timed calls, best of them (2 * size**3 FLOP each).

    ``threads``: PyTorch intra-op threads for the measurement (set process-wide, as the bench rows do);
    None keeps the current setting. The thread count used is reported either way."""
    import torch
    from ..errors import ConfigError
    if size < 1 or repeat < 1:
        raise ConfigError(f"the GEMM peak needs size >= 1 and repeat >= 1 (got {size}, {repeat})")
    if threads:
        torch.set_num_threads(int(threads))
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(size, size, generator=gen, dtype=torch.float32)
    b = torch.rand(size, size, generator=gen, dtype=torch.float32)
    out = torch.empty(size, size, dtype=torch.float32)
    with torch.no_grad():
        torch.mm(a, b, out=out)  # warm-up: thread pool, BLAS buffers
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            torch.mm(a, b, out=out)
            best = min(best, time.perf_counter() - t0)
    return {"gflops": 2 * size ** 3 / best / 1e9, "size": size, "repeat": repeat,
            "threads": torch.get_num_threads(), "best_s": best}
