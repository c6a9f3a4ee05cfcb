"""Scale-out: segment planning, exactness of segments, the job directory, and real local Ray clusters."""
import json
import os

import numpy as np
import pytest

from vsrdeploy.errors import ConfigError, InputError
from vsrdeploy.scale import plan_segments, segment_outputs
from vsrdeploy.scale.jobdir import JobDir

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")

WINDOW, LOOKAHEAD = 4, 2


def make_frames(t=14, h=32, w=40, seed=0):
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.random((h + 3 * t, w + 3 * t, 3)).astype(np.float32), (5, 5), 0)
    return [np.ascontiguousarray(base[i:i + h, 2 * i:2 * i + w].transpose(2, 0, 1)) for i in range(t)]


def write_png_dir(frames, path):
    path.mkdir(parents=True)
    for i, f in enumerate(frames):
        cv2.imwrite(str(path / f"{i:04d}.png"), np.rint(f.transpose(1, 2, 0)[:, :, ::-1] * 255).astype(np.uint8))
    return path


def read_png_dir(path):
    return np.stack([cv2.imread(str(p)) for p in sorted(path.glob("*.png"))])


# ------------------------------------------------------------------ planning (no Ray)


def test_segments_cover_the_clip_and_align_to_windows():
    segs = plan_segments(30, 8, 6, 4, 2)
    assert [(s.start, s.end) for s in segs] == [(0, 8), (8, 16), (16, 24), (24, 30)]
    assert [s.warmup for s in segs] == [0, 6, 6, 6]
    assert [s.first_window for s in segs] == [None, 2, 2, 2]  # windows then start at 8, 12, ... as in a full run
    assert [s.read_end for s in segs] == [11, 19, 27, 30]
    assert plan_segments(30, 8, 100, 4, 2)[3].warmup == 24  # clamped to the whole prefix


def test_segments_respect_a_keyframe_phase():
    segs = plan_segments(40, 8, 3, 4, 2, phase=5)
    assert all(s.read_start % 5 == 0 for s in segs)
    assert all(s.warmup >= min(3, s.start) for s in segs)


@pytest.mark.parametrize("args, message", [((10, 6, 0, 4, 2), "multiple of --window 4"),
                                           ((10, 8, -1, 4, 2), "--warmup must be >= 0"),
                                           ((0, 8, 0, 4, 2), "at least one frame")])
def test_segment_options_are_checked(args, message):
    with pytest.raises(ConfigError, match=message):
        plan_segments(*args)


@pytest.fixture(scope="module")
def upscaler(tiny_bundle):
    from vsrdeploy.bundle import Bundle
    from vsrdeploy.runtimes.engine import Upscaler
    return Upscaler.create(Bundle(tiny_bundle), "ort-cpu", threads=1)


def run_segments(upscaler, frames, segment, warmup):
    outs = []
    for seg in plan_segments(len(frames), segment, warmup, WINDOW, LOOKAHEAD):
        outs += list(segment_outputs(upscaler, iter(frames[seg.read_start:]), seg, WINDOW, LOOKAHEAD))
    return np.stack(outs)


def test_segments_with_the_whole_prefix_as_warmup_equal_the_sequential_stream(upscaler):
    frames = make_frames(14)
    sequential = np.stack(list(upscaler.stream(frames, window=WINDOW, lookahead=LOOKAHEAD)))
    assert np.array_equal(run_segments(upscaler, frames, 4, 100), sequential)
    # partial warm-up: only the forward state differs, so the segments' first frames differ and the error is small
    partial = run_segments(upscaler, frames, 4, 2)
    assert partial.shape == sequential.shape
    assert np.array_equal(partial[:4], sequential[:4]) and not np.array_equal(partial, sequential)


def test_first_window_keeps_later_windows_where_a_full_run_has_them(upscaler):
    frames = make_frames(10)
    full = np.stack(list(upscaler.stream(frames, window=WINDOW, lookahead=LOOKAHEAD)))
    shifted = np.stack(list(upscaler.stream(frames, window=WINDOW, lookahead=LOOKAHEAD, first_window=WINDOW)))
    assert np.array_equal(full, shifted)
    with pytest.raises(ConfigError, match="first window"):
        list(upscaler.stream(frames, window=WINDOW, lookahead=LOOKAHEAD, first_window=0))


