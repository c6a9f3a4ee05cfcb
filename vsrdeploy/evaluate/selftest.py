"""``vsrdeploy selftest``: every path this machine supports, checked once, in a report to paste into a bug.

Not a second test suite: it runs the shipped models through the code paths users run (``compare``'s
``run_compare``, ``bench``'s ``run_bench``, ``build_engines``) and the checks the tests make
(``cell_parity`` at ``PARITY_TOLERANCE``, the CUDA DCN kernel's ``kernel_error``). Every path it cannot
run here is a row that says why ("not available: ..."), and GPU paths run only with ``--gpu``.

Sections:
- backend: each registered backend loads the shipped models' bundles and matches ONNX Runtime CPU per cell;
- stream: the bundled clip streamed by every backend that loaded, against the whole-clip PyTorch reference;
- precision: FP16 and INT8 (CPU form) bundles of the shipped BasicVSR on the CPU runtimes: PSNR-Y drop;
- tensorrt: engines in FP32 / FP16 / INT8 for both DCN forms (native, plugin): build time, per-cell parity,
  PSNR-Y drop on the bundled clip, ms/frame at 180x320 and 270x480 (LR);
- cuda-dcn: vsrdeploy's CUDA DCN kernel against the PyTorch DCN (float32, float16);
- cuda-graphs: the TensorRT backend with CUDA graphs off and on: ms/frame and identical outputs.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import BackendUnavailable, OutputError

GPU_BACKENDS = ("torch-cuda", "ort-cuda", "ort-trt", "openvino-gpu", "tensorrt")
#: PSNR-Y drops the tests allow for the shipped BasicVSR on real frames (tests/test_precision.py)
PSNR_DROP_TOLERANCE = {"fp16": 0.1, "int8": 0.3}
TRT_TIMING_SIZES = ((180, 320), (270, 480))
PARITY_SIZE = (64, 64)
TRT_MAX_BATCH = 8  # the streaming engine batches stateless cells 8 frames at a time
CLIP_FRAMES = 10


@dataclass
class Check:
    section: str
    name: str
    status: str  # ok | failed | not available | not run
    detail: str = ""
    seconds: float = math.nan
    values: dict = field(default_factory=dict)


class _Skip(Exception):
    """A path that cannot or need not run here; ``status`` says which."""

    def __init__(self, status: str, reason: str):
        super().__init__(reason)
        self.status = status


class SelfTest:
    def __init__(self, gpu: bool = False, workdir: Path | None = None, echo: Callable[[str], None] = lambda m: None,
                 models: tuple[str, ...] | None = None):
        from ..demo import SHIPPED_MODELS
        self.gpu = gpu
        self.models = tuple(models or SHIPPED_MODELS)
        self.echo = echo
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="vsrdeploy-selftest-"))
        self.checks: list[Check] = []
        self._bundles: dict[tuple, object] = {}
        self._clip = None
        self._psnr: dict[tuple, dict] = {}

    # -- plumbing ---------------------------------------------------------------------------------------

    def check(self, section: str, name: str, fn: Callable[[], tuple[bool, str, dict]]) -> Check:
        """Run one check; any exception becomes its row (not available / failed) and the run goes on."""
        from .compare import one_line
        self.echo(f"[{section}] {name}")
        t0 = time.perf_counter()
        try:
            ok, detail, values = fn()
            row = Check(section, name, "ok" if ok else "failed", detail, values=values)
        except _Skip as e:
            row = Check(section, name, e.status, str(e))
        except (BackendUnavailable, ImportError) as e:
            row = Check(section, name, "not available", one_line(e))
        except Exception as e:  # noqa: BLE001 -- a selftest reports every error and carries on
            row = Check(section, name, "failed", one_line(e))
        row.seconds = time.perf_counter() - t0
        self.checks.append(row)
        return row

    def bundle(self, model: str, dcn: str, precision: str = "fp32"):
        """The shipped ``model`` exported with ``dcn`` (and converted / calibrated to ``precision``), cached."""
        from ..bundle import Bundle
        key = (model, dcn, precision)
        if key not in self._bundles:
            if precision == "fp32":
                from ..demo import shipped_model
                from ..export import export_onnx
                path = export_onnx(str(shipped_model(model)), self.workdir / f"{model}-{dcn}.vsr", dcn=dcn)
            elif precision == "fp16":
                from ..calib.fp16 import convert_bundle_fp16
                path = convert_bundle_fp16(self.bundle(model, dcn), self.workdir / f"{model}-{dcn}-fp16.vsr")
            else:  # "int8-cpu" / "int8-tensorrt"
                from ..calib.int8 import calibrate_bundle
                target = precision.split("-")[1]
                lr, _ = self.clip()
                path = calibrate_bundle(self.bundle(model, dcn), lr[:6], self.workdir / f"{model}-{dcn}-{precision}.vsr",
                                        target=target, source="selftest: bundled clip, frames 0-5", progress=False)
            self._bundles[key] = Bundle(path)
        return self._bundles[key]

    def clip(self):
        """(LR, HR) of the bundled clip: CLIP_FRAMES frames, bicubic x4 down (LR 80x60)."""
        if self._clip is None:
            from .compare import prepare_clips
            from ..demo import bundled_clip
            lr, hr, _, _ = prepare_clips(str(bundled_clip()), None, "bi", CLIP_FRAMES)
            self._clip = (lr, hr)
        return self._clip

    def gate(self, backend: str) -> None:
        """Raise _Skip unless ``backend`` can run here (and, for GPU backends, --gpu was given)."""
        from ..runtimes.base import get_backend_class
        reason = get_backend_class(backend).unavailable_reason()
        if reason:
            raise _Skip("not available", reason)
        if backend in GPU_BACKENDS and not self.gpu:
            raise _Skip("not run", "a GPU path: pass --gpu to run it")

    # -- sections ---------------------------------------------------------------------------------------

    def run(self) -> list[Check]:
        from ..runtimes.base import list_backends
        backends = [b for b in list_backends() if b in GPU_BACKENDS or not b.startswith("test-")]
        loaded = self.backend_section([b for b in backends if b != "tensorrt"])
        self.stream_section(loaded)
        self.precision_section()
        self.tensorrt_section()
        self.cuda_dcn_section()
        self.cuda_graphs_section()
        return self.checks

    def backend_section(self, backends: list[str]) -> list[str]:
        from .cell_parity import PARITY_TOLERANCE, cell_parity
        from ..runtimes.base import create_backend, get_backend_class
        loaded = []
        for backend in backends:
            for model in self.models:
                def run(backend=backend, model=model):
                    self.gate(backend)
                    b = self.bundle(model, get_backend_class(backend).preferred_dcn)
                    results = cell_parity(b, create_backend(backend, b), *PARITY_SIZE)
                    worst = max(results, key=lambda r: r.error)
                    tol = PARITY_TOLERANCE["fp32"]
                    if backend == "ort-cpu":
                        return True, f"loads; it is the reference of the per-cell checks ({len(results)} cells)", {}
                    return (worst.error <= tol,
                            f"{len(results)} cells at {PARITY_SIZE[1]}x{PARITY_SIZE[0]}; worst {worst.cell}.{worst.worst_output} "
                            f"error {worst.error:.2e} (tolerance {tol:g}, vs ort-cpu)",
                            {"dcn": b.dcn, "cells": {r.cell: r.error for r in results}, "tolerance": tol})
                row = self.check("backend", f"{backend} / {model}", run)
                if row.status == "ok" and backend not in loaded:
                    loaded.append(backend)
        return loaded

    def stream_section(self, backends: list[str]) -> None:
        from .cell_parity import PARITY_TOLERANCE
        from .compare import Target, run_compare

        def run():
            lr, hr = self.clip()
            if not backends:
                raise _Skip("not run", "no backend loaded")
            result = run_compare(self.bundle("basicvsr", "decomposed"), lr, [Target(b) for b in backends], gt=hr,
                                 ground_truth="bundled clip", window=4, lookahead=2, clip_name="bundled clip",
                                 progress=self.echo)
            rows = {}
            for t in result.targets:
                err = t.summary.get("max_abs_error_vs_torch_stream", math.nan)
                rows[t.label] = {"status": t.status, "reason": t.reason, "max_error_vs_torch_stream": err,
                                 "psnr_y_mean": t.summary.get("psnr_y_mean"), "fps": t.fps,
                                 "first_frame_s": t.first_frame_s}
            bad = [k for k, v in rows.items() if v["status"] != "ok" or not v["max_error_vs_torch_stream"] <= 1e-3]
            detail = "; ".join(f"{k}: {v['max_error_vs_torch_stream']:.1e} vs torch streamed, "
                               f"PSNR-Y {v['psnr_y_mean']:.2f} dB" if v["status"] == "ok" else f"{k}: {v['reason']}"
                               for k, v in rows.items())
            return not bad, f"{len(lr)} frames, window 4, lookahead 2 (tolerance 1e-3 end to end; per cell " \
                            f"{PARITY_TOLERANCE['fp32']:g}): {detail}", {"targets": rows}
        self.check("stream", "bundled clip, BasicVSR, every backend that loaded", run)

    def _psnr_y(self, bundle, backend: str, precision: str = "fp32", together: tuple[str, ...] = ()) -> float:
        """Mean PSNR-Y on the bundled clip (whole clip at once) via ``run_compare``; ``together``: backends
        measured in the same run (one reference forward for all), cached for later calls."""
        from .compare import Target, run_compare
        key = (str(bundle.path), precision)
        if backend not in self._psnr.get(key, {}):
            lr, hr = self.clip()
            names = list(dict.fromkeys([backend, *together]))
            result = run_compare(bundle, lr, [Target(b, precision) for b in names], gt=hr, window=None, lookahead=0)
            self._psnr.setdefault(key, {}).update({t.backend: t for t in result.targets})
        t = self._psnr[key][backend]
        if t.status != "ok":
            raise (BackendUnavailable if t.status == "skipped" else RuntimeError)(t.reason)
        return t.summary["psnr_y_mean"]

    def precision_section(self) -> None:
        cpu = ("ort-cpu", "openvino-cpu")
        for backend in cpu:
            for precision in ("fp16", "int8-cpu"):
                def run(backend=backend, precision=precision):
                    self.gate(backend)
                    base = self._psnr_y(self.bundle("basicvsr", "decomposed"), backend, together=cpu)
                    reduced = self.bundle("basicvsr", "decomposed", precision)
                    value = self._psnr_y(reduced, backend, reduced.precision, together=cpu)
                    tol = PSNR_DROP_TOLERANCE[reduced.precision]
                    return (base - value <= tol,
                            f"PSNR-Y {value:.3f} dB vs FP32 {base:.3f} dB: drop {base - value:+.3f} dB (tolerance {tol} dB)",
                            {"psnr_y": value, "psnr_y_fp32": base, "drop_db": base - value, "tolerance_db": tol})
                self.check("precision", f"{backend} / basicvsr {precision}", run)

    def _trt_gate(self, dcn: str) -> None:
        self.gate("tensorrt")
        if dcn == "plugin":
            from ..export.tensorrt import PLUGIN_ENV, PLUGIN_LIBRARY, find_plugin
            if find_plugin() is None:
                raise _Skip("not available", f"the DCN plugin library {PLUGIN_LIBRARY} is not built: build it with "
                                             f"CMake (README, 'Deploying to TensorRT') and set ${PLUGIN_ENV}")

    def _trt_bundle(self, dcn: str, precision: str):
        return self.bundle("basicvsr_pp", dcn, "int8-tensorrt" if precision == "int8" else "fp32")

    def tensorrt_section(self) -> None:
        from .bench import run_bench
        from .cell_parity import PARITY_TOLERANCE, cell_parity
        from ..runtimes.base import create_backend
        fp32_psnr: dict[str, float] = {}
        for dcn in ("native", "plugin"):
            for precision in ("fp32", "fp16", "int8"):
                def run(dcn=dcn, precision=precision):
                    self._trt_gate(dcn)
                    if dcn == "plugin" and precision == "int8":
                        raise _Skip("not available", "INT8 calibration records cell inputs on ONNX Runtime, which "
                                                     "cannot run the plugin node: INT8 uses the native DCN form")
                    from ..export.tensorrt import build_engines, make_profile
                    b = self._trt_bundle(dcn, precision)
                    profile = make_profile(b, None, TRT_TIMING_SIZES[0], TRT_TIMING_SIZES[-1], max_batch=TRT_MAX_BATCH)
                    t0 = time.perf_counter()
                    records = build_engines(b, precision, profile, progress=lambda c: self.echo(f"  engine {c}"))
                    build_s = time.perf_counter() - t0
                    backend = create_backend("tensorrt", b, precision=precision)
                    reference = self._trt_bundle("native", precision) if dcn == "plugin" else None
                    parity = cell_parity(b, backend, *PARITY_SIZE, reference=reference)
                    worst = max(parity, key=lambda r: r.error)
                    tol = PARITY_TOLERANCE[precision]
                    psnr = self._psnr_y(b, "tensorrt", precision)
                    if precision == "fp32":
                        fp32_psnr[dcn] = psnr
                    drop = fp32_psnr[dcn] - psnr if dcn in fp32_psnr else math.nan
                    ms = {}
                    for h, w in TRT_TIMING_SIZES:
                        r = run_bench(str(b.path), ["tensorrt"], frames=20, size=(h, w), warmup=3, repeat=3,
                                      options={"precision": precision}, baseline=False)[0]
                        ms[f"{h}x{w}"] = 1000 / r.fps if r.status == "ok" else r.reason
                    ok = worst.error <= tol and (precision == "fp32" or not drop > PSNR_DROP_TOLERANCE[precision]) \
                        and all(isinstance(v, float) for v in ms.values())  # a timing that failed fails the row
                    return ok, (f"built {sum(r.built for r in records)} engines in {build_s:.1f} s; worst cell "
                                f"{worst.cell} error {worst.error:.2e} (tolerance {tol:g}); PSNR-Y {psnr:.3f} dB"
                                + (f" (drop {drop:+.3f} dB)" if precision != "fp32" else "")
                                + "; ms/frame " + ", ".join(f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}"
                                                           for k, v in ms.items())), \
                        {"build_s": build_s, "cells": {r.cell: r.error for r in parity}, "psnr_y": psnr,
                         "psnr_drop_db": drop, "ms_per_frame": ms}
                self.check("tensorrt", f"basicvsr_pp dcn={dcn} {precision}", run)

    def cuda_dcn_section(self) -> None:
        import torch
        for dtype in (torch.float32, torch.float16):
            def run(dtype=dtype):
                if not torch.cuda.is_available():
                    raise _Skip("not available", "no CUDA GPU visible to PyTorch (or a CPU-only PyTorch build)")
                if not self.gpu:
                    raise _Skip("not run", "a GPU path: pass --gpu to run it")
                from ..models.dcn_cuda import KERNEL_TOLERANCE, kernel_error
                name = str(dtype).removeprefix("torch.")
                err, tol = kernel_error(dtype), KERNEL_TOLERANCE[name]
                return err < tol, f"relative error {err:.2e} vs float64 PyTorch DCN (tolerance {tol:g})", \
                    {"relative_error": err, "tolerance": tol}
            self.check("cuda-dcn", f"CUDA DCN kernel {str(dtype).removeprefix('torch.')}", run)

    def cuda_graphs_section(self) -> None:
        def run():
            self._trt_gate("native")
            from .bench import run_bench
            from ..export.tensorrt import build_engines, make_profile
            from ..runtimes.engine import Upscaler
            b = self._trt_bundle("native", "fp32")
            build_engines(b, "fp32", make_profile(b, None, TRT_TIMING_SIZES[0], TRT_TIMING_SIZES[-1], max_batch=TRT_MAX_BATCH))
            lr, _ = self.clip()
            outs = [np.stack(list(Upscaler.create(b, "tensorrt", cuda_graphs=g).stream(lr[:6], window=3, lookahead=1)))
                    for g in (False, True)]
            diff = float(np.abs(outs[0] - outs[1]).max())
            h, w = TRT_TIMING_SIZES[0]
            runs = {g: run_bench(str(b.path), ["tensorrt"], frames=20, size=(h, w), options={"cuda_graphs": g},
                                 baseline=False)[0] for g in (False, True)}
            ms = {("on" if g else "off"): 1000 / r.fps if r.status == "ok" else math.nan for g, r in runs.items()}
            timed = all(r.status == "ok" for r in runs.values())
            detail = f"max difference {diff:.1e}; ms/frame at {h}x{w}: off {ms['off']:.2f}, on {ms['on']:.2f}"
            if not timed:
                detail += "; timing failed: " + "; ".join(r.reason for r in runs.values() if r.status != "ok")
            return diff <= 1e-5 and timed, detail, {"max_difference": diff, "ms_per_frame": ms}
        self.check("cuda-graphs", "TensorRT fp32 with CUDA graphs off / on", run)


# -- report ---------------------------------------------------------------------------------------------

def run_selftest(gpu: bool = False, echo: Callable[[str], None] = lambda m: None) -> dict:
    """Run every check; the report as a dict (machine, options, checks, counts, passed)."""
    with tempfile.TemporaryDirectory(prefix="vsrdeploy-selftest-") as tmp:
        checks = SelfTest(gpu=gpu, workdir=Path(tmp), echo=echo).run()
    return make_report(checks, gpu)


def make_report(checks: list[Check], gpu: bool) -> dict:
    from .machine import machine_info
    counts = {s: sum(c.status == s for c in checks) for s in ("ok", "failed", "not available", "not run")}
    return {"machine": machine_info(), "options": {"gpu": gpu}, "checks": [asdict(c) for c in checks],
            "counts": counts, "passed": counts["failed"] == 0 and counts["ok"] > 0}


def format_report(report: dict) -> str:
    """Markdown: the machine, then one table of every check."""
    from .machine import describe
    m = report["machine"]
    lines = ["# vsrdeploy selftest", "",
             f"- machine: {describe(m)}",
             f"- python {m['python']}, {m['os']}; threads {json.dumps(m['threads'])}",
             f"- GPU paths: {'run (--gpu)' if report['options']['gpu'] else 'not run (pass --gpu)'}",
             f"- result: {'PASS' if report['passed'] else 'FAIL'} "
             f"({', '.join(f'{n} {k}' for k, n in report['counts'].items())})", "",
             "| section | check | status | detail | s |", "|---|---|---|---|---|"]
    for c in report["checks"]:
        detail = c["detail"].replace("|", "/")
        lines.append(f"| {c['section']} | {c['name']} | {c['status']} | {detail} | {c['seconds']:.1f} |")
    return "\n".join(lines) + "\n"


def write_report(report: dict, directory) -> list[Path]:
    """report.md and report.json into ``directory`` (created), each written whole or not at all. Refuses a
    directory that holds a report.md / report.json from something other than selftest."""
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise OutputError(f"--report {directory} is a file; give a directory")
    directory.mkdir(parents=True, exist_ok=True)
    existing = directory / "report.json"
    if existing.exists():
        try:
            ours = "checks" in json.loads(existing.read_text()) and \
                (directory / "report.md").read_text().startswith("# vsrdeploy selftest")
        except (OSError, ValueError):
            ours = False
        if not ours:
            raise OutputError(f"{directory} already holds a report.json that is not a selftest report; "
                              "give another --report directory")
    out = []
    for name, text in (("report.json", json.dumps(report, indent=1, default=str)), ("report.md", format_report(report))):
        path = directory / name
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
        out.append(path)
    return out
