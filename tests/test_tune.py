"""`vsrdeploy tune`: measure backend x precision, choose within the dB budget, write a profile that
`run --profile auto` / `run -b auto` uses; OpenVINO BF16 and INT8 run where the CPU has them."""
import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("onnxruntime")
pytest.importorskip("openvino")
cv2 = pytest.importorskip("cv2")

from vsrdeploy.bundle import Bundle  # noqa: E402
from vsrdeploy.cli import main  # noqa: E402
from vsrdeploy.errors import BackendUnavailable, ConfigError  # noqa: E402
from vsrdeploy.runtimes.engine import Upscaler  # noqa: E402
from vsrdeploy.runtimes.openvino_backend import device_capabilities  # noqa: E402
from vsrdeploy.evaluate.tune import (PROFILE_KIND, TuneResult, TuneRow, choose, load_profile, profile_path,  # noqa: E402
                            tune, write_profile)

from tests.conftest import random_clip  # noqa: E402

CAPS = device_capabilities("CPU")


def _clip(t=4, h=32, w=32, seed=0):
    return random_clip(t=t, h=h, w=w, seed=seed)[0].numpy()


@pytest.fixture
def bundle(tiny_bundle, tmp_path):
    """A private copy: tune writes the INT8 bundle and the profile beside it."""
    return Bundle(shutil.copytree(tiny_bundle, tmp_path / "m" / "tiny.vsr"))


@pytest.fixture
def video(tmp_path):
    path = tmp_path / "in.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 12, (40, 36))
    base = (np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8)
    for i in range(6):
        writer.write(np.ascontiguousarray(base[i:i + 36, 2 * i:2 * i + 40]))
    writer.release()
    return path


def _tune(bundle, **kw):
    lr = _clip()
    gt = np.clip(np.kron(lr, np.ones((1, 1, 4, 4), np.float32)), 0, 1)  # any HR clip will do for the mechanics
    args = dict(backends=["torch", "ort-cpu", "openvino-cpu"], timing_frames=3, repeat=1, warmup=1, threads=1,
                window=2, lookahead=1, isolate=False, calib_lr=_clip(t=3, seed=1), clip="random")
    args.update(kw)
    return tune(bundle, lr, gt, **args)


