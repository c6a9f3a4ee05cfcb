"""``vsrdeploy tune``: on this machine, time every backend x precision at the user's frame size, measure each
one's PSNR-Y drop against FP32 on a real clip, pick the fastest within the dB budget and write it as a
profile beside the bundle, which ``vsrdeploy run --profile auto`` (or ``-b auto``) then uses.

Accuracy reuses ``compare.run_compare`` (whole clip, so the drop is the precision's alone, not
streaming's); speed reuses ``bench.run_configs`` (each configuration in its own process, synthetic
frames at the timing size). INT8 is calibrated on the tuning clip in every form a backend runs
(``INT8_TARGETS``) whose quantizer is installed, one row each: ``calibrate --target cpu`` (ONNX Runtime's
Q/DQ, U8 activations / S8 weights) on ort-cpu and openvino-cpu, and ``--target openvino`` (NNCF's placement)
on openvino-cpu, and ``cpu-concat`` (ORT's Q/DQ with the convolutions on concatenations quantized too) on
both. Which one is faster, and what each costs in dB, depends on the CPU and the network (measured: NNCF on the
non-DCN networks, the imported ORT Q/DQ form on the DCN networks of an AVX2-only CPU; ``cpu-concat`` 1.13x on
BasicVSR++ on an AVX-512 VNNI Xeon), so tune times and scores each rather than assume. Each is kept beside the
bundle as ``NAME-int8-FORM.vsr`` and reused while the bundle it was derived from and the recipe are unchanged. Given ``alternates`` (``tune --dcn both``: the native-DCN export beside the
decomposed one), the runtimes that import another form get its rows too, since which form is faster depends on
the runtime (ONNX Runtime's DeformConv against its GridSample: RESULTS.md). The fastest rows within the budgets
are then timed again with the streams' malloc keeping freed maps for reuse (``heap=keep``, ``models.heap``:
the same frames, faster, 0.1-1.1 GB more at 720p output); ``--max-memory`` decides whether that is chosen.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..bundle import MANIFEST, Bundle, safe_join, sha256_file
from ..calib.int8 import DEFAULT_EXCLUDE, TARGETS
from ..errors import BackendUnavailable, ConfigError, InputError
from ..models.heap import DEFAULT_HEAP_POLICY, check_heap_policy

PROFILE_KIND = "vsrdeploy-tune-profile"
PROFILE_VERSION = 1
#: ``int8-bf16`` / ``int8-fp16``: an INT8 bundle with its float ops (deformable sampling, excluded convs) at that
#: precision, on runtimes that can (``Backend.int8_float_precisions``)
TUNE_PRECISIONS = ("fp32", "bf16", "fp16", "int8", "int8-bf16", "int8-fp16")
#: backend -> the INT8 forms (``INT8_FORMS``) it runs; tune makes one row per form whose quantizer is
#: installed (benchmarks/RESULTS.md "NNCF against the ORT Q/DQ import" and "An AVX2-only CPU": neither form
#: is the faster one on every CPU and network)
INT8_TARGETS = {"ort-cpu": ("cpu", "cpu-concat"), "openvino-cpu": ("openvino", "cpu", "cpu-concat")}
#: INT8 form name -> (``calibrate --target``, exclusion rules): each target's default, and ``cpu-concat``: ONNX
#: Runtime's Q/DQ with the convolutions on concatenations quantized too (``concat-input`` not excluded): on an
#: AVX-512 VNNI Xeon it made BasicVSR++'s INT8 1.13x faster on openvino-cpu for +0.001 dB (shipped c16 models,
#: held-out frames); not the ``cpu`` default, so tune measures the drop on the user's clip instead of assuming it
#: (benchmarks/RESULTS.md, "Quantizing the backbones' first convs"). The ``openvino`` target quantizes those
#: convs by default since 0.3.13, with ONNX Runtime's placement ("INT8 alignment on OpenVINO, and BF16 sampling
#: coordinates").
INT8_FORMS = {"cpu": ("cpu", TARGETS["cpu"].exclude), "openvino": ("openvino", TARGETS["openvino"].exclude),
              "cpu-concat": ("cpu", tuple(r for r in DEFAULT_EXCLUDE if r != "concat-input"))}
#: backend -> option sets that change speed and peak memory but never the outputs, each timed as a row of its
#: own beside the backend's plain rows (added after accuracy is measured: its accuracy is the plain row's).
#: openvino-cpu's ``keep_working_sets``: bit-identical outputs (tests/test_openvino_buffers.py), 0.81-1.23x the
#: plain rows' speed through bench's timed runs at ~+250-320 MB, no consistent sign (benchmarks/RESULTS.md,
#: "kept buffers measured end to end"). ``--max-memory`` keeps a row whose peak is too high from being chosen.
OPTION_VARIANTS: dict[str, tuple[dict, ...]] = {"openvino-cpu": ({"keep_working_sets": 2},)}
#: the fastest rows within the budgets are timed once more with the streams' malloc keeping freed maps
#: (``models.heap`` "keep": same outputs, faster, more memory; benchmarks/RESULTS.md, "What freed memory costs");
#: a twin is chosen like any row, so ``--max-memory`` decides whether its memory is affordable
HEAP_VARIANT = "keep"
HEAP_VARIANT_ROWS = 2
#: why a backend x precision is not a candidate, for pairs no backend option can give
NOT_NATIVE = {
    ("ort-cpu", "fp16"): "ONNX Runtime's CPU provider has no FP16 kernels for most ops (it would run them in "
                         "FP32 between casts)",
    ("ort-cpu", "bf16"): "ONNX Runtime's CPU provider has no BF16 execution; use openvino-cpu for BF16",
}


@dataclass
class TuneRow:
    backend: str
    precision: str
    bundle: str  # the bundle this row runs (the FP32 one, or the INT8 one)
    status: str = "ok"  # ok | skipped | failed
    reason: str = ""
    psnr_y_drop_db: float = math.nan  # PSNR-Y(FP32 vs GT) - PSNR-Y(this vs GT)
    psnr_y_vs_fp32_db: float = math.nan  # this row's output against the FP32 output
    fps: float = math.nan
    s_per_frame: float = math.nan
    peak_rss_mb: float = math.nan
    within_budget: bool = False
    chosen: bool = False
    int8_target: str = ""  # INT8 rows: the INT8 form (``INT8_FORMS``) this row runs
    options: dict = field(default_factory=dict)  # backend options on top of the precision's (OPTION_VARIANTS)
    over_memory: bool = False  # peak RSS above tune's max_memory: not chosen
    dcn: str = ""  # the FP32 export's DCN form, named when tune compares several forms (``alternates``)
    heap: str = DEFAULT_HEAP_POLICY  # the stream's malloc policy (``models.heap``; HEAP_VARIANT rows)

    @property
    def label(self) -> str:
        form = f":{self.int8_target}" if self.int8_target else ""
        dcn = f" dcn={self.dcn}" if self.dcn else ""
        extra = "".join(f" {k}={v}" for k, v in self.options.items())
        heap = f" heap={self.heap}" if self.heap != DEFAULT_HEAP_POLICY else ""
        return f"{self.backend}/{self.precision}{form}{dcn}{extra}{heap}"


@dataclass
class TuneResult:
    bundle: str
    rows: list[TuneRow]
    max_drop_db: float
    size: tuple[int, int]  # timed LR frame size (H, W)
    threads: int
    window: int | None
    lookahead: int
    clip: str
    fp32_psnr_y_db: float
    chosen: TuneRow | None = None
    notes: list[str] = field(default_factory=list)
    profile_path: str | None = None
    max_memory_mb: float | None = None  # rows peaking above it are not chosen


# -- machine --------------------------------------------------------------------------------------------

def cpu_description() -> dict:
    """The CPU's model and the flags that decide reduced-precision speed (``machine.cpu_info``)."""
    from .machine import cpu_info
    info = cpu_info()
    return {"model": info["model"], "cores": info["logical_cores"], "flags": info["flags"]}


