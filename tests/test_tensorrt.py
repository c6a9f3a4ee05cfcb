"""TensorRT engines, the DCN plugin and its CUDA kernel.

Here (no GPU, no TensorRT): engine-cache keys, profiles, clear errors, and the CUDA sources compiling
with nvcc. Gated on `tensorrt` / a CUDA GPU: engine build + per-cell parity with ort-cpu, and the CUDA
DCN kernel against the pure-PyTorch DCN.
"""
import dataclasses
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

import vsrdeploy
from vsrdeploy.bundle import Bundle
from vsrdeploy.errors import BackendUnavailable, ConfigError
from vsrdeploy.export import tensorrt as trt_export
from vsrdeploy.export.tensorrt import Profile, engine_key, make_profile, resolve_shape

PLUGIN_SRC = Path(vsrdeploy.__file__).parent / "export" / "plugins" / "dcn"
NVCC = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
HAS_TRT = False
try:
    import tensorrt  # noqa: F401
    HAS_TRT = True
except ImportError:
    pass
GPU = torch.cuda.is_available()


def test_resolve_shape():
    assert resolve_shape(["N", 16, "H", "W"], 2, 60, 80) == (2, 16, 60, 80)
    assert resolve_shape(["N", 3, "4H", "4W"], 1, 60, 80) == (1, 3, 240, 320)
    assert resolve_shape(["N", 2, "H/4", "W/4"], 1, 64, 128) == (1, 2, 16, 32)
    with pytest.raises(ConfigError):
        resolve_shape(["N", "Q"], 1, 2, 3)


def test_engine_key_changes_with_every_input():
    base = dict(onnx_sha256="a" * 64, trt_version="10.13.0", gpu_name="Orin", compute_capability="8.7",
                precision="fp16", profile=Profile((64, 64), (180, 320), (540, 960), 8), plugin_sha256=None)
    key = engine_key(**base)
    assert key == engine_key(**base)  # deterministic
    changes = {"onnx_sha256": "b" * 64, "trt_version": "11.0.0", "gpu_name": "H100", "compute_capability": "9.0",
               "precision": "int8", "profile": Profile((64, 64), (180, 320), (720, 1280), 8),
               "plugin_sha256": "c" * 64}
    for field, value in changes.items():
        assert engine_key(**{**base, field: value}) != key, field
    assert engine_key(**{**base, "profile": dataclasses.replace(base["profile"], max_batch=4)}) != key


def test_profile_rounds_and_validates(tiny_bundle):
    b = Bundle(tiny_bundle)
    p = make_profile(b, (60, 70), (90, 100), (100, 130))
    assert p.min_hw == (60, 70) and p.max_hw == (100, 130)  # BasicVSR pads to no multiple
    with pytest.raises(ConfigError, match="min <= opt <= max"):
        make_profile(b, (100, 100), (64, 64), (200, 200))
    shapes = p.shapes(b.cells["upsample"].inputs[0]["shape"], b.cells["upsample"].stateless)
    assert shapes[0][0] == 1 and shapes[2][0] == 8 and shapes[2][2:] == (100, 130)


def test_tile_profile_is_the_tile_shape_with_every_tile_on_the_batch_axis(tiny_bundle):
    from vsrdeploy.export.tensorrt import tile_profile
    from vsrdeploy.models.tiles import TileGrid
    b = Bundle(tiny_bundle)
    p = tile_profile(b, (270, 480), 128, 16)
    tiles = len(TileGrid(270, 480, 128, 128, 16))
    assert p.min_hw == p.opt_hw == p.max_hw == (128, 128) and p.state_batch == tiles > 1
    trunk = b.cells["backward_trunk"]
    lo, _, hi = p.shapes(trunk.inputs[0]["shape"], trunk.stateless)  # stateful: every tile at once
    assert lo[0] == 1 and hi[0] == tiles and hi[2:] == (128, 128)
    with pytest.raises(ConfigError, match="covers the whole"):
        tile_profile(b, (100, 100), 128, 16)
    with pytest.raises(ConfigError, match="overlap"):
        tile_profile(b, (270, 480), 16, 16)


def test_build_tile_options_are_checked_before_tensorrt(tiny_bundle):
    from click.testing import CliRunner

    from vsrdeploy.cli import main
    result = CliRunner().invoke(main, ["build", str(tiny_bundle), "--tile", "128"])
    assert result.exit_code != 0 and "--tile and --frame together" in result.output
    assert "Traceback" not in result.output


def test_profile_respects_padding(tmp_path):
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr_pp", mid_channels=8, num_blocks=1, is_low_res_input=False).eval()
    b = Bundle(vsrdeploy.export_onnx(net, tmp_path / "hr.vsr"))
    p = make_profile(b, (255, 257), (300, 301), (402, 403))
    assert all(v % 4 == 0 for hw in (p.min_hw, p.opt_hw, p.max_hw) for v in hw)
    assert p.min_hw == (256, 260)


@pytest.mark.skipif(HAS_TRT, reason="checks the message shown when TensorRT is missing")
def test_build_without_tensorrt_says_how_to_get_it(tiny_bundle):
    with pytest.raises(BackendUnavailable, match="TensorRT is not installed"):
        trt_export.build_engines(tiny_bundle)


