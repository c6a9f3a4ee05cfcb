"""Accuracy and latency of one or more bundles of one network (FP32, FP16, INT8, other DCN forms) across
runtimes and precisions, against one reference and, when given, the ground-truth HR clip.

The reference (``ReferenceSpec``) is the whole-clip PyTorch FP32 forward by default; ``stream`` streams
PyTorch FP32 with the targets' window/lookahead and ``BUNDLE:BACKEND`` streams a bundle on a backend, so
memory stays bounded by ``window + lookahead`` frames on long or large clips.

Timed runs write output frames to a scratch file as they come (like a real sink); metrics are computed
afterwards, so they do not inflate the timings.
"""
from __future__ import annotations

import itertools
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import BackendUnavailable, ConfigError, InputError, VSRDeployError
from .machine import machine_info
from .memory import PeakRSS

PRECISIONS = ("fp32", "fp16", "bf16", "int8", "int8-bf16", "int8-fp16")  # int8-*: an INT8 bundle, float ops at *
CROP_BORDER = 0  # upstream VSR benchmarks (REDS4, Vimeo-90K-T, Vid4 in BasicVSR) evaluate without cropping


@dataclass
class Target:
    backend: str
    precision: str = "fp32"
    bundle: object = None  # a Bundle; None: the bundle given to run_compare
    name: str = ""  # the bundle's short name in labels (empty when only one bundle is compared)

    @property
    def label(self) -> str:
        return f"{self.name + ':' if self.name else ''}{self.backend}/{self.precision}"


@dataclass
class ReferenceSpec:
    """What the targets are measured against: ``whole`` (PyTorch FP32 on the whole clip: exact, but memory
    grows with the clip), ``stream`` (PyTorch FP32 streamed with the targets' window and lookahead) or
    ``bundle`` on ``backend`` streamed the same way."""
    kind: str = "whole"  # whole | stream | bundle
    bundle: object = None
    backend: str = "torch"
    tile: object = None  # int or (h, w) LR pixels: the streamed reference also cuts frames into tiles

    @property
    def description(self) -> str:
        if self.kind == "whole":
            return "whole-clip PyTorch FP32"
        tiles = f", tiles {self.tile} LR px" if self.tile is not None else ""
        if self.kind == "stream":
            return f"PyTorch FP32 streamed (same window/lookahead as the targets{tiles})"
        return (f"{Path(self.bundle.path).name} on {self.backend}, streamed (same window/lookahead as the "
                f"targets{tiles})")


class _Tiled:
    """An Upscaler whose ``stream`` cuts frames into ``tile``s (a tiled reference keeps memory bounded by
    the tile, not the frame)."""

    def __init__(self, upscaler, tile):
        self._upscaler, self._tile = upscaler, tile
        self.scale = upscaler.scale

    def stream(self, frames, window=None, lookahead=0, **options):
        return self._upscaler.stream(frames, window=window, lookahead=lookahead, tile=self._tile, **options)


def parse_reference(spec: str, tile=None) -> ReferenceSpec:
    """``whole`` | ``stream`` | ``BUNDLE:BACKEND`` -> ReferenceSpec (the bundle opened and verified);
    ``tile``: tile size of a streamed reference."""
    if spec == "whole" and tile is not None:
        raise ConfigError("--reference-tile needs a streamed reference: --reference stream or BUNDLE:BACKEND")
    if spec in ("whole", "stream"):
        return ReferenceSpec(spec, tile=tile)
    path, sep, backend = spec.rpartition(":")
    if not sep or not path or not backend:
        raise ConfigError(f"--reference {spec!r}: write whole, stream or BUNDLE:BACKEND (e.g. model.vsr:ort-cpu)")
    from ..bundle import Bundle
    from ..runtimes.base import check_backend_names
    check_backend_names([backend])
    return ReferenceSpec("bundle", Bundle(path), backend, tile=tile)


def bundle_label(bundle) -> str:
    return Path(bundle.path).name.removesuffix(".vsr")


def check_same_network(bundles: list) -> None:
    """Bundles compared in one run must be forms of one network: same architecture, config and weights."""
    first = bundles[0]
    weights = first.manifest["files"].get(first.manifest["weights"])
    for b in bundles[1:]:
        if (b.arch, b.config) != (first.arch, first.config):
            raise ConfigError(f"{b.path} is {b.arch} {b.config} but {first.path} is {first.arch} {first.config}; "
                              "compare bundles of one network (its FP32, FP16, INT8 and DCN forms)")
        if b.manifest["files"].get(b.manifest["weights"]) != weights:
            raise ConfigError(f"{b.path} and {first.path} hold different weights; compare bundles exported or "
                              "derived from one checkpoint")


