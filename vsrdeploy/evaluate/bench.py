"""Throughput and memory of one bundle on chosen backends, against the whole-clip PyTorch forward
(``upstream_forward``: upstream's computation at upstream's cost).

Each configuration runs in a fresh process (so its peak memory is its own), on a synthetic clip with
smooth content and small motion; warm-up first, then ``repeat`` timed runs: median frames/s with its
spread, per-frame latency percentiles and first-frame latency (``vsrdeploy.evaluate.timing``).

With ``profile=True`` each backend row also measures the FP32 GEMM peak in its own process on its threads
(``gemm_peak``; before and after its timed runs, the higher of the two counts) and times every cell call
of its timed runs (``cell_profile``): per-cell share of the stream, FLOPs, GFLOP/s and fraction of that
peak, in ``BenchResult.profile``. The whole-clip baseline row is not profiled.
"""
from __future__ import annotations

import concurrent.futures
import multiprocessing
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from ..models.heap import DEFAULT_HEAP_POLICY
from .memory import peak_rss_mb

BASELINE = "whole-clip torch"


@dataclass
class BenchResult:
    name: str
    status: str = "ok"
    reason: str = ""
    fps_runs: list[float] = field(default_factory=list)
    fps: float = float("nan")  # median over the timed runs
    fps_min: float = float("nan")
    fps_max: float = float("nan")
    fps_p5: float = float("nan")
    fps_p95: float = float("nan")
    total_s: float = float("nan")
    first_frame_s: float = float("nan")
    first_frame_ms_runs: list[float] = field(default_factory=list)
    frame_ms_p5: float = float("nan")
    frame_ms_p50: float = float("nan")
    frame_ms_p95: float = float("nan")
    frame_ms_p99: float = float("nan")
    ratio: float = float("nan")
    peak_rss_mb: float = float("nan")
    load_s: float = float("nan")
    profile: dict | None = None  # per-cell profile (``cell_profile.profile_rows``) with ``profile=True``

    def to_dict(self) -> dict:
        return asdict(self)