def test_tune_writes_a_profile_that_run_auto_uses(bundle, video, tmp_path):
    result = _tune(bundle)
    rows = {r.label: r for r in result.rows}
    # openvino-cpu runs both INT8 forms where NNCF is installed (the dev/all extras have it): one row each
    ov_forms = ["cpu", "cpu-concat", "openvino"] if importlib.util.find_spec("nncf") else ["cpu", "cpu-concat"]
    plain = [r for r in result.rows if not r.options and r.heap == "return"]
    # 3 backends x fp32, bf16, fp16, int8, int8-bf16, int8-fp16; ort-cpu's int8 in 2 forms, openvino-cpu's int8
    # once per form, and its int8-bf16 / int8-fp16 once per form where the CPU runs BF16 / FP16 (else one row why not)
    ov_mixed = sum(len(ov_forms) if p in CAPS else 1 for p in ("BF16", "FP16"))
    assert len(plain) == 16 + len(ov_forms) + ov_mixed
    # every openvino-cpu row that ran once more with kept buffers: same outputs, so the same drop; its own timing
    variants = [r for r in result.rows if r.options and r.heap == "return"]
    ran_ov = [r for r in plain if r.backend == "openvino-cpu" and r.status == "ok"]
    assert [r.options for r in variants] == [{"keep_working_sets": 2}] * len(ran_ov)
    for r in variants:
        base = rows[r.label.removesuffix(" keep_working_sets=2")]
        assert r.psnr_y_drop_db == base.psnr_y_drop_db and r.bundle == base.bundle
        assert r.status == "ok" and r.fps > 0 and r.peak_rss_mb > 0, r.reason
    # the two fastest rows within the budget once more with heap=keep, each right after its row: same outputs
    twins = [r for r in result.rows if r.heap == "keep"]
    assert len(twins) == 2
    for twin in twins:
        base = result.rows[result.rows.index(twin) - 1]
        assert twin.label == base.label + " heap=keep" and base.within_budget
        assert (twin.psnr_y_drop_db, twin.bundle, twin.options) == (base.psnr_y_drop_db, base.bundle, base.options)
        assert twin.status == "ok" and twin.fps > 0 and twin.peak_rss_mb > 0, twin.reason
    n_rows = len(plain) + len(variants) + len(twins)
    ov_int8 = [f"openvino-cpu/int8:{f}" for f in ov_forms]
    for label in ("torch/fp32", "ort-cpu/fp32", "openvino-cpu/fp32", "ort-cpu/int8:cpu", "ort-cpu/int8:cpu-concat",
                  *ov_int8):
        r = rows[label]
        assert r.status == "ok", (label, r.reason)
        assert r.fps > 0 and r.peak_rss_mb > 0 and np.isfinite(r.psnr_y_drop_db)
    assert abs(rows["ort-cpu/fp32"].psnr_y_drop_db) < 1e-3  # same math as the reference
    assert rows["ort-cpu/int8:cpu"].bundle.endswith("tiny-int8-cpu.vsr")
    for form in ov_forms:  # each form calibrated once, shared by the backends that run it
        assert rows[f"openvino-cpu/int8:{form}"].bundle.endswith(f"tiny-int8-{form}.vsr")
    assert rows["openvino-cpu/int8:cpu"].bundle == rows["ort-cpu/int8:cpu"].bundle
    concat = Bundle(rows["ort-cpu/int8:cpu-concat"].bundle).manifest["precision_details"]
    assert rows["openvino-cpu/int8:cpu-concat"].bundle == rows["ort-cpu/int8:cpu-concat"].bundle
    assert concat["target"] == "cpu" and "concat-input" not in concat["exclude_rules"]
    assert "concat-input" in Bundle(rows["ort-cpu/int8:cpu"].bundle).manifest["precision_details"]["exclude_rules"]
    assert rows["torch/int8"].status == "skipped" and "INT8" in rows["torch/int8"].reason
    assert rows["ort-cpu/bf16"].status == "skipped" and "openvino-cpu" in rows["ort-cpu/bf16"].reason
    ov_bf16 = rows["openvino-cpu/bf16"]
    if "BF16" in CAPS:
        assert ov_bf16.status == "ok" and ov_bf16.fps > 0, ov_bf16.reason
    else:
        assert ov_bf16.status == "skipped" and "OPTIMIZATION_CAPABILITIES" in ov_bf16.reason
    if "FP16" not in CAPS:
        assert rows["openvino-cpu/fp16"].status == "skipped" and "no native fp16" in rows["openvino-cpu/fp16"].reason
    # INT8 with its float ops in BF16 / FP16: openvino-cpu only, on the INT8 row's own bundle, measured on its own
    for p in ("bf16", "fp16"):
        assert rows[f"ort-cpu/int8-{p}"].status == "skipped" and "FP32 only" in rows[f"ort-cpu/int8-{p}"].reason
        if p.upper() not in CAPS:
            assert rows[f"openvino-cpu/int8-{p}"].status == "skipped" and f"no native {p}" in rows[f"openvino-cpu/int8-{p}"].reason
            continue
        for form in ov_forms:
            mixed, int8 = rows[f"openvino-cpu/int8-{p}:{form}"], rows[f"openvino-cpu/int8:{form}"]
            assert mixed.status == "ok" and mixed.fps > 0 and np.isfinite(mixed.psnr_y_drop_db), mixed.reason
            assert mixed.bundle == int8.bundle and mixed.psnr_y_drop_db != int8.psnr_y_drop_db

    chosen = result.chosen
    assert chosen is not None and chosen.chosen and chosen.within_budget
    eligible = [r for r in result.rows if r.within_budget]
    assert chosen.fps == max(r.fps for r in eligible)
    assert all(r.psnr_y_drop_db <= 0.05 or r.precision == "fp32" for r in eligible)

    path = write_profile(result)
    assert path == profile_path(bundle.path) == bundle.path.with_name("tiny.profile.json")
    record = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert record["kind"] == PROFILE_KIND and record["backend"] == chosen.backend
    assert record["precision"] == chosen.precision and record["threads"] == 1
    assert record["options"] == chosen.options and record["heap"] == chosen.heap
    assert (record["window"], record["lookahead"]) == (2, 1) and len(record["table"]) == n_rows
    assert not list(path.parent.glob(".tiny.profile.json.*"))  # written atomically, nothing left over

    out = tmp_path / "up.mp4"
    ran = CliRunner().invoke(main, ["run", str(bundle.path), "-b", "auto", "-i", str(video), "-o", str(out)],
                             catch_exceptions=False)
    assert ran.exit_code == 0, ran.output
    shown = chosen.precision if chosen.precision != "fp32" else "fp32"
    assert f"on {chosen.backend} (cpu, {shown})" in ran.output
    assert f"window 2, lookahead 1, heap {chosen.heap}" in ran.output and "wrote 6 frames" in ran.output


