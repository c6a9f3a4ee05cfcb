"""Does ``vsrdeploy tune`` pick something that stays fast? Runs the same ``tune`` N times (each a fresh
CLI process, JSON output) and reports, for each run's choice, its speed in every run against the fastest
configuration within the budget in that run. Issue 13 asks for a pick within 10% of the fastest.

    python benchmarks/tune_repeatability.py basicvsr --frames /usr/share/doc/opencv-doc/examples/data/vtest.avi \\
        --runs 2 -- --size 320x180 --skip 100 --threads 2

Arguments after ``--`` go to ``vsrdeploy tune`` unchanged. The profile tune writes beside the bundle is
replaced by each run (tune's own rule: it only ever replaces its own profile).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys


def _label(row: dict) -> str:
    """``TuneRow.label`` from a row of tune's JSON (INT8 rows name their calibrate --target form, option
    variants their backend options, heap twins their malloc policy: without them a variant and its plain row
    would share one label)."""
    form = f":{row['int8_target']}" if row.get("int8_target") else ""
    extra = "".join(f" {k}={v}" for k, v in (row.get("options") or {}).items())
    heap = f" heap={row['heap']}" if row.get("heap", "return") != "return" else ""
    return f"{row['backend']}/{row['precision']}{form}{extra}{heap}"


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    argv = argv[:argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("--frames", required=True)
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args(argv)
    runs = []
    for i in range(args.runs):
        cmd = [sys.executable, "-m", "vsrdeploy.cli", "tune", args.model, "--frames", args.frames, "--json", *extra]
        print(f"run {i + 1}/{args.runs}: {' '.join(cmd[2:])}", file=sys.stderr)
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out[out.index("{"):]))
    by_label = [{_label(x): x for x in r["rows"]} for r in runs]  # per run
    print("| run | chosen | " + " | ".join(f"fps in run {j + 1}" for j in range(len(runs)))
          + " | fastest within budget per run | chosen / fastest, worst run |")
    print("|---|---|" + "---:|" * len(runs) + "---|---:|")
    for i, r in enumerate(runs):
        chosen = r["chosen"]
        label = _label(chosen)
        speeds, ratios, best = [], [], []
        for other, rows in zip(runs, by_label):
            ok = [x for x in other["rows"] if x["within_budget"] and x["fps"]]
            fastest = max(ok, key=lambda x: x["fps"])
            best.append(f"{_label(fastest)} {fastest['fps']:.3f}")
            mine = rows.get(label)  # a heap twin exists only in runs where its row was among the fastest
            speeds.append(mine["fps"] if mine and mine["fps"] else None)
            if speeds[-1]:
                ratios.append(speeds[-1] / fastest["fps"])
        print(f"| {i + 1} | {label} | " + " | ".join("-" if s is None else f"{s:.3f}" for s in speeds)
              + f" | {'; '.join(best)} | {min(ratios):.2f} |")
    print("\nEvery row of each run (frames/s; PSNR-Y drop against FP32 on the clip; '-' where the row did not run):\n")
    labels = list(dict.fromkeys(label for rows in by_label for label in rows))
    print("| configuration | " + " | ".join(f"run {j + 1} fps | run {j + 1} drop dB" for j in range(len(runs))) + " |")
    print("|---|" + "---:|---:|" * len(runs))
    for label in labels:
        cells = []
        for rows in by_label:
            row = rows.get(label)
            fps = row.get("fps") if row else None
            drop = row.get("psnr_y_drop_db") if row else None
            cells += [f"{fps:.3f}" if fps else "-", f"{drop:.3f}" if drop is not None and drop == drop else "-"]
        print(f"| {label} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