# ------------------------------------------------------------------ job directory (no Ray)


def test_job_directory_records_segments_atomically_and_checks_settings(tmp_path):
    job = JobDir(tmp_path, "clip")
    job.open({"segment": 4}, force=False)
    assert job.missing(2) == [0, 1]
    frames = make_frames(3)
    with pytest.raises(RuntimeError):
        job.write_segment(0, (f if i < 2 else _boom() for i, f in enumerate(frames)), {})
    assert job.missing(2) == [0, 1] and not [p for p in job.segments_dir.iterdir()]  # nothing half-written stays
    assert job.write_segment(0, frames, {"worker": 0}) == 3
    assert job.write_segment(0, frames, {"worker": 1}) == 3  # a retried task: the first copy stays
    assert job.segment_meta(0)["worker"] == 0 and job.missing(2) == [1]
    with pytest.raises(ConfigError, match="other settings \\(segment\\).*--force"):
        JobDir(tmp_path, "clip").open({"segment": 8}, force=False)
    JobDir(tmp_path, "clip").open({"segment": 4}, force=False)
    assert job.missing(2) == [1]
    with pytest.raises(Exception, match="segments \\[1\\] are missing"):
        job.assemble(2, tmp_path / "clip", video=False, fps=None, codec="mp4v", notice=print)
    job.write_segment(1, frames[:2], {})
    assert job.assemble(2, tmp_path / "clip", video=False, fps=None, codec="mp4v", notice=print) == 5
    assert sorted(os.listdir(tmp_path)) == ["clip"]  # job directory gone, no partial left
    assert len(list((tmp_path / "clip").glob("frame_*.png"))) == 5


def test_force_starts_over_only_a_job_made_with_other_settings(tmp_path):
    job = JobDir(tmp_path, "clip")
    job.open({"segment": 4}, force=False)
    job.write_segment(0, make_frames(2), {})
    JobDir(tmp_path, "clip").open({"segment": 4}, force=True)
    assert job.missing(1) == []  # same settings: its segments are still good
    JobDir(tmp_path, "clip").open({"segment": 8}, force=True)
    assert job.missing(1) == [0] and json.loads((job.path / "job.json").read_text()) == {"segment": 8}


def _boom():
    raise RuntimeError("worker died")


def test_batch_input_errors(tmp_path, tiny_bundle):
    from vsrdeploy.scale import run_batch
    with pytest.raises(InputError, match="no file matches"):
        run_batch([str(tmp_path / "*.mp4")], tiny_bundle, tmp_path / "out")
    with pytest.raises(ConfigError, match="multiple of --window"):
        run_batch([str(write_png_dir(make_frames(2), tmp_path / "a"))], tiny_bundle, tmp_path / "out", segment=6,
                  window=4)


# ------------------------------------------------------------------ real local Ray cluster


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    # the test machine is shared: Ray's memory monitor would kill these tiny workers when *other* jobs fill
    # the node's memory, and a loaded machine can miss Ray's 30 s start-up deadline once
    os.environ["RAY_memory_monitor_refresh_ms"] = "0"
    for attempt in range(2):
        try:
            ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024 * 1024,
                     log_to_driver=False, configure_logging=True, logging_level="WARNING")
            break
        except Exception:
            ray.shutdown()
            if attempt:
                raise
    yield ray
    ray.shutdown()
    del os.environ["RAY_memory_monitor_refresh_ms"]


def sequential_png(bundle, source, out):
    from vsrdeploy.upscale_job import run_job
    run_job(str(bundle), backend="ort-cpu", source=str(source), sink=str(out), window=WINDOW, lookahead=LOOKAHEAD,
            threads=1, echo=lambda m: None, progress=False)
    return read_png_dir(out)