def _forced(bundle, backend, precision, run_bundle=None):
    row = TuneRow(backend, precision, str(run_bundle or bundle.path), fps=10.0, s_per_frame=0.1,
                  psnr_y_drop_db=0.01)
    result = TuneResult(bundle=str(bundle.path), rows=[row], max_drop_db=0.05, size=(32, 32), threads=1, window=4,
                        lookahead=2, clip="x", fp32_psnr_y_db=30.0)
    assert choose(result.rows, 0.05) is row
    result.chosen = row
    return result


@pytest.mark.skipif("BF16" not in CAPS, reason=f"this CPU's OpenVINO has no BF16 (capabilities {CAPS})")
def test_run_profile_sets_openvino_bf16(bundle, video, tmp_path):
    write_profile(_forced(bundle, "openvino-cpu", "bf16"))
    settings = load_profile(bundle.path)
    assert settings.backend == "openvino-cpu" and settings.options == {"precision": "bf16"}
    out = tmp_path / "up"
    ran = CliRunner().invoke(main, ["run", str(bundle.path), "--profile", "auto", "-i", str(video), "-o", str(out),
                                    "--lookahead", "0"], catch_exceptions=False)
    assert ran.exit_code == 0, ran.output
    assert "on openvino-cpu (cpu, bf16)" in ran.output and "lookahead 2" in ran.output  # profile's, then overridden
    assert len(list(out.glob("*.png"))) == 6


def test_openvino_bf16_executes_where_the_cpu_has_it(tiny_bundle):
    """Real BF16 execution (not emulation): small error, not zero. Where OpenVINO reports no BF16 the
    backend refuses with the reason before compiling anything."""
    b = Bundle(tiny_bundle)
    lr = _clip()
    if "BF16" not in CAPS:
        with pytest.raises(BackendUnavailable, match="no native bf16"):
            Upscaler.create(b, "openvino-cpu", precision="bf16")
        pytest.skip(f"this CPU's OpenVINO has no BF16 (capabilities {CAPS})")
    ref = Upscaler.create(b, "openvino-cpu").upscale(lr)
    out = Upscaler.create(b, "openvino-cpu", precision="bf16").upscale(lr)
    err = float(np.abs(out - ref).max())
    assert 1e-5 < err < 5e-2, err  # BF16 keeps 8 mantissa bits: visible, bounded


