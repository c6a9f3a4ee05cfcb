"""Per-cell diagnosis (``vsrdeploy compare --per-cell``): where does a target diverge from another?

1. The clip streams through the first target (the baseline) with the given window and lookahead; every cell
   call's inputs (hidden states included) and outputs are recorded to a scratch directory, one file per call
   (bounded memory), through the same tap calibration uses (``cell_parity.tap_cells``).
2. Each other target replays exactly those inputs, call by call, so errors do not compound through the
   recurrence: each cell is judged on its own, frame by frame.
3. Each call's outputs are compared by name with the baseline's: the scaled max error of ``cell_parity``
   (absolute for image-range outputs, relative for large feature maps) and the PSNR with peak
   ``max(1, max|baseline|)``. The first call in stream order over the tolerance names the cell and frame
   where the target diverges.
4. Inside that cell, Polygraphy marks every intermediate tensor of both cells' ONNX graphs and runs them
   (the target's on OpenVINO when the target is an OpenVINO backend, else on ONNX Runtime); the tensors
   are compared in graph order and the first one over the tolerance names the layer.

A call's frame is the frame whose LR image is one of its inputs; calls without one (e.g. warping) belong to
the next call that has one (the schedule warps a state right before the cell that consumes frame i).
"""
from __future__ import annotations

import hashlib
import json
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..models.arrays import to_numpy
from .cell_parity import PARITY_TOLERANCE, scaled_error, split_rows, tap_cells
from ..errors import ConfigError

PSNR_CAP = 100.0


@dataclass
class CallError:
    target: str
    call: int  # index in stream order over every recorded call
    cell: str
    frame: int | None
    output: str  # the output with the largest error
    error: float
    psnr: float


@dataclass
class LayerError:
    tensor: str
    node: str
    op: str
    error: float


@dataclass
class CellDiagnosis:
    baseline: str
    targets: list[str]
    tolerance: dict[str, float]
    num_frames: int
    window: int | None
    lookahead: int
    calls: int
    errors: list[CallError] = field(default_factory=list)
    cells: list[dict] = field(default_factory=list)  # per target and cell: max error, min PSNR, worst frame
    first_divergence: dict | None = None
    divergences: dict = field(default_factory=dict)  # per target: its first call over the tolerance
    layers: dict = field(default_factory=dict)  # per target: Polygraphy layer-by-layer in the diverging cell
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _psnr(got: np.ndarray, want: np.ndarray) -> float:
    mse = float(np.mean((got.astype(np.float64) - want) ** 2))
    peak = max(1.0, float(np.abs(want).max()))
    return PSNR_CAP if mse == 0 else min(PSNR_CAP, 10 * math.log10(peak * peak / mse))


class _FrameIndex:
    """Which LR frame a cell input is (exact bytes of its top-left ``h`` x ``w``: padding adds only at the
    bottom and right)."""

    def __init__(self, lr: np.ndarray):
        self.h, self.w = lr.shape[2:]
        self.keys = {self._key(f): i for i, f in enumerate(np.asarray(lr, np.float32))}

    def _key(self, frame: np.ndarray) -> bytes:
        return hashlib.blake2b(np.ascontiguousarray(frame[:, :self.h, :self.w]).tobytes(), digest_size=16).digest()

    def find(self, feed: dict[str, np.ndarray]) -> int | None:
        for v in feed.values():
            if v.ndim == 4 and v.shape[1] == 3 and v.shape[2] >= self.h and v.shape[3] >= self.w:
                i = self.keys.get(self._key(v[0]))
                if i is not None:
                    return i
        return None


def _target_backend(bundle, target):
    from ..runtimes.base import create_backend, precision_options
    b = target.bundle or bundle
    return b, create_backend(target.backend, b, **precision_options(target.backend, target.precision, b))


