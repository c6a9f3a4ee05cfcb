"""The DCN TensorRT plugin compiles against TensorRT 10 and 11 headers (no GPU, no libnvinfer needed).

Headers: TensorRT's public headers from ``../shared/third_party/tensorrt-headers/<version>/include``
(override with VSRDEPLOY_TRT_HEADERS, the directory holding the version folders); CUDA and cuBLAS
headers from the CUDA toolkit (CUDA_HOME, nvcc's, /usr/local/cuda) or else the ``nvidia-cuda-runtime`` /
``nvidia-cublas`` wheels (the ``dev`` extra). Each test skips, saying what is missing, where they are not found.
Warnings in the plugin's own code are errors; TensorRT's headers are system includes, so the
deprecation warnings inside them do not count.
"""
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import vsrdeploy

REPO = Path(__file__).resolve().parents[1]
PLUGIN_SRC = Path(vsrdeploy.__file__).parent / "export" / "plugins" / "dcn"
TRT_HEADERS = Path(os.environ.get("VSRDEPLOY_TRT_HEADERS", REPO.parent / "shared" / "third_party" / "tensorrt-headers"))
TRT_VERSIONS = ["10.16", "11.1"]
WARNINGS = ["-Wall", "-Wextra", "-Wpedantic", "-Wshadow", "-Wnon-virtual-dtor", "-Wsuggest-override", "-Werror"]


def _nvcc() -> Path | None:
    found = shutil.which("nvcc") or ("/usr/local/cuda/bin/nvcc" if os.path.exists("/usr/local/cuda/bin/nvcc") else None)
    return Path(found) if found else None


def _wheel_include_dirs() -> list[Path]:
    """include/ folders of the nvidia-* wheels: nvidia/cu13/include (CUDA 13), nvidia/*/include (CUDA 12)."""
    spec = importlib.util.find_spec("nvidia")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [inc for root in spec.submodule_search_locations for inc in sorted(Path(root).glob("*/include"))]


def _find_include(header: str) -> Path | None:
    candidates = [Path(os.environ.get("CUDA_HOME", "/nonexistent")) / "include", Path("/usr/local/cuda/include")]
    nvcc = _nvcc()
    if nvcc is not None:
        candidates.insert(1, nvcc.resolve().parents[1] / "include")
    return next((c for c in candidates + _wheel_include_dirs() if (c / header).exists()), None)


def _trt_include(version: str) -> Path:
    inc = TRT_HEADERS / version / "include"
    if not (inc / "NvInferRuntime.h").exists():
        pytest.skip(f"TensorRT {version} headers not found at {inc} (set VSRDEPLOY_TRT_HEADERS)")
    return inc


def _cuda_includes() -> list[Path]:
    cuda, cublas = _find_include("cuda_runtime.h"), _find_include("cublas_v2.h")
    if cuda is None:
        pytest.skip("CUDA headers (cuda_runtime.h) not found: install the CUDA toolkit or `pip install nvidia-cuda-runtime`")
    if cublas is None:
        pytest.skip("cuBLAS headers (cublas_v2.h) not found: install cuBLAS or `pip install nvidia-cublas`")
    return list(dict.fromkeys([cuda, cublas]))


def _gxx() -> str:
    return shutil.which("g++") or pytest.skip("g++ not found")


def _syntax_check(source: Path, trt_include: Path, flags: list[str], trt_as_system: bool = True):
    trt = ["-isystem" if trt_as_system else "-I", str(trt_include)]
    cuda = [arg for inc in _cuda_includes() for arg in ("-isystem", str(inc))]
    cmd = [_gxx(), "-std=c++17", "-fsyntax-only", *flags, *trt, *cuda, f"-I{PLUGIN_SRC}", str(source)]
    return subprocess.run(cmd, capture_output=True, text=True)


@pytest.mark.parametrize("version", TRT_VERSIONS)
def test_plugin_compiles_without_warnings(version):
    res = _syntax_check(PLUGIN_SRC / "dcn_plugin.cpp", _trt_include(version), WARNINGS)
    assert res.returncode == 0, res.stderr[-4000:]
    assert "warning" not in res.stderr


@pytest.mark.parametrize("version", TRT_VERSIONS)
def test_plugin_uses_no_deprecated_tensorrt_api(version):
    """With TensorRT's headers as ordinary includes, every deprecation warning is inside them (its own
    legacy classes), none in the plugin's code: the plugin uses only the current IPluginV3 API."""
    trt = _trt_include(version)
    res = _syntax_check(PLUGIN_SRC / "dcn_plugin.cpp", trt, ["-Wall", "-Wdeprecated-declarations"], trt_as_system=False)
    assert res.returncode == 0, res.stderr[-4000:]
    locations = re.findall(r"^(\S+?):\d+:\d+: warning", res.stderr, re.M)
    assert all(Path(loc).resolve().is_relative_to(trt.resolve()) for loc in locations), locations


def test_werror_catches_a_warning_planted_in_the_plugin(tmp_path):
    """The check is not vacuous: an unused variable in a copy of the plugin source fails it."""
    planted = tmp_path / "dcn_plugin.cpp"
    planted.write_text((PLUGIN_SRC / "dcn_plugin.cpp").read_text() + "\nint planted() { int unused = 0; return 1; }\n")
    res = _syntax_check(planted, _trt_include(TRT_VERSIONS[-1]), WARNINGS)
    assert res.returncode != 0 and "unused" in res.stderr and str(planted) in res.stderr


@pytest.mark.parametrize("version", TRT_VERSIONS)
def test_cmake_builds_the_plugin_objects_without_libnvinfer(version, tmp_path):
    """CMakeLists.txt's object-file target, with warnings as errors, for one GPU architecture (Orin, sm_87)."""
    cmake = shutil.which("cmake") or pytest.skip("cmake not found")
    nvcc = _nvcc() or pytest.skip("nvcc not found (the CMake project compiles the CUDA kernel)")
    trt = _trt_include(version)
    cublas = _find_include("cublas_v2.h") or pytest.skip("cuBLAS headers (cublas_v2.h) not found")
    build = tmp_path / "build"
    configure = subprocess.run([cmake, "-S", str(PLUGIN_SRC), "-B", str(build), f"-DTENSORRT_ROOT={trt.parent}",
                                f"-DCUBLAS_INCLUDE_DIR={cublas}", f"-DCMAKE_CUDA_COMPILER={nvcc}",
                                "-DCMAKE_CUDA_ARCHITECTURES=87", "-DVSRDEPLOY_WERROR=ON"],
                               capture_output=True, text=True)
    if configure.returncode != 0 and "No CMAKE_CUDA_COMPILER could be found" in configure.stderr:
        pytest.skip("CMake cannot use this nvcc")
    assert configure.returncode == 0, configure.stdout[-2000:] + configure.stderr[-3000:]
    assert "object files only" in " ".join(configure.stderr.split())  # no libnvinfer here: no link step
    res = subprocess.run([cmake, "--build", str(build), "--target", "vsrdeploy_dcn_objects"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    objects = sorted(p.name for p in build.rglob("*.o") if "vsrdeploy_dcn_objects" in str(p))
    assert objects == ["dcn_kernel.cu.o", "dcn_plugin.cpp.o"], objects