def test_int8_with_bf16_float_ops_on_openvino(bundle):
    """``int8-bf16``: an INT8 bundle on openvino-cpu with its unquantized ops in BF16 (real execution where the CPU
    has it): close to the INT8 bundle's own output, not equal; a profile carries it to ``run``; refused with the
    fix everywhere it cannot run."""
    from vsrdeploy.calib.int8 import calibrate_bundle
    from vsrdeploy.runtimes.base import precision_options
    fp32 = bundle
    int8 = Bundle(calibrate_bundle(fp32, _clip(t=3, seed=1), bundle.path.with_name("i8.vsr"), target="cpu",
                                   progress=False))
    with pytest.raises(BackendUnavailable, match="runs an INT8 bundle; the bundle is fp32: make one with `vsrdeploy calibrate"):
        precision_options("openvino-cpu", "int8-bf16", fp32)
    with pytest.raises(BackendUnavailable, match="ort-cpu cannot run an INT8 bundle's float ops in bf16; openvino-cpu, openvino-gpu can"):
        precision_options("ort-cpu", "int8-bf16", int8)
    with pytest.raises(BackendUnavailable, match=r"runs only at that precision \(on openvino-cpu also int8-bf16, int8-fp16\)"):
        precision_options("openvino-cpu", "bf16", int8)
    options = precision_options("openvino-cpu", "int8-bf16", int8)
    assert options == {"precision": "bf16"}
    write_profile(_forced(fp32, "openvino-cpu", "int8-bf16", run_bundle=int8.path))
    settings = load_profile(fp32.path)
    assert Path(settings.bundle).resolve() == int8.path.resolve()
    assert (settings.backend, settings.options) == ("openvino-cpu", options)
    if "BF16" not in CAPS:
        with pytest.raises(BackendUnavailable, match="no native bf16"):
            Upscaler.create(int8, "openvino-cpu", **options)
        pytest.skip(f"this CPU's OpenVINO has no BF16 (capabilities {CAPS})")
    lr = _clip()
    ref = Upscaler.create(int8, "openvino-cpu").upscale(lr)
    up = Upscaler.create(int8, "openvino-cpu", **options)
    assert up.backend.describe() == "openvino-cpu (cpu, int8-bf16)"
    err = float(np.abs(up.upscale(lr) - ref).max())
    assert 1e-5 < err < 5e-2, err  # measured 2.3e-3 on a Zen 5 (avx512_bf16): BF16's 8 mantissa bits show, bounded


def test_profile_never_replaces_a_foreign_file(bundle):
    path = profile_path(bundle.path)
    path.write_text("my notes")
    with pytest.raises(ConfigError, match="not a vsrdeploy tune profile; move it away"):
        write_profile(_forced(bundle, "ort-cpu", "fp32"))
    assert path.read_text() == "my notes"
    path.unlink()
    write_profile(_forced(bundle, "ort-cpu", "fp32"))
    write_profile(_forced(bundle, "openvino-cpu", "fp32"))  # a previous profile is replaced
    assert json.loads(path.read_text())["backend"] == "openvino-cpu"


def test_int8_path_taken_by_something_else_is_left_alone(bundle):
    other = bundle.path.with_name("tiny-int8-cpu.vsr")
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(ConfigError, match="tiny-int8-cpu.vsr exists and is not a readable bundle"):
        _tune(bundle, backends=["ort-cpu"], precisions=["int8"])
    assert (other / "keep.txt").read_text() == "x"


def test_run_auto_without_or_with_stale_profile_says_what_to_do(bundle, video, tmp_path):
    ran = CliRunner().invoke(main, ["run", str(bundle.path), "-b", "auto", "-i", str(video), "-o", str(tmp_path / "o")])
    assert ran.exit_code != 0 and "no tuned profile beside" in ran.output and "vsrdeploy tune" in ran.output
    write_profile(_forced(bundle, "ort-cpu", "fp32"))
    manifest = bundle.path / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"opset"', '"opset" ', 1))  # the bundle changed
    with pytest.raises(ConfigError, match="changed or is gone"):
        load_profile(bundle.path)


def test_tune_rejects_bad_input(bundle):
    with pytest.raises(ConfigError, match="unknown precision"):
        _tune(bundle, precisions=["fp8"])
    with pytest.raises(ConfigError, match="unknown backend"):
        _tune(bundle, backends=["nope"])