def diagnose_cells(bundle, lr: np.ndarray, targets: list, *, window: int | None = 16, lookahead: int = 8,
                   tolerance: float | None = None, layers: bool = True,
                   progress: Callable[[str], None] = lambda m: None,
                   tick: Callable[[str, int, int], None] = lambda label, done, total: None) -> CellDiagnosis:
    """Record ``targets[0]``'s cell calls on ``lr`` (T, 3, h, w) and replay them through ``targets[1:]``.

    ``tolerance``: largest scaled error a cell output may have [default: ``PARITY_TOLERANCE`` of the
    lower of the two precisions, e.g. 1e-4 between FP32 targets]."""
    import torch

    from ..runtimes.engine import Upscaler

    if len(targets) < 2:
        raise ConfigError("per-cell diagnosis needs two targets: a baseline and one to check against it")
    base_t, others = targets[0], targets[1:]
    base_bundle, base_backend = _target_backend(bundle, base_t)
    for t in others:
        b = t.bundle or bundle
        if set(b.cells) != set(base_bundle.cells):
            raise ConfigError(f"{t.label} has cells {sorted(b.cells)} but {base_t.label} has "
                              f"{sorted(base_bundle.cells)}; per-cell diagnosis needs one network in both")
    order = {p: i for i, p in enumerate(("fp32", "bf16", "fp16", "int8"))}
    tol = {t.label: tolerance if tolerance is not None else
           PARITY_TOLERANCE[max(t.precision, base_t.precision, key=order.get)] for t in others}
    frames = _FrameIndex(lr)
    with tempfile.TemporaryDirectory(prefix="vsrdeploy-cells-") as tmp:
        records: list[tuple[str, int | None, Path]] = []

        def record(cell, inputs, outputs):
            for feed, outs in zip(split_rows(inputs), split_rows(outputs)):
                path = Path(tmp) / f"{len(records):06d}.npz"
                np.savez(path, **{f"in.{k}": v for k, v in feed.items()}, **{f"out.{k}": v for k, v in outs.items()})
                records.append((cell, frames.find(feed), path))

        progress(f"recording every cell call of {base_t.label} over {len(lr)} frames "
                 f"(window {window}, lookahead {lookahead})")
        upscaler = Upscaler(base_bundle, base_backend)
        with tap_cells(base_backend, record), torch.no_grad():
            for n, _ in enumerate(upscaler.stream(lr, window=window, lookahead=lookahead)):
                tick(f"record {base_t.label}", n + 1, len(lr))
        # calls without an LR frame among their inputs belong to the next call that has one
        frame_of, nxt = [None] * len(records), None
        for i in range(len(records) - 1, -1, -1):
            nxt = records[i][1] if records[i][1] is not None else nxt
            frame_of[i] = nxt
        diagnosis = CellDiagnosis(baseline=base_t.label, targets=[t.label for t in others], tolerance=tol,
                                  num_frames=len(lr), window=window, lookahead=lookahead, calls=len(records))
        for t in others:
            progress(f"replaying {len(records)} recorded cell calls through {t.label}")
            t_bundle, backend = _target_backend(bundle, t)
            first = None
            for i, (cell, _, path) in enumerate(records):
                data = np.load(path)
                feed = {k[3:]: torch.from_numpy(data[k]).to(backend.device) for k in data.files if k.startswith("in.")}
                with torch.no_grad():
                    got = backend.run(cell, feed)
                errors = {}
                for k in (k for k in data.files if k.startswith("out.")):
                    name = k[4:]
                    out = to_numpy(got[name]) if name in got else None
                    want = data[k]
                    errors[name] = ((scaled_error(out, want), _psnr(out, want)) if out is not None and
                                    out.shape == want.shape else (math.inf, 0.0))
                worst = max(errors, key=lambda n: errors[n][0])
                err = CallError(t.label, i, cell, frame_of[i], worst, *errors[worst])
                diagnosis.errors.append(err)
                if first is None and not err.error <= tol[t.label]:
                    first = err
                tick(f"replay {t.label} (cell calls)", i + 1, len(records))
            if first is not None:
                diagnosis.divergences[t.label] = {**asdict(first), "tolerance": tol[t.label]}
                if diagnosis.first_divergence is None:
                    diagnosis.first_divergence = diagnosis.divergences[t.label]
            if layers:
                mine = [e for e in diagnosis.errors if e.target == t.label]
                focus = first or max(mine, key=lambda e: e.error, default=None)
                if focus is not None:
                    progress(f"{t.label}: layer by layer inside cell {focus.cell} (call {focus.call}) with Polygraphy")
                    data = np.load(records[focus.call][2])
                    feed = {k[3:]: data[k] for k in data.files if k.startswith("in.")}
                    try:
                        found = layer_diff(base_bundle.cell_path(focus.cell), t_bundle.cell_path(focus.cell), feed,
                                           t.backend, tol[t.label])
                        diagnosis.layers[t.label] = {"cell": focus.cell, "call": focus.call, "frame": focus.frame,
                                                     **found}
                    except Exception as e:  # noqa: BLE001 -- the cell-level diagnosis stands without it
                        from .compare import one_line
                        diagnosis.notes.append(f"{t.label}: layer-by-layer comparison not made: {one_line(e)}")
    diagnosis.cells = _per_cell(diagnosis.errors)
    return diagnosis


