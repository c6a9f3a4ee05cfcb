"""``run_batch``: many videos, and long videos cut into segments, across Ray workers.

The driver plans segments, starts (or joins) a Ray cluster, creates one ``SegmentWorker`` actor per
CPU slot or GPU, hands out segment tasks, shows one progress bar over every frame, assembles each
output as soon as all its segments are on disk, and prints per-worker throughput at the end.
Dying workers are restarted by Ray and their tasks retried (``max_restarts``, ``max_task_retries``);
whatever is lost beyond that is redone by rerunning the same command.
"""
from __future__ import annotations

import os
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from ..errors import ConfigError, VSRDeployError
from ..runtimes.engine import DEFAULT_LOOKAHEAD, DEFAULT_WINDOW
from ..export.cache import bundle_for
from .inputs import BatchInput, describe_inputs, expand_inputs
from .jobdir import JobDir
from .segments import DEFAULT_SEGMENT, DEFAULT_WARMUP, plan_segments
from .worker import GPU_BACKENDS, SegmentTask, pack_bundle, remote_classes

MAX_RESTARTS = 3
MAX_TASK_RETRIES = 3
TASKS_IN_FLIGHT = 2  # per worker: the next segment is queued while one runs
LOCAL_OBJECT_STORE_BYTES = 128 * 1024 * 1024


class WorkerError(VSRDeployError):
    """A worker kept dying beyond Ray's restarts and retries."""


@dataclass
class BatchResult:
    outputs: list[Path] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    frames: int = 0  # frames computed in this run
    seconds: float = 0.0
    workers: dict[int, dict] = field(default_factory=dict)  # worker -> frames, seconds, segments, host

    def summary_lines(self) -> list[str]:
        lines = []
        for w, s in sorted(self.workers.items()):
            fps = s["frames"] / s["seconds"] if s["seconds"] > 0 else 0.0
            lines.append(f"worker {w} ({s['host']}): {s['segments']} segments, {s['frames']} frames "
                         f"in {s['seconds']:.1f} s busy = {fps:.2f} frames/s")
        total_fps = self.frames / self.seconds if self.seconds > 0 else 0.0
        lines.append(f"all workers: {self.frames} frames in {self.seconds:.1f} s = {total_fps:.2f} frames/s")
        return lines