@pytest.mark.slow
def test_tune_cli_end_to_end(bundle, video):
    """The command as users run it: each timed configuration in its own process."""
    ran = CliRunner().invoke(main, ["tune", str(bundle.path), "--frames", str(video), "--backends",
                                    "ort-cpu,openvino-cpu", "--precisions", "fp32,int8", "--max-frames", "2",
                                    "--calib-frames", "2", "--timing-frames", "2", "--repeat", "1", "--threads", "1"],
                             catch_exceptions=False)
    assert ran.exit_code == 0, ran.output
    assert "tuned at LR 40x36" in ran.output and "chosen (*)" in ran.output
    assert profile_path(bundle.path).exists()


def test_bench_rows_per_precision_and_derived_bundle(tiny_bundle, tmp_path):
    """bench's rows: the whole-clip baseline (ratio 1), each backend x precision, each derived bundle."""
    from vsrdeploy.evaluate.bench import BASELINE, BenchConfig, run_configs
    from vsrdeploy.calib.int8 import calibrate_bundle
    int8 = calibrate_bundle(tiny_bundle, _clip(t=3, seed=1), tmp_path / "i8.vsr", target="cpu", progress=False)
    configs = [BenchConfig(BASELINE), BenchConfig("openvino-cpu"), BenchConfig("openvino-cpu", "bf16"),
               BenchConfig("ort-cpu", "int8", bundle=str(int8)), BenchConfig("ort-cpu", "bf16")]
    rows = run_configs(str(tiny_bundle), configs, frames=3, size=(32, 32), warmup=1, repeat=1, window=2,
                       lookahead=1, threads=1, isolate=False)
    names = [r.name for r in rows]
    assert names == ["whole-clip torch", "openvino-cpu", "openvino-cpu/bf16", "ort-cpu/int8", "ort-cpu/bf16"]
    assert rows[0].ratio == 1.0 and rows[1].status == "ok" and rows[1].ratio > 0
    assert rows[3].status == "ok" and rows[3].peak_rss_mb > 0
    assert rows[4].status == "skipped" and "bf16 needs a converted bundle" in rows[4].reason
    if "BF16" in CAPS:
        assert rows[2].status == "ok", rows[2].reason
    else:
        assert rows[2].status == "skipped" and "no native bf16" in rows[2].reason


def test_bench_cli_runs_int8_bf16_on_the_extra_int8_bundle_only(bundle):
    """``bench --precisions int8-bf16``: rows for the ``--extra-bundle`` INT8 bundles (at int8 and int8-bf16),
    none for the FP32 bundle, which has no INT8 graph to run."""
    from vsrdeploy.calib.int8 import calibrate_bundle
    int8 = calibrate_bundle(bundle, _clip(t=3, seed=1), bundle.path.with_name("i8.vsr"), target="cpu", progress=False)
    ran = CliRunner().invoke(main, ["bench", str(bundle.path), "-b", "openvino-cpu", "--precisions", "fp32,int8-bf16",
                                    "--extra-bundle", str(int8), "--size", "32x32", "--frames", "2", "--repeat", "1",
                                    "--warmup", "1", "--threads", "1", "--json"], catch_exceptions=False)
    assert ran.exit_code == 0, ran.output
    rows = {r["name"]: r for r in json.loads(ran.stdout)["results"]}
    assert list(rows) == ["whole-clip torch", "openvino-cpu", "openvino-cpu/int8 (i8.vsr)",
                          "openvino-cpu/int8-bf16 (i8.vsr)"]
    mixed = rows["openvino-cpu/int8-bf16 (i8.vsr)"]
    alone = CliRunner().invoke(main, ["bench", str(bundle.path), "-b", "openvino-cpu", "--precisions", "int8-bf16"])
    assert alone.exit_code != 0 and "int8-bf16 runs an INT8 bundle: add --extra-bundle" in alone.output
    assert "Traceback" not in alone.output
    if "BF16" in CAPS:
        assert mixed["status"] == "ok" and mixed["fps"] > 0, mixed["reason"]
    else:
        assert mixed["status"] == "skipped" and "no native bf16" in mixed["reason"]