def test_build_refuses_wrong_precision_combinations(tiny_bundle):
    with pytest.raises(ConfigError, match="calibrate"):
        trt_export.build_engines(tiny_bundle, precision="int8")


def test_tensorrt_major_version_gate():
    assert trt_export.tensorrt_major("10.13.2.6") == 10
    assert trt_export.tensorrt_major("11.0.0") == 11
    with pytest.raises(BackendUnavailable):
        trt_export.tensorrt_major("ten")


@pytest.mark.skipif(NVCC is None, reason="nvcc not found")
def test_dcn_kernel_compiles_with_nvcc(tmp_path):
    cmd = [NVCC, "-std=c++17", "-O2", "-c", str(PLUGIN_SRC / "dcn_kernel.cu"), "-o", str(tmp_path / "dcn.o"),
           "-gencode", "arch=compute_87,code=sm_87", "-gencode", "arch=compute_90,code=sm_90",
           "-Xcompiler", "-Wall", "-Werror", "all-warnings"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "dcn.o").stat().st_size > 0


@pytest.mark.slow  # ~30 s of g++ on PyTorch's headers
@pytest.mark.skipif(NVCC is None, reason="nvcc (CUDA headers) not found")
def test_torch_extension_source_compiles(tmp_path):
    """Syntax/semantic check of torch_ext.cpp against this PyTorch's headers (no link: the CPU wheel
    lacks libc10_cuda; a one-line stand-in replaces the build-generated cuda_cmake_macros.h)."""
    torch_include = Path(torch.__file__).parent / "include"
    if not (torch_include / "c10" / "cuda" / "CUDAGuard.h").exists():
        pytest.skip("this PyTorch ships no c10/cuda headers")
    shim = tmp_path / "shim" / "c10" / "cuda" / "impl"
    shim.mkdir(parents=True)
    (shim / "cuda_cmake_macros.h").write_text("#pragma once\n")
    candidates = [Path(os.environ.get("CUDA_HOME", "/nonexistent")) / "include",
                  Path(NVCC).resolve().parents[1] / "include", Path("/usr/local/cuda/include")]
    cuda_include = next((c for c in candidates if (c / "cuda_runtime.h").exists()), None)
    if cuda_include is None:
        pytest.skip("CUDA headers (cuda_runtime.h) not found")
    cxx = shutil.which("g++") or pytest.skip("no g++")
    cmd = [cxx, "-std=c++20", "-fsyntax-only", f"-I{tmp_path / 'shim'}", f"-I{torch_include}",
           f"-I{torch_include / 'torch' / 'csrc' / 'api' / 'include'}", f"-I{cuda_include}",
           f"-I{sysconfig.get_paths()['include']}", f"-I{PLUGIN_SRC}", "-DTORCH_EXTENSION_NAME=vsrdeploy_dcn_cuda",
           str(PLUGIN_SRC / "torch_ext.cpp")]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]


# -- on a GPU -------------------------------------------------------------------------------------------

@pytest.mark.skipif(not (GPU and NVCC), reason="needs a CUDA GPU and nvcc")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cuda_dcn_matches_pytorch_dcn(dtype):
    from vsrdeploy.models.dcn_cuda import KERNEL_TOLERANCE, kernel_error
    rel = kernel_error(dtype)
    assert rel < KERNEL_TOLERANCE[str(dtype).removeprefix("torch.")], rel


@pytest.mark.skipif(not (HAS_TRT and GPU), reason="needs TensorRT and a CUDA GPU")
def test_engines_match_ort_cpu_per_cell(tiny_bundle):
    from vsrdeploy.evaluate.cell_parity import PARITY_TOLERANCE, cell_parity
    b = Bundle(tiny_bundle)
    profile = make_profile(b, (32, 32), (32, 48), (64, 64), max_batch=2)
    trt_export.build_engines(b, "fp32", profile)
    from vsrdeploy.runtimes.base import create_backend
    for r in cell_parity(b, create_backend("tensorrt", b), 32, 48):
        assert r.ok(PARITY_TOLERANCE["fp32"]), r


@pytest.mark.skipif(not (HAS_TRT and GPU and trt_export.find_plugin() is not None),
                    reason="needs TensorRT, a CUDA GPU and the plugin built with CMake")
def test_plugin_engine_matches_pytorch(tmp_path):
    torch.manual_seed(0)
    net = vsrdeploy.build_model("basicvsr_pp", mid_channels=8, num_blocks=1).eval()
    b = Bundle(vsrdeploy.export_onnx(net, tmp_path / "plugin.vsr", dcn="plugin"))
    trt_export.build_engines(b, "fp32", make_profile(b, (64, 64), (64, 64), (64, 64), max_batch=2))
    from tests.conftest import random_clip
    lr = random_clip(t=4, h=64, w=64)[0].numpy()
    from vsrdeploy.runtimes.engine import Upscaler
    out = Upscaler.create(b, "tensorrt").upscale(lr)
    ref = Upscaler.create(b, "torch").upscale(lr)
    assert np.abs(out - ref).max() < 1e-4


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
