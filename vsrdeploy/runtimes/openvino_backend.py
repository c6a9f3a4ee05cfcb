"""OpenVINO backends (CPU, GPU). OpenVINO cannot import ONNX DeformConv: use a decomposed bundle."""
from __future__ import annotations

import numpy as np
import psutil

from ..models.dcn_names import PLUGIN_NODE
from .base import Backend, register_backend
from .host_buffers import as_inputs_kind, cpu_array, output_shapes

PRECISION_HINTS = {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}
#: a cell is *large* when a call's inputs and outputs together, or the resident memory it added beyond its
#: outputs (its intermediate buffers), exceed this. OpenVINO otherwise keeps each cell's largest working set
#: for good, and the sum over cells, not the largest one, becomes the process's floor, so before a large
#: cell runs, the other large cells hand their buffers back (``CompiledModel.release_memory``; see
#: ``KEEP_WORKING_SETS`` and ``UNLOAD_OUTPUTS_ABOVE``). Inputs and outputs: IconVSR's EDVR (one cell before
#: 0.3.0) took 5 small LR frames and made a 64-channel map, and its kept buffers took streaming at 180x320 to
#: 3.0 GB. The memory a call added (0.3.1): row strips of the upsampling tail and SPyNet's flows have small
#: inputs and outputs but ~100 MB of buffers each at 180x320, which until 0.3.1 they kept for good (IconVSR's
#: openvino-cpu stream at 180x320: 1434 -> 1280 MB; benchmarks/RESULTS.md, "OpenVINO buffers found by what a
#: call adds").
RELEASE_ABOVE_BYTES = 16 * 2**20
#: how many other large cells keep their buffers while a large cell runs: the most recently called ones.
#: 0 by default, for memory: one large cell's buffers at a time. Calls of the same cell in a row (row
#: strips, batches) keep theirs, and the last large cell keeps them until another large cell runs: its
#: buffers are handed back before that call, not after its own (until 0.3.1, after every large call, so
#: each row strip of the upsampling tail would have allocated its buffers afresh). A BasicVSR++ branch
#: calls its align and backbone cells in turn, and an align call right after a release takes 1.4-2.9x as
#: long (fresh pages). ``keep_working_sets=2`` streamed 8 frames of BasicVSR++ INT8 1.27-1.34x faster for
#: ~245 MB more, but through bench's timed runs of BasicVSR++ and IconVSR it was 0.81-1.23x, no consistent
#: gain (benchmarks/RESULTS.md, "BasicVSR++ alignment on OpenVINO" and "kept buffers measured end to end").
#: ``vsrdeploy tune`` times 2 as a row of its own (``tune.OPTION_VARIANTS``) and writes it into the profile
#: when it is the fastest within the budgets.
KEEP_WORKING_SETS = 0
#: ``release_memory()`` keeps one buffer the size of the cell's largest output until the compiled model is
#: deleted (benchmarks/openvino_output_retention.py: a 225 MiB output kept), and other buffers with it
#: (benchmarks/cell_call_trace.py: SPyNet's cell 47 MB at 270x480 LR for a 1 MB output); the sum over cells
#: stays resident. So once a call's outputs for one batch item (a frame or a tile) exceed this (the frame is
#: large), every large cell handing its buffers back is *unloaded* instead: its compiled model is dropped and
#: imported again from its exported blob when next called (0.3.8). That costs time on every such call (the
#: import, and the first inference's setup: 0.04-0.21 s a call for BasicVSR++'s cells, benchmarks/cell_ab.py
#: --after-unload), so it is kept for the frame sizes where the kept buffers break the memory targets: a
#: 64-channel map is 14 MiB at 180x320 LR, 32 MiB at 270x480 (benchmarks/RESULTS.md, "OpenVINO cells
#: unloaded"). ``None``: never unload; 0: unload from the first call on.
UNLOAD_OUTPUTS_ABOVE = 24 * 2**20

#: OPTIMIZATION_CAPABILITIES entry a device must report to execute a precision natively, and what gives it
NATIVE_CAPABILITY = {"bf16": ("BF16", "AVX512_BF16 or AMX on x86"), "fp16": ("FP16", "AVX512_FP16 or AMX-FP16 on x86")}