def test_run_profile_conflicting_backend_is_one_line_error(bundle, video, tmp_path):
    write_profile(_forced(bundle, "openvino-cpu", "fp32"))
    ran = CliRunner().invoke(main, ["run", str(bundle.path), "--profile", str(profile_path(bundle.path)), "-b",
                                    "ort-cpu", "-i", str(video), "-o", str(tmp_path / "o")])
    assert ran.exit_code == 1 and "the profile runs openvino-cpu, not -b ort-cpu" in ran.output
    assert "Traceback" not in ran.output


def test_a_damaged_or_escaping_profile_is_one_line(tmp_path):
    import json

    from vsrdeploy.errors import BundleError, ConfigError
    from vsrdeploy.evaluate.tune import PROFILE_KIND, PROFILE_VERSION, load_profile
    profile = tmp_path / "p.profile.json"
    profile.write_text(json.dumps({"kind": PROFILE_KIND, "version": PROFILE_VERSION, "bundle": "x.vsr"}))
    with pytest.raises(ConfigError, match=r"is damaged \(run_bundle, bundle_manifest_sha256"):
        load_profile("unused", str(profile), None)
    record = {"kind": PROFILE_KIND, "version": PROFILE_VERSION, "bundle": "../../etc", "run_bundle": "x.vsr",
              "bundle_manifest_sha256": "0", "run_bundle_manifest_sha256": "0", "backend": "ort-cpu",
              "precision": "fp32"}
    profile.write_text(json.dumps(record))
    with pytest.raises(BundleError, match=r"escapes the bundle directory"):
        load_profile("unused", str(profile), None)


def test_max_memory_keeps_a_larger_row_from_being_chosen(bundle):
    fast = TuneRow("openvino-cpu", "fp32", str(bundle.path), fps=12.0, peak_rss_mb=900.0, psnr_y_drop_db=0.0,
                   options={"keep_working_sets": 2})
    lean = TuneRow("openvino-cpu", "fp32", str(bundle.path), fps=10.0, peak_rss_mb=600.0, psnr_y_drop_db=0.0)
    assert choose([fast, lean], 0.05) is fast
    assert choose([fast, lean], 0.05, max_memory_mb=800) is lean
    assert fast.over_memory and not fast.within_budget and not lean.over_memory
    result = TuneResult(bundle=str(bundle.path), rows=[fast, lean], max_drop_db=0.05, size=(32, 32), threads=1,
                        window=4, lookahead=2, clip="x", fp32_psnr_y_db=30.0, chosen=lean, max_memory_mb=800)
    from vsrdeploy.evaluate.tune import format_tune
    table = format_tune(result)
    assert "peak RSS <= 800 MB" in table and "keep_working_sets=2" in table and "over memory budget" in table


def test_a_heap_keep_choice_says_what_its_memory_costs(bundle):
    from vsrdeploy.evaluate.tune import format_tune
    plain = TuneRow("openvino-cpu", "int8", str(bundle.path), fps=10.0, s_per_frame=0.1, peak_rss_mb=900.0,
                    psnr_y_drop_db=0.01)
    twin = TuneRow("openvino-cpu", "int8", str(bundle.path), fps=12.5, s_per_frame=0.08, peak_rss_mb=1600.0,
                   psnr_y_drop_db=0.01, heap="keep")
    rows = [plain, twin]
    result = TuneResult(bundle=str(bundle.path), rows=rows, max_drop_db=0.05, size=(32, 32), threads=1, window=4,
                        lookahead=2, clip="x", fp32_psnr_y_db=30.0, chosen=choose(rows, 0.05))
    assert result.chosen is twin and twin.label == "openvino-cpu/int8 heap=keep"
    assert "note: heap=keep made it 1.25x faster for +700 MB peak (1600 MB); --max-memory SIZE" in format_tune(result)
    result.max_memory_mb = 2000  # the user gave a bound: nothing to point out
    assert "note: heap" not in format_tune(result)


