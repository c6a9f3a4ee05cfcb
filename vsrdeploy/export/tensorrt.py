"""TensorRT engines from a bundle's cells: one plan per cell, cached under ``BUNDLE/engines/``.

``vsrdeploy build`` calls ``build_engines``. What it does per TensorRT version (``tensorrt`` is
imported only here and in the tensorrt backend):

| bundle / --precision | TensorRT 10 | TensorRT 11 (strongly typed only) |
|---|---|---|
| fp32 bundle, fp32 | FP32 network | FP32 network (strongly typed) |
| fp32 bundle, fp16 | weakly typed + ``BuilderFlag.FP16``; the FP16 keep-list nodes are pinned to FP32 (layer precision + ``OBEY_PRECISION_CONSTRAINTS``) | the cells are converted to FP16 ONNX with the keep-list (``calib.fp16``), then built strongly typed |
| fp16 bundle, fp16 | strongly typed | strongly typed |
| int8 bundle (Q/DQ, ``--target tensorrt``), int8 | weakly typed + ``BuilderFlag.INT8`` and ``FP16`` (unquantized layers may use FP16) | strongly typed (unquantized layers stay FP32) |

Engines are keyed (``engine_key``) by the cell ONNX's sha256, TensorRT version, GPU name and compute
capability, precision, optimization profile and plugin library hash: a cached plan is reused while
every key input matches and rebuilt when any changes.

Written against the public TensorRT 10.x / 11.x Python API; it has not run here (no GPU, no TensorRT
on the development machines): see README "Deploying to TensorRT / Jetson".
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..bundle import Bundle, sha256_file
from ..errors import ConfigError, VSRDeployError
from ..models.dcn_names import PLUGIN_NODE
# what running engines needs lives with the runtime; building re-uses it
from ..runtimes.tensorrt_engines import (ENGINE_DIR, PLUGIN_ENV, PLUGIN_LIBRARY, engine_dir, find_plugin,  # noqa: F401
                                         gpu_identity, import_tensorrt, load_plugin, logger, read_engine_index,
                                         tensorrt_major)

PRECISIONS = ("fp32", "fp16", "int8")


# -- shapes and profiles (pure Python: tested without TensorRT) ------------------------------------

def resolve_dim(sym, n: int, h: int, w: int) -> int:
    """One manifest dimension ('N', 16, 'H', '4W', 'H/4') at batch ``n`` and LR frame size ``h`` x ``w``."""
    if isinstance(sym, int):
        return sym
    m = re.fullmatch(r"(\d*)([NHW])(?:/(\d+))?", str(sym))
    if not m:
        raise ConfigError(f"cannot read manifest dimension {sym!r}")
    factor, axis, div = int(m.group(1) or 1), m.group(2), int(m.group(3) or 1)
    base = {"N": n, "H": h, "W": w}[axis]
    return base * factor // div


def resolve_shape(shape: list, n: int, h: int, w: int) -> tuple[int, ...]:
    return tuple(resolve_dim(s, n, h, w) for s in shape)


@dataclass(frozen=True)
class Profile:
    """LR frame sizes (padded) the engines accept, and the batch of stateless cells."""
    min_hw: tuple[int, int]
    opt_hw: tuple[int, int]
    max_hw: tuple[int, int]
    max_batch: int = 8
    #: batch of the stateful cells: 1, or the tiles of a frame when frames are streamed in tiles
    #: (each tile carries its own state on the batch axis; see :func:`tile_profile`)
    state_batch: int = 1

    def shapes(self, port_shape: list, stateless: bool) -> tuple[tuple, tuple, tuple]:
        n_max = self.max_batch if stateless else self.state_batch
        return (resolve_shape(port_shape, 1, *self.min_hw), resolve_shape(port_shape, n_max, *self.opt_hw),
                resolve_shape(port_shape, n_max, *self.max_hw))


def make_profile(bundle: Bundle, min_hw=None, opt_hw=None, max_hw=None, max_batch: int = 8) -> Profile:
    """A profile from user sizes ((height, width) of LR frames), rounded up to the network's padding multiple and minimum size."""
    m = int(bundle.manifest.get("pad_multiple", 1)) or 1
    floor = int(bundle.manifest.get("min_size", 1))
    static = bundle.manifest.get("static_shape")

    def fit(hw, default):
        if hw is None:
            hw = default
        h, w = (max(int(v), floor) for v in hw)
        return (h + m - 1) // m * m, (w + m - 1) // m * m

    if static:
        hw = tuple(static)
        if any(v is not None and tuple(v) != hw for v in (min_hw, opt_hw, max_hw)):
            raise ConfigError(f"the bundle was exported for {hw[1]}x{hw[0]} (WxH) frames only (--static-shape)")
        return Profile(hw, hw, hw, max_batch)
    lo = fit(min_hw, (floor, floor))
    opt = fit(opt_hw, (180, 320))
    hi = fit(max_hw, opt)
    if not (lo[0] <= opt[0] <= hi[0] and lo[1] <= opt[1] <= hi[1]):
        raise ConfigError(f"profile sizes must satisfy min <= opt <= max per axis; got min {lo[1]}x{lo[0]}, "
                          f"opt {opt[1]}x{opt[0]}, max {hi[1]}x{hi[0]} (WxH, after rounding up to the padding multiple)")
    if max_batch < 1:
        raise ConfigError("--max-batch must be at least 1")
    return Profile(lo, opt, hi, max_batch)