def openvino_capabilities() -> list[str] | None:
    try:
        from ..runtimes.openvino_backend import device_capabilities
        return device_capabilities("CPU")
    except Exception:  # noqa: BLE001 -- no OpenVINO here: nothing to report
        return None


# -- candidates -----------------------------------------------------------------------------------------

def candidate_reason(backend: str, precision: str) -> str | None:
    """Why ``backend`` cannot be a ``precision`` candidate here (one line), or None."""
    from ..runtimes.base import get_backend_class
    cls = get_backend_class(backend)
    reason = cls.unavailable_reason()
    if reason:
        return f"backend {backend} is unavailable: {reason}"
    if (backend, precision) in NOT_NATIVE:
        return NOT_NATIVE[(backend, precision)]
    if precision.startswith("int8"):
        if backend not in INT8_TARGETS:
            return f"{backend} does not run the CPU INT8 (Q/DQ) form"
        if precision == "int8":
            return None
        from ..runtimes.base import int8_float_precision
        precision = int8_float_precision(precision)  # the float ops' precision: native here?
        if precision not in cls.int8_float_precisions:
            return f"{backend} runs an INT8 bundle's float ops in FP32 only"
    if precision not in cls.precisions:
        return f"{backend} runs {', '.join(cls.precisions)} from an FP32 bundle, not {precision}"
    if backend.startswith("openvino"):
        from ..runtimes.openvino_backend import precision_unavailable_reason
        return precision_unavailable_reason(cls.device_name, precision)
    return None


