"""FP16 bundles: every cell converted to float16 except an explicit keep-in-FP32 list.

Keep rules (strings, recorded in the manifest with the nodes they kept):

- ``cell=NAME``      every node of cell NAME (e.g. ``cell=flow``: SPyNet);
- ``node=REGEX``     nodes whose name matches REGEX (e.g. ``node=conv_last``: the final conv);
- ``op=TYPE``        every node of an ONNX op type (e.g. ``op=DeformConv``);
- ``sampling-grid``  the arithmetic that builds sampling coordinates: every node upstream of a
  ``GridSample`` grid or a ``DeformConv`` offset input, back to the cell's inputs. Pixel coordinates
  need more mantissa than FP16 has: at 768 pixels FP16 resolves only 0.5 pixel.
- ``sampling-coords`` the same arithmetic, but not the convolutions that predict offsets or flows: the
  walk upstream stops at a ``Conv``. Meant for INT8: a quantized conv's error is relative to its
  activations' range, so the convs may be quantized while the coordinate arithmetic after them (tanh,
  scaling, adding the flow, normalizing to [-1, 1]) stays float.
- ``concat-input``   convolutions whose input is a ``Concat`` (e.g. a trunk's first conv on
  [LR frame, propagated features]): one per-tensor INT8 scale must cover tensors of very different
  ranges there. Used by INT8 calibration (``calib.int8``), which shares these rules.
- ``cell-input``     convolutions that read a cell input directly (e.g. BasicVSR++'s first conv on the
  LR frame, and its upsampling cell's first conv on the reconstructed features).
- ``frame-input``    convolutions that read a cell input of 3 channels: a frame (BasicVSR++'s first conv on
  the LR frame, RealBasicVSR's first cleaning conv, EDVR's first conv), the image entering the network,
  where INT8 error propagates through everything after; not the convs on features a cell receives.

Cell inputs and outputs stay float32 (casts are inserted inside the graph), so a mixed FP16 / FP32
bundle streams exactly like an FP32 one and hidden states cross cell boundaries in FP32.
``DEFAULT_KEEP_FP32`` was chosen by measurement (``benchmarks/precision_fp16.py``; numbers in
``benchmarks/RESULTS.md``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..bundle import Bundle, check_output_dir, name_nodes, op_name
from ..errors import ConfigError
from ..models.dcn_names import PLUGIN_OP

#: Measured default (benchmarks/RESULTS.md, "FP16 keep-list"): sampling coordinates stay FP32.
DEFAULT_KEEP_FP32: tuple[str, ...] = ("sampling-grid", "op=DeformConv")

#: op type -> index of its coordinate input: GridSample's grid, DeformConv's offset (X, W, offset, B, mask),
#: the TensorRT plugin's offset (X, offset, mask, W, B)
_COORDINATE_INPUTS = {"GridSample": 1, "DeformConv": 2, PLUGIN_OP: 1}


#: the rules that take no value (documented above)
NAMED_RULES = ("sampling-grid", "sampling-coords", "concat-input", "cell-input", "frame-input")


@dataclass(frozen=True)
class KeepRule:
    kind: str  # cell | node | op | a name of ``NAMED_RULES``
    value: str = ""

    @classmethod
    def parse(cls, text: str) -> "KeepRule":
        text = text.strip()
        if text in NAMED_RULES:
            return cls(text)
        kind, sep, value = text.partition("=")
        if not sep or kind not in ("cell", "node", "op") or not value:
            raise ConfigError(f"bad node rule {text!r}; use cell=NAME, node=REGEX, op=TYPE, sampling-grid, "
                              f"{', '.join(NAMED_RULES)}")
        if kind == "node":
            try:
                re.compile(value)
            except re.error as e:
                raise ConfigError(f"keep-FP32 rule {text!r}: bad regular expression ({e})") from None
        return cls(kind, value)

    def __str__(self) -> str:
        return f"{self.kind}={self.value}" if self.value else self.kind


#: ops whose output depends on their input's shape only: the walk upstream of a sampling grid stops there
#: (a row strip's grid reads the feature map's size, not its values; walking on kept a BasicVSR++ align cell's
#: features in float, and with them the offset conv after them: benchmarks/RESULTS.md, "INT8 alignment on
#: OpenVINO, and BF16 sampling coordinates")
_SHAPE_ONLY = frozenset({"Shape", "Size"})


def _sampling_grid_nodes(graph, stop_at_conv: bool = False) -> set[str]:
    """Names of the nodes that compute GridSample grids and DeformConv offsets (with ``stop_at_conv``: up to,
    not including, the convolutions that predict them). The walk does not pass a ``Shape``: what reads
    only a tensor's shape is not coordinate arithmetic."""
    producer = {out: node for node in graph.node for out in node.output}
    keep: set[str] = set()
    stack = [node.input[i] for node in graph.node
             for op, i in _COORDINATE_INPUTS.items() if node.op_type == op and len(node.input) > i]
    seen: set[str] = set()
    while stack:
        tensor = stack.pop()
        if tensor in seen or tensor not in producer:
            continue
        seen.add(tensor)
        node = producer[tensor]
        if stop_at_conv and node.op_type == "Conv":
            continue
        keep.add(node.name)
        if node.op_type not in _SHAPE_ONLY:
            stack.extend(node.input)
    return keep