def tile_profile(bundle: Bundle, frame_hw, tile, overlap: int, max_batch: int = 8) -> Profile:
    """The profile for streaming ``frame_hw`` (h, w) LR frames cut into ``tile`` tiles (int or (h, w)) with
    ``overlap``: one shape, the tile's (padded as the schedule pads it), and every cell taking 1 to all the
    tiles of a frame on its batch axis, stateful cells included (streams run one tile per call, RealBasicVSR
    every tile of a frame at once). Use the same tile and overlap at run time
    (``run --tile``); a frame that fits in one tile needs no tile profile (one is refused)."""
    from ..models.tiles import TileGrid, check_tile_args
    floor = int(bundle.manifest.get("min_size", 1))
    th, tw = check_tile_args(tile, overlap, floor)
    h, w = (int(v) for v in frame_hw)
    grid = TileGrid(h, w, th, tw, overlap)
    if len(grid) < 2:
        raise ConfigError(f"a {tw}x{th} tile covers the whole {w}x{h} frame: build without --tile (use --opt-shape {w}x{h})")
    size = (grid.tile_h, grid.tile_w)
    profile = make_profile(bundle, size, size, size, max(max_batch, len(grid)))
    return Profile(profile.min_hw, profile.opt_hw, profile.max_hw, profile.max_batch, state_batch=len(grid))


def engine_key(onnx_sha256: str, trt_version: str, gpu_name: str, compute_capability: str, precision: str,
               profile: Profile, plugin_sha256: str | None = None) -> str:
    """The cache key of one cell's engine: any change in an input gives a different key."""
    record = {"onnx": onnx_sha256, "tensorrt": trt_version, "gpu": gpu_name, "sm": compute_capability,
              "precision": precision, "profile": asdict(profile), "plugin": plugin_sha256}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


# -- TensorRT ------------------------------------------------------------------------------------------


def _network_flags(trt, strongly_typed: bool) -> int:
    if not strongly_typed:
        return 0
    return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)


def _parse(trt, builder, logger, onnx_bytes: bytes, strongly_typed: bool, name: str):
    network = builder.create_network(_network_flags(trt, strongly_typed))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise VSRDeployError(f"TensorRT's ONNX parser rejected cell {name}: {errors} "
                             f"(`vsrdeploy check BUNDLE --target tensorrt-{tensorrt_major(trt.__version__)}` "
                             "lists what TensorRT cannot take)")
    return network, parser