def device_capabilities(device: str) -> list[str]:
    """OpenVINO's OPTIMIZATION_CAPABILITIES of ``device`` (e.g. ['BF16', 'FP32', 'INT8', ...])."""
    import openvino as ov
    return list(ov.Core().get_property(device, "OPTIMIZATION_CAPABILITIES"))


def precision_unavailable_reason(device: str, precision: str) -> str | None:
    """Why OpenVINO ``device`` cannot run ``precision`` natively here (one line), or None."""
    if precision not in NATIVE_CAPABILITY:
        return None
    capability, needs = NATIVE_CAPABILITY[precision]
    caps = device_capabilities(device)
    if capability in caps:
        return None
    return (f"OpenVINO {device} here has no native {precision} (OPTIMIZATION_CAPABILITIES: {', '.join(caps)}; "
            f"{precision} needs {needs})")


class _OpenVINOBackend(Backend):
    arrays = "numpy"  # host arrays on every OpenVINO device (the plugin copies to a GPU itself)
    device_name = "CPU"
    unsupported_ops = frozenset({"DeformConv", PLUGIN_NODE})
    preferred_dcn = "decomposed"
    precisions = {name: {"precision": name} for name in PRECISION_HINTS}
    #: an INT8 bundle with its float ops (the deformable alignments' sampling, excluded convs) in BF16 / FP16:
    #: on a Zen 5 with AVX512_BF16, IconVSR's INT8 went from 3.9-4.3x to 5.0-5.1x the whole-clip forward
    #: (benchmarks/RESULTS.md, "INT8 with BF16 float ops")
    int8_float_precisions = ("bf16", "fp16")
    resources = ("requests", "compiled", "outputs", "blobs")
    #: measured above the process's base, openvino-cpu against ort-cpu on the same plan: BasicVSR 4K output
    #: 1.27x, IconVSR 270x480 tiled 1.18x (benchmarks/RESULTS.md, "OpenVINO buffers found by what a call adds")
    memory_overhead = 1.3

    @classmethod
    def unavailable_reason(cls):
        try:
            import openvino as ov
        except ImportError:
            return 'openvino is not installed (pip install "vsrdeploy[openvino]")'
        devices = ov.Core().available_devices
        if not any(d.split(".")[0] == cls.device_name for d in devices):
            return f"OpenVINO sees no {cls.device_name} device (has {', '.join(devices) or 'none'})"
        return None

    def __init__(self, bundle, precision: str = "fp32", threads: int | None = None,
                 keep_working_sets: int = KEEP_WORKING_SETS, unload_outputs_above=UNLOAD_OUTPUTS_ABOVE,
                 fp32_coordinates: bool = True, **options):
        super().__init__(bundle, **options)
        self.check_bundle(bundle)
        import openvino as ov
        from ..errors import ConfigError
        if precision not in PRECISION_HINTS:
            raise ConfigError(f"openvino precision must be one of {', '.join(PRECISION_HINTS)}, got {precision!r}")
        if isinstance(keep_working_sets, bool) or not isinstance(keep_working_sets, int) or keep_working_sets < 0:
            raise ConfigError(f"keep_working_sets must be an integer >= 0 (0: hand every large cell's buffers "
                              f"back after each call), got {keep_working_sets!r}")
        self.keep_working_sets = keep_working_sets
        if not isinstance(fp32_coordinates, bool):
            raise ConfigError(f"fp32_coordinates must be true or false, got {fp32_coordinates!r}")
        if unload_outputs_above not in (None, 0):
            from ..models.budget import parse_bytes
            try:
                unload_outputs_above = parse_bytes(unload_outputs_above, "unload_outputs_above")
            except ConfigError as e:
                raise ConfigError(f"{e} (or 0: unload from the first call; null / None: never)") from None
        self.unload_outputs_above = unload_outputs_above
        self.largest_output = 0  # bytes of the largest outputs so far of one batch item (a frame or tile), any cell
        self.kept: list[str] = []  # large cells holding their buffers, least recently called first
        self.large: set[str] = set()  # cells found large (RELEASE_ABOVE_BYTES) by an earlier call
        reason = precision_unavailable_reason(self.device_name, precision)
        if reason:  # checked before compiling every cell only to find it out
            from ..errors import BackendUnavailable
            raise BackendUnavailable(reason)
        core = ov.Core()
        # explicit: OpenVINO would otherwise pick bf16 on CPUs that have it
        config = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision]}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.precision = precision
        self.core, self.config = core, config
        self.blobs: dict[str, object] = {}  # cell -> its compiled model exported, for cells unloaded once
        guard = precision != "fp32" and fp32_coordinates  # fp32_coordinates=False: 0.3.12's graphs, to compare
        self.compiled = {name: core.compile_model(read_cell(core, bundle.cell_path(name), guard),
                                                  self.device_name, config) for name in bundle.cells}
        self.requests = {name: c.create_infer_request() for name, c in self.compiled.items()}
        actual = next(iter(self.compiled.values())).get_property("INFERENCE_PRECISION_HINT")
        if actual != getattr(ov.Type, PRECISION_HINTS[precision]):
            from ..errors import BackendUnavailable
            raise BackendUnavailable(f"OpenVINO {self.device_name} here runs {actual.to_string()} when asked for {precision} "
                                     "(this device has no native support for it)")
        self.outputs = {name: self._ports(name, c) for name, c in self.compiled.items()}

    def run(self, cell, inputs):
        """Copy-free: inputs are OpenVINO tensors on the input arrays' memory, and outputs are written
        straight into numpy buffers allocated for this call (``set_tensor``), so an output handed out is
        never written by a later call (the request's own output buffers would be)."""
        import openvino as ov
        arrays = {k: cpu_array(v) for k, v in inputs.items()}
        info = self.bundle.cells[cell]
        shapes = output_shapes(info.inputs, info.outputs, {k: a.shape for k, a in arrays.items()})
        in_bytes = sum(a.nbytes for a in arrays.values())
        if cell in self.large or (shapes is not None and in_bytes + sum(
                4 * int(np.prod(v)) for v in shapes.values()) > RELEASE_ABOVE_BYTES):
            self._make_room(cell)
        if cell not in self.compiled:
            self._load(cell)
        request = self.requests[cell]
        before = resident_bytes()
        if shapes is None:  # the manifest does not give the output shapes: a fresh request, outputs copied once
            result = self.compiled[cell].create_infer_request().infer(arrays, share_inputs=True)
            outs = {name: result[port] for name, port in self.outputs[cell]}
        else:
            for name, a in arrays.items():
                request.set_tensor(name, ov.Tensor(a, shared_memory=True))
            buffers = {}
            for name, port in self.outputs[cell]:
                buffers[name] = np.empty(shapes[name], dtype=port.get_element_type().to_dtype())
                request.set_tensor(port, ov.Tensor(buffers[name], shared_memory=True))
            request.infer()
            outs = buffers
        out_bytes = sum(o.nbytes for o in outs.values())
        self.largest_output = max(self.largest_output, _item_bytes(outs))
        added = resident_bytes() - before - out_bytes  # the buffers this call allocated (0 once they are kept)
        if in_bytes + out_bytes > RELEASE_ABOVE_BYTES or added > RELEASE_ABOVE_BYTES:
            self.large.add(cell)
        if cell in self.large:
            self.kept = [c for c in self.kept if c != cell] + [cell]
        return as_inputs_kind(outs, inputs)

    def _make_room(self, cell: str) -> None:
        """Before large ``cell`` runs: the large cells called least recently hand their buffers back, so that
        at most ``keep_working_sets`` others hold theirs during the call."""
        others = [c for c in self.kept if c != cell]
        while len(others) > self.keep_working_sets:
            self._hand_back(others.pop(0))
        self.kept = others + [c for c in self.kept if c == cell]

    def _hand_back(self, cell: str) -> None:
        """``cell``'s buffers go back: unloaded once a call's outputs for one batch item were above
        ``unload_outputs_above``, else released (OpenVINO then keeps an output-sized buffer and more)."""
        limit = self.unload_outputs_above
        if limit is not None and self.largest_output > limit:
            self._unload(cell)
        else:
            self.compiled[cell].release_memory()

    def _unload(self, cell: str) -> None:
        """Drop ``cell``'s compiled model, its request and ports (a port holds the model), and so every buffer
        it holds; exported first, once, so that :meth:`_load` imports it instead of compiling it again."""
        if cell not in self.blobs:
            self.blobs[cell] = self.compiled[cell].export_model()
        del self.requests[cell], self.outputs[cell], self.compiled[cell]

    def _load(self, cell: str) -> None:
        blob = self.blobs[cell]
        blob.seek(0)
        compiled = self.core.import_model(blob, self.device_name, self.config)
        self.compiled[cell], self.requests[cell] = compiled, compiled.create_infer_request()
        self.outputs[cell] = self._ports(cell, compiled)

    def _ports(self, cell: str, compiled) -> list[tuple[str, object]]:
        """(manifest output name, port) pairs of ``cell`` compiled as ``compiled``."""
        return _output_ports(cell, [o["name"] for o in self.bundle.cells[cell].outputs], compiled.outputs)


