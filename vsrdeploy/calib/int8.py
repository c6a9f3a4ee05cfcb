"""INT8 bundles: per-cell Q/DQ quantization calibrated on real frames (ONNX Runtime's quantization tools).

1. The calibration clip streams through the FP32 bundle on ``ort-cpu``; every call of every cell is
   recorded, hidden states included (``record_cell_inputs``), so each cell is calibrated on the
   activations it will actually see.
2. Each cell is quantized to Q/DQ with ``onnxruntime.quantization.quantize_static``: per-channel
   symmetric INT8 weights, activations per tensor in the target's form (``TARGETS``).
3. The result is a new bundle whose manifest records the recipe (``precision_details``).

Targets differ in the Q/DQ form they can run fast, and in the tool that places it (``QUANTIZERS``):

- ``tensorrt``: symmetric INT8 activations and weights (zero point 0), biases left in float (TensorRT's
  DequantizeLinear takes INT8, not INT32); only weighted ops are quantized, the rest fuse around them.
- ``cpu``: unsigned 8-bit activations (asymmetric) with signed weights: ONNX Runtime's x86 kernels are
  fast only for U8 activations (symmetric S8/S8 runs slower than FP32 there).
- ``openvino``: NNCF (``nncf.quantize`` on the ONNX cell, ``target_device=CPU``): OpenVINO's own Q/DQ
  placement and range estimators, the excluded nodes passed as its ``IgnoredScope``. The result is
  still a Q/DQ ONNX cell, so the bundle format is unchanged and every runtime can load it; it is placed
  for OpenVINO's CPU plugin (benchmarks/RESULTS.md, "NNCF against the ORT Q/DQ import").
"""
from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..bundle import Bundle, check_output_dir, name_nodes
from ..errors import ConfigError, InputError
from ..models.dcn_names import PLUGIN_NODE
from .fp16 import KeepRule, nodes_to_keep


METHODS = ("minmax", "entropy", "percentile")
#: Default exclusions of the ``cpu`` and ``tensorrt`` targets (measured, benchmarks/RESULTS.md "Reduced
#: precision" and "Quantizing the offset convs"): the sampling-coordinate arithmetic (not the convs that predict
#: offsets / flows: quantizing those cost nothing measurable), convs on concatenations and convs on cell inputs.
DEFAULT_EXCLUDE: tuple[str, ...] = ("sampling-coords", "concat-input", "cell-input")
#: ``openvino`` (NNCF) target's default since 0.3.13: convs on concatenations (quantized by ONNX Runtime's
#: quantizer, see ``quantize_cell_nncf``) and convs on the features a cell receives quantized too; only those
#: on frames stay float. On the shipped BasicVSR++ / BasicVSR 0.004-0.006 dB as before, and faster
#: (benchmarks/RESULTS.md, "INT8 alignment on OpenVINO, and BF16 sampling coordinates").
OPENVINO_EXCLUDE: tuple[str, ...] = ("sampling-coords", "frame-input")


@dataclass(frozen=True)
class QuantTarget:
    activation: str  # QuantType name
    weight: str
    activation_symmetric: bool
    quantize_bias: bool
    reduce_range: bool
    op_types: tuple[str, ...] | None  # None: every op ONNX Runtime can quantize
    note: str
    quantizer: str = "onnxruntime"  # a key of QUANTIZERS
    methods: tuple[str, ...] = METHODS
    #: the exclusion rules ``calibrate`` applies when none are given
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE


TARGETS: dict[str, QuantTarget] = {
    "tensorrt": QuantTarget("QInt8", "QInt8", True, False, False, ("Conv", "ConvTranspose", "MatMul", "Gemm"),
                            "symmetric S8 activations / S8 per-channel weights, zero points 0, float biases"),
    # ONNX Runtime advises reduce_range (7-bit weights) on AVX2 CPUs without VNNI, where the U8xS8
    # multiply-add can saturate; left off: with the default exclusions the measured drop of real INT8
    # on such a CPU (AMD Zen 3) is 0.004-0.007 dB (benchmarks/RESULTS.md, "An AVX2-only CPU").
    "cpu": QuantTarget("QUInt8", "QInt8", False, True, False, ("Conv", "ConvTranspose", "MatMul", "Gemm"),
                       "U8 activations (asymmetric) / S8 per-channel weights"),
    # NNCF decides the activation types and what else to quantize (e.g. element-wise inputs) for
    # OpenVINO's CPU plugin; op_types only says whether a cell has anything worth quantizing at all.
    "openvino": QuantTarget("QUInt8", "QInt8", False, False, False, ("Conv", "ConvTranspose", "MatMul", "Gemm"),
                            "NNCF placement for OpenVINO CPU (mixed preset: asymmetric activations, "
                            "symmetric per-channel weights)", quantizer="nncf", methods=("minmax",),
                            exclude=OPENVINO_EXCLUDE),
}


def record_cell_inputs(bundle: Bundle, frames: np.ndarray, max_samples: int = 64, window: int | None = None,
                       seed: int = 0, progress: bool = False) -> dict[str, list[dict[str, np.ndarray]]]:
    """Stream ``frames`` (T, 3, H, W) through the FP32 ``bundle`` on ort-cpu and return, per cell, up to
    ``max_samples`` of the input feeds it received (a uniform random subset when it was called more)."""
    from ..runtimes.engine import Upscaler

    from tqdm import tqdm

    from ..evaluate.cell_parity import split_rows, tap_cells

    upscaler = Upscaler.create(bundle, "ort-cpu")
    rng = np.random.default_rng(seed)
    samples: dict[str, list[dict[str, np.ndarray]]] = {name: [] for name in bundle.cells}
    calls: dict[str, int] = {name: 0 for name in bundle.cells}

    def keep(cell, feed):
        calls[cell] += 1
        if len(samples[cell]) < max_samples:  # reservoir sampling keeps a uniform subset of all calls
            samples[cell].append(feed)
        else:
            j = int(rng.integers(calls[cell]))
            if j < max_samples:
                samples[cell][j] = feed

    def record(cell, inputs, outputs):
        # stateless cells get frames batched on axis 0: one sample per frame, so every sample has one shape
        for feed in split_rows(inputs):
            keep(cell, feed)

    with tap_cells(upscaler.backend, record):
        for _ in tqdm(upscaler.stream(frames, window=window, lookahead=0), total=len(frames),
                      desc="recording cell inputs", unit="frame", disable=not progress):
            pass
    return samples


class _Feeds:
    """``CalibrationDataReader`` over recorded feeds (subclassed lazily: onnxruntime is optional)."""

    def __new__(cls, feeds):
        from onnxruntime.quantization import CalibrationDataReader

        class Reader(CalibrationDataReader):
            def __init__(self):
                self._it = iter(feeds)

            def get_next(self):
                return next(self._it, None)

            def rewind(self):
                self._it = iter(feeds)

        return Reader()


def quantize_cell_onnxruntime(model_path: Path, out_path: Path, feeds: list[dict], target: QuantTarget,
                              method: str, exclude_nodes: list[str], only: list[str] | None = None) -> None:
    """ONNX Runtime's ``quantize_static`` in QDQ form, with the target's activation and weight types; ``only``:
    quantize just these nodes (default: every node of the target's op types not in ``exclude_nodes``)."""
    import onnxruntime
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    onnxruntime.set_default_logger_severity(3)  # its sessions warn about every unused initializer
    calibrate = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
                 "percentile": CalibrationMethod.Percentile}[method]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_static logs "consider pre-processing" on the root logger per call
    try:
        quantize_static(
            str(model_path), str(out_path), _Feeds(feeds), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(target.op_types) if target.op_types else None,
            per_channel=True, reduce_range=target.reduce_range,
            activation_type=getattr(QuantType, target.activation), weight_type=getattr(QuantType, target.weight),
            nodes_to_exclude=exclude_nodes, nodes_to_quantize=only, calibrate_method=calibrate,
            extra_options={"ActivationSymmetric": target.activation_symmetric, "WeightSymmetric": True,
                           "QuantizeBias": target.quantize_bias})
    finally:
        root.setLevel(level)


