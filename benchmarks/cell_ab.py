"""One cell of several bundles (e.g. the same checkpoint exported by two vsrdeploy versions, or its INT8 forms),
timed on the runtimes directly, interleaved in one process, on the inputs that cell really receives (recorded
from a stream through the first bundle). Each bundle's output is compared with the first's. ``--after-release``
also times, on OpenVINO, a call made right after ``release_memory()`` (what a cell pays when its buffers were
handed back).

    python benchmarks/cell_ab.py --cell backward_1_align --size 180x320 --threads 2 --rounds 7 \\
        --bundles old/fp32.vsr new/fp32.vsr old/int8.vsr new/int8.vsr --backends openvino-cpu ort-cpu
    python benchmarks/cell_ab.py --cell backward_1_align --size 270x480 --bundles fp32.vsr \\
        --after-release --after-unload
    python benchmarks/cell_ab.py --cell edvr_fusion --frames 5 --bundles old/int8.vsr new/int8.vsr   # IconVSR
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from vsrdeploy.bundle import Bundle
from vsrdeploy.evaluate.bench import synthetic_clip
from vsrdeploy.evaluate.cell_parity import first_call_inputs
from vsrdeploy.evaluate.machine import cpu_info


class _OpenVINOCell:
    """A compiled cell that can hand its buffers back (``release``) or be dropped and imported again (``unload``)."""

    def __init__(self, path, threads):
        import openvino as ov
        self.core = ov.Core()
        self.config = {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"}
        self.compiled = self.core.compile_model(self.core.read_model(path), "CPU", self.config)
        self.request = self.compiled.create_infer_request()
        self.blob = None

    def __call__(self, feeds):
        return next(iter(self.request.infer(feeds).values()))

    def release(self):
        self.compiled.release_memory()

    def unload(self):
        """Drop the compiled model and import it again from its exported blob (the import is timed by the caller)."""
        if self.blob is None:
            self.blob = self.compiled.export_model()
        del self.request, self.compiled
        self.blob.seek(0)
        self.compiled = self.core.import_model(self.blob, "CPU", self.config)
        self.request = self.compiled.create_infer_request()


def _openvino_call(path, threads):
    cell = _OpenVINOCell(path, threads)
    return cell, cell.release, cell.unload


def _ort_call(path, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.log_severity_level = 3
    session = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return (lambda feeds: session.run(None, feeds)[0]), None, None


RUNTIMES = {"openvino-cpu": _openvino_call, "ort-cpu": _ort_call}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", nargs="+", required=True)
    ap.add_argument("--cell", default="backward_1_align")
    ap.add_argument("--size", default="180x320", help="LR HxW")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--backends", nargs="+", default=["openvino-cpu"], choices=sorted(RUNTIMES))
    ap.add_argument("--frames", type=int, default=2,
                    help="frames of the clip whose first call of the cell is recorded (IconVSR's key frames: 5)")
    ap.add_argument("--after-release", action="store_true")
    ap.add_argument("--after-unload", action="store_true")
    args = ap.parse_args(argv)
    h, w = (int(v) for v in args.size.split("x"))
    bundles = [Bundle(p) for p in args.bundles]
    feeds = first_call_inputs(bundles[0], args.cell, synthetic_clip(args.frames, h, w), threads=args.threads)
    info = cpu_info()
    print(f"{args.cell}, LR {h}x{w}, {args.threads} threads, median of {args.rounds} interleaved rounds; "
          f"CPU {info['model']}, flags {', '.join(info.get('flags', [])) or '?'}\n")
    print("| backend | bundle | median s | min s | after release_memory s | after unload + import s | "
          "max abs diff vs first |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for backend in args.backends:
        calls = {b.path: RUNTIMES[backend](str(b.cell_path(args.cell)), args.threads) for b in bundles}
        outs = {}
        for key, (call, _, _) in calls.items():
            call(feeds)
            outs[key] = np.array(call(feeds), copy=True)
        times = {key: [] for key in calls}
        released = {key: [] for key in calls}
        unloaded = {key: [] for key in calls}
        for _ in range(args.rounds):
            for key, (call, release, unload) in calls.items():
                t = time.perf_counter()
                call(feeds)
                times[key].append(time.perf_counter() - t)
                if args.after_release and release is not None:
                    release()
                    t = time.perf_counter()
                    call(feeds)
                    released[key].append(time.perf_counter() - t)
                if args.after_unload and unload is not None:
                    t = time.perf_counter()
                    unload()
                    call(feeds)
                    unloaded[key].append(time.perf_counter() - t)
        first = outs[bundles[0].path]
        for key in calls:
            after = f"{np.median(released[key]):.3f}" if released[key] else "-"
            reimported = f"{np.median(unloaded[key]):.3f}" if unloaded[key] else "-"
            diff = float(np.abs(outs[key] - first).max())
            print(f"| {backend} | {key} | {np.median(times[key]):.3f} | {min(times[key]):.3f} | {after} | "
                  f"{reimported} | {diff:.1e} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
