// The CUDA DCN kernel as a PyTorch extension: vsrdeploy's torch backend uses it on CUDA, and the test
// suite checks it against the pure-PyTorch DCN (vsrdeploy.models.dcn.modulated_deform_conv2d).
#include <torch/extension.h>

#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "dcn_kernel.h"

namespace {

void check(torch::Tensor const& t, char const* name, torch::Tensor const& like) {
    TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
    TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, " must have the input's dtype");
}

template <typename T>
void im2col(torch::Tensor const& input, torch::Tensor const& offset, torch::Tensor const& mask,
            vsrdeploy::DcnShape const& s, torch::Tensor& columns, cudaStream_t stream) {
    auto err = vsrdeploy::modulatedIm2col<T>(reinterpret_cast<T const*>(input.data_ptr()),
                                             reinterpret_cast<T const*>(offset.data_ptr()),
                                             reinterpret_cast<T const*>(mask.data_ptr()), s,
                                             reinterpret_cast<T*>(columns.data_ptr()), stream);
    TORCH_CHECK(err == cudaSuccess, "modulatedIm2col failed: ", cudaGetErrorString(err));
}

}  // namespace

torch::Tensor modulated_deform_conv2d(torch::Tensor input, torch::Tensor offset, torch::Tensor mask,
                                      torch::Tensor weight, torch::Tensor bias, int64_t stride, int64_t padding,
                                      int64_t dilation, int64_t groups, int64_t deform_groups) {
    TORCH_CHECK(input.dim() == 4 && offset.dim() == 4 && mask.dim() == 4 && weight.dim() == 4,
                "input, offset, mask and weight must be 4-D");
    TORCH_CHECK(input.scalar_type() == torch::kFloat || input.scalar_type() == torch::kHalf,
                "the CUDA DCN runs float32 and float16");
    check(input, "input", input);
    check(offset, "offset", input);
    check(mask, "mask", input);
    check(weight, "weight", input);
    check(bias, "bias", input);
    c10::cuda::CUDAGuard guard(input.device());
    input = input.contiguous();
    offset = offset.contiguous();
    mask = mask.contiguous();
    weight = weight.contiguous();
    int64_t const n = input.size(0);
    int64_t const outChannels = weight.size(0);
    vsrdeploy::DcnShape s{};
    s.channels = static_cast<int>(input.size(1));
    s.height = static_cast<int>(input.size(2));
    s.width = static_cast<int>(input.size(3));
    s.out_height = static_cast<int>(offset.size(2));
    s.out_width = static_cast<int>(offset.size(3));
    s.kernel_h = static_cast<int>(weight.size(2));
    s.kernel_w = static_cast<int>(weight.size(3));
    s.stride_h = s.stride_w = static_cast<int>(stride);
    s.pad_h = s.pad_w = static_cast<int>(padding);
    s.dilation_h = s.dilation_w = static_cast<int>(dilation);
    s.deform_groups = static_cast<int>(deform_groups);
    int64_t const taps = s.kernel_h * s.kernel_w;
    int64_t const spatial = static_cast<int64_t>(s.out_height) * s.out_width;
    TORCH_CHECK(offset.size(1) == 2 * deform_groups * taps, "offset must have 2*deform_groups*kh*kw channels");
    TORCH_CHECK(mask.size(1) == deform_groups * taps, "mask must have deform_groups*kh*kw channels");
    TORCH_CHECK(s.channels % groups == 0 && outChannels % groups == 0 && s.channels % deform_groups == 0,
                "channels must divide by groups and deform_groups");
    TORCH_CHECK(weight.size(1) * groups == s.channels, "weight must be (O, C/groups, kh, kw)");

    auto stream = c10::cuda::getCurrentCUDAStream(input.device().index()).stream();
    auto out = torch::empty({n, outChannels, s.out_height, s.out_width}, input.options());
    auto columns = torch::empty({s.channels * taps, spatial}, input.options());
    auto w = weight.view({groups, outChannels / groups, -1});
    for (int64_t b = 0; b < n; ++b) {
        if (input.scalar_type() == torch::kHalf) {
            im2col<__half>(input[b], offset[b], mask[b], s, columns, stream);
        } else {
            im2col<float>(input[b], offset[b], mask[b], s, columns, stream);
        }
        auto cols = columns.view({groups, -1, spatial});
        out[b].view({groups, outChannels / groups, spatial}).copy_(torch::bmm(w, cols));
    }
    return out + bias.view({1, outChannels, 1, 1});
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("modulated_deform_conv2d", &modulated_deform_conv2d,
          "modulated deformable conv (DCNv2), CUDA, float32/float16");
}