class BatchJob:
    """One ``run_batch`` call. ``busy_workers()`` and ``workers`` are there for callbacks and tests."""

    def __init__(self, items: list[BatchInput], *, backend: str, window: int, lookahead: int, segment: int,
                 warmup: int, codec: str, echo: Callable[[str], None], progress: bool,
                 on_segment: Callable[[BatchJob, dict], None] | None):
        self.items, self.backend, self.window, self.lookahead = items, backend, window, lookahead
        self.segment, self.warmup, self.codec, self.echo = segment, warmup, codec, echo
        self.show_progress, self.on_segment = progress, on_segment
        self.workers: list = []
        self.in_flight: dict = {}  # object ref -> (worker index, task)

    def busy_workers(self) -> list:
        return [self.workers[i] for i, _ in self.in_flight.values()]

    def run(self, bundle, num_workers: int, threads: int | None, result: BatchResult) -> None:
        import ray

        phase = int(bundle.config.get("keyframe_stride", 1))
        plans, tasks, remaining, total, already = {}, [], {}, 0, 0
        for item in self.items:
            segs = plan_segments(item.num_frames, self.segment, self.warmup, self.window, self.lookahead, phase)
            job = JobDir(item.output.parent, item.name)
            plans[item.name] = (item, segs, job)
            missing = set(job.missing(len(segs)))
            remaining[item.name] = missing
            total += item.num_frames
            already += sum(s.frames for s in segs if s.index not in missing)
            tasks += [SegmentTask(str(item.source), str(item.output.parent), item.name, s, self.window,
                                  self.lookahead, f"{item.name}/{s.index}") for s in segs if s.index in missing]
        for name, missing in remaining.items():
            if not missing:
                self._assemble(plans[name], result)
        if not tasks:
            return
        if already:
            self.echo(f"resuming: {already} of {total} frames are in finished segments")
        worker_cls, coordinator_cls = remote_classes()
        coordinator = f"vsrdeploy-coordinator-{uuid.uuid4().hex}"
        counter = coordinator_cls.options(name=coordinator).remote(pack_bundle(bundle))
        resources = {"num_gpus": 1} if self.backend in GPU_BACKENDS else {"num_cpus": threads or 1}
        self.workers = [worker_cls.options(max_restarts=MAX_RESTARTS, max_task_retries=MAX_TASK_RETRIES,
                                           **resources).remote(i, coordinator, self.backend, threads)
                        for i in range(min(num_workers, len(tasks)))]
        bar = tqdm(total=total, initial=already, unit="frame", desc=f"{bundle.arch} x{len(self.workers)} workers",
                   disable=not self.show_progress, dynamic_ncols=True)
        queue = list(reversed(tasks))
        loads = defaultdict(int)
        t0 = time.perf_counter()
        try:
            while queue or self.in_flight:
                for level in range(1, TASKS_IN_FLIGHT + 1):  # every worker gets one task before any gets two
                    for i, worker in enumerate(self.workers):
                        if queue and loads[i] < level:
                            task = queue.pop()
                            self.in_flight[worker.process.remote(task)] = (i, task)
                            loads[i] += 1
                ready, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=0.5)
                done = already + ray.get(counter.total.remote())
                if done != bar.n:
                    bar.update(done - bar.n)
                for ref in ready:
                    i, task = self.in_flight.pop(ref)
                    loads[i] -= 1
                    info = _get(ref, task)
                    stats = result.workers.setdefault(info["worker"], {"frames": 0, "seconds": 0.0, "segments": 0,
                                                                      "host": info.get("host", "?")})
                    stats["frames"] += info["frames"]
                    stats["seconds"] += info["seconds"]
                    stats["segments"] += 1
                    result.frames += info["frames"]
                    remaining[task.name].discard(task.segment.index)
                    if self.on_segment is not None:
                        self.on_segment(self, info)
                    if not remaining[task.name]:
                        self._assemble(plans[task.name], result)
            bar.update(total - bar.n)
        finally:
            bar.close()
            result.seconds = time.perf_counter() - t0
            for worker in self.workers:
                ray.kill(worker)
            ray.kill(counter)

    def _assemble(self, plan, result: BatchResult) -> None:
        item, segs, job = plan
        n = job.assemble(len(segs), item.output, video=item.video, fps=item.fps, codec=self.codec, notice=self.echo)
        result.outputs.append(item.output)
        self.echo(f"wrote {item.output} ({n} frames)")


def _get(ref, task: SegmentTask) -> dict:
    """A task's result; the worker's own errors come back as themselves, lost workers as WorkerError."""
    import ray
    from ray.exceptions import RayActorError, RayError, RayTaskError

    try:
        return ray.get(ref)
    except RayTaskError as e:
        if isinstance(e.cause, VSRDeployError):
            raise e.cause from None
        raise
    except RayActorError as e:
        raise WorkerError(f"a worker died more than {MAX_RESTARTS} times (segment {task.segment.index} of "
                          f"{task.source}): {str(e).splitlines()[0]}; rerun the same command to continue "
                          "(finished segments are kept)") from None
    except RayError as e:  # e.g. Ray's memory monitor killed the worker
        raise WorkerError(f"segment {task.segment.index} of {task.source} failed: {str(e).splitlines()[0]}; "
                          "rerun the same command to continue (finished segments are kept)") from None


def _job_settings(bundle, item: BatchInput, backend: str, segment: int, warmup: int, window: int,
                  lookahead: int) -> dict:
    import hashlib

    manifest = hashlib.sha256((bundle.path / "manifest.json").read_bytes()).hexdigest()[:16]
    return {"bundle": manifest, "backend": backend, "segment": segment, "warmup": warmup, "window": window,
            "lookahead": lookahead, "input": item.fingerprint(), "frames": item.num_frames}


def _start_ray(address: str | None, cpus_needed: int, echo) -> bool:
    """Connect to ``address`` or start a local cluster; True when this call started Ray."""
    import ray

    if ray.is_initialized():
        return False
    common = {"include_dashboard": False, "log_to_driver": False, "configure_logging": True,
              "logging_level": "WARNING"}
    if address:
        try:
            ray.init(address=address, **common)
        except (ConnectionError, RuntimeError, ValueError) as e:
            ray.shutdown()
            raise ConfigError(f"cannot connect to the Ray cluster at {address}: {str(e).splitlines()[0]}; check "
                              "the address with `ray status` on its head node") from None
        return True
    cpus = max(os.cpu_count() or 1, cpus_needed)
    if cpus > (os.cpu_count() or 1):
        echo(f"local Ray cluster: {cpus} CPU slots for {os.cpu_count()} cores (workers x threads oversubscribe)")
    for attempt in range(2):  # Ray gives its processes 30 s to come up: a loaded machine can miss that once
        try:
            ray.init(num_cpus=cpus, object_store_memory=LOCAL_OBJECT_STORE_BYTES, **common)
            return True
        except Exception as e:  # Ray raises a bare Exception when its node times out during startup
            ray.shutdown()
            if attempt:
                raise WorkerError(f"could not start a local Ray cluster: {str(e).splitlines()[0]}; retry, or start "
                                  "one with `ray start --head` and pass --ray-address") from None
    return True