@dataclass
class TargetResult:
    backend: str
    precision: str
    status: str  # ok | skipped | failed
    reason: str = ""
    bundle: str = ""  # the bundle's short name when several bundles are compared
    window: int | None = None
    lookahead: int = 0
    load_s: float = math.nan
    warmup_frames: int = 0
    repeat: int = 0
    first_frame_s: float = math.nan
    first_frame_ms_runs: list[float] = field(default_factory=list)
    total_s: float = math.nan
    fps: float = math.nan
    fps_runs: list[float] = field(default_factory=list)
    fps_min: float = math.nan
    fps_max: float = math.nan
    fps_p5: float = math.nan
    fps_p95: float = math.nan
    frame_ms_p5: float = math.nan
    frame_ms_p50: float = math.nan
    frame_ms_p95: float = math.nan
    frame_ms_p99: float = math.nan
    peak_mem_mb: float = math.nan
    summary: dict = field(default_factory=dict)
    frames: list[dict] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.bundle + ':' if self.bundle else ''}{self.backend}/{self.precision}"


@dataclass
class CompareResult:
    model: str
    arch: str
    clip: str
    num_frames: int
    lr_size: tuple[int, int]
    out_size: tuple[int, int]
    window: int | None
    lookahead: int
    ground_truth: str | None
    crop_border: int
    reference: TargetResult
    bicubic: dict | None
    targets: list[TargetResult]
    sweep: list[dict] = field(default_factory=list)
    machine: dict = field(default_factory=dict)
    worst: dict = field(default_factory=dict, repr=False)  # arrays for the plots; not in report.json
    reference_description: str = "whole-clip PyTorch FP32"
    bundles: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def compared(self) -> list[TargetResult]:
        """Targets that streamed the whole clip and were measured (whether or not within tolerance)."""
        return [t for t in self.targets if not math.isnan(t.total_s)]

    @property
    def passed(self) -> bool:
        """No target failed, and at least one was actually compared (all skipped is no pass)."""
        return bool(self.compared) and all(t.status != "failed" for t in self.targets)

    def to_dict(self) -> dict:
        worst, self.worst = self.worst, {}
        try:
            d = asdict(self)
        finally:
            self.worst = worst
        d.pop("worst")
        d["worst_frame"] = worst.get("frame")
        d["passed"] = self.passed
        return d


def bundle_precisions(bundle_precision: str, precisions: list[str]) -> list[str]:
    """Which of ``precisions`` a bundle of ``bundle_precision`` runs at: an FP32 bundle each but ``int8-*`` (those
    need an INT8 bundle), a converted one (FP16, INT8) its own, an INT8 one also the ``int8-*`` ones (its float
    ops at that precision)."""
    if bundle_precision == "fp32":
        return [p for p in precisions if not p.startswith("int8-")]
    return [bundle_precision] + [p for p in precisions if p.startswith(bundle_precision + "-")]


def parse_targets(backends: list[str], precisions: list[str], bundles: list | None = None) -> list[Target]:
    """backends x precisions, per bundle when ``bundles`` has several, each at :func:`bundle_precisions`."""
    bad = [p for p in precisions if p not in PRECISIONS]
    if bad:
        raise ConfigError(f"unknown precision(s) {', '.join(bad)}; choose from {', '.join(PRECISIONS)}")
    if not backends:
        raise ConfigError("give at least one backend, e.g. --backends torch,ort-cpu,openvino-cpu")
    from ..runtimes.base import check_backend_names
    check_backend_names(backends)
    if not bundles or len(bundles) == 1:
        return [Target(b, p, bundles[0] if bundles else None) for b in backends for p in precisions]
    check_same_network(bundles)
    names = [bundle_label(b) for b in bundles]
    if len(set(names)) < len(names):  # same directory name in two places: fall back to the paths
        names = [str(b.path) for b in bundles]
    targets = []
    for bundle, name in zip(bundles, names):
        for backend in backends:
            for p in bundle_precisions(bundle.precision, precisions):
                if not any(t.bundle is bundle and t.backend == backend and t.precision == p for t in targets):
                    targets.append(Target(backend, p, bundle, name))
    return targets


