// Modulated deformable convolution (DCNv2) for CUDA: im2col + GEMM, FP32 and FP16.
//
// Layouts are mmcv's / ONNX DeformConv's (see ../README.md): per deform group g and kernel tap k
// (row-major), offset channel g*2K + 2k is dy and g*2K + 2k + 1 is dx; mask channel g*K + k.
// Sampling coordinates and bilinear weights are computed in FP32 for both types: FP16 has too few
// mantissa bits for pixel coordinates on large frames.
#pragma once

#include <cstddef>
#include <cstdint>

#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace vsrdeploy {

struct DcnShape {
    int channels;       // input channels C
    int height, width;  // input frame
    int out_height, out_width;
    int kernel_h, kernel_w;
    int stride_h, stride_w;
    int pad_h, pad_w;
    int dilation_h, dilation_w;
    int deform_groups;
};

// Elements of the column buffer for one sample: (C * kh * kw) x (out_height * out_width).
inline size_t columnsElements(DcnShape const& s) {
    return static_cast<size_t>(s.channels) * s.kernel_h * s.kernel_w * s.out_height * s.out_width;
}

// columns[(c*K + k), p] = bilinear(input[c], tap k of output pixel p moved by its offset) * mask,
// for one sample. input (C, H, W), offset (2*G*K, Ho, Wo), mask (G*K, Ho, Wo), all contiguous.
template <typename T>
cudaError_t modulatedIm2col(T const* input, T const* offset, T const* mask, DcnShape const& s, T* columns,
                            cudaStream_t stream);

// out[o, p] += bias[o] for out (channels, spatial).
template <typename T>
cudaError_t addBias(T* out, T const* bias, int channels, int64_t spatial, cudaStream_t stream);

}  // namespace vsrdeploy