#: friendly-name prefix of the extra results :func:`keep_sampling_coordinates_fp32` adds (never a manifest port)
COORDINATE_GUARD = "vsrdeploy_fp32_coordinates_"


def read_cell(core, path, fp32_coordinates: bool):
    """The cell at ``path`` as an OpenVINO model; with ``fp32_coordinates`` (for a BF16 / FP16 inference
    precision) its sampling coordinates are kept in FP32 (:func:`keep_sampling_coordinates_fp32`)."""
    model = core.read_model(str(path))
    if fp32_coordinates:
        keep_sampling_coordinates_fp32(model)
    return model


def keep_sampling_coordinates_fp32(model) -> int:
    """Keep the arithmetic that computes every ``GridSample`` grid in FP32 under a BF16 / FP16 inference
    precision; returns how many grids were guarded.

    OpenVINO's CPU plugin runs every op in the inference precision except the graph's *tail*: what the outputs
    depend on without passing a convolution or matmul (``Graph::EnforceInferencePrecision``). A grid computed
    after a convolution (the offsets of a deformable alignment, a flow-warp whose flow also feeds a conv) is
    then rounded to BF16: 8 bits of mantissa on coordinates normalized to [-1, 1], up to 0.6 pixel at 320
    pixels across, and BasicVSR++'s align cells were 28-33% off their FP32 output at 180x320
    (benchmarks/RESULTS.md, "INT8 alignment on OpenVINO, and BF16 sampling coordinates"). An extra result
    reading one element of each grid puts the grid's arithmetic in the tail, back to the offsets conv; the
    cell's outputs are bound by name, so the extra results are never read (their cost: one float copied per
    grid)."""
    import openvino.opset13 as ops
    guards = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "GridSample":
            continue
        grid = op.input(1).get_source_output()
        rank = grid.get_partial_shape().rank
        n = rank.get_length() if rank.is_static else 4
        corner = ops.slice(grid, np.zeros(n, np.int64), np.ones(n, np.int64), np.ones(n, np.int64))
        guard = ops.result(corner)
        guard.set_friendly_name(f"{COORDINATE_GUARD}{len(guards)}")
        guards.append(guard)
    if guards:
        model.add_results(guards)
    return len(guards)