def _channels(value_info) -> int | None:
    """The channel count (axis 1) of a graph input, None where it is not a fixed number."""
    dims = value_info.type.tensor_type.shape.dim
    return dims[1].dim_value if len(dims) > 1 and dims[1].HasField("dim_value") else None


def nodes_to_keep(model, cell: str, rules: list[KeepRule]) -> list[str]:
    """The node names of ``model`` (cell ``cell``) that ``rules`` keep in FP32."""
    graph = model.graph
    keep: set[str] = set()
    for rule in rules:
        if rule.kind == "cell" and rule.value == cell:
            keep.update(n.name for n in graph.node)
        elif rule.kind == "node":
            pattern = re.compile(rule.value)
            keep.update(n.name for n in graph.node if pattern.search(n.name))
        elif rule.kind == "op":
            keep.update(n.name for n in graph.node if n.op_type == rule.value)
        elif rule.kind in ("sampling-grid", "sampling-coords"):
            keep.update(_sampling_grid_nodes(graph, stop_at_conv=rule.kind == "sampling-coords"))
        elif rule.kind == "concat-input":
            concat_outputs = {o for n in graph.node if n.op_type == "Concat" for o in n.output}
            keep.update(n.name for n in graph.node if n.op_type == "Conv" and n.input[0] in concat_outputs)
        elif rule.kind == "cell-input":
            inputs = {i.name for i in graph.input}
            keep.update(n.name for n in graph.node if n.op_type == "Conv" and n.input[0] in inputs)
        elif rule.kind == "frame-input":
            frames = {i.name for i in graph.input if _channels(i) == 3}
            keep.update(n.name for n in graph.node if n.op_type == "Conv" and n.input[0] in frames)
    return sorted(keep)


