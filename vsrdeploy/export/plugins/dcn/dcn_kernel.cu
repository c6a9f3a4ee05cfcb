// CUDA kernels of vsrdeploy's modulated deformable convolution (see dcn_kernel.h).
#include "dcn_kernel.h"

#include <algorithm>

namespace vsrdeploy {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float toFloat(float v) { return v; }
__device__ __forceinline__ float toFloat(__half v) { return __half2float(v); }

template <typename T>
__device__ __forceinline__ T fromFloat(float v);
template <>
__device__ __forceinline__ float fromFloat<float>(float v) { return v; }
template <>
__device__ __forceinline__ __half fromFloat<__half>(float v) { return __float2half_rn(v); }

// Bilinear sample of one channel plane at (y, x); neighbours outside the image count as zero and a
// point at least one pixel outside gives zero (mmcv's dmcn_im2col_bilinear rule).
template <typename T>
__device__ float bilinear(T const* plane, int height, int width, float y, float x) {
    if (y <= -1.f || x <= -1.f || y >= height || x >= width) {
        return 0.f;
    }
    int const y0 = static_cast<int>(floorf(y));
    int const x0 = static_cast<int>(floorf(x));
    int const y1 = y0 + 1;
    int const x1 = x0 + 1;
    float const ly = y - y0;
    float const lx = x - x0;
    float const hy = 1.f - ly;
    float const hx = 1.f - lx;
    float const v00 = (y0 >= 0 && x0 >= 0) ? toFloat(plane[y0 * width + x0]) : 0.f;
    float const v01 = (y0 >= 0 && x1 < width) ? toFloat(plane[y0 * width + x1]) : 0.f;
    float const v10 = (y1 < height && x0 >= 0) ? toFloat(plane[y1 * width + x0]) : 0.f;
    float const v11 = (y1 < height && x1 < width) ? toFloat(plane[y1 * width + x1]) : 0.f;
    return hy * hx * v00 + hy * lx * v01 + ly * hx * v10 + ly * lx * v11;
}

template <typename T>
__global__ void modulatedIm2colKernel(T const* __restrict__ input, T const* __restrict__ offset,
                                      T const* __restrict__ mask, DcnShape s, T* __restrict__ columns) {
    int64_t const spatial = static_cast<int64_t>(s.out_height) * s.out_width;
    int64_t const total = static_cast<int64_t>(s.channels) * spatial;
    int const taps = s.kernel_h * s.kernel_w;
    int const channelsPerGroup = s.channels / s.deform_groups;
    for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
         idx += static_cast<int64_t>(blockDim.x) * gridDim.x) {
        int64_t const pixel = idx % spatial;
        int const c = static_cast<int>(idx / spatial);
        int const xo = static_cast<int>(pixel % s.out_width);
        int const yo = static_cast<int>(pixel / s.out_width);
        int const g = c / channelsPerGroup;
        T const* plane = input + static_cast<int64_t>(c) * s.height * s.width;
        T const* groupOffset = offset + static_cast<int64_t>(g) * 2 * taps * spatial + pixel;
        T const* groupMask = mask + static_cast<int64_t>(g) * taps * spatial + pixel;
        T* col = columns + static_cast<int64_t>(c) * taps * spatial + pixel;
        for (int i = 0; i < s.kernel_h; ++i) {
            for (int j = 0; j < s.kernel_w; ++j) {
                int const k = i * s.kernel_w + j;
                float const dy = toFloat(groupOffset[(2 * k) * spatial]);
                float const dx = toFloat(groupOffset[(2 * k + 1) * spatial]);
                float const m = toFloat(groupMask[k * spatial]);
                float const y = static_cast<float>(yo * s.stride_h - s.pad_h + i * s.dilation_h) + dy;
                float const x = static_cast<float>(xo * s.stride_w - s.pad_w + j * s.dilation_w) + dx;
                col[k * spatial] = fromFloat<T>(bilinear(plane, s.height, s.width, y, x) * m);
            }
        }
    }
}

template <typename T>
__global__ void addBiasKernel(T* __restrict__ out, T const* __restrict__ bias, int channels, int64_t spatial) {
    int64_t const total = static_cast<int64_t>(channels) * spatial;
    for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
         idx += static_cast<int64_t>(blockDim.x) * gridDim.x) {
        out[idx] = fromFloat<T>(toFloat(out[idx]) + toFloat(bias[idx / spatial]));
    }
}

int blocksFor(int64_t total) {
    int64_t const blocks = (total + kThreads - 1) / kThreads;
    return static_cast<int>(std::min<int64_t>(std::max<int64_t>(blocks, 1), 65535));
}

}  // namespace

template <typename T>
cudaError_t modulatedIm2col(T const* input, T const* offset, T const* mask, DcnShape const& s, T* columns,
                            cudaStream_t stream) {
    if (s.deform_groups <= 0 || s.channels % s.deform_groups != 0) {
        return cudaErrorInvalidValue;
    }
    int64_t const total = static_cast<int64_t>(s.channels) * s.out_height * s.out_width;
    modulatedIm2colKernel<T><<<blocksFor(total), kThreads, 0, stream>>>(input, offset, mask, s, columns);
    return cudaGetLastError();
}

template <typename T>
cudaError_t addBias(T* out, T const* bias, int channels, int64_t spatial, cudaStream_t stream) {
    addBiasKernel<T><<<blocksFor(channels * spatial), kThreads, 0, stream>>>(out, bias, channels, spatial);
    return cudaGetLastError();
}

template cudaError_t modulatedIm2col<float>(float const*, float const*, float const*, DcnShape const&, float*,
                                            cudaStream_t);
template cudaError_t modulatedIm2col<__half>(__half const*, __half const*, __half const*, DcnShape const&, __half*,
                                             cudaStream_t);
template cudaError_t addBias<float>(float*, float const*, int, int64_t, cudaStream_t);
template cudaError_t addBias<__half>(__half*, __half const*, int, int64_t, cudaStream_t);

}  // namespace vsrdeploy
