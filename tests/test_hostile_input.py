"""Hostile and careless input (issue 11): bundles, manifests, checkpoints, configs and output paths.

Every case asserts the exact outcome: the exception type and message (``match=``), or for the CLI the exit
code, a one-line message and no traceback; files that must survive are compared byte for byte. The video,
pipe and resume cases live in test_hostile_io.py, the compare/bench option cases in test_hostile_compare.py.
"""
from __future__ import annotations

import copy
import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import vsrdeploy
from vsrdeploy.bundle import Bundle, staged_dir, write_manifest
from vsrdeploy.cli import main
from vsrdeploy.errors import BundleError, CheckpointError, ConfigError, OutputError
from vsrdeploy.manifest import description_sha256

pytest.importorskip("onnx")

# -- helpers ------------------------------------------------------------------------------------


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_clean_failure(result, pattern: str, code: int = 1):
    """Exit ``code``, one 'Error: ...' line matching ``pattern``, no traceback."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert __import__("re").search(pattern, errors[0]), errors[0]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr", mid_channels=8, num_blocks=1)
    path = tmp_path_factory.mktemp("ckpt") / "tiny_basicvsr.pth"
    torch.save({"state_dict": {f"generator.{k}": v for k, v in net.state_dict().items()}}, path)
    return path


@pytest.fixture()
def bundle_copy(tiny_bundle, tmp_path) -> Path:
    dst = tmp_path / "copy.vsr"
    shutil.copytree(tiny_bundle, dst)
    return dst


def read_manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def resign(path: Path, manifest: dict) -> None:
    """Write ``manifest`` with a matching description hash, as a careful attacker would."""
    write_manifest(path, manifest)


# -- 1. outputs never replace what is not a bundle ------------------------------------------------


def test_export_into_a_folder_with_user_files_is_refused(tiny_checkpoint, tmp_path):
    out = tmp_path / "p"
    out.mkdir()
    (out / "t.txt").write_text("keep")
    before = snapshot(out)
    result = cli("export", tiny_checkpoint, "-o", out)
    assert_clean_failure(result, r"exists and is not a vsrdeploy bundle; refusing to write into it")
    assert snapshot(out) == before


def test_export_into_the_current_directory_is_refused(tiny_checkpoint, tmp_path, monkeypatch):
    (tmp_path / "holiday.mp4").write_bytes(b"\x00\x01video")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("a")
    before = snapshot(tmp_path)
    monkeypatch.chdir(tmp_path)
    result = cli("export", tiny_checkpoint, "-o", ".")
    assert_clean_failure(result, r"is not a vsrdeploy bundle")
    assert snapshot(tmp_path) == before


def test_export_onto_an_existing_file_is_refused(tiny_checkpoint, tmp_path):
    target = tmp_path / "x.vsr"
    target.write_bytes(b"not a folder")
    result = cli("export", tiny_checkpoint, "-o", target)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "is a file" in result.stderr
    assert target.read_bytes() == b"not a folder"


def test_convert_into_an_existing_folder_is_refused(tiny_bundle, tmp_path):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "photo.png").write_bytes(b"\x89PNG")
    before = snapshot(out)
    result = cli("convert", tiny_bundle, "-o", out)
    assert_clean_failure(result, r"not a vsrdeploy bundle")
    assert snapshot(out) == before


def test_calibrate_into_an_existing_folder_is_refused(tiny_bundle, tmp_path):
    out = tmp_path / "existing"
    out.mkdir()
    (out / "a.txt").write_text("x")
    clip = tmp_path / "clip"
    clip.mkdir()
    result = cli("calibrate", tiny_bundle, "--frames", clip, "-o", out)
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert (out / "a.txt").read_text() == "x"


def test_existing_bundle_is_replaced_only_with_force(tiny_checkpoint, tiny_bundle, tmp_path):
    out = tmp_path / "b.vsr"
    shutil.copytree(tiny_bundle, out)
    before = snapshot(out)
    assert_clean_failure(cli("export", tiny_checkpoint, "-o", out), r"already exists; pass --force")
    assert snapshot(out) == before
    result = cli("export", tiny_checkpoint, "-o", out, "--force")
    assert result.exit_code == 0, result.output
    Bundle(out)
    assert read_manifest(out)["source"]["checkpoint"] == tiny_checkpoint.name
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".b.vsr.")]  # no staging left behind


def test_force_never_replaces_a_bundle_holding_other_files(tiny_checkpoint, tiny_bundle, tmp_path):
    out = tmp_path / "b.vsr"
    shutil.copytree(tiny_bundle, out)
    (out / "my_notes.txt").write_text("mine")
    result = cli("export", tiny_checkpoint, "-o", out, "--force")
    assert_clean_failure(result, r"also holds other files \(my_notes.txt\)")
    assert (out / "my_notes.txt").read_text() == "mine"


def test_empty_existing_folder_is_used(tiny_checkpoint, tmp_path):
    out = tmp_path / "empty.vsr"
    out.mkdir()
    assert cli("export", tiny_checkpoint, "-o", out).exit_code == 0
    Bundle(out)


def test_convert_refuses_to_overwrite_its_source(tiny_bundle, tmp_path):
    src = tmp_path / "src.vsr"
    shutil.copytree(tiny_bundle, src)
    before = snapshot(src)
    assert_clean_failure(cli("convert", src, "-o", src), r"already exists; pass --force")
    assert_clean_failure(cli("convert", src, "-o", src, "--force"), r"refusing to overwrite the source bundle")
    assert snapshot(src) == before


def test_full_disk_during_export_is_one_line_and_leaves_nothing(tiny_checkpoint, tmp_path, monkeypatch):
    import vsrdeploy.export.onnx_export as onnx_export

    def no_space(obj, f, *a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(f))

    monkeypatch.setattr(onnx_export.torch, "save", no_space)
    out = tmp_path / "full.vsr"
    result = cli("export", tiny_checkpoint, "-o", out)
    assert_clean_failure(result, r"weights.pth: No space left on device \(check free space")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_staging_keeps_the_old_bundle(tiny_bundle, tmp_path):
    out = tmp_path / "b.vsr"
    shutil.copytree(tiny_bundle, out)
    before = snapshot(out)
    with pytest.raises(RuntimeError, match="killed"):
        with staged_dir(out, force=True) as tmp:
            (tmp / "half").write_text("x")
            raise RuntimeError("killed")
    assert snapshot(out) == before
    assert [p.name for p in tmp_path.iterdir()] == ["b.vsr"]


def test_concurrent_cache_exports_keep_the_first(tiny_bundle, tmp_path):
    out = tmp_path / "cache.vsr"
    with staged_dir(out, keep_existing=True) as tmp:
        shutil.copytree(tiny_bundle, out)  # another process finished first
        (tmp / "manifest.json").write_text("{}")
    assert Bundle(out).manifest == read_manifest(tiny_bundle)


# -- 4. manifest structure, generated systematically --------------------------------------------

REQUIRED = ["model", "scale", "pad_multiple", "min_size", "opset", "schedule", "precision", "dcn", "files",
            "weights", "cells", "description_sha256"]
WRONG_TYPE = {dict: [1, 2], list: {"a": 1}, str: 5, int: "x", bool: "yes", float: "x"}
CELL_KEYS = ["file", "inputs", "outputs", "stateless", "ops"]


@pytest.mark.parametrize("key", REQUIRED)
def test_dropping_a_manifest_key_is_named(bundle_copy, key):
    manifest = read_manifest(bundle_copy)
    del manifest[key]
    if key == "description_sha256":
        (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    else:
        resign(bundle_copy, manifest)
    with pytest.raises(BundleError, match=rf"invalid manifest .*missing key '{key}'"):
        Bundle(bundle_copy)


@pytest.mark.parametrize("key", REQUIRED + ["static_shape", "simplified", "source", "versions", "created"])
def test_a_manifest_key_of_the_wrong_type_is_named(bundle_copy, key):
    manifest = read_manifest(bundle_copy)
    manifest[key] = WRONG_TYPE[type(manifest[key])] if manifest.get(key) is not None else "x"
    if key == "description_sha256":
        (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    else:
        resign(bundle_copy, manifest)
    with pytest.raises(BundleError, match=rf"manifest\.{key} must be"):
        Bundle(bundle_copy)


@pytest.mark.parametrize("key", CELL_KEYS)
def test_dropping_a_cell_key_is_named(bundle_copy, key):
    manifest = read_manifest(bundle_copy)
    del manifest["cells"]["warp"][key]
    resign(bundle_copy, manifest)
    with pytest.raises(BundleError, match=rf"cells\['warp'\]: missing key '{key}'"):
        Bundle(bundle_copy)


@pytest.mark.parametrize("key", CELL_KEYS)
def test_a_cell_key_of_the_wrong_type_is_named(bundle_copy, key):
    manifest = read_manifest(bundle_copy)
    cell = manifest["cells"]["upsample"]
    cell[key] = WRONG_TYPE[type(cell[key])]
    resign(bundle_copy, manifest)
    with pytest.raises(BundleError, match=rf"cells\['upsample'\]\.{key} must be"):
        Bundle(bundle_copy)


def test_every_problem_is_reported_in_one_message(bundle_copy):
    manifest = read_manifest(bundle_copy)
    del manifest["model"]
    manifest["cells"] = list(manifest["cells"])
    manifest["scale"] = "4"
    resign(bundle_copy, manifest)
    with pytest.raises(BundleError, match=r"\(3 problems\): .*missing key 'model'.*scale must be an integer.*"
                                          r"cells must be an object"):
        Bundle(bundle_copy)


def test_a_dropped_cell_is_named(bundle_copy):
    manifest = read_manifest(bundle_copy)
    del manifest["cells"]["upsample"]
    manifest["versions"]["vsrdeploy"] = "0.0.9"
    resign(bundle_copy, manifest)
    with pytest.raises(BundleError, match=r"cell\(s\) upsample of basicvsr are missing from the manifest"):
        Bundle(bundle_copy)
    # cells change between versions (BasicVSR++'s reconstruction split from its x4 tail in 0.2.0): say so
    with pytest.raises(BundleError, match=r"this bundle: 0\.0\.9, this vsrdeploy: .*\); export the checkpoint again"):
        Bundle(bundle_copy)


def test_an_extra_cell_is_named(bundle_copy):
    manifest = read_manifest(bundle_copy)
    manifest["cells"]["evil"] = copy.deepcopy(manifest["cells"]["warp"])
    resign(bundle_copy, manifest)
    with pytest.raises(BundleError, match=r"lists cell\(s\) evil that basicvsr does not have"):
        Bundle(bundle_copy)


def test_renamed_cell_port_is_named(bundle_copy):
    manifest = read_manifest(bundle_copy)
    manifest["cells"]["warp"]["outputs"][0]["name"] = "renamed"
    resign(bundle_copy, manifest)
    with pytest.raises(BundleError, match=r"cells\['warp'\]\.outputs are \['renamed'\]"):
        Bundle(bundle_copy)


def test_a_files_entry_that_is_a_directory_is_refused(bundle_copy):
    manifest = read_manifest(bundle_copy)
    manifest["files"]["cells"] = "0" * 64
    resign(bundle_copy, manifest)
    with pytest.raises(BundleError, match=r"cells listed in the manifest is not a regular file"):
        Bundle(bundle_copy)


def test_a_bad_digest_is_refused(bundle_copy):
    manifest = read_manifest(bundle_copy)
    manifest["files"]["weights.pth"] = "abc"
    resign(bundle_copy, manifest)
    with pytest.raises(BundleError, match=r"files\['weights.pth'\] must be a sha256 hex digest"):
        Bundle(bundle_copy)


def test_old_format_asks_for_a_re_export(bundle_copy):
    manifest = read_manifest(bundle_copy)
    manifest["format_version"] = 1
    resign(bundle_copy, manifest)
    with pytest.raises(BundleError, match=r"bundle format 1; this vsrdeploy reads format 2: re-export"):
        Bundle(bundle_copy)


@pytest.mark.parametrize("field", ["cell", "weights", "files"])
@pytest.mark.parametrize("evil", ["../outside.onnx", "/etc/passwd", "cells/../../x.onnx"])
def test_every_manifest_path_that_escapes_is_refused(bundle_copy, field, evil):
    manifest = read_manifest(bundle_copy)
    manifest["files"][evil] = "0" * 64
    if field == "cell":
        manifest["cells"]["flow"]["file"] = evil
    elif field == "weights":
        manifest["weights"] = evil
    resign(bundle_copy, manifest)
    with pytest.raises(BundleError, match=r"absolute|escapes the bundle directory"):
        Bundle(bundle_copy)


def test_a_non_json_manifest(bundle_copy):
    (bundle_copy / "manifest.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(BundleError, match=r"is not valid JSON"):
        Bundle(bundle_copy)


def test_a_manifest_that_is_a_list(bundle_copy):
    (bundle_copy / "manifest.json").write_text("[1, 2]")
    with pytest.raises(BundleError, match=r"bundle format None|must be a JSON object"):
        Bundle(bundle_copy)


def test_manifest_fuzz_never_raises_anything_but_bundle_error(tiny_bundle, tmp_path):
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    original = read_manifest(tiny_bundle)
    keys = sorted(original)
    json_values = st.recursive(st.none() | st.booleans() | st.integers(-10**9, 10**9) | st.text(max_size=5),
                               lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                              max_size=3),
                               max_leaves=5)

    @hypothesis.settings(max_examples=40, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    @hypothesis.given(key=st.sampled_from(keys), value=json_values, resigned=st.booleans())
    def check(key, value, resigned):
        path = tmp_path / "fuzz.vsr"
        if not path.exists():
            shutil.copytree(tiny_bundle, path)
        manifest = copy.deepcopy(original)
        manifest[key] = value
        if resigned:
            write_manifest(path, manifest)
        else:
            (path / "manifest.json").write_text(json.dumps(manifest))
        try:
            Bundle(path, verify=False)
        except BundleError:
            pass

    check()


# -- 5/6. the model description and the weights are covered by hashes ----------------------------


def test_edited_model_config_is_refused_without_building(bundle_copy):
    manifest = read_manifest(bundle_copy)
    manifest["model"]["config"]["num_blocks"] = 1000000
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))  # edited by hand: hash no longer matches
    with pytest.raises(BundleError, match=r"description_sha256 does not match.*num_blocks must be between 0 and 256"):
        Bundle(bundle_copy)


def test_resigned_huge_config_is_refused_by_bounds(bundle_copy):
    manifest = read_manifest(bundle_copy)
    manifest["model"]["config"]["num_blocks"] = 1000000
    resign(bundle_copy, manifest)
    with pytest.raises(BundleError, match=r"num_blocks must be between 0 and 256, got 1000000"):
        Bundle(bundle_copy)


@pytest.mark.parametrize("value, message", [("abc", "mid_channels must be an integer"),
                                            (2.5, "mid_channels must be an integer"),
                                            (True, "mid_channels must be an integer"),
                                            (-1, "mid_channels must be between 1 and 512"),
                                            ([1], "mid_channels must be an integer")])
def test_bad_config_value_in_manifest(bundle_copy, value, message):
    manifest = read_manifest(bundle_copy)
    manifest["model"]["config"]["mid_channels"] = value
    resign(bundle_copy, manifest)
    with pytest.raises(BundleError, match=message):
        Bundle(bundle_copy)


def test_unknown_config_key_and_arch(bundle_copy):
    manifest = read_manifest(bundle_copy)
    manifest["model"]["config"]["evil"] = 1
    resign(bundle_copy, manifest)
    with pytest.raises(BundleError, match=r"basicvsr has no option\(s\) evil"):
        Bundle(bundle_copy)
    manifest["model"]["arch"] = "os.system"
    resign(bundle_copy, manifest)
    with pytest.raises(BundleError, match=r"unknown architecture 'os.system'"):
        Bundle(bundle_copy)


def test_scale_that_disagrees_with_the_network(bundle_copy):
    manifest = read_manifest(bundle_copy)
    manifest["scale"] = 2
    resign(bundle_copy, manifest)
    with pytest.raises(BundleError, match=r"manifest.scale is 2 but basicvsr has 4"):
        Bundle(bundle_copy)


def test_weights_pointing_at_an_unlisted_file_are_refused(bundle_copy):
    shutil.copy(bundle_copy / "weights.pth", bundle_copy / "other.pth")
    manifest = read_manifest(bundle_copy)
    manifest["weights"] = "other.pth"
    resign(bundle_copy, manifest)
    with pytest.raises(BundleError, match=r"weights 'other.pth' has no hash in files"):
        vsrdeploy.open_bundle(bundle_copy, backend="torch")


def test_tampered_weights_are_refused(bundle_copy):
    weights = bundle_copy / "weights.pth"
    state = torch.load(weights, weights_only=True)
    next(iter(state.values())).add_(1.0)
    torch.save(state, weights)
    with pytest.raises(BundleError, match=r"weights.pth does not match its sha256"):
        vsrdeploy.open_bundle(bundle_copy, backend="torch")


def test_description_hash_is_stable_and_excludes_itself(tiny_bundle):
    manifest = read_manifest(tiny_bundle)
    assert manifest["description_sha256"] == description_sha256(manifest)
    assert description_sha256({**manifest, "description_sha256": "x"}) == manifest["description_sha256"]


@pytest.mark.parametrize("command", [["check", "{b}", "--target", "ort"], ["convert", "{b}", "-o", "{o}"],
                                     ["run", "{b}", "-b", "torch", "-i", "{i}", "-o", "{o}"]])
def test_cli_refuses_a_tampered_bundle(bundle_copy, tmp_path, command):
    import numpy as np
    from PIL import Image
    frames = tmp_path / "frames"
    frames.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(frames / "0001.png")
    manifest = read_manifest(bundle_copy)
    manifest["cells"] = list(manifest["cells"])
    resign(bundle_copy, manifest)
    out = tmp_path / "out_frames"
    result = cli(*[c.format(b=bundle_copy, o=out, i=frames) for c in command])
    assert_clean_failure(result, r"invalid manifest .*cells must be an object")
    assert not out.exists()


# -- 7. TensorRT engines are verified; the plugin never comes from the bundle ----------------------


def _fake_engines(bundle: Path, entries: dict) -> None:
    folder = bundle / "engines" / "tensorrt"
    folder.mkdir(parents=True)
    (folder / "index-fp32.json").write_text(json.dumps({
        "precision": "fp32", "profile": {}, "tensorrt": "10.16", "gpu": "x", "sm": "9.0",
        "plugin": "/tmp/evil.so", "cells": entries}))


def _plan_entries(bundle: Path, names, content=b"plan") -> dict:
    import hashlib
    folder = bundle / "engines" / "tensorrt"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name in names:
        (folder / f"{name}.plan").write_bytes(content)
        out[name] = {"file": f"{name}.plan", "sha256": hashlib.sha256(content).hexdigest()}
    return out


def test_engine_index_is_verified(bundle_copy):
    from vsrdeploy.export.tensorrt import read_engine_index
    b = Bundle(bundle_copy)
    entries = _plan_entries(bundle_copy, b.cells)
    _fake_engines_path = bundle_copy / "engines" / "tensorrt" / "index-fp32.json"
    _fake_engines_path.write_text(json.dumps({"precision": "fp32", "profile": {}, "tensorrt": "10.16", "gpu": "x",
                                              "sm": "9.0", "plugin": "/tmp/evil.so", "cells": entries}))
    index, plans = read_engine_index(b, "fp32")
    assert set(plans) == set(b.cells) and all(p == b"plan" for p in plans.values())
    (bundle_copy / "engines" / "tensorrt" / "warp.plan").write_bytes(b"evil")
    with pytest.raises(BundleError, match=r"warp.plan does not match its sha256 in index-fp32.json"):
        read_engine_index(b, "fp32")


@pytest.mark.parametrize("evil", ["../../weights.pth", "/etc/passwd"])
def test_engine_plan_paths_stay_inside_the_bundle(bundle_copy, evil):
    from vsrdeploy.export.tensorrt import read_engine_index
    b = Bundle(bundle_copy)
    entries = {name: {"file": evil, "sha256": "0" * 64} for name in b.cells}
    _fake_engines(bundle_copy, entries)
    with pytest.raises(BundleError, match=r"absolute|escapes the bundle directory"):
        read_engine_index(b, "fp32")


def test_old_engine_index_asks_for_a_rebuild(bundle_copy):
    from vsrdeploy.export.tensorrt import read_engine_index
    b = Bundle(bundle_copy)
    _fake_engines(bundle_copy, {name: f"{name}.plan" for name in b.cells})
    with pytest.raises(BundleError, match=r"damaged or from an older vsrdeploy; run `vsrdeploy build .* --rebuild`"):
        read_engine_index(b, "fp32")


# -- checkpoints and --config values ---------------------------------------------------------------


@pytest.mark.parametrize("value, message", [("abc", r"mid_channels must be an integer, got 'abc'"),
                                            ("-1", r"mid_channels must be between 1 and 512, got -1"),
                                            ("2.5", r"mid_channels must be an integer, got 2.5"),
                                            ("[1]", r"mid_channels must be an integer, got \[1\]"),
                                            ("100000", r"mid_channels must be between 1 and 512")])
def test_bad_config_flag_is_one_line(tiny_checkpoint, tmp_path, value, message):
    result = cli("export", tiny_checkpoint, "-o", tmp_path / "o.vsr", "--config", f"mid_channels={value}")
    assert_clean_failure(result, message)
    assert not (tmp_path / "o.vsr").exists()


def test_unknown_config_key_flag(tiny_checkpoint):
    assert_clean_failure(cli("inspect", tiny_checkpoint, "--config", "blocks=3"), r"basicvsr has no option\(s\) blocks")


def test_config_flag_without_equals(tiny_checkpoint):
    result = cli("inspect", tiny_checkpoint, "--config", "mid_channels")
    assert result.exit_code == 2 and "expected KEY=VALUE" in result.stderr


def test_build_model_validates_every_value():
    with pytest.raises(ConfigError, match=r"num_blocks must be an integer.*mid_channels must be between"):
        vsrdeploy.build_model("basicvsr", num_blocks="2", mid_channels=0)
    with pytest.raises(ConfigError, match=r"is_low_res_input must be true or false"):
        vsrdeploy.build_model("basicvsr_pp", is_low_res_input=1)
    with pytest.raises(ConfigError, match=r"max_residue_magnitude must be a finite number"):
        vsrdeploy.build_model("basicvsr_pp", max_residue_magnitude=float("nan"))
    with pytest.raises(ConfigError, match=r"depths must be a list of 1 to 16 integers"):
        vsrdeploy.build_model("psrt_recurrent", depths=[1, "2"])


def test_random_bytes_are_not_called_python_objects(tmp_path):
    path = tmp_path / "random.pth"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError, match=r"not a PyTorch checkpoint") as info:
        vsrdeploy.load_checkpoint(path)
    assert "Python objects" not in str(info.value)


class _NotATensor:
    pass


def test_pickled_objects_are_named_and_never_run(tmp_path):
    path = tmp_path / "objects.pth"
    torch.save({"state_dict": _NotATensor()}, path)
    with pytest.raises(CheckpointError, match=r"holds Python objects that torch.load\(weights_only=True\) refuses"):
        vsrdeploy.load_checkpoint(path)


def test_empty_and_directory_checkpoints(tmp_path):
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"truncated or not a PyTorch checkpoint"):
        vsrdeploy.load_checkpoint(tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match=r"is a directory"):
        vsrdeploy.load_checkpoint(tmp_path)


def test_output_error_is_a_vsrdeploy_error():
    assert issubclass(OutputError, vsrdeploy.errors.VSRDeployError)


def test_an_empty_clip_does_not_say_lower_skip(tmp_path):
    from vsrdeploy.errors import InputError
    from vsrdeploy.evaluate.compare import read_clip
    empty = tmp_path / "frames"
    empty.mkdir()
    (empty / "a.png").write_bytes(b"")  # not an image
    with pytest.raises((InputError, OutputError, vsrdeploy.errors.VSRDeployError)) as info:
        read_clip(str(empty), 4)
    assert "lower --skip" not in str(info.value)
    with pytest.raises(ConfigError, match=r"frame count must be at least 1, got 0"):
        read_clip(str(empty), 0)


def test_memory_is_read_with_psutil():
    from vsrdeploy.evaluate.memory import PeakRSS, peak_rss_mb, rss_mb
    assert rss_mb() > 0 and peak_rss_mb() >= rss_mb() - 1
    with PeakRSS() as m:
        block = bytearray(64 * 2**20)
        block[::4096] = b"x" * len(block[::4096])
    assert m.increase_mb > 32
