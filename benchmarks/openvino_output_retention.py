"""What OpenVINO's CPU plugin keeps of a dynamic-shape model after ``CompiledModel.release_memory()`` (issue #12).

One 3x3 convolution + ReLU, 64 channels, compiled with dynamic N / H / W and run once at ``--size`` (default
720x1280, an upsampling tail's intermediate at 180x320 LR). After each step it prints the process's resident
memory and glibc's large (mmapped) allocations: after the call, after ``release_memory()``, with the output
tensor handed to the request by us (``set_tensor``, as vsrdeploy's backend does) or not, after deleting the
request and releasing again, and after deleting the compiled model. Linux (glibc) only.

    python benchmarks/openvino_output_retention.py
    python benchmarks/openvino_output_retention.py --own-output
"""
from __future__ import annotations

import argparse
import gc

import numpy as np

from cell_call_trace import heap  # glibc's mallinfo2, MiB (this directory is on sys.path when run)


def memory() -> str:
    rss = next(int(line.split()[1]) >> 10 for line in open("/proc/self/status") if line.startswith("VmRSS:"))
    return f"RSS {rss:5d} MiB, glibc mmapped {heap()['mmapped']:5d} MiB"


def main() -> None:
    import openvino as ov
    from openvino import opset13 as ops

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", default="720x1280", help="HxW of the 64-channel input")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--own-output", action="store_true", help="hand the request an output tensor of ours")
    args = p.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    channels = 64
    core = ov.Core()
    param = ops.parameter([-1, channels, -1, -1], ov.Type.f32)
    weight = ops.constant(np.random.default_rng(0).standard_normal((channels, channels, 3, 3), dtype=np.float32))
    conv = ops.convolution(param, weight, [1, 1], [1, 1], [1, 1], [1, 1])
    compiled = core.compile_model(ov.Model([ops.relu(conv)], [param]), "CPU",
                                  {"INFERENCE_NUM_THREADS": args.threads, "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    x = np.ones((1, channels, h, w), np.float32)
    tensor_mib = x.nbytes >> 20
    print(f"one tensor of this size: {tensor_mib} MiB")
    print(f"{'input made':44s} {memory()}")
    request.set_tensor(compiled.inputs[0], ov.Tensor(x, shared_memory=True))
    if args.own_output:
        out = np.empty_like(x)
        request.set_tensor(compiled.outputs[0], ov.Tensor(out, shared_memory=True))
        print(f"{'our output buffer made':44s} {memory()}")
    request.infer()
    print(f"{'after the call':44s} {memory()}")
    compiled.release_memory()
    print(f"{'after release_memory()':44s} {memory()}")
    del request
    gc.collect()
    compiled.release_memory()
    print(f"{'request deleted, release_memory() again':44s} {memory()}")
    del compiled
    gc.collect()
    print(f"{'compiled model deleted':44s} {memory()}")


if __name__ == "__main__":
    main()