def test_profile_options_reach_the_backend_and_bad_ones_are_one_line(bundle):
    result = _forced(bundle, "openvino-cpu", "fp32")
    result.chosen.options = {"keep_working_sets": 2}
    path = write_profile(result)
    settings = load_profile(bundle.path)
    assert settings.options == {"precision": "fp32", "keep_working_sets": 2}
    up = Upscaler.create(Bundle(settings.bundle), settings.backend, **settings.options)
    assert up.backend.keep_working_sets == 2
    record = json.loads(path.read_text())
    for bad in ({"no_such_option": 1}, [1, 2]):
        path.write_text(json.dumps({**record, "options": bad}))
        with pytest.raises(ConfigError, match="damaged.*tune"):
            load_profile(bundle.path)
    path.write_text(json.dumps({k: v for k, v in record.items() if k != "options"}))  # written before 0.3.0
    assert load_profile(bundle.path).options == {"precision": "fp32"}


def test_profile_heap_reaches_run_and_a_bad_one_is_one_line(bundle, video, tmp_path):
    result = _forced(bundle, "ort-cpu", "fp32")
    result.chosen.heap = "keep"
    path = write_profile(result)
    assert load_profile(bundle.path).heap == "keep"
    record = json.loads(path.read_text())
    ran = CliRunner().invoke(main, ["run", str(bundle.path), "-b", "auto", "-i", str(video), "-o",
                                    str(tmp_path / "a.mp4")], catch_exceptions=False)
    assert ran.exit_code == 0 and "heap keep" in ran.output, ran.output
    path.write_text(json.dumps({**record, "heap": "hoard"}))
    with pytest.raises(ConfigError, match="damaged.*heap policy must be one of return, keep"):
        load_profile(bundle.path)
    path.write_text(json.dumps({k: v for k, v in record.items() if k != "heap"}))  # written before 0.3.14
    assert load_profile(bundle.path).heap == "return"


@pytest.fixture(scope="module")
def pp_forms(tmp_path_factory):
    """A tiny BasicVSR++ exported in both DCN forms, side by side (as the cache keeps them)."""
    import torch

    import vsrdeploy
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr_pp", mid_channels=8, num_blocks=1).eval()
    where = tmp_path_factory.mktemp("pp")
    return (Bundle(vsrdeploy.export_onnx(net, where / "pp-decomposed.vsr", dcn="decomposed")),
            Bundle(vsrdeploy.export_onnx(net, where / "pp-native.vsr", dcn="native")))


def test_tune_times_the_native_dcn_form_where_a_runtime_imports_it(pp_forms):
    decomposed, native = pp_forms
    result = _tune(decomposed, alternates=[native], precisions=["fp32"], option_variants={})
    rows = {r.label: r for r in result.rows}
    for label in ("ort-cpu/fp32 dcn=native", "ort-cpu/fp32 dcn=decomposed", "openvino-cpu/fp32 dcn=decomposed",
                  "torch/fp32 dcn=decomposed"):
        r = rows[label]
        assert r.status == "ok" and r.fps > 0 and np.isfinite(r.psnr_y_drop_db), (label, r.reason)
    assert abs(rows["ort-cpu/fp32 dcn=native"].psnr_y_drop_db) < 1e-3  # the same network, another graph
    assert rows["ort-cpu/fp32 dcn=native"].bundle == str(native.path)
    ov_native = rows["openvino-cpu/fp32 dcn=native"]
    assert ov_native.status == "skipped" and "cannot import DeformConv" in ov_native.reason
    torch_native = rows["torch/fp32 dcn=native"]
    assert torch_native.status == "skipped" and "same for every export form" in torch_native.reason
    assert result.chosen is not None and result.chosen.fps == max(r.fps for r in result.rows if r.within_budget)


