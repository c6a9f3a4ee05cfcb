"""Accuracy of reduced-precision bundles on a real clip: PSNR (Y) against the FP32 bundle's output
and against ground truth, for FP16 keep-FP32 lists and INT8 quantization recipes.

    python benchmarks/precision_accuracy.py --model CKPT --clip CLIP [--frames 30] [--fp16 RULES ...]
        [--int8 TARGET:METHOD[:EXCLUDE,...] ...] [--calib CLIP --calib-frames N] [--ov-precision bf16 ...]
        [--int8-float bf16 ...]

Each ``--fp16`` value is a comma-separated keep-FP32 rule list ('' = everything FP16). FP16 is
emulated (``calib.fp16.emulate_fp16``): every tensor and weight of an FP16 node is rounded to FP16,
arithmetic inside ops stays FP32 (as with FP16 tensor cores accumulating in FP32). ONNX Runtime CPU
cannot measure the FP16 graph itself: it runs ops without FP16 kernels in FP32 and drops the casts
it inserts between them (measured: "everything FP16" came out at 90 dB PSNR vs FP32).
The clip is degraded BI x4 (MATLAB bicubic) to make the LR input; ground truth is the clip itself.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from vsrdeploy import export_onnx, load_checkpoint
from vsrdeploy.bundle import Bundle
from vsrdeploy.evaluate.compare import read_clip
from vsrdeploy.evaluate.degrade import degrade
from vsrdeploy.errors import BackendUnavailable
from vsrdeploy.evaluate.metrics import psnr
from vsrdeploy.runtimes.engine import Upscaler


def y_psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([psnr(np.clip(x, 0, 1), np.clip(y, 0, 1), y_channel=True) for x, y in zip(a, b)]))


def run(bundle: Bundle, lr: np.ndarray, backend: str, threads: int, **options) -> tuple[np.ndarray, float]:
    """Whole clip on ``backend``; seconds per frame of the second of two runs (the first warms up)."""
    up = Upscaler.create(bundle, backend, threads=threads, **options)
    up.upscale(lr[:2])
    t = time.perf_counter()
    out = up.upscale(lr)
    return out, (time.perf_counter() - t) / len(lr)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--clip", required=True)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--skip", type=int, default=0)
    ap.add_argument("--fp16", action="append", default=[], help="keep-FP32 rules, comma-separated")
    ap.add_argument("--bf16", action="append", default=[], help="like --fp16, emulating BF16")
    ap.add_argument("--int8", action="append", default=[],
                    help="TARGET:METHOD[:EXCLUDE,...] (no EXCLUDE: the default exclusions; 'none': none)")
    ap.add_argument("--calib", help="calibration clip (default: --clip)")
    ap.add_argument("--calib-frames", type=int, default=16)
    ap.add_argument("--calib-skip", type=int, default=0)
    ap.add_argument("--dcn", default="native")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backend", default="ort-cpu", help="ort-cpu or openvino-cpu (use --dcn decomposed)")
    ap.add_argument("--ov-precision", action="append", default=[], choices=["bf16", "fp16"],
                    help="also run the FP32 bundle on openvino-cpu with this inference precision (real execution on "
                         "CPUs whose OpenVINO reports it: BF16 with AVX512_BF16 or AMX, FP16 with AVX512_FP16 or "
                         "AMX-FP16; needs --dcn decomposed for BasicVSR++); repeat for both")
    ap.add_argument("--ov-bf16", dest="ov_precision", action="append_const", const="bf16",
                    help="same as --ov-precision bf16")
    ap.add_argument("--int8-backends", help="run each INT8 bundle on these backends (default: --backend)")
    ap.add_argument("--int8-float", action="append", default=[], choices=["bf16", "fp16"],
                    help="also run each INT8 bundle on openvino-cpu with its unquantized ops at this precision "
                         "(precision int8-bf16 / int8-fp16; real execution where OpenVINO reports it); repeat for both")
    ap.add_argument("--bf16-coordinates", action="store_true",
                    help="also run each openvino-cpu BF16 / FP16 row with its sampling coordinates in that precision "
                         "(fp32_coordinates=False: how 0.3.12 and before ran them)")
    ap.add_argument("--json", help="write the rows here too")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    gt, desc = read_clip(args.clip, args.frames, skip=args.skip)
    lr = degrade(gt, "bi")
    work = Path(tempfile.mkdtemp(prefix="precision-"))
    fp32 = Bundle(export_onnx(load_checkpoint(args.model), work / "fp32.vsr", dcn=args.dcn))
    ref, ms = run(fp32, lr, args.backend, args.threads)
    rows = [{"variant": "fp32", "psnr_vs_fp32": float("inf"), "psnr_y_gt": y_psnr(ref, gt), "s_per_frame": ms}]
    for i, (dtype, spec) in enumerate([("float16", s) for s in args.fp16] + [("bfloat16", s) for s in args.bf16]):
        import onnx
        from vsrdeploy.calib.fp16 import KeepRule, emulate_fp16, nodes_to_keep
        rules = [KeepRule.parse(r) for r in spec.split(",") if r]
        models, kept = {}, 0
        for name in fp32.cells:
            model = onnx.load(str(fp32.cell_path(name)))
            models[name] = emulate_fp16(model, name, rules, dtype)
            kept += len(nodes_to_keep(model, name, rules))
        b = Bundle(fp32.derive(work / f"fp16-{i}.vsr", models, "fp16", {"emulated": True}))
        out, ms = run(b, lr, args.backend, args.threads)
        label = "fp16" if dtype == "float16" else "bf16"
        rows.append({"variant": f"{label} (emulated) keep[{spec or 'nothing'}] ({kept} nodes FP32)",
                     "psnr_vs_fp32": y_psnr(out, ref), "psnr_y_gt": y_psnr(out, gt), "s_per_frame": ms})
    coordinates = {"": {}} | ({", coordinates in that precision": {"fp32_coordinates": False}}
                              if args.bf16_coordinates else {})
    for precision, (note, extra) in itertools.product(dict.fromkeys(args.ov_precision), coordinates.items()):
        try:
            out, ms = run(fp32, lr, "openvino-cpu", args.threads, precision=precision, **extra)
            rows.append({"variant": f"{precision} (openvino-cpu, real execution{note})",
                         "psnr_vs_fp32": y_psnr(out, ref), "psnr_y_gt": y_psnr(out, gt), "s_per_frame": ms})
        except BackendUnavailable as e:
            print(f"{precision} on openvino-cpu: not run here: {e}", file=sys.stderr)
    if args.int8:
        from vsrdeploy.calib.int8 import TARGETS, calibrate_bundle
        calib_clip, _ = read_clip(args.calib or args.clip, args.calib_frames, skip=args.calib_skip)
        calib_lr = degrade(calib_clip, "bi")
        for i, spec in enumerate(args.int8):
            target, method, *rest = spec.split(":")
            exclude = list(TARGETS[target].exclude) if not rest else [e for e in rest[0].split(",") if e and e != "none"]
            b = Bundle(calibrate_bundle(fp32, calib_lr, work / f"int8-{i}.vsr", target=target, method=method,
                                        exclude=exclude, progress=False))
            recipe = f"int8 {target} {method}, exclude [{','.join(exclude) or 'nothing'}]"
            for backend in (args.int8_backends or args.backend).split(","):
                out, ms = run(b, lr, backend, args.threads)
                on = f" on {backend}" if args.int8_backends else ""
                rows.append({"variant": f"{recipe}{on}",
                             "psnr_vs_fp32": y_psnr(out, ref), "psnr_y_gt": y_psnr(out, gt),
                             "s_per_frame": ms})
            for precision, (note, extra) in itertools.product(dict.fromkeys(args.int8_float), coordinates.items()):
                try:
                    out, ms = run(b, lr, "openvino-cpu", args.threads, precision=precision, **extra)
                except BackendUnavailable as e:
                    print(f"int8-{precision} on openvino-cpu: not run here: {e}", file=sys.stderr)
                    continue
                rows.append({"variant": f"{recipe} on openvino-cpu, float ops {precision} (real execution{note})",
                             "psnr_vs_fp32": y_psnr(out, ref), "psnr_y_gt": y_psnr(out, gt), "s_per_frame": ms})
    bic = y_psnr(np.stack([np.clip(f, 0, 1) for f in _bicubic_up(lr)]), gt)
    print(f"# {Path(args.model).name} on {desc} ({len(gt)} frames, LR {lr.shape[2]}x{lr.shape[3]}); "
          f"bicubic PSNR-Y {bic:.2f} dB\n")
    print(f"| variant | PSNR-Y vs FP32 output (dB) | PSNR-Y vs GT (dB) | drop vs FP32 (dB) | s/frame ({args.backend}) | time vs FP32 |")
    print("|---|---|---|---|---|---|")
    base = rows[0]["psnr_y_gt"]
    for r in rows:
        print(f"| {r['variant']} | {r['psnr_vs_fp32']:.2f} | {r['psnr_y_gt']:.3f} | {base - r['psnr_y_gt']:.3f} "
              f"| {r['s_per_frame']:.3f} | {r['s_per_frame'] / rows[0]['s_per_frame']:.2f}x |")
    if args.json:
        Path(args.json).write_text(json.dumps({"model": args.model, "clip": desc, "bicubic": bic, "rows": rows},
                                              indent=1))
    return 0


def _bicubic_up(lr: np.ndarray) -> np.ndarray:
    from vsrdeploy.evaluate.degrade import bicubic_resize
    return bicubic_resize(lr, 4)


if __name__ == "__main__":
    sys.exit(main())
