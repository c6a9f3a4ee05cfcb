"""Compare results as a terminal table, report.md, report.json, frames.csv and PNG plots."""
from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from .compare import CompareResult, TargetResult

PLOTS = {"error_per_frame": "error_per_frame.png", "psnr_per_frame": "psnr_per_frame.png",
         "diff_heatmap": "diff_heatmap.png", "crops": "crops.png", "latency_vs_psnr": "latency_vs_psnr.png",
         "psnr_vs_lookahead": "psnr_vs_lookahead.png"}
TITLES = {"error_per_frame": "Error vs reference per frame", "psnr_per_frame": "PSNR per frame",
          "diff_heatmap": "Absolute difference on the worst frame", "crops": "Zoomed crops on the worst frame",
          "latency_vs_psnr": "Latency vs quality", "psnr_vs_lookahead": "PSNR vs lookahead"}


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
    rows.append([f"reference: {result.reference_description}", "ok", "0", "-", "inf", *(_quality(ref) if gt else ("-", "-")),
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


def format_table(result: CompareResult, width: int | None = None) -> str:
    """The table for a terminal ``width`` columns wide (default: this terminal's). Skip and failure reasons
    are numbered notes under the table, wrapped to the width; cells fold rather than being cut."""
    import io
    import shutil

    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    header, rows = table_rows(result)
    notes = []
    for row in rows:
        status, sep, reason = row[1].partition(": ")
        if sep:
            notes.append(f"[{len(notes) + 1}] {row[0]} {status}: {reason}")
            row[1] = f"{status} [{len(notes)}]"
    def col_width(i: int) -> int:  # content never folds; headers wrap at words
        return max(6, *(len(r[i]) for r in rows), *(len(w) for w in header[i].split(" ")))

    def make_table(columns: list[int]) -> Table:
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for i in columns:
            words = header[i].split(" ")
            title = " ".join(words[:(len(words) + 1) // 2]) + "\n" + " ".join(words[(len(words) + 1) // 2:])
            if i == 0:  # the labels take what is left and wrap
                table.add_column(title.strip(), overflow="fold", min_width=min(16, max(len(r[0]) for r in rows)))
            else:
                table.add_column(title.strip(), overflow="fold", width=col_width(i))
        for row in rows:
            table.add_row(*(Text(row[i]) for i in columns))  # Text: brackets in labels are not markup
        return table

    width = width or max(80, shutil.get_terminal_size((160, 24)).columns)
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=False, color_system=None, highlight=False)
    everything = list(range(len(header)))
    need = min(16, max(len(r[0]) for r in rows)) + sum(col_width(i) + 2 for i in everything[1:]) + 2
    if need <= width:
        console.print(make_table(everything))
    else:  # too narrow for one table: accuracy, then speed, each with the labels
        split = next(i for i, h in enumerate(header) if h.startswith("frames/s"))
        console.print(make_table(everything[:split]))
        console.print(make_table([0, *everything[split:]]))
    for note in notes:
        console.print(Text(note))
    return out.getvalue().rstrip("\n")


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
             f"- bundles: {', '.join(f'`{b}`' for b in result.bundles) or result.model}",
             f"- streaming: window {result.window}, lookahead {result.lookahead}; reference: "
             f"{result.reference_description}",
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
    lines += [f"- **warning**: {w}" for w in result.warnings]
    lines += ["", _markdown_table(header, rows), ""]
    for key in PLOTS:
        if key in files:
            lines += [f"## {TITLES[key]}", "", f"![{TITLES[key]}]({files[key].name})", ""]
    if result.sweep:
        metric = "psnr_y_mean" if "psnr_y_mean" in result.sweep[0] else "psnr_ref_mean"
        lines += ["| lookahead | " + metric + " | PSNR vs reference | frames/s | first frame s |", "|---|---|---|---|---|"]
        lines += [f"| {s['lookahead']} | {_f(s.get(metric), '.3f')} | {_f(s.get('psnr_ref_mean'), '.2f')} | "
                  f"{_f(s['fps'], '.2f')} | {_f(s['first_frame_s'], '.2f')} |" for s in result.sweep]
    return "\n".join(lines) + "\n"


# -- plots --------------------------------------------------------------------------------------------

#: styles cycled per target so lines that coincide stay distinguishable (marker + dash + colour)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "<", ">", "*")
DASHES = ("-", "--", "-.", ":")
ERROR_FLOOR = 1e-9  # identical outputs: drawn at this floor on log axes (and said so)


def _style(i: int, n: int, frames: int) -> dict:
    """Target ``i`` of ``n``: its own colour, marker and dash. Markers are hollow and shrink with ``i``, so
    where lines coincide (e.g. two runtimes at FP32) every target's marker stays visible around the next."""
    import matplotlib.pyplot as plt
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    every = max(1, frames // 24)
    return {"color": colours[i % len(colours)], "marker": MARKERS[i % len(MARKERS)],
            "linestyle": DASHES[i % len(DASHES)], "markevery": every, "fillstyle": "none",
            "markersize": 4 + 1.5 * (min(n, 6) - 1 - min(i, 5)), "markeredgewidth": 1.2, "lw": 1.1}


def _finish(plt, fig, ax, xlabel: str, ylabel: str, title: str, path: Path, legend: bool = True) -> Path:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
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
    ran = [r for r in result.targets if r.frames]
    out = {}
    if ran:
        out["error_per_frame"] = _error_per_frame(plt, result, ran, directory)
        out["psnr_per_frame"] = _psnr_per_frame(plt, result, ran, directory)
        out["latency_vs_psnr"] = _latency_vs_quality(plt, result, ran, directory)
    if result.worst:
        out["diff_heatmap"] = _diff_heatmap(plt, result, directory)
        out["crops"] = _crops(plt, result, directory)
    if result.sweep:
        out["psnr_vs_lookahead"] = _lookahead(plt, result, directory)
    return out


def _error_per_frame(plt, result, ran, directory) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4))
    identical = []
    for i, r in enumerate(ran):
        xs = [f["frame"] for f in r.frames]
        ys = [max(f.get("max_abs_error", math.nan), ERROR_FLOOR) for f in r.frames]
        if all(f.get("max_abs_error", 1.0) == 0.0 for f in r.frames):
            identical.append(r.label)
        ax.plot(xs, ys, label=f"{r.label} (max {_f(r.summary.get('max_abs_error'), '.2e')})",
                **_style(i, len(ran), len(xs)))
    ax.set_yscale("log")
    title = f"max |target - reference| per frame; reference: {result.reference_description}"
    if identical:
        title += f"\n(identical to the reference, drawn at {ERROR_FLOOR:g}: {', '.join(identical)})"
    return _finish(plt, fig, ax, "frame", "max abs error (log)", title, directory / PLOTS["error_per_frame"])


def _psnr_per_frame(plt, result, ran, directory) -> Path:
    """With ground truth: PSNR-Y per frame (targets, reference, bicubic) and, below, each target's PSNR-Y
    minus the reference's, where drops of hundredths of a dB show. Without: PSNR vs the reference."""
    gt = result.ground_truth is not None
    key, label = ("psnr_y", "PSNR-Y vs ground truth (dB)") if gt else ("psnr_ref", "PSNR vs reference (dB, cap 100)")
    if gt:
        fig, (ax, delta) = plt.subplots(2, 1, figsize=(8.5, 6), sharex=True, height_ratios=(3, 2))
    else:
        fig, ax = plt.subplots(figsize=(8.5, 4))
    if gt:  # the reference: a wide grey band under the targets (targets keep the colours of the other plots)
        r = result.reference
        ax.plot([f["frame"] for f in r.frames], [f.get(key, math.nan) for f in r.frames], color="black", lw=4,
                alpha=0.25, label=f"reference (mean {_f(r.summary.get(f'{key}_mean', math.nan), '.3f')})")
    for i, r in enumerate(ran):
        ys = [min(f.get(key, math.nan), 100.0) for f in r.frames]
        mean = r.summary.get(f"{key}_mean", math.nan)
        ax.plot([f["frame"] for f in r.frames], ys, label=f"{r.label} (mean {_f(mean, '.3f')})",
                **_style(i, len(ran), len(ys)))
    if gt and result.bicubic and result.bicubic.get("psnr_y_per_frame"):
        values = result.bicubic["psnr_y_per_frame"]
        ax.plot(range(len(values)), values, color="gray", ls=":", lw=1.5,
                label=f"bicubic x4 (mean {result.bicubic['psnr_y_mean']:.3f})")
    title = "PSNR-Y vs ground truth per frame" if gt else \
        "PSNR vs reference per frame (no ground truth given: --gt or --degrade)"
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_ylabel(label)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    if gt:
        ref = {f["frame"]: f.get("psnr_y", math.nan) for f in result.reference.frames}
        for i, r in enumerate(ran):
            ys = [f.get("psnr_y", math.nan) - ref.get(f["frame"], math.nan) for f in r.frames]
            delta.plot([f["frame"] for f in r.frames], ys, label=r.label, **_style(i, len(ran), len(ys)))
        delta.axhline(0, color="gray", lw=0.8)
        delta.set_ylabel("PSNR-Y minus reference's (dB)")
        delta.grid(alpha=0.3)
        delta.set_xlabel("frame")
    else:
        ax.set_xlabel("frame")
    fig.tight_layout()
    path = directory / PLOTS["psnr_per_frame"]
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _place_numbers(fig, ax, points: list[tuple[float, float, str, str]]) -> None:
    """Write each point's number beside it where it overlaps no other number and no other point (greedy,
    in screen pixels): the legend beside the plot names each number, so labels never collide."""
    import numpy as np
    fig.canvas.draw()
    xy = ax.transData.transform(np.array([[p[0], p[1]] for p in points], dtype=float))
    offsets = [(9, 7), (9, -15), (-17, 7), (-17, -15), (-4, 12), (-4, -22), (13, -4), (-24, -4)]
    placed: list[np.ndarray] = []
    for (x, y, text, colour), at in zip(points, xy):
        if not np.isfinite(at).all():
            continue
        choice = None
        for scale in (1, 2, 3, 4):
            for dx, dy in offsets:
                centre = at + scale * np.array([dx, dy]) + np.array([4, 4])
                if all(np.abs(centre - q).max() > 13 for q in placed) and \
                        all(np.abs(centre - q).max() > 9 for q in xy if np.isfinite(q).all()):
                    choice = (scale * dx, scale * dy)
                    break
            if choice:
                break
        choice = choice or (9, 7)
        placed.append(at + np.array(choice) + np.array([4, 4]))
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(choice[0] * 72 / fig.dpi, choice[1] * 72 / fig.dpi),
                    fontsize=8, color=colour, weight="bold",
                    arrowprops={"arrowstyle": "-", "color": colour, "lw": 0.5} if max(map(abs, choice)) > 20 else None)


def _latency_vs_quality(plt, result, ran, directory) -> Path:
    """Time per frame against quality: PSNR-Y vs ground truth (when there is one) and max error vs the
    reference (which separates targets whose PSNR is the same). Points are numbered; the legend names them."""
    gt = result.ground_truth is not None
    panels = (["gt"] if gt else []) + ["err"]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4.2), squeeze=False)
    for ax, panel in zip(axes[0], panels):
        points = []
        for i, r in enumerate(ran):
            ms = 1000.0 / r.fps if r.fps and math.isfinite(r.fps) else math.nan
            psnr = r.summary.get("psnr_y_mean", math.nan)
            err = r.summary.get("max_abs_error", math.nan)
            value = psnr if panel == "gt" else max(err, ERROR_FLOOR)
            st = _style(i, len(ran), 0)
            label = f"{i + 1}. {r.label}: {_f(ms, '.1f')} ms" + (f", {_f(psnr, '.2f')} dB" if gt else "") + \
                f", err {_f(err, '.1e')}"
            ax.plot([ms], [value], ls="", marker=st["marker"], color=st["color"], fillstyle="none",
                    markersize=st["markersize"] + 3, markeredgewidth=1.5, zorder=3, label=label)
            points.append((ms, value, str(i + 1), st["color"]))
        if panel == "gt":
            ax.axhline(result.reference.summary.get("psnr_y_mean", math.nan), ls="--", c="gray", lw=0.8,
                       label=f"reference ({result.reference_description})")
            if result.bicubic:
                ax.axhline(result.bicubic["psnr_y_mean"], ls=":", c="gray", lw=0.8, label="bicubic x4")
            ax.set_ylabel("PSNR-Y vs ground truth (dB, higher is better)")
        else:
            ax.set_yscale("log")
            ax.set_ylabel("max abs error vs reference (log, lower is better)")
        ax.margins(x=0.2, y=0.2)
        ax.set_xlabel("time per frame (ms, 1 / median throughput)")
        ax.grid(alpha=0.3)
        _place_numbers(fig, ax, points)
    handles, labels = axes[0][0].get_legend_handles_labels()
    rows = (len(labels) + 1) // 2
    legend_h = 0.2 * rows + 0.2  # inches: the legend is a two-column table under the plots
    fig.set_figheight(fig.get_figheight() + legend_h)
    fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=2, markerscale=0.6, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    fig.suptitle(f"{result.arch}: latency vs quality (reference: {result.reference_description})", fontsize=10)
    fig.tight_layout(rect=(0, legend_h / fig.get_figheight(), 1, 1))
    path = directory / PLOTS["latency_vs_psnr"]
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _grid(n: int, cols_max: int = 4) -> tuple[int, int]:
    """(rows, columns) for ``n`` panels, at most ``cols_max`` a row, rows filled evenly (6 -> 2 x 3, not 5 + 1)."""
    rows = (n + cols_max - 1) // cols_max
    return rows, (n + rows - 1) // rows