@pytest.mark.slow
def test_tune_calibrates_int8_from_each_dcn_form(pp_forms):
    decomposed, native = pp_forms
    result = _tune(decomposed, alternates=[native], backends=["ort-cpu"], precisions=["int8"], option_variants={})
    rows = {r.label: r for r in result.rows}
    for form in ("native", "decomposed"):  # each calibrated from its own FP32 export, written beside it
        r = rows[f"ort-cpu/int8:cpu dcn={form}"]
        assert r.status == "ok" and r.fps > 0 and np.isfinite(r.psnr_y_drop_db), r.reason
        assert r.bundle.endswith(f"pp-{form}-int8-cpu.vsr")


def test_a_profile_choosing_the_native_form_runs_it(pp_forms):
    decomposed, native = pp_forms
    write_profile(_forced(decomposed, "ort-cpu", "fp32", run_bundle=native.path))
    settings = load_profile(decomposed.path)
    assert settings.bundle == str(native.path) and settings.backend == "ort-cpu"


def test_tune_refuses_an_alternate_of_another_network(pp_forms, tiny_bundle):
    decomposed, _ = pp_forms
    with pytest.raises(ConfigError, match="not another export"):
        _tune(decomposed, alternates=[Bundle(tiny_bundle)], precisions=["fp32"])


def test_dcn_both_needs_a_checkpoint(bundle, video):
    ran = CliRunner().invoke(main, ["tune", str(bundle.path), "--frames", str(video), "--dcn", "both"])
    assert ran.exit_code != 0 and "--dcn both needs a checkpoint" in ran.output
    assert len(ran.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_tune_dcn_both_from_a_checkpoint_then_run_auto(video, tmp_path, monkeypatch):
    """The command as users run it: both forms exported into the cache, ort-cpu timed on each, the profile
    beside the decomposed bundle, and `run -b auto` runs whatever it chose."""
    import torch

    import vsrdeploy
    monkeypatch.setenv("VSRDEPLOY_CACHE", str(tmp_path / "cache"))
    torch.manual_seed(0)
    ckpt = tmp_path / "pp.pth"
    torch.save(vsrdeploy.build_model("basicvsr_pp", mid_channels=8, num_blocks=1).eval().state_dict(), ckpt)
    ran = CliRunner().invoke(main, ["tune", str(ckpt), "--frames", str(video), "--dcn", "both", "--backends",
                                    "ort-cpu,openvino-cpu", "--precisions", "fp32", "--max-frames", "2",
                                    "--calib-frames", "2", "--timing-frames", "2", "--repeat", "1", "--threads", "1"],
                             catch_exceptions=False)
    assert ran.exit_code == 0, ran.output
    assert "ort-cpu/fp32 dcn=native" in ran.output and "ort-cpu/fp32 dcn=decomposed" in ran.output
    assert "cannot import DeformConv" in ran.output  # openvino-cpu's native row, with the reason
    out = tmp_path / "up.mp4"
    ran = CliRunner().invoke(main, ["run", str(ckpt), "-b", "auto", "-i", str(video), "-o", str(out)],
                             catch_exceptions=False)
    assert ran.exit_code == 0, ran.output
    assert "wrote 6 frames" in ran.output


def test_int8_form_with_another_recipe_is_left_alone(bundle):
    """A ``-int8-cpu-concat`` bundle calibrated with other exclusions is not reused, nor overwritten."""
    from vsrdeploy.calib.int8 import calibrate_bundle
    path = bundle.path.with_name("tiny-int8-cpu-concat.vsr")
    calibrate_bundle(bundle, _clip(t=3, seed=1), path, target="cpu", progress=False)  # default exclusions
    before = (path / "manifest.json").read_bytes()
    with pytest.raises(ConfigError, match="is not the cpu-concat INT8 form of tiny.vsr"):
        _tune(bundle, backends=["ort-cpu"], precisions=["int8"])
    assert (path / "manifest.json").read_bytes() == before
    shutil.rmtree(path)
