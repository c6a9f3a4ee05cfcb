"""Compare results as a terminal table, report.md, report.json, frames.csv and PNG plots."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from .compare import CompareResult, TargetResult

PLOTS = {"latency_vs_psnr": "latency_vs_psnr.png", "psnr_per_frame": "psnr_per_frame.png",
         "psnr_vs_lookahead": "psnr_vs_lookahead.png"}


def _f(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return format(value, fmt)


def _fps(r: TargetResult) -> str:
    """Median frames/s, with min-max over the timed runs when there were several."""
    if r.repeat > 1 and not math.isnan(r.fps_min):
        return f"{_f(r.fps, '.2f')} ({_f(r.fps_min, '.2f')}-{_f(r.fps_max, '.2f')})"
    return _f(r.fps, ".2f")


def _quality(r: TargetResult) -> tuple[str, str]:
    """(headline PSNR column, headline SSIM column): vs ground truth when there is one, else vs reference."""
    s = r.summary
    if "psnr_y_mean" in s:
        return _f(s["psnr_y_mean"], ".2f"), _f(s["ssim_y_mean"], ".4f")
    return _f(s.get("psnr_ref_mean"), ".2f"), "-"


def table_rows(result: CompareResult) -> tuple[list[str], list[list[str]]]:
    gt = result.ground_truth is not None
    header = ["target", "status", "max|err| vs ref", "max|err| vs torch stream", "PSNR vs ref (min)", "PSNR-Y vs GT" if gt else "-",
              "SSIM-Y vs GT" if gt else "-", "frames/s median (min-max)", "latency ms p50/p95", "first frame s", "load s", "peak MB"]
    rows = []
    ref = result.reference
    rows.append(["reference torch/fp32 (whole clip)", "ok", "0", "-", "inf", *(_quality(ref) if gt else ("-", "-")),
                 _fps(ref), f"{_f(ref.frame_ms_p50, '.0f')}/{_f(ref.frame_ms_p95, '.0f')}",
                 _f(ref.first_frame_s, ".2f"), _f(ref.load_s, ".2f"), _f(ref.peak_mem_mb, ".0f")])
    if result.bicubic:
        b = result.bicubic
        rows.append(["bicubic x4 (baseline)", "ok", "-", "-", "-", _f(b["psnr_y_mean"], ".2f"), _f(b["ssim_y_mean"], ".4f"),
                     "-", "-", "-", "-", "-"])
    for r in result.targets:
        s = r.summary
        status = r.status if r.status == "ok" else f"{r.status}: {r.reason}"
        psnr_ref = f"{_f(s.get('psnr_ref_mean'), '.2f')} ({_f(s.get('psnr_ref_min'), '.2f')})" if s else "-"
        quality = _quality(r) if (s and gt) else ("-", "-")
        rows.append([r.label, status, _f(s.get("max_abs_error"), ".2e") if s else "-",
                     _f(s.get("max_abs_error_vs_torch_stream"), ".2e") if s else "-", psnr_ref, *quality,
                     _fps(r), f"{_f(r.frame_ms_p50, '.0f')}/{_f(r.frame_ms_p95, '.0f')}",
                     _f(r.first_frame_s, ".2f"), _f(r.load_s, ".2f"), _f(r.peak_mem_mb, ".0f")])
    if not gt:
        header = [h for h in header if h != "-"]
        rows = [row[:5] + row[7:] for row in rows]
    return header, rows


def format_table(result: CompareResult) -> str:
    header, rows = table_rows(result)
    short = [[c if len(c) <= 60 else c[:57] + "..." for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in short)) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in short]
    return "\n".join(lines)


def _markdown_table(header, rows) -> str:
    out = ["| " + " | ".join(h.replace("|", "\\|") for h in header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in rows]
    return "\n".join(out)


def write_report(result: CompareResult, directory, machine: str = "") -> dict[str, Path]:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = {"report.json": directory / "report.json", "frames.csv": directory / "frames.csv",
             "report.md": directory / "report.md"}
    files["report.json"].write_text(json.dumps(result.to_dict(), indent=1, default=str))
    _write_csv(result, files["frames.csv"])
    files.update(_plots(result, directory))
    files["report.md"].write_text(_markdown(result, files, machine))
    return files


def _write_csv(result: CompareResult, path: Path) -> None:
    runs = [("reference", result.reference)] + [(r.label, r) for r in result.targets]
    keys = sorted({k for _, r in runs for f in r.frames for k in f})
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["target", *keys])
        for label, r in runs:
            for frame in r.frames:
                writer.writerow([label, *[frame.get(k, "") for k in keys]])


def _markdown(result: CompareResult, files: dict, machine: str) -> str:
    header, rows = table_rows(result)
    lines = [f"# vsrdeploy compare: {result.arch}", "",
             f"- model: `{result.model}`", f"- clip: {result.clip}, {result.num_frames} frames, "
             f"LR {result.lr_size[1]}x{result.lr_size[0]} -> {result.out_size[1]}x{result.out_size[0]}",
             f"- streaming: window {result.window}, lookahead {result.lookahead}; reference: whole-clip PyTorch FP32",
             f"- ground truth: {result.ground_truth or 'none'}; PSNR/SSIM on outputs clamped to [0, 1], "
             f"Y = BT.601 luma, crop border {result.crop_border}; PSNR vs reference capped at 100 dB "
             "(identical frames) for means",
             "- latency: from the engine taking a frame in to its output coming out (frames fed as fast "
             "as the engine pulls them; a window's outputs come out together after its lookahead); "
             f"each target warmed up on {max((t.warmup_frames for t in result.targets), default=0)} frames, then "
             f"timed over {max((t.repeat for t in result.targets), default=1)} runs of the clip (median, min-max; "
             "latency percentiles over every frame of every run); the reference ran once",
             f"- result: {'PASS' if result.passed else 'FAIL'}"]
    if machine:
        lines.append(f"- machine: {machine}")
    lines += ["", _markdown_table(header, rows), ""]
    for key, title in (("latency_vs_psnr", "Latency vs quality"), ("psnr_per_frame", "PSNR per frame"),
                       ("psnr_vs_lookahead", "PSNR vs lookahead")):
        if key in files:
            lines += [f"## {title}", "", f"![{title}]({files[key].name})", ""]
    if result.sweep:
        metric = "psnr_y_mean" if "psnr_y_mean" in result.sweep[0] else "psnr_ref_mean"
        lines += ["| lookahead | " + metric + " | PSNR vs reference | frames/s | first frame s |", "|---|---|---|---|---|"]
        lines += [f"| {s['lookahead']} | {_f(s.get(metric), '.3f')} | {_f(s.get('psnr_ref_mean'), '.2f')} | "
                  f"{_f(s['fps'], '.2f')} | {_f(s['first_frame_s'], '.2f')} |" for s in result.sweep]
    return "\n".join(lines) + "\n"


def _finish(plt, fig, ax, xlabel: str, ylabel: str, title: str, path: Path, legend: bool = True) -> Path:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _plots(result: CompareResult, directory: Path) -> dict[str, Path]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return {}  # the report says nothing about plots then; matplotlib is in the [report] extra
    gt = result.ground_truth is not None
    key, label = ("psnr_y", "PSNR-Y vs ground truth (dB)") if gt else ("psnr_ref", "PSNR vs reference (dB)")
    ran = [r for r in result.targets if r.frames]
    out = {}
    if ran:
        fig, ax = plt.subplots(figsize=(6, 4))
        for r in ran:
            ms = 1000.0 / r.fps
            value = r.summary.get(f"{key}_mean", math.nan)
            value = min(value, 100.0) if math.isfinite(value) else 100.0
            ax.scatter(ms, value, s=40)
            ax.annotate(r.label, (ms, value), textcoords="offset points", xytext=(5, 5), fontsize=8)
        if gt:
            ax.axhline(result.reference.summary.get("psnr_y_mean", math.nan), ls="--", c="gray", lw=0.8,
                       label="PyTorch FP32 whole clip")
            if result.bicubic:
                ax.axhline(result.bicubic["psnr_y_mean"], ls=":", c="gray", lw=0.8, label="bicubic")
        out["latency_vs_psnr"] = _finish(plt, fig, ax, "time per frame (ms, 1 / throughput)", label,
                                         f"{result.arch}: latency vs quality",
                                         directory / PLOTS["latency_vs_psnr"], legend=gt)

        fig, ax = plt.subplots(figsize=(7, 4))
        runs = ([("reference", result.reference)] if gt else []) + [(r.label, r) for r in ran]
        for name, r in runs:
            ys = [min(f.get(key, math.nan), 100.0) for f in r.frames]
            ax.plot([f["frame"] for f in r.frames], ys, label=name, lw=1)
        out["psnr_per_frame"] = _finish(plt, fig, ax, "frame", label, "PSNR per frame (drift over time)",
                                        directory / PLOTS["psnr_per_frame"])
    if result.sweep:
        fig, ax = plt.subplots(figsize=(6, 4))
        metric = f"{key}_mean"
        xs = [s["lookahead"] for s in result.sweep]
        ax.plot(xs, [s.get(metric, math.nan) for s in result.sweep], marker="o", label=result.sweep[0]["target"])
        if gt:
            ax.axhline(result.reference.summary.get("psnr_y_mean", math.nan), ls="--", c="gray", lw=0.8,
                       label="whole clip")
        out["psnr_vs_lookahead"] = _finish(plt, fig, ax, f"lookahead (frames; window {result.window})", label,
                                           "Streaming: quality vs lookahead", directory / PLOTS["psnr_vs_lookahead"])
    return out
