"""ONNX Runtime backends: CPU, CUDA and TensorRT execution providers.

On the CPU, cells exchange numpy arrays (no PyTorch in the process). On GPU, inputs and outputs are bound to
torch CUDA tensors (I/O binding), so recurrent state never leaves the device between steps.
"""
from __future__ import annotations

import os

import numpy as np

from ..models.dcn_names import PLUGIN_NODE
from .base import Backend, register_backend
from .host_buffers import as_inputs_kind, cpu_array

EXTRA = 'pip install "vsrdeploy[onnx]"'


def _ort():
    import onnxruntime
    return onnxruntime


def _missing_provider(provider: str) -> str | None:
    try:
        ort = _ort()
    except ImportError:
        return f"onnxruntime is not installed ({EXTRA})"
    if provider not in ort.get_available_providers():
        return (f"onnxruntime here has no {provider} (has {', '.join(ort.get_available_providers())}); "
                "install onnxruntime-gpu on a machine with an NVIDIA GPU")
    return None


class _OrtBackend(Backend):
    provider = "CPUExecutionProvider"
    resources = ("sessions",)
    unsupported_ops = frozenset({PLUGIN_NODE})  # the TensorRT plugin node

    @classmethod
    def unavailable_reason(cls):
        return _missing_provider(cls.provider)

    def provider_options(self) -> dict:
        return {}

    def __init__(self, bundle, threads: int | None = None, **options):
        super().__init__(bundle, **options)
        self.check_bundle(bundle)
        ort = _ort()
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if self.provider == "CPUExecutionProvider":
            # without the arena, a call's intermediates go back to the system when it returns; with it, every
            # session keeps its largest call's working set for good (``arena=True`` restores it)
            so.enable_cpu_mem_arena = bool(options.get("arena", False))
        if threads:
            so.intra_op_num_threads = threads
        providers = [(self.provider, self.provider_options())]
        if self.provider != "CPUExecutionProvider":
            providers.append(("CPUExecutionProvider", {}))
        self.sessions = {name: ort.InferenceSession(str(bundle.cell_path(name)), so, providers=providers)
                         for name in bundle.cells}
        self.output_names = {name: [o.name for o in s.get_outputs()] for name, s in self.sessions.items()}

    def run(self, cell, inputs):
        feed = {k: cpu_array(v) for k, v in inputs.items()}
        outs = self.sessions[cell].run(self.output_names[cell], feed)
        del feed
        return as_inputs_kind({k: np.ascontiguousarray(v) for k, v in zip(self.output_names[cell], outs)}, inputs)


@register_backend("ort-cpu")
class OrtCpuBackend(_OrtBackend):
    provider = "CPUExecutionProvider"
    arrays = "numpy"
    extra_options = frozenset({"arena"})  # arena=True: keep ONNX Runtime's CPU memory arena


class _OrtGpuBackend(_OrtBackend):
    """I/O binding on torch CUDA tensors; outputs allocated by ORT on the device and wrapped via DLPack."""

    def __init__(self, bundle, **options):
        import torch
        if not torch.cuda.is_available():
            from ..errors import BackendUnavailable
            raise BackendUnavailable(f"{self.name} needs a CUDA GPU visible to PyTorch (for device buffers)")
        super().__init__(bundle, **options)
        self.device = torch.device("cuda")

    def run(self, cell, inputs):
        import torch
        session = self.sessions[cell]
        binding = session.io_binding()
        for name, t in inputs.items():
            t = t.to(self.device, torch.float32).contiguous()
            binding.bind_input(name, "cuda", self.device.index or 0, np.float32, tuple(t.shape), t.data_ptr())
        for name in self.output_names[cell]:
            binding.bind_output(name, "cuda", self.device.index or 0)
        session.run_with_iobinding(binding)
        outs = binding.get_outputs()
        return {name: torch.from_dlpack(ov.to_dlpack()) if hasattr(ov, "to_dlpack")
                else torch.from_numpy(ov.numpy()).to(self.device)
                for name, ov in zip(self.output_names[cell], outs)}


@register_backend("ort-cuda")
class OrtCudaBackend(_OrtGpuBackend):
    provider = "CUDAExecutionProvider"


@register_backend("ort-trt")
class OrtTensorRTBackend(_OrtGpuBackend):
    """ONNX Runtime's TensorRT provider. Options: ``fp16=True``, ``engine_cache=DIR`` (default: the
    bundle's ``engines/ort-trt``). FP16 bundles (FP16 ONNX) and INT8 bundles (Q/DQ, --target tensorrt)
    run as they are typed, the same choices as ``vsrdeploy build``."""

    provider = "TensorrtExecutionProvider"
    row_strips = False  # every new input shape would build another engine
    precisions = {"fp32": {}, "fp16": {"fp16": True}}
    extra_options = frozenset({"fp16", "engine_cache"})

    def provider_options(self) -> dict:
        cache = self.options.get("engine_cache") or os.path.join(self.bundle.path, "engines", "ort-trt")
        os.makedirs(cache, exist_ok=True)
        int8 = self.bundle.precision == "int8"  # explicit Q/DQ graph (calibrated with --target tensorrt)
        return {"trt_fp16_enable": bool(self.options.get("fp16", False)) or int8, "trt_int8_enable": int8,
                "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache),
                "trt_timing_cache_enable": True, "trt_timing_cache_path": str(cache)}
