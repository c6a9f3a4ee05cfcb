"""What a measurement ran on: CPU model and flags, core and thread counts, GPU, runtime versions.

Every number vsrdeploy reports (compare's report.json, ``bench --json``, ``selftest``) carries this record,
so figures from different machines or library versions are never mistaken for one another. Versions come
from package metadata: nothing heavy is imported to describe the machine.
"""
from __future__ import annotations

import os
import platform
from importlib import metadata

#: the packages whose versions decide the numbers
RUNTIME_PACKAGES = ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "openvino", "tensorrt", "numpy")
#: CPU flags that change which kernels the runtimes pick
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni", "avx512_bf16",
             "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8", "amx_fp16", "asimd", "sve")


def package_versions() -> dict[str, str | None]:
    """Installed version of each runtime package (None when absent)."""
    out = {}
    for name in RUNTIME_PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    if out.get("tensorrt") is None:  # NVIDIA's wheels are also published as tensorrt-cu12 / tensorrt-cu13 / JetPack
        for alt in ("tensorrt-cu13", "tensorrt-cu12", "tensorrt_libs"):
            try:
                out["tensorrt"] = metadata.version(alt)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def cpu_info() -> dict:
    """CPU model, the flags in ``CPU_FLAGS`` it has, logical and physical core counts.

    Virtual machines often report a bare model name ("AMD EPYC" for Zen 2 to Zen 5 alike), so on x86 the
    family and model numbers are added to it, e.g. "AMD EPYC (family 25 model 1)" (Zen 3), and figures
    from different CPU generations are told apart."""
    model, flags, numbers = None, set(), {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Model", "Hardware") and model is None:
                    model = value.strip()
                elif key in ("cpu family", "model") and key not in numbers:
                    numbers[key] = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    model = model or platform.processor() or platform.machine()
    if len(numbers) == 2 and "family" not in model:
        model = f"{model} (family {numbers['cpu family']} model {numbers['model']})"
    try:
        import psutil
        physical = psutil.cpu_count(logical=False)
    except ImportError:
        physical = None
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "flags": [f for f in CPU_FLAGS if f in flags], "logical_cores": os.cpu_count(),
            "physical_cores": physical, "usable_cores": affinity}


def gpu_info() -> list[dict]:
    """The CUDA GPUs PyTorch sees (name, compute capability, memory); empty without CUDA."""
    try:
        import torch
        if not torch.cuda.is_available():
            return []
        gpus = []
        for i in range(torch.cuda.device_count()):
            p = torch.cuda.get_device_properties(i)
            gpus.append({"name": p.name, "compute_capability": f"{p.major}.{p.minor}",
                         "memory_gb": round(p.total_memory / 2**30, 1)})
        return gpus
    except Exception:  # noqa: BLE001 -- a broken CUDA install must not stop a report
        return []


def thread_counts() -> dict:
    """Threads the runtimes use by default here (PyTorch intra-op, OMP_NUM_THREADS as set)."""
    out = {"omp_num_threads_env": os.environ.get("OMP_NUM_THREADS")}
    try:
        import torch
        out["torch_intra_op"] = torch.get_num_threads()
        out["torch_inter_op"] = torch.get_num_interop_threads()
    except ImportError:
        pass
    return out


def machine_info() -> dict:
    """The whole record: cpu, gpus, threads, versions, python, os."""
    return {"cpu": cpu_info(), "gpus": gpu_info(), "threads": thread_counts(), "versions": package_versions(),
            "python": platform.python_version(), "os": f"{platform.system()} {platform.release()} {platform.machine()}"}


def describe(info: dict | None = None) -> str:
    """One line for terminals and report headers."""
    info = info or machine_info()
    cpu = info["cpu"]
    gpus = ", ".join(g["name"] for g in info["gpus"]) or "no CUDA GPU"
    versions = ", ".join(f"{k} {v}" for k, v in info["versions"].items() if v and k != "numpy")
    return (f"{cpu['model']} ({cpu['logical_cores']} logical / {cpu['physical_cores']} physical cores, "
            f"{' '.join(cpu['flags']) or 'no listed flags'}); {gpus}; torch threads "
            f"{info['threads'].get('torch_intra_op')}; {versions}")