def export_form_reason(backend: str, bundle: Bundle, first: Bundle) -> str | None:
    """Why ``backend`` gets no rows for ``bundle``, another export of ``first``'s network (one line), or None."""
    from ..runtimes.base import get_backend_class
    cls = get_backend_class(backend)
    if bundle is first:
        return None
    if not cls.runs_exported_cells:
        return f"{backend} runs the PyTorch network, the same for every export form (see its dcn={first.dcn} rows)"
    bad = cls.unimportable_ops(bundle)
    return f"{backend} cannot import {', '.join(bad)} (see its dcn={first.dcn} rows)" if bad else None


def int8_targets_for(backend: str) -> list[str]:
    """The INT8 forms (``INT8_FORMS``) ``backend`` runs whose quantizer is installed here."""
    import importlib.util

    from ..calib.int8 import QUANTIZER_MODULES, TARGETS
    found = []
    for form in INT8_TARGETS[backend]:
        module = QUANTIZER_MODULES.get(TARGETS[INT8_FORMS[form][0]].quantizer)
        if module is None or importlib.util.find_spec(module) is not None:
            found.append(form)
    return found


def int8_bundle_for(bundle: Bundle, calib_lr: np.ndarray, source: str, echo=lambda m: None,
                    form: str = "cpu") -> Bundle:
    """The INT8 form ``form`` (``INT8_FORMS``: a ``calibrate --target`` and its exclusions) beside ``bundle``:
    reused when it was derived from this very bundle with the same recipe, calibrated (written atomically) when
    absent; anything else at that path is left alone."""
    from ..calib.int8 import calibrate_bundle
    target, exclude = INT8_FORMS[form]
    path = bundle.path.with_name(bundle.path.name.removesuffix(".vsr") + f"-int8-{form}.vsr")
    if path.exists():
        try:
            existing = Bundle(path)
        except Exception as e:  # noqa: BLE001 -- anything unreadable there is the user's: do not touch it
            raise ConfigError(f"{path} exists and is not a readable bundle ({e}); move it away and tune again")
        source_sha = existing.manifest.get("derived_from", {}).get("manifest_sha256")
        details = existing.manifest.get("precision_details", {})
        same_recipe = details.get("target") == target and details.get("exclude_rules", list(exclude)) == list(exclude)
        if existing.precision == "int8" and same_recipe and source_sha == sha256_file(bundle.path / MANIFEST):
            echo(f"int8: reusing {path}")
            return existing
        raise ConfigError(f"{path} exists but is not the {form} INT8 form of {bundle.path.name}; move "
                          "it away and tune again (tune never overwrites it)")
    echo(f"int8: calibrating {path.name} (--target {target}, excluding {', '.join(exclude)}) on "
         f"{len(calib_lr)} frames")
    return Bundle(calibrate_bundle(bundle, calib_lr, path, target=target, exclude=exclude, source=source,
                                   progress=False))