def _pin_fp32(trt, network, keep: set[str]) -> int:
    """TensorRT 10 weak typing: force the keep-list layers to FP32. Returns how many were pinned."""
    floats = (trt.float32, trt.float16)
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        # the parser names a layer after its node, with a suffix when one node becomes several layers
        from_node = layer.name in keep or any(layer.name.startswith(k + "_") for k in keep) \
            or (getattr(layer, "metadata", "") or "") in keep
        if not from_node or not any(t.dtype in floats for t in outputs):
            continue  # shape / index layers are not floating point: nothing to pin
        layer.precision = trt.float32
        for j, t in enumerate(outputs):
            if t.dtype in floats:
                layer.set_output_type(j, trt.float32)
        pinned += 1
    return pinned


def build_cell_engine(trt, onnx_bytes: bytes, name: str, cell_info, precision: str, bundle_precision: str,
                      profile: Profile, workspace_mb: int, timing_cache: bytes | None, keep_fp32: set[str],
                      verbose: bool = False) -> tuple[bytes, bytes | None]:
    """Build one cell's serialized engine; returns (plan, updated timing cache)."""
    major = tensorrt_major(trt.__version__)
    log = logger(trt, verbose)
    log.errors.clear()
    builder = trt.Builder(log)
    weak = major == 10 and bundle_precision in ("fp32", "int8") and precision != "fp32"
    network, _parser = _parse(trt, builder, log, onnx_bytes, strongly_typed=not weak, name=name)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_mb) << 20)
    if weak:
        config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
        if keep_fp32 and _pin_fp32(trt, network, keep_fp32):
            config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    opt_profile = builder.create_optimization_profile()
    for port in cell_info.inputs:
        opt_profile.set_shape(port["name"], *profile.shapes(port["shape"], cell_info.stateless))
    config.add_optimization_profile(opt_profile)
    cache = config.create_timing_cache(timing_cache or b"")
    if not config.set_timing_cache(cache, False):  # e.g. a cache from another TensorRT version
        config.set_timing_cache(config.create_timing_cache(b""), False)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise VSRDeployError(f"TensorRT failed to build cell {name}: {' | '.join(log.errors) or 'no message'}")
    return bytes(plan), bytes(cache.serialize())


@dataclass
class EngineRecord:
    cell: str
    file: str
    key: str
    built: bool  # False: reused from the cache
    seconds: float


def _cell_onnx(bundle: Bundle, name: str, precision: str, major: int, keep_rules) -> tuple[bytes, set[str]]:
    """The ONNX bytes to build and the node names to pin to FP32 (TensorRT 10 weak typing)."""
    import onnx
    path = bundle.cell_path(name)
    if precision != "fp16" or bundle.precision != "fp32":
        return path.read_bytes(), set()
    from ..calib.fp16 import KeepRule, convert_model_fp16, nodes_to_keep
    rules = [KeepRule.parse(r) for r in keep_rules]
    model = onnx.load(str(path))
    if major == 10:  # weak typing: FP16 flag, keep-list layers pinned (parser layer names = node names)
        return model.SerializeToString(), set(nodes_to_keep(model, name, rules))
    converted, _ = convert_model_fp16(model, name, rules)  # TensorRT 11: the types come from the ONNX
    return converted.SerializeToString(), set()