def _item_bytes(outs: dict) -> int:
    """Bytes of one batch item's outputs: a batch of frames (stateless cells) or tiles is not a larger frame."""
    return sum(o.nbytes // max(1, o.shape[0]) if o.ndim else o.nbytes for o in outs.values())


def resident_bytes() -> int:
    """This process's resident memory now (bytes); 0 where psutil cannot tell."""
    try:
        return _PROCESS.memory_info().rss
    except Exception:  # psutil unsupported here: large cells are then found by their inputs and outputs
        return 0


_PROCESS = psutil.Process()


def _output_ports(cell: str, wanted: list[str], ports) -> list[tuple[str, object]]:
    """(manifest output name, compiled port) pairs. A port has several names after compilation, and
    ``get_any_name()`` may return an alias (e.g. ``graph_output_cast_0``, which ONNX Runtime's float16
    converter inserts before a graph output), so match on the full set of names."""
    by_name = {n: port for port in ports for n in port.get_names()}
    missing = [n for n in wanted if n not in by_name]
    if missing:
        from ..errors import BundleError
        raise BundleError(f"OpenVINO's compiled cell {cell!r} has no output named {', '.join(missing)} "
                          f"(it has {', '.join(sorted(by_name))}); re-export the bundle")
    return [(n, by_name[n]) for n in wanted]


@register_backend("openvino-cpu")
class OpenVINOCpuBackend(_OpenVINOBackend):
    device_name = "CPU"


@register_backend("openvino-gpu")
class OpenVINOGpuBackend(_OpenVINOBackend):
    device_name = "GPU"