# -- measuring ------------------------------------------------------------------------------------------

def measure_accuracy(rows: list[TuneRow], bundles: dict[str, Bundle], lr: np.ndarray, gt: np.ndarray,
                     clip: str, progress) -> float:
    """Fill each runnable row's PSNR-Y drop against the whole-clip FP32 reference; returns its PSNR-Y."""
    from .compare import Target, run_compare
    fp32_psnr = math.nan
    for key, bundle in bundles.items():
        todo = [r for r in rows if r.status == "ok" and r.bundle == key]
        if not todo:
            continue
        result = run_compare(bundle, lr, [Target(r.backend, r.precision) for r in todo], gt=gt, window=None,
                             lookahead=0, clip_name=clip, progress=progress)
        fp32_psnr = result.reference.summary["psnr_y_mean"]
        for row, t in zip(todo, result.targets):
            if t.status != "ok":
                row.status, row.reason = t.status, t.reason
                continue
            row.psnr_y_drop_db = fp32_psnr - t.summary["psnr_y_mean"]
            row.psnr_y_vs_fp32_db = t.summary["psnr_ref_mean"]
    return fp32_psnr


def measure_speed(rows: list[TuneRow], *, size, frames: int, repeat: int, warmup: int, threads: int,
                  window, lookahead: int, isolate: bool, progress) -> None:
    from .bench import BenchConfig, run_configs
    todo = [r for r in rows if r.status == "ok"]
    configs = [BenchConfig(r.backend, r.precision, bundle=r.bundle, options=r.options, heap=r.heap) for r in todo]
    results = run_configs(todo[0].bundle, configs, frames=frames, size=size, warmup=warmup, repeat=repeat,
                          window=window, lookahead=lookahead, threads=threads, isolate=isolate, progress=progress)
    for row, res in zip(todo, results):
        if res.status != "ok":
            row.status, row.reason = res.status, res.reason
            continue
        row.fps, row.s_per_frame, row.peak_rss_mb = res.fps, 1.0 / res.fps, res.peak_rss_mb


def choose(rows: list[TuneRow], max_drop: float, max_memory_mb: float | None = None) -> TuneRow | None:
    """The fastest measured row whose PSNR-Y drop is within ``max_drop`` dB (FP32 rows always are) and whose
    peak RSS is within ``max_memory_mb`` (when given)."""
    for r in rows:
        r.chosen = False
        r.over_memory = max_memory_mb is not None and r.peak_rss_mb > max_memory_mb
        r.within_budget = r.status == "ok" and (r.precision == "fp32" or r.psnr_y_drop_db <= max_drop) \
            and not r.over_memory
    ok = [r for r in rows if r.within_budget and not math.isnan(r.fps)]
    best = max(ok, key=lambda r: r.fps, default=None)
    if best is not None:
        best.chosen = True
    return best