def convert_model_fp16(model, cell: str, rules: list[KeepRule]):
    """Return (FP16 model with float32 I/O, names of the nodes kept in FP32)."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    name_nodes(model)
    keep = nodes_to_keep(model, cell, rules)
    if len(keep) == len(model.graph.node):
        return model, keep
    # custom (plugin) nodes are not converted: the plugin itself picks FP16 kernels from its input types
    custom = [n.name for n in model.graph.node if "::" in op_name(n)]
    converted = convert_float_to_float16(model, keep_io_types=True, op_block_list=list(DEFAULT_OP_BLOCK_LIST),
                                         node_block_list=keep + custom)
    OnnxModel(converted).topological_sort()  # the converter appends its I/O casts at the end
    return converted, keep


def convert_bundle_fp16(bundle, out_dir=None, keep=DEFAULT_KEEP_FP32, progress=None, force: bool = False) -> Path:
    """Write an FP16 bundle converted from the FP32 ``bundle`` (a path or Bundle); returns its path."""
    import onnx

    src = bundle if isinstance(bundle, Bundle) else Bundle(bundle)
    if src.precision != "fp32":
        raise ConfigError(f"{src.path} is already {src.precision}; convert from the FP32 bundle")
    rules = [KeepRule.parse(r) if isinstance(r, str) else r for r in keep]
    missing = [r.value for r in rules if r.kind == "cell" and r.value not in src.cells]
    if missing:
        raise ConfigError(f"keep-FP32 names cell(s) {', '.join(missing)} that {src.arch} does not have; "
                          f"cells: {', '.join(src.cells)}")
    out_dir = Path(out_dir) if out_dir else src.path.with_name(src.path.name.removesuffix(".vsr") + "-fp16.vsr")
    check_output_dir(out_dir.absolute(), force)
    models, kept = {}, {}
    for name in src.cells:
        if progress:
            progress(name)
        model = onnx.load(str(src.cell_path(name)))
        models[name], kept[name] = convert_model_fp16(model, name, rules)
        onnx.checker.check_model(models[name])
    details = {"keep_fp32_rules": [str(r) for r in rules], "kept_fp32_nodes": kept, "io_dtype": "float32"}
    return src.derive(out_dir, models, "fp16", details, force=force)


def emulate_fp16(model, cell: str, rules: list[KeepRule], dtype: str = "float16"):
    """An FP32 model that behaves like the FP16 conversion with ``rules``, runnable on any FP32 runtime.

    Every float tensor produced by a node that would be FP16 (and every float weight or cell input it
    reads) is rounded to FP16 by an explicit Cast pair; arithmetic inside each op stays FP32, as with
    FP16 tensor cores accumulating in FP32. ONNX Runtime's CPU provider cannot measure an FP16 graph
    itself: it runs ops without FP16 kernels in FP32 and removes the casts it inserts between them.
    ``dtype="bfloat16"`` emulates BF16 the same way (OpenVINO's BF16 on CPUs that lack it here).
    """
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper

    low, low_torch = {"float16": (TensorProto.FLOAT16, torch.float16),
                      "bfloat16": (TensorProto.BFLOAT16, torch.bfloat16)}[dtype]

    model = onnx.ModelProto.FromString(model.SerializeToString())
    name_nodes(model)
    graph = model.graph
    keep = set(nodes_to_keep(model, cell, rules))
    inferred = onnx.shape_inference.infer_shapes(model)
    float_tensors = {vi.name for vi in list(inferred.graph.value_info) + list(inferred.graph.input)
                     + list(inferred.graph.output) if vi.type.tensor_type.elem_type == TensorProto.FLOAT}
    initializers = {i.name: i for i in graph.initializer}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)

    def round_pair(src: str, dst: str) -> list:
        return [helper.make_node("Cast", [src], [dst + "__low"], to=low, name=dst + "__to_low"),
                helper.make_node("Cast", [dst + "__low"], [dst], to=TensorProto.FLOAT, name=dst + "__to_fp32")]

    for name, init in initializers.items():  # weights read only by FP16 nodes: stored as FP16
        users = consumers.get(name, [])
        if init.data_type == TensorProto.FLOAT and users and all(u.name not in keep for u in users):
            rounded = torch.from_numpy(numpy_helper.to_array(init).copy()).to(low_torch).float().numpy()
            init.CopyFrom(numpy_helper.from_array(rounded, name))
    nodes = []
    for inp in graph.input:  # cell inputs enter FP16 nodes through a cast
        users = [u for u in consumers.get(inp.name, []) if u.name not in keep]
        if inp.name in float_tensors and users:
            rounded = inp.name + "__rounded"
            nodes.extend(round_pair(inp.name, rounded))
            for u in users:
                u.input[:] = [rounded if x == inp.name else x for x in u.input]
    for node in graph.node:
        nodes.append(node)
        if node.name in keep:
            continue
        for i, out in enumerate(node.output):
            if out and out in float_tensors:
                node.output[i] = out + "__exact"
                nodes.extend(round_pair(out + "__exact", out))
    del graph.node[:]
    graph.node.extend(nodes)
    return model
