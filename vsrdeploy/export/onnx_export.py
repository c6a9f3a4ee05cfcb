"""Export a network's cells to ONNX, one graph per cell, into a bundle directory."""
from __future__ import annotations

import datetime
import os
import platform
import warnings
from pathlib import Path

import torch

from ..bundle import FORMAT_VERSION, check_output_dir, op_name, sha256_file, staged_dir, write_manifest
from ..errors import ConfigError, VSRDeployError
from ..models.cells import Cell, Port
from ..models.dcn import DCN_EXPORT_MODES, PLUGIN_DOMAIN, ModulatedDeformConv2d, dcn_export_mode

DEFAULT_OPSET = 19
MIN_OPSET = {"native": 19, "decomposed": 16, "plugin": 16}  # DeformConv: 19; GridSample: 16


def _axis_name(axis: str, scale: float | None) -> str:
    if scale is None or scale == 1:
        return axis
    if scale > 1:
        return f"{int(scale)}{axis}"
    return f"{axis}/{int(round(1 / scale))}"


def port_shape(port: Port, static: tuple[int, int] | None) -> list:
    """Symbolic shape for the manifest: e.g. ['N', 64, 'H', 'W'] or ['N', 3, '4H', '4W']."""
    if port.scale is None:
        return ["N", *port.dims]
    if static:
        h, w = static
        return ["N", *port.dims, int(h * port.scale), int(w * port.scale)]
    return ["N", *port.dims, _axis_name("H", port.scale), _axis_name("W", port.scale)]


def _dynamic_axes(port: Port, static) -> dict[int, str]:
    axes = {0: "N"}
    if port.scale is not None and not static:
        rank = 1 + len(port.dims)
        axes[rank] = _axis_name("H", port.scale)
        axes[rank + 1] = _axis_name("W", port.scale)
    return axes


def export_cell(cell: Cell, path: Path, opset: int, size: tuple[int, int], static, dcn: str) -> None:
    h, w = size
    args = tuple(torch.rand(*p.shape(1, h, w)) for p in cell.inputs)
    dynamic = {p.name: _dynamic_axes(p, static) for p in (*cell.inputs, *cell.outputs)}
    with warnings.catch_warnings(), dcn_export_mode(dcn), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(cell, args, str(path), dynamo=False, opset_version=opset,
                          input_names=cell.input_names, output_names=cell.output_names,
                          dynamic_axes=dynamic, do_constant_folding=True,
                          custom_opsets={PLUGIN_DOMAIN: 1} if dcn == "plugin" and _has_dcn(cell) else None)


def _has_dcn(cell: Cell) -> bool:
    return any(isinstance(m, ModulatedDeformConv2d) for m in cell.modules())


def _check_and_ops(path: Path) -> list[str]:
    import onnx
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=False)
    return sorted({op_name(n) for n in model.graph.node})


SIMPLIFY_TOLERANCE = 1e-4


def _simplify(path: Path, cell: Cell, size: tuple[int, int]) -> None:
    """Simplify with onnxslim, then check the simplified graph gives the original's outputs (ORT)."""
    try:
        import onnxslim
        import onnxruntime as ort
    except ImportError:
        raise VSRDeployError('--simplify needs onnxslim and onnxruntime: pip install "vsrdeploy[onnx]"') from None
    import numpy as np
    import onnx
    original = path.read_bytes()
    slim = onnxslim.slim(onnx.load_from_string(original))
    feed = {p.name: np.random.default_rng(0).random(p.shape(1, *size), dtype=np.float32) for p in cell.inputs}
    before = ort.InferenceSession(original, providers=["CPUExecutionProvider"]).run(None, feed)
    after = ort.InferenceSession(slim.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)
    err = max(float(np.abs(a - b).max()) for a, b in zip(before, after))
    if err > SIMPLIFY_TOLERANCE:
        raise VSRDeployError(f"onnxslim changed cell {path.stem}'s outputs by {err:.2e}; export without --simplify")
    onnx.save(slim, str(path))


def _port_record(p: Port, static) -> dict:
    return {"name": p.name, "dtype": "float32", "shape": port_shape(p, static), "scale": p.scale}