def synthetic_clip(frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pad = 2 * frames + 8
    base = rng.random((3, height + pad, width + pad), dtype=np.float32)
    base = (base + np.roll(base, 1, 1) + np.roll(base, 1, 2) + np.roll(base, 1, (1, 2))) / 4  # smoother
    return np.stack([base[:, i:i + height, i:i + width] for i in range(frames)])


class _Ticks:
    """Output sink of the child: counts frames and sends (name, done, total) to the parent's queue."""

    def __init__(self, queue, name: str, total: int):
        self.queue, self.name, self.total, self.done = queue, name, total, 0

    def add(self, n: int) -> None:
        self.done += n
        if self.queue is not None:
            self.queue.put((self.name, self.done, self.total))

    def write(self, frame) -> None:
        self.add(1)


def _child(bundle_path: str, name: str, options: dict, frames: int, size, warmup: int, repeat: int, window,
           lookahead: int, threads: int | None, queue=None, profile: bool = False, peak_size: int = 2048,
           heap: str | None = None) -> dict:
    import torch
    if threads:
        torch.set_num_threads(threads)
    from ..bundle import Bundle
    from .compare import one_line
    from ..errors import BackendUnavailable
    clip = synthetic_clip(frames, *size)
    bundle = Bundle(bundle_path)
    from .timing import StreamRun, summarize_runs, timed_stream, warm_up
    ticks = _Ticks(queue, name, min(warmup, frames) + repeat * frames)
    profile = profile and name != BASELINE
    try:
        if profile:
            from .gemm_peak import measure_gemm_peak
            peak = measure_gemm_peak(threads, size=peak_size)
        t0 = time.perf_counter()
        if name == BASELINE:
            net = bundle.load_network()

            def run(c):  # every frame comes out when the whole clip is done
                t = time.perf_counter()
                upstream_forward(net, torch.from_numpy(c)[None], heap=heap)
                total = time.perf_counter() - t
                ticks.add(len(c))
                return StreamRun(total, total, [total] * len(c))
        else:
            from ..runtimes.engine import Upscaler
            if threads and name != "torch":
                options = {"threads": threads, **options}
            up = Upscaler.create(bundle, name, **options)
            heap = heap or DEFAULT_HEAP_POLICY

            def run(c):
                return timed_stream(up, c, window, lookahead, ticks, heap=heap)
        load_s = time.perf_counter() - t0
        with torch.no_grad():
            if warmup:
                run(clip[:warmup]) if name == BASELINE else warm_up(up, clip[:warmup], window, lookahead, heap=heap)
                if name != BASELINE:
                    ticks.add(min(warmup, frames))
            if profile:
                from .cell_profile import CellTimer
                up.backend = timer = CellTimer(up.backend)
            runs = [run(clip) for _ in range(repeat)]
            timing = summarize_runs(runs)
            if profile:
                from .cell_flops import CellFlops
                from .cell_profile import profile_rows
                # again after the runs: on a shared machine one moment may be a busy one
                after = measure_gemm_peak(threads, size=peak_size)
                peak = {**max(peak, after, key=lambda p: p["gflops"]),
                        "measured_gflops": [peak["gflops"], after["gflops"]]}
                cell_profile = profile_rows(timer, CellFlops(up.bundle.skeleton()), sum(r.total_s for r in runs), peak)
    except (BackendUnavailable, ImportError) as e:
        return {"name": name, "status": "skipped", "reason": one_line(e)}
    except Exception as e:  # noqa: BLE001 -- one configuration's error is its row's outcome
        return {"name": name, "status": "failed", "reason": one_line(e)}
    timing.pop("repeat")
    extra = {"profile": cell_profile} if profile else {}
    return {"name": name, **timing, "peak_rss_mb": peak_rss_mb(), "load_s": load_s, **extra}


def run_bench(bundle_path: str, backends: list[str], *, frames: int = 20, size=(180, 320), warmup: int = 3,
              repeat: int = 3, window: int | None = 16, lookahead: int = 8, threads: int | None = None,
              options: dict | None = None, baseline: bool = True, progress=lambda msg: None,
              tick=None, heap: str = DEFAULT_HEAP_POLICY) -> list[BenchResult]:
    """Baseline first (unless ``baseline=False``), then each backend; ``ratio`` = frames/s over the baseline's.
    ``heap``: the backends' streams' malloc policy (``models.heap``); the baseline runs with the C library's own
    default, as upstream's code does.

    ``progress(message)`` says which configuration starts; ``tick(name, frames done, frames in all)``
    follows each one frame by frame (warm-up and timed runs) from its child process."""
    from ..errors import ConfigError
    from ..runtimes.base import check_backend_names
    if not backends:
        raise ConfigError("give at least one backend, e.g. --backends ort-cpu,openvino-cpu")
    check_backend_names(backends)
    if frames < 1 or repeat < 1 or warmup < 0:
        raise ConfigError(f"bench needs frames >= 1, repeat >= 1 and warmup >= 0 (got {frames}, {repeat}, {warmup})")
    results = []
    ctx = multiprocessing.get_context("spawn")
    manager = ctx.Manager() if tick is not None else None
    queue = manager.Queue() if manager is not None else None
    try:
        for name in [BASELINE, *backends] if baseline else backends:
            progress(f"{name}: {repeat} runs of {frames} frames {size[1]}x{size[0]}")
            with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                future = pool.submit(_child, str(bundle_path), name, options or {}, frames, size, warmup, repeat,
                                     window, lookahead, threads, queue, heap=None if name == BASELINE else heap)
                while queue is not None and not future.done():
                    _drain(queue, tick, wait=0.2)
                record = future.result()
                if queue is not None:
                    _drain(queue, tick, wait=0)
            results.append(BenchResult(**record))
    finally:
        if manager is not None:
            manager.shutdown()
    base = results[0].fps if baseline else float("nan")
    for r in results:
        r.ratio = r.fps / base if r.status == "ok" else float("nan")
    return results


def _drain(queue, tick, wait: float) -> None:
    import queue as queue_module
    try:
        while True:
            tick(*queue.get(timeout=wait) if wait else queue.get_nowait())
            wait = 0
    except queue_module.Empty:
        pass


def format_bench(results: list[BenchResult]) -> str:
    lines = [f"{'configuration':18} {'frames/s median':>15} {'min-max':>13} {'x baseline':>10} "
             f"{'frame ms p50/p95/p99':>21} {'first frame ms':>14} {'peak RSS MB':>12} {'load s':>7}"]
    for r in results:
        if r.status != "ok":
            lines.append(f"{r.name:18} {r.status}: {r.reason}")
            continue
        spread = f"{r.fps_min:.2f}-{r.fps_max:.2f}"
        latency = f"{r.frame_ms_p50:.0f}/{r.frame_ms_p95:.0f}/{r.frame_ms_p99:.0f}"
        lines.append(f"{r.name:18} {r.fps:15.2f} {spread:>13} {r.ratio:10.2f} {latency:>21} "
                     f"{1000 * r.first_frame_s:14.0f} {r.peak_rss_mb:12.0f} {r.load_s:7.2f}")
    return "\n".join(lines)


def upstream_forward(net, lrs, **stream_options) -> list:
    """The ``BASELINE`` row: what upstream's forward computes, at upstream's cost. The whole clip is one
    window and each frame's reconstruction runs on the whole frame: no row strips, which upstream does not
    have and which recompute their context rows (``net(lrs)``, the product's whole-clip path, cuts large
    frames into strips to bound memory; BasicVSR++'s reconstruction in 13 strips at 180x320 LR once cost
    the baseline ~1.6x its time: benchmarks/RESULTS.md, "BasicVSR++: the reconstruction split from its x4
    tail"). ``stream_options``: more keywords of ``stream_cells`` (e.g. ``batch_bytes``, ``stats``)."""
    from ..models.cells import TorchRunner
    from ..models.dcn import whole_frame_alignment
    frames = (lrs[:, i] for i in range(lrs.shape[1]))
    with whole_frame_alignment():  # nor does it cut its deformable alignment into strips
        # heap=None (default): malloc as the C library sets it, as for upstream's code (not the streams' 1 MB mmap
        # threshold, which cost this baseline 1.4x its time on BasicVSR++: RESULTS.md, "What freed memory costs")
        return list(net.stream_cells(TorchRunner(net.cells), frames, None, 0, row_strips=False,
                                     **{"heap": None, **stream_options}))  # every output kept, as upstream's forward


@dataclass
class BenchConfig:
    """One row of a benchmark: ``backend`` (or ``BASELINE``, the whole-clip PyTorch forward, which computes
    what upstream's does) at ``precision``; ``bundle``: a derived (INT8 / FP16) bundle to run instead of the
    main one; ``options``: more constructor options of the backend (e.g. ``{"keep_working_sets": 2}`` on
    openvino-cpu), on top of the precision's; ``heap``: its stream's malloc policy (``models.heap``; None: the
    streams' default, and for the ``BASELINE`` row the C library's own, as upstream's code runs)."""
    backend: str
    precision: str = "fp32"
    bundle: str | None = None
    label: str = ""
    options: dict = field(default_factory=dict)
    heap: str | None = None

    def __post_init__(self):
        if not self.label:
            self.label = self.backend if self.precision == "fp32" else f"{self.backend}/{self.precision}"


def run_configs(bundle_path: str, configs: list[BenchConfig], *, frames: int = 20, size=(180, 320), warmup: int = 3,
                repeat: int = 3, window: int | None = 16, lookahead: int = 8, threads: int | None = None,
                isolate: bool = True, progress=lambda msg: None, profile: bool = False,
                peak_size: int = 2048) -> list[BenchResult]:
    """Time each configuration (in its own process unless ``isolate`` is False, so peak RSS is its own);
    ``ratio`` = frames/s over the ``BASELINE`` row's when there is one. ``profile=True``: each backend row
    also gets its per-cell profile against a GEMM peak measured in its process (``BenchResult.profile``), a
    ``peak_size``-cubed FP32 GEMM."""
    from ..bundle import Bundle
    from .compare import one_line
    from ..errors import BackendUnavailable, ConfigError
    from ..runtimes.base import precision_options
    if frames < 1 or repeat < 1 or warmup < 0:
        raise ConfigError(f"bench needs frames >= 1, repeat >= 1 and warmup >= 0 (got {frames}, {repeat}, {warmup})")
    results = []
    ctx = multiprocessing.get_context("spawn")
    for cfg in configs:
        path = str(cfg.bundle or bundle_path)
        try:
            options = {} if cfg.backend == BASELINE else {**precision_options(cfg.backend, cfg.precision,
                                                                             Bundle(path, verify=False)),
                                                           **cfg.options}
        except BackendUnavailable as e:
            results.append(BenchResult(cfg.label, "skipped", one_line(e)))
            continue
        progress(f"{cfg.label}: {repeat} runs of {frames} frames {size[1]}x{size[0]}")
        args = (path, cfg.backend, options, frames, size, warmup, repeat, window, lookahead, threads, None, profile,
                peak_size, cfg.heap)
        if isolate:
            with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                record = pool.submit(_child, *args).result()
        else:
            record = _child(*args)
        record["name"] = cfg.label
        results.append(BenchResult(**record))
    base = next((r.fps for r, c in zip(results, configs) if c.backend == BASELINE and r.status == "ok"), float("nan"))
    for r in results:
        r.ratio = r.fps / base if r.status == "ok" else float("nan")
    return results
