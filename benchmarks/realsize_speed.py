"""Speed at the size users run (default 180x320 LR) with the released channel widths: every backend x
precision against the whole-clip PyTorch forward (``bench.upstream_forward``: what upstream's forward
computes, at its cost, whole frames without row strips; parity in tests/test_reference.py; the streamed
``torch`` row with a clip shorter than the window is the product's ``model(lrs)``, row strips included),
each row in its own process
(``vsrdeploy.evaluate.bench.run_configs``), with peak RSS. Random weights (speed does not depend on their values);
the INT8 bundles are the ``calibrate --target cpu`` form (ONNX Runtime's Q/DQ) and the ``--target openvino``
form (NNCF's), calibrated on a few synthetic frames (their scales do not change their speed).

    python benchmarks/realsize_speed.py --arch basicvsr --size 180x320 --frames 3 --threads 2
    python benchmarks/realsize_speed.py --arch iconvsr --frames 5 --warmup 5     # IconVSR needs 5 frames
    python benchmarks/realsize_speed.py --arch basicvsr_pp --dcn native --rows ort-cpu/fp32,ort-cpu/int8
    python benchmarks/realsize_speed.py --arch iconvsr --frames 5 --warmup 5 --rows openvino-cpu/int8-nncf+bf16
    python benchmarks/realsize_speed.py --arch basicvsr_pp --rows openvino-cpu/int8-nncf \
        --variant openvino-cpu:keep_working_sets=2     # each openvino-cpu row once more with that option
    python benchmarks/realsize_speed.py --arch basicvsr_pp --rows openvino-cpu/int8-nncf --heap both
        # each row with the streams' malloc policy "return" (default) and again with "keep" (models.heap)

The baseline row runs with the C library's default malloc, as upstream's code does (since 0.3.14; before, it ran
with the streams' 1 MB mmap threshold: benchmarks/RESULTS.md, "What freed memory costs").

Prints a Markdown table with the CPU's model and flags and the load average before and after.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

import vsrdeploy
from vsrdeploy.evaluate.bench import BASELINE, BenchConfig, run_configs, synthetic_clip
from vsrdeploy.bundle import Bundle
from vsrdeploy.calib.int8 import DEFAULT_EXCLUDE, TARGETS, calibrate_bundle
from vsrdeploy.evaluate.tune import cpu_description, openvino_capabilities
from vsrdeploy.models.heap import DEFAULT_HEAP_POLICY, HEAP_POLICIES
from vsrdeploy.runtimes.base import int8_float_precision, parse_backend_options

RELEASED = {"basicvsr": {"mid_channels": 64, "num_blocks": 30}, "basicvsr_pp": {"mid_channels": 64, "num_blocks": 7},
            "iconvsr": {"mid_channels": 64, "num_blocks": 30},
            "realbasicvsr": {"mid_channels": 64, "num_propagation_blocks": 20, "num_cleaning_blocks": 20}}
ROWS = [("torch", "fp32", None), ("ort-cpu", "fp32", None), ("openvino-cpu", "fp32", None),
        ("openvino-cpu", "bf16", None), ("openvino-cpu", "fp16", None), ("ort-cpu", "int8", "int8"),
        ("openvino-cpu", "int8", "int8"), ("openvino-cpu", "int8", "int8-nncf"),
        ("openvino-cpu", "int8-bf16", "int8"), ("openvino-cpu", "int8-bf16", "int8-nncf"),
        ("openvino-cpu", "int8-fp16", "int8"), ("openvino-cpu", "int8-fp16", "int8-nncf")]
#: rows run only when named in --rows: INT8 with the exclusions before session 6 (the offset / flow convs
#: upstream of a sampling grid kept float too), INT8 with convs on concatenations quantized too (``-nocat``), and
#: NNCF with the exclusions it had before 0.3.13 (``-0.3.12``: convs on concatenations and cell inputs float)
OPTIONAL_ROWS = [("ort-cpu", "int8", "int8-grid"), ("openvino-cpu", "int8", "int8-grid"),
                 ("openvino-cpu", "int8", "int8-nncf-grid"),
                 ("ort-cpu", "int8", "int8-nocat"), ("openvino-cpu", "int8", "int8-nocat"),
                 ("openvino-cpu", "int8", "int8-nncf-nocat"), ("openvino-cpu", "int8-bf16", "int8-nocat"),
                 ("openvino-cpu", "int8", "int8-nncf-0.3.12"),
                 ("openvino-cpu", "int8-bf16", "int8-nncf-0.3.12")]
_GRID = ("sampling-grid", "concat-input", "cell-input")
#: the default exclusions without ``concat-input`` (convs on concatenations quantized too)
_NOCAT = tuple(r for r in DEFAULT_EXCLUDE if r != "concat-input")
#: the INT8 bundles: row tag -> (``calibrate --target``, how its row is labelled, ``--exclude`` rules)
INT8_FORMS = {"int8": ("cpu", "int8 (ORT Q/DQ, --target cpu)", DEFAULT_EXCLUDE),
              "int8-nncf": ("openvino", "int8 (NNCF, --target openvino)", TARGETS["openvino"].exclude),
              "int8-grid": ("cpu", "int8 (ORT Q/DQ, exclude sampling-grid)", _GRID),
              "int8-nncf-grid": ("openvino", "int8 (NNCF, exclude sampling-grid)", _GRID),
              "int8-nocat": ("cpu", "int8 (ORT Q/DQ, concat-input quantized)", _NOCAT),
              "int8-nncf-nocat": ("openvino", "int8 (NNCF, concat-input quantized)", _NOCAT),
              "int8-nncf-0.3.12": ("openvino", "int8 (NNCF, 0.3.12's exclusions)", DEFAULT_EXCLUDE)}


def row_name(backend: str, precision: str, tag: str | None) -> str:
    """How --rows names a row: ``openvino-cpu/bf16``, ``openvino-cpu/int8-nncf``, ``openvino-cpu/int8-nncf+bf16``
    (that INT8 bundle with its float ops in BF16)."""
    floats = int8_float_precision(precision)
    return f"{backend}/{tag or precision}{'+' + floats if floats else ''}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="basicvsr", choices=sorted(RELEASED))
    ap.add_argument("--config", help="JSON config instead of the released one")
    ap.add_argument("--size", default="180x320", help="LR HxW")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--window", type=int, default=16)
    ap.add_argument("--lookahead", type=int, default=8)
    ap.add_argument("--rows", help="comma-separated backend/precision rows, e.g. "
                    "openvino-cpu/int8,openvino-cpu/int8-nncf (default: all)")
    ap.add_argument("--variant", action="append", default=[], metavar="BACKEND:KEY=VALUE[,KEY=VALUE]",
                    help="run every selected row of BACKEND once more with these backend options (repeat)")
    ap.add_argument("--heap", default="return", choices=[*HEAP_POLICIES, "both"],
                    help="the streamed rows' malloc policy (models.heap); both: every row with each")
    ap.add_argument("--baseline-heap", choices=list(HEAP_POLICIES),
                    help="also time the baseline with this malloc policy (return: as before 0.3.14); ratios stay "
                         "against the C library's default")
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--dcn", default="decomposed", choices=["decomposed", "native"],
                    help="deformable conv form of the bundle (native: ONNX DeformConv, which OpenVINO cannot import)")
    args = ap.parse_args(argv)
    size = tuple(int(v) for v in args.size.split("x"))
    config = json.loads(args.config) if args.config else RELEASED[args.arch]
    rows = ROWS if not args.rows else [r for r in ROWS + OPTIONAL_ROWS if row_name(*r) in args.rows.split(",")]
    work = Path(tempfile.mkdtemp(prefix="realsize-"))
    torch.manual_seed(0)
    net = vsrdeploy.build_model(args.arch, **config).eval()
    fp32 = Bundle(vsrdeploy.export_onnx(net, work / "fp32.vsr", dcn=args.dcn))
    del net
    derived = {}  # row tag -> INT8 bundle path; 6 calibration frames: IconVSR's key frames need at least 5
    for tag in sorted({d for _, _, d in rows if d}):
        target, _, exclude = INT8_FORMS[tag]
        derived[tag] = calibrate_bundle(fp32, synthetic_clip(6, 64, 64, seed=1), work / f"{tag}.vsr", target=target,
                                        exclude=exclude, progress=False)
    variants = []  # (backend, options, label suffix)
    for text in args.variant:
        backend, _, items = text.partition(":")
        variants.append((backend, parse_backend_options(backend, items.split(",")), f" ({items})"))
    configs = [BenchConfig(BASELINE, label="whole-clip torch (upstream-equivalent)")]
    if args.baseline_heap:
        configs.append(BenchConfig(BASELINE, heap=args.baseline_heap,
                                   label=f"whole-clip torch, heap={args.baseline_heap}"))
    heaps = list(HEAP_POLICIES) if args.heap == "both" else [args.heap]
    for b, p, d in rows:
        for options, suffix in [({}, "")] + [(o, sfx) for vb, o, sfx in variants if vb == b]:
            floats = f", float ops {int8_float_precision(p)}" if int8_float_precision(p) else ""
            for heap in heaps:
                tag = f", heap={heap}" if heap != DEFAULT_HEAP_POLICY else ""
                configs.append(BenchConfig(b, p, bundle=str(derived[d]) if d else None, options=options, heap=heap,
                                           label=f"{b} {INT8_FORMS[d][1] if d else p}{floats}{suffix}{tag}"))
    load_before = os.getloadavg()
    t0 = time.time()
    results = run_configs(str(fp32.path), configs, frames=args.frames, size=size, warmup=args.warmup,
                          repeat=args.repeat, window=args.window, lookahead=args.lookahead, threads=args.threads,
                          progress=lambda m: print(m, file=sys.stderr))
    load_after = os.getloadavg()
    cpu = cpu_description()
    print(f"### {args.arch} {json.dumps(config)}, LR {size[1]}x{size[0]} (HxW {size[0]}x{size[1]}), "
          f"{args.frames} frames, {args.threads} threads, random weights, "
          f"{'median of ' + str(args.repeat) + ' timed runs' if args.repeat > 1 else 'one timed run'} per row\n")
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores; flags: {', '.join(cpu['flags'])}; OpenVINO CPU "
          f"OPTIMIZATION_CAPABILITIES: {openvino_capabilities()}. torch {torch.__version__}. Streaming window "
          f"{args.window}, lookahead {args.lookahead}"
          f"{' (the whole clip in one window)' if args.frames <= args.window else ''}. Load average (1/5/15 min) "
          f"before {', '.join(f'{x:.1f}' for x in load_before)}, after {', '.join(f'{x:.1f}' for x in load_after)}; "
          f"{(time.time() - t0) / 60:.1f} min.\n")
    print("| configuration | s/frame | x upstream-equivalent | peak RSS MB |")
    print("|---|---:|---:|---:|")
    for r in results:
        if r.status != "ok":
            print(f"| {r.name} | {r.status}: {r.reason} | | |")
            continue
        print(f"| {r.name} | {1 / r.fps:.2f} | {r.ratio:.2f} | {r.peak_rss_mb:.0f} |")
    print(f"\nCommand: `python benchmarks/realsize_speed.py --arch {args.arch} --size {args.size} --frames "
          f"{args.frames} --threads {args.threads}" + (f" --warmup {args.warmup}" if args.warmup != 1 else "")
          + (f" --repeat {args.repeat}" if args.repeat != 1 else "")
          + (f" --window {args.window} --lookahead {args.lookahead}" if (args.window, args.lookahead) != (16, 8) else "")
          + (f" --rows {args.rows}" if args.rows else "") + "".join(f" --variant {v}" for v in args.variant)
          + (f" --dcn {args.dcn}" if args.dcn != "decomposed" else "")
          + (f" --heap {args.heap}" if args.heap != "return" else "")
          + (f" --baseline-heap {args.baseline_heap}" if args.baseline_heap else "")
          + (f" --config '{args.config}'" if args.config else "") + "`")
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in results], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
