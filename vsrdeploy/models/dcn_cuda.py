"""vsrdeploy's CUDA DCN kernel (``export/plugins/dcn``, shared with the TensorRT plugin) as a PyTorch
extension, compiled on first use with ``torch.utils.cpp_extension.load`` (needs nvcc and a CUDA build
of PyTorch). ``enable()`` makes every ``ModulatedDeformConv2d`` on a CUDA tensor use it."""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from ..errors import BackendUnavailable
from . import dcn

SOURCES = Path(__file__).resolve().parents[1] / "export" / "plugins" / "dcn"


@functools.lru_cache(maxsize=1)
def load_extension(verbose: bool = False):
    if not torch.cuda.is_available():
        raise BackendUnavailable("the CUDA DCN kernel needs a CUDA GPU and a CUDA build of PyTorch")
    from torch.utils.cpp_extension import load
    try:
        return load(name="vsrdeploy_dcn_cuda", sources=[str(SOURCES / "torch_ext.cpp"), str(SOURCES / "dcn_kernel.cu")],
                    extra_include_paths=[str(SOURCES)], extra_cflags=["-O3"], extra_cuda_cflags=["-O3"],
                    verbose=verbose)
    except (OSError, RuntimeError) as e:
        raise BackendUnavailable(f"could not compile the CUDA DCN extension ({e}); is nvcc on PATH "
                                 "(or CUDA_HOME set) and does it match PyTorch's CUDA version?") from None


def cuda_modulated_deform_conv2d(x, offset, mask, weight, bias, stride=1, padding=1, dilation=1, deform_groups=1):
    """Same signature and result as ``dcn.modulated_deform_conv2d``, on CUDA tensors (float32 / float16)."""
    ext = load_extension()
    dtype = x.dtype if x.dtype in (torch.float16, torch.float32) else torch.float32
    args = [t.to(dtype) for t in (x, offset, mask, weight, bias)]
    return ext.modulated_deform_conv2d(*args, stride, padding, dilation, 1, deform_groups)


def enable() -> None:
    """Route CUDA DCNs through the kernel (compiles it now, so errors surface here)."""
    load_extension()
    dcn.set_cuda_kernel(cuda_modulated_deform_conv2d)


#: relative error allowed of the CUDA kernel against the float64 PyTorch DCN, by storage type
KERNEL_TOLERANCE = {"float32": 1e-5, "float16": 1e-2}


def kernel_error(dtype: torch.dtype = torch.float32, seed: int = 0) -> float:
    """Relative max error of the CUDA kernel against ``dcn.modulated_deform_conv2d`` in float64 on a seeded
    case with large offsets (samples outside the image), odd sizes and 8 deform groups."""
    g = torch.Generator().manual_seed(seed)
    n, c, h, w, o, dg = 2, 32, 37, 45, 24, 8
    x = torch.randn(n, c, h, w, generator=g)
    offset = torch.randn(n, 2 * dg * 9, h, w, generator=g) * 4
    mask = torch.rand(n, dg * 9, h, w, generator=g)
    weight = torch.randn(o, c, 3, 3, generator=g) * 0.05
    bias = torch.randn(o, generator=g)
    ref = dcn.modulated_deform_conv2d(x.double(), offset.double(), mask.double(), weight.double(), bias.double(),
                                      1, 1, 1, dg)
    args = [t.cuda().to(dtype) for t in (x, offset, mask, weight, bias)]
    out = cuda_modulated_deform_conv2d(*args, 1, 1, 1, dg).double().cpu()
    return float((out - ref).abs().max() / ref.abs().max())