def test_killed_worker_is_restarted_and_the_output_equals_the_sequential_run(ray_cluster, tiny_bundle, tmp_path):
    from vsrdeploy.scale import run_batch
    source = write_png_dir(make_frames(16), tmp_path / "clip")
    killed = []

    def kill_a_busy_worker(job, info):
        if not killed:
            victim = job.busy_workers()[0]
            killed.append(victim)
            ray_cluster.kill(victim, no_restart=False)

    messages = []
    result = run_batch([str(source)], tiny_bundle, tmp_path / "out", workers=2, threads=1, segment=4, warmup=100,
                       window=WINDOW, lookahead=LOOKAHEAD, echo=messages.append, progress=False,
                       on_segment=kill_a_busy_worker)
    assert killed and result.outputs == [tmp_path / "out" / "clip"]
    assert sum(s["segments"] for s in result.workers.values()) == 4
    assert np.array_equal(read_png_dir(tmp_path / "out" / "clip"), sequential_png(tiny_bundle, source, tmp_path / "seq"))
    assert sorted(os.listdir(tmp_path / "out")) == ["clip"]
    assert any(m.startswith("all workers: ") for m in messages)


@pytest.mark.slow
def test_rerun_redoes_only_missing_segments_and_videos_come_out_as_videos(ray_cluster, tiny_bundle, tmp_path):
    from vsrdeploy.scale import run_batch
    from vsrdeploy.scale.jobdir import JobDir
    frames = make_frames(12)
    video = tmp_path / "in" / "clip.avi"
    video.parent.mkdir()
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 12, (40, 32))
    for f in frames:
        writer.write(np.rint(f.transpose(1, 2, 0)[:, :, ::-1] * 255).astype(np.uint8))
    writer.release()
    options = dict(workers=1, threads=1, segment=4, warmup=100, window=WINDOW, lookahead=LOOKAHEAD, progress=False)

    def interrupt(job, info):  # the "crash": stop after the first segment
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_batch([str(video)], tiny_bundle, tmp_path / "out", echo=lambda m: None, on_segment=interrupt, **options)
    job = JobDir(tmp_path / "out", "clip.avi")
    missing = job.missing(3)
    assert missing in ([1, 2], [2]) and not (tmp_path / "out" / "clip.avi").exists()
    first = json.loads((job.segment_path(0) / "segment.json").read_text())
    result = run_batch([str(video)], tiny_bundle, tmp_path / "out", echo=lambda m: None, **options)
    assert result.outputs == [tmp_path / "out" / "clip.avi"]
    assert result.frames == 4 * len(missing)  # only the missing segments were computed again
    cap = cv2.VideoCapture(str(tmp_path / "out" / "clip.avi"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 12
    assert first["frames"] == 4
    messages = []
    again = run_batch([str(video)], tiny_bundle, tmp_path / "out", echo=messages.append, **options)
    assert again.skipped == [tmp_path / "out" / "clip.avi"] and "pass --force" in messages[0]


def test_batch_cli_reports_bad_options_in_one_line(tmp_path, tiny_bundle):
    from click.testing import CliRunner

    from vsrdeploy.cli import main
    source = write_png_dir(make_frames(2), tmp_path / "a")
    result = CliRunner().invoke(main, ["batch", str(source), "-m", str(tiny_bundle), "-o", str(tmp_path / "out"),
                                       "--segment", "10", "--window", "4"])
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "--segment must be a positive multiple of --window 4" in result.output


@pytest.mark.slow
def test_batch_cli_glob_of_image_directories(ray_cluster, tiny_bundle, tmp_path):
    from click.testing import CliRunner

    from vsrdeploy.cli import main
    for i in range(2):
        write_png_dir(make_frames(6, seed=i), tmp_path / "in" / f"clip{i}")
    result = CliRunner().invoke(main, ["batch", str(tmp_path / "in" / "clip*"), "-m", str(tiny_bundle), "-o",
                                       str(tmp_path / "out"), "--workers", "2", "--segment", "4", "--window", "4",
                                       "--lookahead", "2", "--warmup", "0"])
    assert result.exit_code == 0, result.output
    assert sorted(os.listdir(tmp_path / "out")) == ["clip0", "clip1"]
    assert all(len(list((tmp_path / "out" / c).glob("frame_*.png"))) == 6 for c in ("clip0", "clip1"))
    assert "all workers: 12 frames" in result.output