def tune(bundle: Bundle, lr: np.ndarray, gt: np.ndarray, *, backends: list[str],
         precisions: list[str] = list(TUNE_PRECISIONS), max_drop: float = 0.05, size=None, threads: int | None = None,
         window: int | None = 16, lookahead: int = 8, timing_frames: int = 4, repeat: int = 2, warmup: int | None = None,
         calib_lr: np.ndarray | None = None, clip: str = "", isolate: bool = True,
         max_memory_mb: float | None = None, option_variants: dict = OPTION_VARIANTS,
         heap_variant_rows: int = HEAP_VARIANT_ROWS, alternates: Sequence[Bundle] = (),
         progress: Callable[[str], None] = lambda m: None) -> TuneResult:
    """Measure every backend x precision and choose (see the module docstring). ``lr`` (T, 3, h, w) and
    ``gt`` (T, 3, H, W) measure accuracy; ``size`` (H, W) is the LR size timed (default: ``lr``'s).
    ``warmup``: frames streamed untimed before each row's timed runs, default ``timing_frames`` (a shorter warm-up
    left BasicVSR++'s ``heap=keep`` rows growing the heap in their timed runs: 1.26-1.30 s/frame after one frame,
    0.92 after three; benchmarks/RESULTS.md, "Each group of taps from its own rows of the offset conv").
    ``option_variants``: backend -> option sets timed as extra rows (``OPTION_VARIANTS``); ``max_memory_mb``:
    rows peaking above it are not chosen; ``heap_variant_rows``: how many of the fastest rows within the budgets
    are timed again with ``HEAP_VARIANT`` (0: none). ``alternates``: other FP32 exports of the same network (e.g. the
    native-DCN form beside a decomposed ``bundle``): each backend that runs exported cells and can import one
    gets its rows too (INT8 calibrated from it), labelled with the form (``dcn=native``)."""
    from ..runtimes.base import check_backend_names
    if not backends:
        raise ConfigError("give at least one backend, e.g. --backends ort-cpu,openvino-cpu")
    check_backend_names(backends)
    warmup = timing_frames if warmup is None else warmup
    bad = [p for p in precisions if p not in TUNE_PRECISIONS]
    if bad or not precisions:
        raise ConfigError(f"unknown precision(s) {', '.join(bad) or '(none given)'}; choose from "
                          f"{', '.join(TUNE_PRECISIONS)}")
    for b in (bundle, *alternates):
        if b.precision != "fp32":
            raise ConfigError(f"{b.path} is {b.precision}; tune the FP32 bundle (tune derives INT8 itself)")
    for alt in alternates:
        weights = [b.manifest["files"].get(b.manifest["weights"]) for b in (alt, bundle)]
        if (alt.arch, alt.config) != (bundle.arch, bundle.config) or weights[0] != weights[1]:
            raise ConfigError(f"{alt.path} is not another export of {bundle.path.name}'s network (arch, config or "
                              "weights differ); tune each network on its own")
    if max_drop < 0:
        raise ConfigError(f"--max-drop must be >= 0 dB, got {max_drop}")
    threads = threads or os.cpu_count() or 1
    size = tuple(size or lr.shape[2:])
    key = str(bundle.path)
    rows = []
    fp32_bundles = {str(b.path): b for b in (bundle, *alternates)}
    for fp32 in fp32_bundles.values():
        dcn = fp32.dcn if alternates else ""
        for b in backends:
            for p in precisions:
                reason = candidate_reason(b, p)
                if reason and fp32 is not bundle:
                    continue  # not a candidate in any form: the first bundle's row already says why
                reason = reason or export_form_reason(b, fp32, bundle)
                targets = int8_targets_for(b) if p.startswith("int8") and not reason else [""]
                if not targets:
                    reason = (f"no INT8 quantizer for {b} is installed (onnxruntime's quantization tools, or nncf: "
                              "pip install 'vsrdeploy[openvino]')")
                    targets = [""]
                rows.extend(TuneRow(b, p, str(fp32.path), "skipped" if reason else "ok", reason or "",
                                    int8_target=t, dcn=dcn) for t in targets)
    bundles = dict(fp32_bundles)
    calib = calib_lr if calib_lr is not None else lr
    int8_forms: dict[tuple[str, str], Bundle | Exception] = {}  # (FP32 bundle, INT8 form) -> bundle, or why not
    for r in rows:
        if not r.precision.startswith("int8") or r.status != "ok":
            continue
        form_key = (r.bundle, r.int8_target)
        if form_key not in int8_forms:
            try:
                int8_forms[form_key] = int8_bundle_for(fp32_bundles[r.bundle], calib, clip or "the tuning clip",
                                                  echo=progress, form=r.int8_target)
            except (ImportError, BackendUnavailable) as e:  # e.g. no onnxruntime.quantization here
                int8_forms[form_key] = e
        made = int8_forms[form_key]
        if isinstance(made, Exception):
            r.status, r.reason = "skipped", f"cannot calibrate INT8 (form {r.int8_target}) here: {made}"
        else:
            bundles[str(made.path)] = made
            r.bundle = str(made.path)
    fp32_psnr = measure_accuracy(rows, bundles, lr, gt, clip, progress)
    # option variants give their plain row's outputs (OPTION_VARIANTS), so its accuracy; each is timed on its own
    rows = [v for r in rows for v in [r] + [dataclasses.replace(r, options=dict(o))
                                            for o in option_variants.get(r.backend, ()) if r.status == "ok"]]
    if any(r.status == "ok" for r in rows):
        measure_speed(rows, size=size, frames=timing_frames, repeat=repeat, warmup=warmup, threads=threads,
                      window=window, lookahead=lookahead, isolate=isolate, progress=progress)
    result = TuneResult(bundle=key, rows=rows, max_drop_db=max_drop, size=size, threads=threads, window=window,
                        lookahead=lookahead, clip=clip, fp32_psnr_y_db=fp32_psnr, max_memory_mb=max_memory_mb)
    result.chosen = choose(rows, max_drop, max_memory_mb)
    fastest = sorted((r for r in rows if r.within_budget), key=lambda r: -r.fps)[:heap_variant_rows]
    twins = {id(r): dataclasses.replace(r, heap=HEAP_VARIANT, chosen=False) for r in fastest}
    if twins:
        progress(f"timing the {len(twins)} fastest again with heap={HEAP_VARIANT}")
        measure_speed(list(twins.values()), size=size, frames=timing_frames, repeat=repeat, warmup=warmup,
                      threads=threads, window=window, lookahead=lookahead, isolate=isolate, progress=progress)
        result.rows = rows = [v for r in rows for v in [r, twins.get(id(r))] if v is not None]  # each beside its row
        result.chosen = choose(rows, max_drop, max_memory_mb)
    return result