class _ScratchClip:
    """Frames written to a raw file as they come, read back one by one (no growth in RSS)."""

    def __init__(self, directory: Path, name: str, shape: tuple[int, int, int]):
        self.path = directory / f"{name}.raw"
        self.shape = shape
        self.count = 0
        self._file = open(self.path, "wb")

    def write(self, frame: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(frame, dtype=np.float32).tobytes())
        self.count += 1

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()

    def __getitem__(self, i: int) -> np.ndarray:
        n = int(np.prod(self.shape))
        return np.fromfile(self.path, dtype=np.float32, count=n, offset=i * n * 4).reshape(self.shape)


def _frame_metrics(out: np.ndarray, ref: np.ndarray | None, gt: np.ndarray | None, crop: int,
                   stream_ref: np.ndarray | None = None) -> dict:
    from .metrics import psnr, ssim
    m: dict = {}
    if ref is not None:
        m["max_abs_error"] = float(np.abs(out - ref).max())
        m["psnr_ref"] = psnr(out, ref)
    if stream_ref is not None:
        m["max_abs_error_vs_torch_stream"] = float(np.abs(out - stream_ref).max())
    if gt is not None:
        clipped = np.clip(out, 0.0, 1.0)
        m["psnr_rgb"] = psnr(clipped, gt, crop_border=crop)
        m["psnr_y"] = psnr(clipped, gt, crop_border=crop, y_channel=True)
        m["ssim_rgb"] = ssim(clipped, gt, crop_border=crop)
        m["ssim_y"] = ssim(clipped, gt, crop_border=crop, y_channel=True)
    return m


PSNR_CAP = 100.0  # identical frames have infinite PSNR; means use this cap instead


def _summarise(frames: list[dict]) -> dict:
    summary = {}
    for key in frames[0] if frames else []:
        values = [f[key] for f in frames]
        if key.startswith("max_abs_error"):
            summary[key] = max(values)
            continue
        if key.startswith("psnr"):
            values = [min(v, PSNR_CAP) for v in values]
        summary[f"{key}_mean"] = float(np.mean(values))
        summary[f"{key}_min"] = min(values)
    return summary


def _evaluate(result: TargetResult, clip: _ScratchClip, ref: _ScratchClip | None, gt, crop: int,
              stream_ref: _ScratchClip | None = None) -> None:
    for i in range(clip.count):
        out = clip[i]
        if not np.isfinite(out).all():
            result.failures.append(f"frame {i} contains NaN or Inf")
            continue
        result.frames.append({"frame": i, **_frame_metrics(out, ref[i] if ref is not None else None,
                                                            gt[i] if gt is not None else None, crop,
                                                            stream_ref[i] if stream_ref is not None else None)})
    result.summary = _summarise([{k: v for k, v in f.items() if k != "frame"} for f in result.frames])


def _check_tolerances(result: TargetResult, max_error: float | None, min_psnr: float | None) -> None:
    s = result.summary
    if max_error is not None and s.get("max_abs_error", 0.0) > max_error:
        result.failures.append(f"max abs error {s['max_abs_error']:.3g} > --max-error {max_error:g}")
    if min_psnr is not None and s.get("psnr_ref_min", math.inf) < min_psnr:
        worst = min(result.frames, key=lambda f: f["psnr_ref"])
        result.failures.append(f"PSNR vs reference {worst['psnr_ref']:.2f} dB at frame {worst['frame']} "
                               f"< --min-psnr {min_psnr:g}")
    if result.failures:
        result.status = "failed"
        result.reason = "; ".join(result.failures)


class _Ticking:
    """A sink that passes frames on and reports each one (progress per target and per frame)."""

    def __init__(self, sink, tick, label: str, done: int, total: int):
        self.sink, self.tick, self.label, self.done, self.total = sink, tick, label, done, total

    def write(self, frame) -> None:
        self.sink.write(frame)
        self.done += 1
        self.tick(self.label, self.done, self.total)


def _no_tick(label: str, done: int, total: int) -> None:
    pass