def _check_resources(backend: str, workers: int, threads: int | None) -> None:
    import ray

    have = ray.cluster_resources()
    if backend in GPU_BACKENDS:
        if have.get("GPU", 0) < workers:
            raise ConfigError(f"{workers} workers on {backend} need {workers} GPUs, the cluster has "
                              f"{int(have.get('GPU', 0))}; lower --workers or add GPU nodes")
    elif have.get("CPU", 0) < workers * (threads or 1):
        raise ConfigError(f"{workers} workers x {threads or 1} threads need {workers * (threads or 1)} CPUs, the "
                          f"cluster has {int(have.get('CPU', 0))}; lower --workers or --threads")


def default_workers(backend: str, threads: int | None) -> int:
    import ray

    have = ray.cluster_resources()
    if backend in GPU_BACKENDS:
        return max(1, int(have.get("GPU", 0)))
    return max(1, int(have.get("CPU", 1)) // (threads or 1))


def run_batch(inputs: Sequence[str], model, outdir, *, backend: str = "ort-cpu", ray_address: str | None = None,
              workers: int | None = None, threads: int | None = 1, segment: int = DEFAULT_SEGMENT,
              warmup: int = DEFAULT_WARMUP, window: int = DEFAULT_WINDOW, lookahead: int = DEFAULT_LOOKAHEAD,
              dcn: str | None = None, codec: str = "mp4v", force: bool = False,
              echo: Callable[[str], None] = print, progress: bool = True,
              on_segment: Callable[[BatchJob, dict], None] | None = None) -> BatchResult:
    """Upscale ``inputs`` (video files, image directories, globs) with ``model`` into ``outdir``.

    Each input gives ``outdir/NAME`` of the same kind. Outputs that exist are skipped unless
    ``force``. Without ``ray_address`` (and with Ray not yet initialized in this process) a local
    Ray cluster is started and shut down at the end. ``on_segment(job, info)`` is called on the
    driver after each finished segment.
    """
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers must be >= 1 (got {workers})")
    if threads is not None and threads < 1:
        raise ConfigError(f"--threads must be >= 1 (got {threads})")
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise ConfigError(f"output {outdir} is a file; give a directory for -o")
    paths = expand_inputs(inputs)
    plan_segments(1, segment, warmup, window, lookahead)  # validate the options before any heavy work
    outdir.mkdir(parents=True, exist_ok=True)
    result = BatchResult()
    items = []
    for item in describe_inputs(paths, outdir, echo):
        if item.output.exists() and not force:
            echo(f"skipping {item.source}: {item.output} exists (pass --force to redo it)")
            result.skipped.append(item.output)
        else:
            items.append(item)
    if not items:
        return result
    bundle = bundle_for(model, backend, dcn, progress=lambda c: echo(f"exporting cell {c}"))
    for item in items:
        JobDir(outdir, item.name).open(_job_settings(bundle, item, backend, segment, warmup, window, lookahead),
                                       force)
    job = BatchJob(items, backend=backend, window=window, lookahead=lookahead, segment=segment, warmup=warmup,
                   codec=codec, echo=echo, progress=progress, on_segment=on_segment)
    if all(not JobDir(outdir, i.name).missing(len(plan_segments(i.num_frames, segment, warmup, window, lookahead)))
           for i in items):
        job.run(bundle, 0, threads, result)  # only assembling: no Ray needed
        return result
    import ray

    started = _start_ray(ray_address, (workers or 1) * (threads or 1), echo)
    try:
        n = workers or default_workers(backend, threads)
        _check_resources(backend, n, threads)
        job.run(bundle, n, threads, result)
    finally:
        if started:
            ray.shutdown()
    for line in result.summary_lines():
        echo(line)
    return result