def _per_cell(errors: list[CallError]) -> list[dict]:
    rows: dict[tuple[str, str], dict] = {}
    for e in errors:
        row = rows.setdefault((e.target, e.cell), {"target": e.target, "cell": e.cell, "calls": 0, "max_error": -1.0,
                                                   "min_psnr": math.inf, "worst_frame": None, "worst_call": None})
        row["calls"] += 1
        if e.error > row["max_error"]:
            row.update(max_error=e.error, worst_frame=e.frame, worst_call=e.call, worst_output=e.output)
        row["min_psnr"] = min(row["min_psnr"], e.psnr)
    return list(rows.values())


# -- inside one cell: Polygraphy ------------------------------------------------------------------------

def _run_marked_openvino(model, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every tensor Polygraphy marked as an output, computed by OpenVINO CPU (Polygraphy has no OpenVINO
    runner)."""
    import openvino as ov
    with tempfile.TemporaryDirectory(prefix="vsrdeploy-ov-") as tmp:
        import onnx
        path = Path(tmp) / "marked.onnx"
        onnx.save(model, str(path))
        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(path)), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        result = compiled.create_infer_request().infer(feed)
        out = {}
        for port, value in result.items():
            for name in port.get_names():
                out[name] = np.asarray(value)
        return out


def layer_diff(base_cell: Path, target_cell: Path, feed: dict[str, np.ndarray], target_backend: str,
               tolerance: float, top: int = 5) -> dict:
    """Mark every intermediate tensor of both cells' ONNX graphs (Polygraphy), run the baseline graph on
    ONNX Runtime CPU and the target's on OpenVINO (``openvino-*`` targets) or ONNX Runtime CPU (others),
    and compare the tensors both graphs have, in the baseline graph's order.

    Returns the first tensor over ``tolerance`` (``first``), the ``top`` worst, and what ran where."""
    import onnx
    from polygraphy import constants
    from polygraphy.backend.onnx import modify_outputs
    from polygraphy.backend.onnxrt import OnnxrtRunner, SessionFromOnnx

    def marked(path):
        model = onnx.load(str(path))
        return modify_outputs(model, outputs=constants.MARK_ALL)

    def run_ort(model):
        with OnnxrtRunner(SessionFromOnnx(model.SerializeToString(), providers=["CPUExecutionProvider"])) as runner:
            names = {i.name for i in model.graph.input}
            return {k: np.asarray(v) for k, v in runner.infer({k: v for k, v in feed.items() if k in names}).items()}

    from polygraphy.logger import G_LOGGER
    severity = G_LOGGER.module_severity
    G_LOGGER.module_severity = G_LOGGER.WARNING  # not a line per session it creates
    try:
        base_model, target_model = marked(base_cell), marked(target_cell)
        want = run_ort(base_model)
        on_openvino = target_backend.startswith("openvino")
        got = _run_marked_openvino(target_model, feed) if on_openvino else run_ort(target_model)
    finally:
        G_LOGGER.module_severity = severity
    producers = {o: (n.name, n.op_type) for n in base_model.graph.node for o in n.output}
    rows = []
    for node in base_model.graph.node:
        for tensor in node.output:
            if tensor in want and tensor in got and np.asarray(want[tensor]).dtype.kind == "f":
                a, b = np.asarray(got[tensor], np.float32), np.asarray(want[tensor], np.float32)
                rows.append(LayerError(tensor, *producers[tensor], scaled_error(a, b)))
    first = next((r for r in rows if not r.error <= tolerance), None)
    return {"runner": "OpenVINO CPU (f32) vs ONNX Runtime CPU" if on_openvino else "ONNX Runtime CPU vs ONNX Runtime CPU",
            "compared_tensors": len(rows), "first": asdict(first) if first else None,
            "worst": [asdict(r) for r in sorted(rows, key=lambda r: -r.error)[:top]]}


# -- output ---------------------------------------------------------------------------------------------

def format_diagnosis(d: CellDiagnosis, width: int | None = None) -> str:
    import io
    import shutil

    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD, title=f"per-cell errors vs {d.baseline} (same recorded inputs)")
    for h in ("target", "cell", "calls", "max error", "min PSNR dB", "worst frame", "worst output", "status"):
        table.add_column(h, overflow="fold")
    for row in d.cells:
        ok = row["max_error"] <= d.tolerance[row["target"]]
        table.add_row(*(Text(str(c)) for c in (
            row["target"], row["cell"], row["calls"], f"{row['max_error']:.3g}", f"{row['min_psnr']:.2f}",
            row["worst_frame"], row.get("worst_output", ""), "ok" if ok else f"over {d.tolerance[row['target']]:g}")))
    out = io.StringIO()
    console = Console(file=out, width=width or max(100, shutil.get_terminal_size((160, 24)).columns),
                      color_system=None, highlight=False)
    console.print(table)
    for label, div in d.divergences.items():
        console.print(Text(f"{label}: first over tolerance: cell {div['cell']}, frame {div['frame']} (call "
                           f"{div['call']}), output {div['output']}, error {div['error']:.3g} > {div['tolerance']:g}"))
    for label in d.targets:
        if label not in d.divergences:
            console.print(Text(f"{label}: every cell within {d.tolerance[label]:g} on every frame"))
    for label, found in d.layers.items():
        first = found["first"]
        where = (f"first layer over tolerance: {first['tensor']} ({first['op']} {first['node']}), error "
                 f"{first['error']:.3g}" if first else "no layer over tolerance")
        worst = ", ".join(f"{w['tensor']} {w['error']:.2g}" for w in found["worst"][:3])
        console.print(Text(f"{label}: inside {found['cell']} ({found['runner']}, {found['compared_tensors']} tensors): "
                           f"{where}; worst: {worst}"))
    for note in d.notes:
        console.print(Text(note))
    return out.getvalue().rstrip("\n")


def write_diagnosis(d: CellDiagnosis, directory) -> dict[str, Path]:
    """per_cell.json (every call's error), per_cell.txt (the table) and per_cell_errors.png."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = {"per_cell.json": directory / "per_cell.json", "per_cell.txt": directory / "per_cell.txt"}
    files["per_cell.json"].write_text(json.dumps(d.to_dict(), indent=1, default=str))
    files["per_cell.txt"].write_text(format_diagnosis(d, width=140) + "\n")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return files
    from .report import ERROR_FLOOR, MARKERS
    fig, axes = plt.subplots(len(d.targets), 1, figsize=(9, 3.2 * len(d.targets)), squeeze=False)
    for ax, label in zip(axes[:, 0], d.targets):
        mine = [e for e in d.errors if e.target == label]
        cells = list(dict.fromkeys(e.cell for e in mine))
        for i, cell in enumerate(cells):
            shift = 0.5 * (i - (len(cells) - 1) / 2) / max(1, len(cells))  # side by side within a frame
            points = [(e.frame + shift, max(e.error, ERROR_FLOOR)) for e in mine
                      if e.cell == cell and e.frame is not None]
            if points:
                xs, ys = zip(*points)
                ax.plot(xs, ys, marker=MARKERS[i % len(MARKERS)], ls="", ms=5, alpha=0.8, label=cell)
        ax.axhline(d.tolerance[label], color="red", ls="--", lw=0.8, label=f"tolerance {d.tolerance[label]:g}")
        div = d.divergences.get(label)
        if div and div["frame"] is not None:
            ax.annotate(f"first: {div['cell']}", (div["frame"], max(div["error"], ERROR_FLOOR)),
                        textcoords="offset points", xytext=(10, -12), fontsize=8, color="red",
                        arrowprops={"arrowstyle": "->", "color": "red"})
        ax.set_yscale("log")
        ax.set_xlabel("frame")
        ax.set_ylabel(f"scaled max error (log; 0 at {ERROR_FLOOR:g})")
        ax.set_title(f"{label} vs {d.baseline}: each cell on the same recorded inputs", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    files["per_cell_errors.png"] = directory / "per_cell_errors.png"
    fig.savefig(files["per_cell_errors.png"], dpi=110)
    plt.close(fig)
    return files
