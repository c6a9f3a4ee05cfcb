"""``vsrdeploy check``: what in a bundle a deployment target cannot take, found before the device.

Each target is a checker registered in ``TARGETS``; it inspects every node of every cell and returns
findings (``error``: the target will refuse or miscompute it; ``note``: works, with a condition).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from ..bundle import Bundle, name_nodes, op_name
from ..errors import ConfigError
from . import target_support as support


@dataclass
class Finding:
    severity: str  # error | note
    cell: str
    node: str
    op: str
    problem: str
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class _Graph:
    """A cell graph with its constant tensors resolved (initializers and Constant nodes)."""

    def __init__(self, model):
        from onnx import numpy_helper
        self.model = model
        self.const: dict[str, np.ndarray] = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
        for node in model.graph.node:
            if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
                self.const[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)

    def attr(self, node, name, default=None):
        from onnx import helper
        for a in node.attribute:
            if a.name == name:
                v = helper.get_attribute_value(a)
                return v.decode() if isinstance(v, bytes) else v
        return default

    def input_const(self, node, i) -> np.ndarray | None:
        return self.const.get(node.input[i]) if len(node.input) > i and node.input[i] else None


_TRT_RESIZE_COORDS = {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}


def _tensorrt_checker(ops: frozenset[str], version: int) -> Callable:
    def check(g: _Graph, cell: str, node) -> list[Finding]:
        op = op_name(node)
        f = lambda problem, fix="", severity="error": Finding(severity, cell, node.name, op, problem, fix)  # noqa: E731
        if op in support.PLUGIN_OPS:
            return [f("needs vsrdeploy's TensorRT DCN plugin (libvsrdeploy_dcn_plugin.so)",
                      "build it with CMake (export/plugins/dcn) and pass --plugin to `vsrdeploy build`", "note")]
        if "::" in op:
            return [f("custom-domain op with no TensorRT importer or plugin")]
        if op not in ops:
            return [f(f"not in TensorRT {version}'s ONNX operator support table")]
        out = []
        if op == "Resize":
            if g.attr(node, "mode", "nearest") not in ("nearest", "linear"):
                out.append(f(f"Resize mode {g.attr(node, 'mode')!r}: TensorRT supports nearest and linear only"))
            if g.attr(node, "antialias", 0):
                out.append(f("Resize with antialias: not supported by TensorRT"))
            coords = g.attr(node, "coordinate_transformation_mode", "half_pixel")
            if coords not in _TRT_RESIZE_COORDS:
                out.append(f(f"Resize coordinate_transformation_mode {coords!r} is not supported by TensorRT"))
        elif op == "ScatterND" and g.attr(node, "reduction", "none") != "none":
            out.append(f("ScatterND with a reduction: TensorRT supports reduction=none only"))
        elif op == "DeformConv":
            pads = list(g.attr(node, "pads", []) or [])
            if pads and pads[: len(pads) // 2] != pads[len(pads) // 2:]:
                out.append(f(f"DeformConv with asymmetric pads {pads}: TensorRT needs begin == end"))
        elif op in ("QuantizeLinear", "DequantizeLinear"):
            out.extend(_check_qdq(g, node, f))
        return out
    return check


def _check_qdq(g: _Graph, node, f) -> list[Finding]:
    out = []
    recalibrate = "re-calibrate with `vsrdeploy calibrate --target tensorrt`"
    scale, zero = g.input_const(node, 1), g.input_const(node, 2)
    if scale is None:
        out.append(f("Q/DQ scale is not a constant: TensorRT needs build-time scales", recalibrate))
    elif np.any(scale <= 0):
        out.append(f("Q/DQ scale <= 0: TensorRT needs positive scales", recalibrate))
    if zero is not None:
        if zero.dtype == np.uint8:
            out.append(f("UINT8 Q/DQ: TensorRT reinterprets it as INT8 (wrong results for values above 127)",
                         recalibrate))
        if np.any(zero != 0):
            out.append(f("non-zero zero point: TensorRT supports symmetric quantization only", recalibrate))
    if node.op_type == "DequantizeLinear":
        x = g.input_const(node, 0)
        if x is not None and x.dtype == np.int32:
            out.append(f("INT32 DequantizeLinear (quantized bias): TensorRT dequantizes INT8/FP8/INT4 only",
                         recalibrate))
    if node.op_type == "QuantizeLinear" and scale is not None and scale.size > 1 and g.input_const(node, 0) is None:
        out.append(f("per-channel quantization of an activation: TensorRT quantizes activations per tensor",
                     recalibrate))
    return out


def _missing_checker(missing: frozenset[str], runtime: str, fixes: dict[str, str]) -> Callable:
    def check(g: _Graph, cell: str, node) -> list[Finding]:
        op = op_name(node)
        if op in support.PLUGIN_OPS:
            return [Finding("error", cell, node.name, op, f"the TensorRT plugin node cannot run on {runtime}",
                            "export with --dcn native (ONNX Runtime) or --dcn decomposed (every runtime)")]
        if "::" in op:
            return [Finding("error", cell, node.name, op, f"custom-domain op unknown to {runtime}")]
        if op in missing:
            return [Finding("error", cell, node.name, op, f"{runtime} cannot import {op}", fixes.get(op, ""))]
        return []
    return check


TARGETS: dict[str, Callable] = {
    "tensorrt-10": _tensorrt_checker(support.TENSORRT_10_OPS, 10),
    "tensorrt-11": _tensorrt_checker(support.TENSORRT_11_OPS, 11),
    "openvino": _missing_checker(support.OPENVINO_MISSING, "OpenVINO", {"DeformConv": "export with --dcn decomposed"}),
    "ort": _missing_checker(support.ORT_MISSING, "ONNX Runtime", {}),
}


def _bundle_notes(bundle: Bundle, target: str) -> list[Finding]:
    if target == "tensorrt-11" and bundle.precision == "fp32":
        return [Finding("note", "*", "", "", "TensorRT 11 builds strongly typed networks: this FP32 bundle builds "
                        "as FP32 only", "for FP16 run `vsrdeploy convert BUNDLE --precision fp16`; for INT8 "
                        "`vsrdeploy calibrate BUNDLE --target tensorrt`")]
    if target.startswith("tensorrt") and bundle.precision == "int8":
        form = bundle.manifest.get("precision_details", {}).get("target")
        if form != "tensorrt":
            return [Finding("error", "*", "", "", f"INT8 bundle calibrated for target {form!r}, not tensorrt",
                            "re-calibrate with `vsrdeploy calibrate --target tensorrt`")]
    return []


def check_bundle(bundle, target: str) -> list[Finding]:
    """Every finding for ``target`` over all cells of ``bundle`` (a path or Bundle)."""
    import onnx

    if target not in TARGETS:
        raise ConfigError(f"unknown --target {target!r}; choose from {', '.join(TARGETS)}")
    b = bundle if isinstance(bundle, Bundle) else Bundle(bundle)
    checker = TARGETS[target]
    findings = _bundle_notes(b, target)
    for name in b.cells:
        model = onnx.load(str(b.cell_path(name)))
        name_nodes(model)
        g = _Graph(model)
        for node in model.graph.node:
            findings.extend(checker(g, name, node))
    return findings


def format_findings(findings: list[Finding], target: str, limit_per_problem: int = 3) -> str:
    """A compact report: identical problems are grouped with a count and a few example nodes."""
    if not findings:
        return f"{target}: no problems found"
    groups: dict[tuple, list[Finding]] = {}
    for x in findings:
        groups.setdefault((x.severity, x.cell, x.op, x.problem, x.fix), []).append(x)
    lines = []
    for (severity, cell, op, problem, fix), items in sorted(groups.items(), key=lambda kv: kv[0][0] != "error"):
        nodes = ", ".join(x.node for x in items[:limit_per_problem] if x.node)
        more = f" (+{len(items) - limit_per_problem} more)" if len(items) > limit_per_problem else ""
        where = f"cell {cell}" + (f", {op}" if op else "") + (f" [{nodes}{more}]" if nodes else "")
        lines.append(f"{severity.upper():5s} {where}: {problem}" + (f"\n      fix: {fix}" if fix else ""))
    errors = sum(1 for x in findings if x.severity == "error")
    lines.append(f"{target}: {errors} error(s), {len(findings) - errors} note(s)")
    return "\n".join(lines)