# -- profile --------------------------------------------------------------------------------------------

def profile_path(bundle_path) -> Path:
    """``NAME.vsr`` -> ``NAME.profile.json`` in the same directory."""
    p = Path(bundle_path)
    return p.with_name(p.name.removesuffix(".vsr") + ".profile.json")


def _is_profile(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("kind") == PROFILE_KIND
    except (OSError, ValueError, AttributeError):
        return False


def write_profile(result: TuneResult, path=None) -> Path:
    """Write the chosen configuration atomically; replaces only a previous tune profile."""
    if result.chosen is None:
        raise ConfigError("no configuration ran here (see the table's reasons); nothing to write")
    bundle_dir = Path(result.bundle)
    path = Path(path) if path else profile_path(bundle_dir)
    if path.exists() and not _is_profile(path):
        raise ConfigError(f"{path} exists and is not a vsrdeploy tune profile; move it away (tune replaces only "
                          "its own previous profile)")
    c = result.chosen
    run_bundle = Path(c.bundle)
    record = {
        "kind": PROFILE_KIND, "version": PROFILE_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "bundle": os.path.relpath(bundle_dir, path.parent),
        "bundle_manifest_sha256": sha256_file(bundle_dir / MANIFEST),
        "run_bundle": os.path.relpath(run_bundle, path.parent),
        "run_bundle_manifest_sha256": sha256_file(run_bundle / MANIFEST),
        "backend": c.backend, "precision": c.precision, "options": c.options, "heap": c.heap, "threads": result.threads,
        "window": result.window, "lookahead": result.lookahead,
        "max_drop_db": result.max_drop_db, "psnr_y_drop_db": c.psnr_y_drop_db, "fps": c.fps,
        "timed_lr_size": list(result.size), "clip": result.clip,
        "machine": {"cpu": cpu_description(), "openvino_cpu_capabilities": openvino_capabilities()},
        "table": [asdict(r) for r in result.rows],
    }
    text = json.dumps(json_safe(record), indent=1, allow_nan=False)  # strict JSON: unmeasured values are null
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    result.profile_path = str(path)
    return path


def json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


@dataclass
class RunSettings:
    """What ``run`` takes from a profile."""
    bundle: str
    backend: str
    options: dict
    threads: int | None
    window: int | None
    lookahead: int
    profile: str
    note: str = ""
    heap: str = DEFAULT_HEAP_POLICY


def load_profile(model, profile: str = "auto", dcn: str | None = None) -> RunSettings:
    """Settings from ``profile`` (a path, or ``auto``: the profile beside ``model``'s bundle; a checkpoint
    resolves to its cached decomposed-DCN bundle, the one ``tune`` measures)."""
    from ..runtimes.base import check_options, precision_options
    from ..export.cache import bundle_for
    if profile == "auto":
        model_path = Path(model)
        if not model_path.exists():
            raise InputError(f"not found: {model} (expected a checkpoint file or a .vsr bundle directory)")
        bundle_dir = model_path if model_path.is_dir() else bundle_for(model_path, "ort-cpu", dcn or "decomposed").path
        path = profile_path(bundle_dir)
        if not path.exists():
            raise ConfigError(f"no tuned profile beside {bundle_dir} ({path.name}); run `vsrdeploy tune {model} "
                              "--frames CLIP` first, or pick a backend with -b")
    else:
        path = Path(profile)
        if not path.is_file():
            raise InputError(f"profile not found: {path}")
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"{path} is not valid JSON ({e}); run `vsrdeploy tune` again") from None
    if not isinstance(record, dict) or record.get("kind") != PROFILE_KIND:
        raise ConfigError(f"{path} is not a vsrdeploy tune profile; run `vsrdeploy tune` to write one")
    if record.get("version") != PROFILE_VERSION:
        raise ConfigError(f"{path} has profile version {record.get('version')!r}; this vsrdeploy reads "
                          f"{PROFILE_VERSION}. Run `vsrdeploy tune` again")
    required = ("bundle", "run_bundle", "bundle_manifest_sha256", "run_bundle_manifest_sha256", "backend", "precision")
    damaged = [k for k in required if not isinstance(record.get(k), str)]
    if damaged:
        raise ConfigError(f"{path} is damaged ({', '.join(damaged)} missing or not text); run `vsrdeploy tune` again")
    base = path.parent
    for key in ("bundle", "run_bundle"):
        folder = safe_join(base, record[key])  # a profile names bundles beside it, never elsewhere
        manifest = folder / MANIFEST
        if not manifest.exists() or sha256_file(manifest) != record[f"{key}_manifest_sha256"]:
            raise ConfigError(f"{path} was tuned for a bundle that changed or is gone ({folder}); "
                              "run `vsrdeploy tune` again")
    if profile == "auto" and safe_join(base, record["bundle"]) != Path(bundle_dir).resolve():
        raise ConfigError(f"{path} belongs to {record['bundle']}, not {bundle_dir}; run `vsrdeploy tune` again")
    run_bundle = Bundle(safe_join(base, record["run_bundle"]))
    options = precision_options(record["backend"], record["precision"], run_bundle)
    extra = record.get("options") or {}  # absent in profiles written before 0.3.0
    try:
        if not isinstance(extra, dict):
            raise TypeError("options is not an object")
        check_options(record["backend"], extra)
    except TypeError as e:
        raise ConfigError(f"{path} is damaged ({e}); run `vsrdeploy tune` again") from None
    options.update(extra)
    heap = record.get("heap", DEFAULT_HEAP_POLICY)  # absent in profiles written before 0.3.14
    try:
        check_heap_policy(heap)
    except ConfigError as e:
        raise ConfigError(f"{path} is damaged ({e}); run `vsrdeploy tune` again") from None
    note = ""
    here = cpu_description()
    tuned_on = record.get("machine", {}).get("cpu", {})
    if tuned_on and (tuned_on.get("model"), tuned_on.get("flags")) != (here["model"], here["flags"]):
        note = f"profile {path.name} was tuned on {tuned_on.get('model')}, this is {here['model']}: re-run tune here"
    return RunSettings(bundle=str(run_bundle.path), backend=record["backend"], options=options,
                       threads=record.get("threads"), window=record.get("window"),
                       lookahead=int(record.get("lookahead", 0)), profile=str(path), note=note, heap=heap)