def _run_target(bundle, target: Target, lr, window, lookahead, scratch: Path, name: str, reference: bool = False,
                warmup: int = 0, repeat: int = 1, tick=_no_tick, label: str | None = None, tile=None):
    """Create the backend, warm it up on ``warmup`` frames, then stream the clip ``repeat`` times (each run
    writing its frames to the scratch file, like a real sink); returns (TargetResult, scratch clip or None).

    ``reference``: PyTorch FP32 on the bundle's source weights, whatever the bundle's precision.
    ``tick(label, frames done, frames in all)`` is called after every output frame."""
    from .timing import summarize_runs, timed_stream, warm_up
    from ..runtimes.base import precision_options
    from ..runtimes.engine import Upscaler
    bundle = target.bundle or bundle
    label = label or target.label
    result = TargetResult(target.backend, target.precision, "ok", window=window, lookahead=lookahead,
                          warmup_frames=min(warmup, len(lr)), bundle=target.name)
    clip = None
    total = max(1, repeat) * len(lr)
    tick(label, 0, total)
    try:
        options = {"fp32_weights": True} if reference else precision_options(target.backend, target.precision,
                                                                             bundle)
        with PeakRSS() as mem:
            t0 = time.perf_counter()
            upscaler = Upscaler.create(bundle, target.backend, **options)
            if tile is not None:
                upscaler = _Tiled(upscaler, tile)
            result.load_s = time.perf_counter() - t0
            s = upscaler.scale
            if warmup:
                warm_up(upscaler, lr[:warmup], window, lookahead)
            runs = []
            for run in range(max(1, repeat)):  # every run rewrites the same scratch file: same cost each time
                clip = _ScratchClip(scratch, name, (3, lr.shape[2] * s, lr.shape[3] * s))
                runs.append(timed_stream(upscaler, lr, window, lookahead,
                                         _Ticking(clip, tick, label, run * len(lr), total)))
                clip.close()
            for k, v in summarize_runs(runs).items():
                setattr(result, k, v)
        result.peak_mem_mb = mem.increase_mb
        return result, clip
    except Exception as e:  # noqa: BLE001 -- one target's error is its row's outcome; the run goes on
        tick(label, total, total)
        if clip is not None:
            clip.close()
        if isinstance(e, (BackendUnavailable, ImportError)):  # cannot run here: not a failure of the target
            result.status, result.reason = "skipped", one_line(e)
        else:
            result.status, result.reason = "failed", one_line(e)
            result.failures.append(result.reason)
        return result, None


def one_line(error: BaseException) -> str:
    """An exception as one line: vsrdeploy's own errors by their message, others with their type."""
    text = " ".join(str(error).split()) or "(no message)"
    return text if isinstance(error, (VSRDeployError, ImportError)) else f"{type(error).__name__}: {text}"


def clip_warning(num_frames: int, window: int | None, lookahead: int, sweep: list[int] | None = None) -> str | None:
    """Why streaming cannot show its cost on this clip (it sees the whole clip at once), or None."""
    if window is None:
        return None
    longest = max([lookahead, *(sweep or [])])
    if num_frames > window + longest:
        return None
    return (f"the clip has {num_frames} frames, not more than window {window} + lookahead {longest}: streaming "
            "sees the whole clip, so streamed outputs equal the whole-clip output"
            + (" and the lookahead sweep is a flat line" if sweep else "")
            + f"; use a clip longer than {window + longest} frames (--frames) or a smaller --window")