def quantize_cell_nncf(model_path: Path, out_path: Path, feeds: list[dict], target: QuantTarget, method: str,
                       exclude_nodes: list[str]) -> None:
    """NNCF's post-training quantization of the ONNX cell for OpenVINO's CPU plugin; ``exclude_nodes``
    becomes its ``IgnoredScope``. Needs the ``openvino`` extra (``pip install 'vsrdeploy[openvino]'``)."""
    import onnx
    try:
        import nncf
    except ImportError as e:
        raise ConfigError("--target openvino quantizes with NNCF: pip install 'vsrdeploy[openvino]'") from e

    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    nncf.set_log_level(logging.ERROR)
    model = onnx.load(str(model_path))
    # NNCF's bias correction re-runs subgraphs it cuts out of the cell; on the deformable-alignment cells
    # (BasicVSR++) the cut misses a cell input and ONNX Runtime rejects the subgraph, so it is off
    # (measured cost: benchmarks/RESULTS.md, "NNCF against the ORT Q/DQ import").
    advanced = AdvancedQuantizationParameters(disable_bias_correction=True)
    # MIXED (asymmetric activations): the PERFORMANCE preset's symmetric activations lost 0.011-0.015 dB on
    # the shipped models against 0.004 dB for MIXED, at the same speed (benchmarks/RESULTS.md).
    # NNCF never places the quantizers of convolutions on concatenations: it quantizes each concatenated
    # tensor where it is produced, and on BasicVSR++ that is the propagated feature the recurrence adds its
    # residual to (1.56 dB lost on the shipped model). Those it is asked to quantize (``--exclude`` without
    # ``concat-input``) are left to ONNX Runtime's quantizer, which quantizes the concatenation itself, in a
    # second pass over NNCF's cell, in the ``cpu`` target's form (benchmarks/RESULTS.md, "INT8 alignment on
    # OpenVINO, and BF16 sampling coordinates").
    onto_concat = sorted(set(nodes_to_keep(model, "", [KeepRule("concat-input")])) - set(exclude_nodes))
    with contextlib.redirect_stdout(io.StringIO()):  # NNCF draws its own progress bars per cell; ours counts cells
        quantized = nncf.quantize(model, nncf.Dataset(feeds), target_device=nncf.TargetDevice.CPU,
                                  preset=nncf.QuantizationPreset.MIXED, subset_size=len(feeds),
                                  ignored_scope=nncf.IgnoredScope(names=list(exclude_nodes) + onto_concat,
                                                                  validate=False),
                                  advanced_parameters=advanced)
    onnx.save(quantized, str(out_path))
    if onto_concat:
        quantize_cell_onnxruntime(out_path, out_path, feeds, TARGETS["cpu"], "minmax", [], only=onto_concat)


#: name -> function(model_path, out_path, feeds, target, method, exclude_nodes) writing a Q/DQ ONNX cell
QUANTIZERS = {"onnxruntime": quantize_cell_onnxruntime, "nncf": quantize_cell_nncf}
#: the module each quantizer imports (to tell whether it is installed without importing it)
QUANTIZER_MODULES = {"onnxruntime": "onnxruntime.quantization", "nncf": "nncf"}


