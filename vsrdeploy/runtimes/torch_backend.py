"""PyTorch backends: the bundle's weights in vsrdeploy's own cells (CPU, or CUDA with optional autocast)."""
from __future__ import annotations

import contextlib

import torch

from ..models.cells import TorchRunner
from .base import Backend, register_backend


@register_backend("torch")
class TorchBackend(Backend):
    device_name = "cpu"
    resources = ("runner", "net")
    runs_exported_cells = False

    def __init__(self, bundle, fp16: bool = False, dcn_kernel: str = "torch", fp32_weights: bool = False,
                 threads: int | None = None, **options):
        """``fp32_weights=True``: run an FP16/INT8 bundle's FP32 source weights (compare's reference).
        ``threads``: PyTorch's intra-op threads (``torch.set_num_threads``, process-wide)."""
        super().__init__(bundle, **options)
        if threads:
            torch.set_num_threads(int(threads))
        if bundle.precision != "fp32" and not fp32_weights:
            from ..errors import BackendUnavailable
            raise BackendUnavailable(f"{self.name} runs the bundle's FP32 PyTorch weights, not its {bundle.precision} "
                                     "ONNX cells; use ort-cpu, openvino-cpu or tensorrt for this bundle")
        self.device = torch.device(self.device_name)
        if dcn_kernel == "cuda":  # vsrdeploy's CUDA DCN (the TensorRT plugin's kernel) instead of grid_sample
            from ..models import dcn_cuda
            dcn_cuda.enable()
        elif dcn_kernel != "torch":
            from ..errors import ConfigError
            raise ConfigError(f"dcn_kernel must be 'torch' or 'cuda', got {dcn_kernel!r}")
        self.net = bundle.load_network(self.device)
        self.runner = TorchRunner(self.net.cells)
        self.fp16 = fp16 and self.device.type == "cuda"
        self.precision = "fp16-autocast" if self.fp16 else "fp32"

    def run(self, cell, inputs):
        ctx = torch.autocast("cuda", dtype=torch.float16) if self.fp16 else contextlib.nullcontext()
        with torch.no_grad(), ctx:
            out = self.runner(cell, inputs)
        return {k: v.float() for k, v in out.items()} if self.fp16 else out


@register_backend("torch-cuda")
class TorchCudaBackend(TorchBackend):
    device_name = "cuda"
    precisions = {"fp32": {}, "fp16": {"fp16": True}}

    @classmethod
    def unavailable_reason(cls):
        return None if torch.cuda.is_available() else "no CUDA GPU visible to PyTorch"
