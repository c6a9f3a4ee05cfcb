"""The machine's measured FP32 GEMM peak: the best rate of one large square FP32 GEMM on the given threads.

The number per-cell efficiency is judged against (``bench --profile``): a cell that reaches most of this
rate is as fast as the CPU's matrix kernels allow at FP32, and only less work (reduced precision, reused
results) makes it faster.

The same GEMM (``size`` x ``size`` by ``size`` x ``size``, 2 * size**3 FLOP) runs through each kernel
library at hand, and the fastest is the peak:

- ``torch.mm``: PyTorch's BLAS (MKL on x86 wheels). On AMD CPUs MKL does not take its AVX-512 path, and
  there it reaches only about half of what the CPU does;
- a 1x1 ``conv2d`` of the same shape: oneDNN, the kernel library behind PyTorch's convolutions;
- an ONNX ``MatMul`` on ONNX Runtime (MLAS) and on OpenVINO CPU (f32), when they are installed.

All on the same number of threads. Best of a few repetitions, interleaved, so a busy moment on a
shared machine lowers the result less.
"""
from __future__ import annotations

import time

#: side of the square matrices: large enough for the kernels' steady state, small enough for ~1 s
DEFAULT_SIZE = 2048
DEFAULT_REPEAT = 5


def _onnx_matmul(size: int):
    import onnx
    from onnx import TensorProto, helper
    ports = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [size, size]) for n in ("a", "b", "c")]
    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm", ports[:2], ports[2:])
    return onnx.helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _ort_kernel(size: int, threads: int, a, b):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    session = ort.InferenceSession(_onnx_matmul(size).SerializeToString(), so, providers=["CPUExecutionProvider"])
    feeds = {"a": a, "b": b}
    return lambda: session.run(None, feeds)[0]


def _openvino_kernel(size: int, threads: int, a, b):
    import openvino as ov
    import openvino.opset13 as ops
    pa, pb = (ops.parameter([size, size], ov.Type.f32) for _ in range(2))
    model = ov.Model([ops.matmul(pa, pb, False, False)], [pa, pb], "gemm")
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32",
                                                      "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    return lambda: request.infer({0: a, 1: b})[0]


#: runtime GEMMs: name -> builder(size, threads, a, b) of a callable; skipped when the runtime is missing
RUNTIME_KERNELS = {"onnxruntime MatMul": _ort_kernel, "openvino MatMul": _openvino_kernel}


def _kernels(size: int):
    """name -> a zero-argument callable computing a @ b once, a and b the same size x size FP32 matrices."""
    import torch
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(size, size, generator=gen)
    b = torch.rand(size, size, generator=gen)
    out = torch.empty(size, size)
    kernels = {"torch.mm": lambda: torch.mm(a, b, out=out)}
    if torch.backends.mkldnn.is_available():
        # input a^T as (1, K, M, 1), weight b^T as (N, K, 1, 1): the output's (N, M) plane is (a @ b)^T
        x = a.t().contiguous().reshape(1, size, size, 1)
        w = b.t().contiguous().reshape(size, size, 1, 1)
        kernels["conv2d 1x1 (oneDNN)"] = lambda: torch.nn.functional.conv2d(x, w)
    an, bn = a.numpy(), b.numpy()
    for name, build in RUNTIME_KERNELS.items():
        try:
            kernels[name] = build(size, torch.get_num_threads(), an, bn)
        except ImportError:
            continue
    return kernels


def measure_gemm_peak(threads: int | None = None, size: int = DEFAULT_SIZE, repeat: int = DEFAULT_REPEAT) -> dict:
    """``{"gflops", "kernel", "kernels": {name: GFLOP/s}, "size", "repeat", "threads", "best_s"}``.

    One untimed warm-up call per kernel, then ``repeat`` rounds timing each kernel once; each kernel's
    rate is its best round, ``gflops`` the best kernel's (named by ``kernel``, its time ``best_s``).
    ``threads``: PyTorch intra-op threads for the measurement (set process-wide, as the bench rows do);
    None keeps the current setting. The thread count used is reported either way."""
    import torch
    from ..errors import ConfigError
    if size < 1 or repeat < 1:
        raise ConfigError(f"the GEMM peak needs size >= 1 and repeat >= 1 (got {size}, {repeat})")
    if threads:
        torch.set_num_threads(int(threads))
    kernels = _kernels(size)
    best = {name: float("inf") for name in kernels}
    with torch.no_grad():
        for fn in kernels.values():
            fn()  # warm-up: thread pool, buffers, kernel choice
        for _ in range(repeat):
            for name, fn in kernels.items():
                t0 = time.perf_counter()
                fn()
                best[name] = min(best[name], time.perf_counter() - t0)
    flop = 2 * size ** 3
    rates = {name: flop / s / 1e9 for name, s in best.items()}
    kernel = max(rates, key=rates.get)
    return {"gflops": rates[kernel], "kernel": kernel, "kernels": rates, "size": size, "repeat": repeat,
            "threads": torch.get_num_threads(), "best_s": best[kernel]}