def run_compare(bundle, lr: np.ndarray, targets: list[Target], *, gt: np.ndarray | None = None,
                ground_truth: str | None = None, window: int | None = 16, lookahead: int = 8,
                max_error: float | None = None, min_psnr: float | None = None,
                sweep_lookahead: list[int] | None = None, crop_border: int = CROP_BORDER, clip_name: str = "",
                warmup: int = 0, repeat: int = 1, reference: ReferenceSpec | None = None,
                progress: Callable[[str], None] = lambda msg: None,
                tick: Callable[[str, int, int], None] = _no_tick) -> CompareResult:
    """Compare ``targets`` on the LR clip ``lr`` (T, 3, h, w); ``gt`` (T, 3, H, W) is optional.

    ``bundle`` is the network (targets without their own bundle run it; the PyTorch references use its
    weights). Each target is warmed up on ``warmup`` frames, then timed over ``repeat`` runs of the clip
    (the reference and the lookahead sweep run once). ``progress(message)`` says what starts;
    ``tick(label, done, total)`` follows each target frame by frame."""
    if repeat < 1 or warmup < 0:
        raise ConfigError(f"repeat must be >= 1 and warmup >= 0 (got {repeat}, {warmup})")
    reference = reference or ReferenceSpec()
    if reference.kind != "whole" and window is None:
        raise ConfigError(f"--reference {reference.kind} streams with the targets' window; give --window > 0 "
                          "or use --reference whole")
    warnings = [w for w in [clip_warning(len(lr), window, lookahead, sweep_lookahead)] if w]
    for w in warnings:
        progress(f"warning: {w}")
    bundles = []
    for t in targets:
        b = t.bundle or bundle
        if all(b is not x for x in bundles):
            bundles.append(b)
    with tempfile.TemporaryDirectory(prefix="vsrdeploy-compare-") as tmp:
        scratch = Path(tmp)
        progress(f"reference: {reference.description}")
        if reference.kind == "bundle":
            ref_target = Target(reference.backend, reference.bundle.precision, reference.bundle)
            reference_result, ref_clip = _run_target(bundle, ref_target, lr, window, lookahead, scratch,
                                                     "reference", tick=tick, label="reference", tile=reference.tile)
        else:
            reference_result, ref_clip = _run_target(
                bundle, Target("torch", "fp32"), lr, None if reference.kind == "whole" else window,
                0 if reference.kind == "whole" else lookahead, scratch, "reference", reference=True, tick=tick,
                label="reference", tile=reference.tile)
        if ref_clip is None:
            raise VSRDeployError(f"the reference ({reference.description}) cannot run: {reference_result.reason}")
        out_size = ref_clip.shape[1:]
        if gt is not None:
            gt = _match_gt(gt, out_size)
        _evaluate(reference_result, ref_clip, None, gt, crop_border)
        results, clips = [], []
        for i, target in enumerate(targets):
            progress(f"{target.label}: {warmup} warm-up frames, then {repeat} x {len(lr)} frames")
            result, clip = _run_target(bundle, target, lr, window, lookahead, scratch, f"t{i}", warmup=warmup,
                                       repeat=repeat, tick=tick)
            results.append(result)
            clips.append(clip)
        stream_ref = None
        if reference.kind == "whole" and window is not None:
            # PyTorch FP32 streamed with the same window/lookahead: separates runtime error from streaming's
            stream_ref = next((c for t, c in zip(targets, clips)
                               if (t.backend, t.precision) == ("torch", "fp32") and (t.bundle or bundle) is bundle
                               and c), None)
            if stream_ref is None:
                progress("torch/fp32 streaming (to separate runtime error from streaming error)")
                stream_ref = _run_target(bundle, Target("torch", "fp32"), lr, window, lookahead, scratch, "stream",
                                         reference=True, tick=tick, label="torch/fp32 stream")[1]
        for result, clip in zip(results, clips):
            if clip is not None:
                _evaluate(result, clip, ref_clip, gt, crop_border, stream_ref)
                _check_tolerances(result, max_error, min_psnr)
        sweep = []
        if sweep_lookahead:
            sweep = _sweep(bundle, lr, targets, clips, window, sweep_lookahead, ref_clip, gt, crop_border,
                           scratch, progress, tick)
        worst = _worst_frames(results, clips, ref_clip, gt, lr, crop_border)
    return CompareResult(
        model=", ".join(str(b.path) for b in bundles), arch=bundle.arch, clip=clip_name, num_frames=len(lr),
        lr_size=tuple(lr.shape[2:]), out_size=tuple(out_size), window=window, lookahead=lookahead,
        ground_truth=ground_truth, crop_border=crop_border, reference=reference_result, machine=machine_info(),
        bicubic=_bicubic_baseline(lr, gt, crop_border) if gt is not None else None, targets=results, sweep=sweep,
        reference_description=reference.description, bundles=[str(b.path) for b in bundles], warnings=warnings,
        worst=worst)