def calibrate_bundle(bundle, frames: np.ndarray, out_dir=None, *, target: str = "cpu", method: str = "minmax",
                     exclude=None, max_samples: int = 64, window: int | None = None,
                     source: str | None = None, progress: bool = True, echo=None, force: bool = False) -> Path:
    """Write an INT8 Q/DQ bundle calibrated on ``frames`` (T, 3, H, W) float32 in [0, 1] (LR frames).

    ``exclude``: rules in the FP16 keep-list syntax (``cell=NAME``, ``node=REGEX``, ``op=TYPE``,
    ``sampling-grid``, ``sampling-coords``, ...); matching nodes stay float. None: the target's default
    (``QuantTarget.exclude``).
    """
    import onnx
    from tqdm import tqdm

    src = bundle if isinstance(bundle, Bundle) else Bundle(bundle)
    if src.precision != "fp32":
        raise ConfigError(f"{src.path} is {src.precision}; calibrate from the FP32 bundle")
    if target not in TARGETS:
        raise ConfigError(f"unknown --target {target!r}; choose from {', '.join(TARGETS)}")
    if method not in METHODS:
        raise ConfigError(f"unknown --method {method!r}; choose from {', '.join(METHODS)}")
    if method not in TARGETS[target].methods:
        raise ConfigError(f"--target {target} calibrates with {', '.join(TARGETS[target].methods)} only "
                          f"(its quantizer's own range estimators); drop --method {method}")
    frames = np.asarray(frames, dtype=np.float32)
    if frames.ndim != 4 or frames.shape[1] != 3 or len(frames) < 2:
        raise InputError(f"calibration needs at least 2 RGB frames (T, 3, H, W); got shape {frames.shape}")
    if PLUGIN_NODE in src.cell_ops():
        raise ConfigError("calibration runs the bundle on ONNX Runtime, which cannot run the TensorRT plugin "
                          "DCN node: calibrate a --dcn native or decomposed export (both give the same weights)")
    qt = TARGETS[target]
    rules = [KeepRule.parse(r) if isinstance(r, str) else r for r in (qt.exclude if exclude is None else exclude)]
    out_dir = Path(out_dir) if out_dir else src.path.with_name(src.path.name.removesuffix(".vsr") + "-int8.vsr")
    check_output_dir(out_dir.absolute(), force)
    say = echo or (lambda m: None)
    say(f"recording cell inputs over {len(frames)} calibration frames")
    samples = record_cell_inputs(src, frames, max_samples=max_samples, window=window, progress=progress)
    models, excluded = {}, {}
    with tempfile.TemporaryDirectory(prefix="vsrdeploy-int8-") as tmp:
        for name in tqdm(src.cells, desc="quantizing cells", unit="cell", disable=not progress):
            model = onnx.load(str(src.cell_path(name)))
            name_nodes(model)  # every node needs a name to be excluded by name
            skip = nodes_to_keep(model, name, rules)
            excluded[name] = skip
            excluded_set = set(skip)
            quantizable = [n for n in model.graph.node if n.name not in excluded_set
                           and (qt.op_types is None or n.op_type in qt.op_types)]
            if not quantizable or not samples[name]:  # e.g. a warping cell: nothing with weights to quantize
                models[name] = model
                continue
            named = Path(tmp) / f"{name}.onnx"
            onnx.save(model, str(named))
            QUANTIZERS[qt.quantizer](named, Path(tmp) / f"{name}.int8.onnx", samples[name], qt, method, skip)
            models[name] = onnx.load(str(Path(tmp) / f"{name}.int8.onnx"))
        details = {
            "target": target, "form": qt.note, "activation_type": qt.activation, "weight_type": qt.weight,
            "activation_symmetric": qt.activation_symmetric, "per_channel_weights": True,
            "quantized_op_types": list(qt.op_types or []), "biases_quantized": qt.quantize_bias,
            "reduce_range": qt.reduce_range, "quantizer": qt.quantizer, "method": method,
            "exclude_rules": [str(r) for r in rules],
            "excluded_nodes": excluded,
            "calibration": {"source": source, "frames": int(len(frames)), "lr_size": list(frames.shape[2:]),
                            "samples_per_cell": {k: len(v) for k, v in samples.items()}},
        }
        return src.derive(out_dir, models, "int8", details, force=force)
