"""Per-cell parity of a backend against ONNX Runtime CPU on the same bundle: the check the test suite makes
for every runtime, shared with ``vsrdeploy selftest`` so a user's GPU is checked the way CI checks the CPU.

Each cell gets the same seeded inputs (every recurrent state included) on both sides, and each output is
compared by name. The error is ``max|got - want| / max(1, max|want|)``: absolute for image-range outputs,
relative for large feature maps.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np

from ..models.arrays import to_numpy

#: the tolerances the tests use, by the precision the target computes in
PARITY_TOLERANCE = {"fp32": 1e-4, "bf16": 2e-2, "fp16": 2e-2, "int8": 5e-2}


@dataclass
class CellParity:
    cell: str
    error: float
    worst_output: str

    def ok(self, tolerance: float) -> bool:
        return bool(self.error <= tolerance)


def cell_inputs(cell_info, n: int, h: int, w: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded float32 inputs in [0, 1) for one cell at batch ``n`` and LR size ``h`` x ``w``."""
    from ..export.tensorrt import resolve_shape
    rng = np.random.default_rng(seed)
    return {p["name"]: rng.random(resolve_shape(p["shape"], n, h, w), dtype=np.float32) for p in cell_info.inputs}


def scaled_error(got: np.ndarray, want: np.ndarray) -> float:
    if got.shape != want.shape:
        return float("inf")
    return float(np.abs(got.astype(np.float64) - want).max() / max(1.0, float(np.abs(want).max())))


def cell_parity(bundle, backend, h: int, w: int, n: int = 1, seed: int = 0, cells=None,
                reference=None) -> list[CellParity]:
    """Run every cell (or ``cells``) of ``bundle`` on ``backend`` (a created Backend) and on ONNX Runtime
    CPU with the same inputs; one CellParity per cell, in bundle order. ``reference``: run ONNX Runtime on
    this bundle's cells instead (same network in another form, e.g. native DCN for a plugin bundle)."""
    import onnxruntime as ort
    import torch

    out = []
    for name in cells or bundle.cells:
        feed = cell_inputs(bundle.cells[name], n, h, w, seed)
        session = ort.InferenceSession(str((reference or bundle).cell_path(name)), providers=["CPUExecutionProvider"])
        want = dict(zip((o.name for o in session.get_outputs()), session.run(None, feed)))
        got = backend.run(name, {k: torch.from_numpy(v).to(backend.device) for k, v in feed.items()})
        errors = {k: scaled_error(to_numpy(got[k]), v) if k in got else float("inf")
                  for k, v in want.items()}
        worst = max(errors, key=errors.get)
        out.append(CellParity(name, errors[worst], worst))
    return out


def split_rows(arrays: dict[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    """A batched cell call as one feed per batch row (stateless cells get frames batched on axis 0)."""
    n = next(iter(arrays.values())).shape[0]
    return [{k: v[i:i + 1].copy() for k, v in arrays.items()} for i in range(n)]


@contextlib.contextmanager
def tap_cells(backend, on_call):
    """Within the block, every ``backend.run(cell, inputs)`` also calls ``on_call(cell, inputs, outputs)``
    with both as numpy arrays on the CPU (recording cell inputs, hidden states included, for calibration
    and per-cell diagnosis)."""
    inner = backend.run

    def tapped(cell, inputs):
        outputs = inner(cell, inputs)
        on_call(cell, {k: to_numpy(v) for k, v in inputs.items()},
                {k: to_numpy(v) for k, v in outputs.items()})
        return outputs

    backend.run = tapped
    try:
        yield backend
    finally:
        backend.run = inner


def first_calls(bundle, frames, backend: str = "ort-cpu", cells=None, **options) -> dict[str, dict[str, np.ndarray]]:
    """Cell -> the inputs it received on its first call while ``frames`` (T, 3, H, W) streamed once through
    ``bundle`` on ``backend`` (only ``cells`` when given; a cell never called is absent): real inputs for timing
    or comparing cells on their own."""
    from ..runtimes.engine import Upscaler
    up = Upscaler.create(bundle, backend, **options)
    feeds: dict[str, dict[str, np.ndarray]] = {}

    def keep(name, inputs, outputs):
        if cells is None or name in cells:
            feeds.setdefault(name, inputs)
    with tap_cells(up.backend, keep):
        up.upscale(frames)
    return feeds


def first_call_inputs(bundle, cell: str, frames, backend: str = "ort-cpu", **options) -> dict[str, np.ndarray]:
    """The inputs ``cell`` received on its first call while ``frames`` streamed through ``bundle`` on ``backend``
    (:func:`first_calls`)."""
    feeds = first_calls(bundle, frames, backend, cells={cell}, **options)
    if cell not in feeds:
        raise ValueError(f"cell {cell!r} was never called; cells: {', '.join(bundle.cells)}")
    return feeds[cell]