def _diff_heatmap(plt, result, directory) -> Path:
    """|target - reference| on the worst frame, one panel per target, each with its own colour scale (so
    where a small error sits shows as well as where a large one does; the magnitudes are in the titles and
    colour bars)."""
    import numpy as np
    w = result.worst
    ref = w["reference"]
    diffs = {label: np.abs(out - ref).max(axis=0) for label, out in w["targets"].items()}
    rows, cols = _grid(len(diffs), 3)
    aspect = ref.shape[1] / ref.shape[2]
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, (3.0 * aspect + 0.5) * rows + 0.4),
                             squeeze=False, layout="constrained")
    for ax, (label, d) in zip(axes.flat, diffs.items()):
        top = float(np.percentile(d, 99.5)) or float(d.max())  # a few outlier pixels do not blacken the rest
        image = ax.imshow(d, cmap="magma", vmin=0, vmax=max(top, ERROR_FLOOR))
        ax.set_title(f"{label}\nmax {d.max():.2e}, mean {d.mean():.1e}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        fig.colorbar(image, ax=ax, shrink=0.8, format="%.1e", extend="max" if top < d.max() else "neither")
    for ax in list(axes.flat)[len(diffs):]:
        ax.axis("off")
    fig.suptitle(f"|target - reference| (max over RGB) on frame {w['frame']}, the frame with the largest error; "
                 "each panel has its own scale, clipped at its 99.5th percentile", fontsize=9)
    path = directory / PLOTS["diff_heatmap"]
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _crop_box(w: dict, size: int) -> tuple[int, int, int]:
    """A square of ``size`` HR pixels around where the targets differ most from the reference."""
    import numpy as np
    ref = w["reference"]
    total = sum(np.abs(out - ref).max(axis=0) for out in w["targets"].values())
    h, wd = ref.shape[1:]
    size = min(size, h, wd)
    y, x = np.unravel_index(int(np.argmax(total)), total.shape)
    y0 = int(min(max(0, y - size // 2), h - size))
    x0 = int(min(max(0, x - size // 2), wd - size))
    return y0, x0, size


def _crops(plt, result, directory) -> Path:
    import numpy as np
    w = result.worst
    panels = [("bicubic x4", w["bicubic"])] + list(w["targets"].items()) + [("reference", w["reference"])]
    if w.get("ground_truth") is not None:
        panels.append(("ground truth", w["ground_truth"]))
    h = w["reference"].shape[1]
    y0, x0, size = _crop_box(w, max(32, h // 4))
    rows, cols = _grid(len(panels), 5)
    fig, axes = plt.subplots(rows, cols, figsize=(2.3 * cols, 2.55 * rows + 0.3), squeeze=False, layout="constrained")
    for ax, (label, img) in zip(axes.flat, panels):
        crop = np.clip(img[:, y0:y0 + size, x0:x0 + size], 0, 1).transpose(1, 2, 0)
        ax.imshow(crop, interpolation="nearest")
        ax.set_title(label, fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.suptitle(f"frame {w['frame']}, {size}x{size} crop at x={x0}, y={y0} (where the targets differ most)",
                 fontsize=8)
    path = directory / PLOTS["crops"]
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _lookahead(plt, result, directory) -> Path:
    gt = result.ground_truth is not None
    key, label = ("psnr_y", "PSNR-Y vs ground truth (dB)") if gt else ("psnr_ref", "PSNR vs reference (dB, cap 100)")
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [s["lookahead"] for s in result.sweep]
    ax.plot(xs, [s.get(f"{key}_mean", math.nan) for s in result.sweep], marker="o", label=result.sweep[0]["target"])
    if gt:
        ax.axhline(result.reference.summary.get("psnr_y_mean", math.nan), ls="--", c="gray", lw=0.8,
                   label=f"reference ({result.reference_description})")
    ax.ticklabel_format(axis="y", useOffset=False)
    ax.set_xticks(xs)
    title = "Streaming: quality vs lookahead"
    if result.warnings:
        title += "\n(clip not longer than window + lookahead: expect a flat line)"
    return _finish(plt, fig, ax, f"lookahead (frames; window {result.window})", label, title,
                   directory / PLOTS["psnr_vs_lookahead"])