def export_onnx(model_or_path, out_dir=None, *, arch: str | None = None, dcn: str = "native",
                opset: int | None = None, static_shape: tuple[int, int] | None = None, simplify: bool = False,
                progress=None, force: bool = False, keep_existing: bool = False, **overrides) -> Path:
    """Export every cell of a network (or a checkpoint path) into the bundle ``out_dir``; return its path.

    ``dcn``: native (ONNX DeformConv, opset 19), decomposed (GridSample + a 1x1 Conv per group of kernel taps,
    every runtime) or plugin (custom node for vsrdeploy's TensorRT plugin). ``static_shape=(H, W)`` fixes the LR frame
    size (default: any size). ``progress(cell_name)`` is called before each cell is exported.
    An existing ``out_dir`` is replaced only if it is a bundle and ``force`` is set; ``keep_existing``
    keeps a bundle that appears there meanwhile (concurrent exports into a cache).
    """
    try:
        import onnx  # noqa: F401 (checked here so the error says which extra to install)
    except ImportError:
        raise VSRDeployError('ONNX export needs the onnx package: pip install "vsrdeploy[onnx]"') from None
    from ..checkpoint import load_checkpoint

    if dcn not in DCN_EXPORT_MODES:
        raise ConfigError(f"--dcn must be one of {', '.join(DCN_EXPORT_MODES)}, got {dcn!r}")
    opset = opset or DEFAULT_OPSET
    if opset < MIN_OPSET[dcn]:
        raise ConfigError(f"dcn={dcn} needs opset >= {MIN_OPSET[dcn]} (got {opset})")
    source = None
    if isinstance(model_or_path, (str, os.PathLike)):
        from ..shipped import resolve_model
        source = os.fspath(resolve_model(model_or_path))
        net = load_checkpoint(source, arch=arch, **overrides)
    else:
        net = model_or_path
    net = net.eval().cpu()
    if static_shape is not None:
        static_shape = tuple(int(v) for v in static_shape)
        net.check_frame_size(*static_shape)
        m = net.pad_multiple
        if static_shape[0] % m or static_shape[1] % m:
            raise ConfigError(f"{net.arch} pads frames to a multiple of {m}; --static-shape must be one "
                              f"(got {static_shape[1]}x{static_shape[0]}, WxH)")
    if out_dir is None:
        stem = Path(source).stem if source else net.arch
        out_dir = Path(f"{stem}.vsr")
    out_dir = Path(out_dir)
    if not keep_existing:
        check_output_dir(Path(os.path.abspath(out_dir)), force)
    size = static_shape or example_size(net)

    with staged_dir(out_dir, force=force, keep_existing=keep_existing) as tmp:
        (tmp / "cells").mkdir()
        cells_record = {}
        largest_ops = net.largest_ops  # recorded: a stream plans its calls from them, PyTorch or not
        for name, cell in net.cells.items():
            if progress:
                progress(name)
            rel = f"cells/{name}.onnx"
            export_cell(cell, tmp / rel, opset, size, static_shape, dcn)
            if simplify and not (dcn == "plugin" and _has_dcn(cell)):
                _simplify(tmp / rel, cell, size)
            cells_record[name] = {
                "file": rel,
                "inputs": [_port_record(p, static_shape) for p in cell.inputs],
                "outputs": [_port_record(p, static_shape) for p in cell.outputs],
                "stateless": cell.stateless,
                "halo": cell.halo,
                "largest_op": [largest_ops[name].per_pixel, largest_ops[name].constant],
                "ops": _check_and_ops(tmp / rel),
            }
        torch.save(net.state_dict(), tmp / "weights.pth")
        files = {rel: sha256_file(tmp / rel) for rel in [c["file"] for c in cells_record.values()] + ["weights.pth"]}
        manifest = {
            "format_version": FORMAT_VERSION,
            "model": {"arch": net.arch, "config": net.config()},
            "scale": net.scale,
            "pad_multiple": net.pad_multiple,
            "min_size": net.min_size,
            "min_input_size": net.min_input_size,
            "schedule": type(net.schedule()).__name__,
            "precision": "fp32",
            "dcn": dcn,
            "opset": opset,
            "static_shape": list(static_shape) if static_shape else None,
            "simplified": simplify,
            "cells": cells_record,
            "weights": "weights.pth",
            "files": files,
            "source": {"checkpoint": os.path.basename(source) if source else None,
                       "checkpoint_sha256": sha256_file(Path(source)) if source else None},
            "versions": _versions(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        write_manifest(tmp, manifest)
    return out_dir


def example_size(net) -> tuple[int, int]:
    """A frame size every network accepts, not square, so H and W are not confused when tracing."""
    m = max(net.pad_multiple, 1)
    h = max(64, net.min_input_size)
    return (h + m - 1) // m * m, (h + 16 + m - 1) // m * m


def _versions() -> dict:
    import onnx
    from .. import __version__
    return {"vsrdeploy": __version__, "torch": torch.__version__, "onnx": onnx.__version__,
            "python": platform.python_version()}