def build_engines(bundle, precision: str = "fp32", profile: Profile | None = None, *, workspace_mb: int = 1024,
                  timing_cache: str | None = None, plugin: str | None = None, keep_fp32=None, rebuild: bool = False,
                  progress=None, verbose: bool = False) -> list[EngineRecord]:
    """Build (or reuse) one engine per cell; return what was done. See the module docstring."""
    from ..calib.fp16 import DEFAULT_KEEP_FP32

    b = bundle if isinstance(bundle, Bundle) else Bundle(bundle)
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}")
    if b.precision == "int8" and precision != "int8" or precision == "int8" and b.precision != "int8":
        raise ConfigError("INT8 engines are built from an INT8 bundle and only at --precision int8: run "
                          "`vsrdeploy calibrate BUNDLE --target tensorrt --frames CLIP` first")
    if b.precision == "int8" and b.manifest.get("precision_details", {}).get("target") != "tensorrt":
        raise ConfigError("this INT8 bundle was calibrated for the CPU (U8 activations), which TensorRT cannot "
                          "take; re-run `vsrdeploy calibrate --target tensorrt`")
    if b.precision == "fp16" and precision != "fp16":
        raise ConfigError("an FP16 bundle builds only at --precision fp16")
    trt = import_tensorrt()
    major = tensorrt_major(trt.__version__)
    gpu, sm = gpu_identity()
    profile = profile or make_profile(b)
    plugin_path = None
    if PLUGIN_NODE in b.cell_ops():
        plugin_path = find_plugin(plugin)
        if plugin_path is None:
            raise ConfigError(f"this bundle has plugin DCN nodes: build {PLUGIN_LIBRARY} (README, 'Deploying to "
                              f"TensorRT') and pass --plugin PATH or set ${PLUGIN_ENV}")
        load_plugin(trt, plugin_path)
    plugin_sha = sha256_file(plugin_path) if plugin_path else None
    keep_rules = list(keep_fp32 if keep_fp32 is not None else DEFAULT_KEEP_FP32)
    out = engine_dir(b)
    out.mkdir(parents=True, exist_ok=True)
    cache_path = Path(timing_cache) if timing_cache else out / f"timing-trt{trt.__version__}-sm{sm}.cache"
    cache_bytes = cache_path.read_bytes() if cache_path.exists() else None
    records = []
    for name, info in b.cells.items():
        if progress:
            progress(name)
        onnx_bytes, keep = _cell_onnx(b, name, precision, major, keep_rules)
        key = engine_key(hashlib.sha256(onnx_bytes).hexdigest(), trt.__version__, gpu, sm, precision, profile,
                         plugin_sha)
        plan_path = out / f"{name}-{precision}-{key[:16]}.plan"
        meta_path = plan_path.with_suffix(".json")
        t = time.perf_counter()
        if plan_path.exists() and meta_path.exists() and not rebuild \
                and json.loads(meta_path.read_text()).get("key") == key:
            records.append(EngineRecord(name, plan_path.name, key, False, 0.0))
            continue
        for stale in out.glob(f"{name}-{precision}-*.plan"):  # same cell and precision, other key: stale
            stale.unlink()
            stale.with_suffix(".json").unlink(missing_ok=True)
        plan, cache_bytes = build_cell_engine(trt, onnx_bytes, name, info, precision, b.precision, profile,
                                              workspace_mb, cache_bytes, keep, verbose)
        tmp = plan_path.with_suffix(".tmp")
        tmp.write_bytes(plan)
        tmp.replace(plan_path)
        meta_path.write_text(json.dumps({"key": key, "cell": name, "precision": precision, "tensorrt": trt.__version__,
                                         "gpu": gpu, "sm": sm, "profile": asdict(profile),
                                         "plugin": str(plugin_path) if plugin_path else None,
                                         "keep_fp32": sorted(keep) if keep else None}, indent=1))
        records.append(EngineRecord(name, plan_path.name, key, True, time.perf_counter() - t))
    if cache_bytes:
        cache_path.write_bytes(cache_bytes)
    index = {"precision": precision, "profile": asdict(profile), "tensorrt": trt.__version__, "gpu": gpu, "sm": sm,
             "plugin_sha256": plugin_sha,
             "cells": {r.cell: {"file": r.file, "sha256": sha256_file(out / r.file)} for r in records}}
    tmp = out / f".index-{precision}.json.tmp"
    tmp.write_text(json.dumps(index, indent=1))
    tmp.replace(out / f"index-{precision}.json")
    return records