# -- table ----------------------------------------------------------------------------------------------

def format_tune(result: TuneResult) -> str:
    h, w = result.size
    width = max([28] + [len(r.label) for r in result.rows])
    lines = [f"tuned at LR {w}x{h}, {result.threads} threads, window {result.window}, lookahead {result.lookahead}; "
             f"budget: PSNR-Y drop <= {result.max_drop_db:g} dB vs FP32 ({result.fp32_psnr_y_db:.3f} dB on "
             f"{result.clip or 'the clip'})" + (f"; peak RSS <= {result.max_memory_mb:.0f} MB"
                                                 if result.max_memory_mb is not None else ""),
             f"  {'configuration':{width}} {'s/frame':>8} {'frames/s':>9} {'x FP32':>7} {'drop dB':>8} "
             f"{'vs FP32 dB':>10} {'peak MB':>8}  "]
    first = next((r for r in result.rows if r.precision == "fp32" and not math.isnan(r.fps)), None)
    base_fps = first.fps if first else math.nan
    for r in result.rows:
        mark = "*" if r.chosen else " "
        if r.status != "ok" or math.isnan(r.fps):
            lines.append(f"{mark} {r.label:{width}} {r.status}: {r.reason}")
            continue
        budget = "" if r.within_budget else ("  over memory budget" if r.over_memory else "  over budget")
        lines.append(f"{mark} {r.label:{width}} {r.s_per_frame:8.3f} {r.fps:9.2f} {r.fps / base_fps:7.2f} "
                     f"{r.psnr_y_drop_db:8.3f} {min(r.psnr_y_vs_fp32_db, 100.0):10.2f} {r.peak_rss_mb:8.0f}{budget}")
    if result.chosen:
        c = result.chosen
        lines.append(f"chosen (*): {c.label} on {Path(c.bundle).name}, {c.s_per_frame:.3f} s/frame, "
                     f"drop {c.psnr_y_drop_db:.3f} dB")
        plain = None  # the chosen heap twin's row with the default policy, when no --max-memory weighed it
        if c.heap != DEFAULT_HEAP_POLICY and result.max_memory_mb is None:
            twin_of = c.label.removesuffix(f" heap={c.heap}")
            plain = next((r for r in result.rows if r.label == twin_of and r.status == "ok"), None)
        if plain is not None:
            lines.append(f"note: heap={c.heap} made it {c.fps / plain.fps:.2f}x faster for "
                         f"{c.peak_rss_mb - plain.peak_rss_mb:+.0f} MB peak ({c.peak_rss_mb:.0f} MB); "
                         "--max-memory SIZE keeps rows above SIZE from being chosen")
    else:
        lines.append("nothing chosen: no configuration ran within the budget")
    lines.append(f"x FP32: frames/s over {first.label if first else 'the first FP32 row'}'s; "
                 "drop: PSNR-Y(FP32 vs GT) - PSNR-Y(row vs GT), whole clip")
    return "\n".join(lines)