def _worst_frames(results, clips, ref_clip, gt, lr, crop) -> dict:
    """For the plots: the frame where targets differ most from the reference, with each target's output, the
    reference, the bicubic upscale and the ground truth on that frame (small: one frame per target)."""
    from .degrade import bicubic_resize
    ran = [(r, c) for r, c in zip(results, clips) if c is not None and r.frames]
    if not ran:
        return {}
    by_frame: dict[int, float] = {}
    for r, _ in ran:
        for f in r.frames:
            by_frame[f["frame"]] = max(by_frame.get(f["frame"], 0.0), f.get("max_abs_error", 0.0))
    frame = max(by_frame, key=by_frame.get)
    ref = ref_clip[frame]
    bicubic = bicubic_resize(lr[frame], ref.shape[1] / lr.shape[2])[:, :ref.shape[1], :ref.shape[2]]
    return {"frame": frame, "reference": ref, "bicubic": np.clip(bicubic, 0, 1),
            "ground_truth": gt[frame] if gt is not None else None,
            "targets": {r.label: c[frame] for r, c in ran}}


def _match_gt(gt: np.ndarray, out_size) -> np.ndarray:
    h, w = out_size
    if gt.shape[2] > h or gt.shape[3] > w:
        raise InputError(f"ground truth frames are {gt.shape[3]}x{gt.shape[2]} but the network outputs {w}x{h}; "
                         "give --gt frames at the network's output size")
    return gt


def _bicubic_baseline(lr: np.ndarray, gt: np.ndarray, crop: int) -> dict:
    from .degrade import bicubic_resize
    frames = [_frame_metrics(bicubic_resize(lr[i], 4.0)[:, :gt.shape[2], :gt.shape[3]], None, gt[i], crop)
              for i in range(len(lr))]
    return {**_summarise(frames), "psnr_y_per_frame": [f["psnr_y"] for f in frames]}


def _sweep(bundle, lr, targets, clips, window, lookaheads, ref_clip, gt, crop, scratch, progress,
           tick=_no_tick) -> list[dict]:
    """PSNR vs lookahead on the first target that ran: the latency/quality trade-off of streaming."""
    ran = [t for t, c in zip(targets, clips) if c is not None]
    if not ran:
        return []
    target = ran[0]
    rows = []
    for n, la in enumerate(lookaheads):
        progress(f"sweep: {target.label} lookahead {la}")
        result, clip = _run_target(bundle, target, lr, window, la, scratch, f"sweep{n}", tick=tick,
                                   label=f"sweep {target.label} lookahead {la}")
        if clip is None:
            break
        _evaluate(result, clip, ref_clip, gt, crop)
        rows.append({"target": target.label, "window": window, "lookahead": la, "fps": result.fps,
                     "first_frame_s": result.first_frame_s, **result.summary})
    return rows


# -- inputs -------------------------------------------------------------------------------------------

def read_clip(spec: str, max_frames: int | None = None, notice=None, skip: int = 0) -> tuple[np.ndarray, str]:
    """A whole clip (T, 3, H, W) float32 from any frame source (``max_frames`` frames after ``skip``)."""
    from ..io import open_source
    if max_frames is not None and max_frames < 1:
        raise ConfigError(f"the frame count must be at least 1, got {max_frames}")
    if skip < 0:
        raise ConfigError(f"--skip must be 0 or more, got {skip}")
    with open_source(spec, notice=notice) as src:
        frames = list(itertools.islice(src, skip, None if max_frames is None else skip + max_frames))
        if not frames:
            if skip:
                raise InputError(f"{spec} has no frames after skipping {skip}; lower --skip")
            raise InputError(f"{spec} has no readable frames; check that it is a video or a folder of images")
        description = src.info.description + (f", frames {skip}-{skip + len(frames) - 1}" if skip else "")
        return np.stack(frames), description


def prepare_clips(input_spec: str, gt_spec: str | None, degrade_kind: str | None, max_frames: int | None,
                  notice=None, skip: int = 0) -> tuple[np.ndarray, np.ndarray | None, str | None, str]:
    """(lr, gt, ground-truth description, clip description) from the compare command's options."""
    if gt_spec and degrade_kind:
        raise ConfigError("give either --gt HR_CLIP or --degrade bi|bd, not both")
    clip, description = read_clip(input_spec, max_frames, notice, skip)
    if degrade_kind:
        from .degrade import degrade
        return degrade(clip, degrade_kind), clip, f"{input_spec} (LR made by --degrade {degrade_kind})", description
    if gt_spec:
        gt, _ = read_clip(gt_spec, len(clip), notice, skip)
        if len(gt) < len(clip):
            raise InputError(f"--gt has {len(gt)} frames but --input has {len(clip)}; give matching clips")
        return clip, gt, gt_spec, description
    return clip, None, None, description
