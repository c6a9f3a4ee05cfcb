// vsrdeploy's TensorRT IPluginV3 for modulated deformable convolution (see dcn_plugin.h).
#include "dcn_plugin.h"

#include "dcn_kernel.h"

#include <cstring>
#include <exception>

using namespace nvinfer1;

namespace vsrdeploy {
namespace {

char const* const kName = "ModulatedDeformConv2d";
char const* const kVersion = "1";
char const* const kNamespace = "vsrdeploy";
constexpr int32_t kNbInputs = 5;  // input, offset, mask, weight, bias

// Reads an int field (INT32 from the ONNX parser and from our own serialization; INT64 accepted too).
bool readInts(PluginField const& f, int32_t* dst, int32_t count) {
    if (f.length != count || f.data == nullptr) {
        return false;
    }
    for (int32_t i = 0; i < count; ++i) {
        if (f.type == PluginFieldType::kINT32) {
            dst[i] = static_cast<int32_t const*>(f.data)[i];
        } else if (f.type == PluginFieldType::kINT64) {
            dst[i] = static_cast<int32_t>(static_cast<int64_t const*>(f.data)[i]);
        } else {
            return false;
        }
    }
    return true;
}

template <typename T>
int32_t runDcn(cublasHandle_t handle, cudaDataType_t dataType, PluginTensorDesc const* desc, void const* const* inputs,
               void* output, void* workspace, DcnParams const& p, cudaStream_t stream) {
    Dims const& in = desc[0].dims;
    Dims const& off = desc[1].dims;
    Dims const& w = desc[3].dims;
    int64_t const n = in.d[0];
    DcnShape s{};
    s.channels = static_cast<int>(in.d[1]);
    s.height = static_cast<int>(in.d[2]);
    s.width = static_cast<int>(in.d[3]);
    s.out_height = static_cast<int>(off.d[2]);
    s.out_width = static_cast<int>(off.d[3]);
    s.kernel_h = static_cast<int>(w.d[2]);
    s.kernel_w = static_cast<int>(w.d[3]);
    s.stride_h = p.stride[0];
    s.stride_w = p.stride[1];
    s.pad_h = p.padding[0];
    s.pad_w = p.padding[1];
    s.dilation_h = p.dilation[0];
    s.dilation_w = p.dilation[1];
    s.deform_groups = p.deformGroups;
    int const outChannels = static_cast<int>(w.d[0]);
    int const taps = s.kernel_h * s.kernel_w;
    int64_t const spatial = static_cast<int64_t>(s.out_height) * s.out_width;
    if (p.groups <= 0 || s.channels % p.groups != 0 || outChannels % p.groups != 0) {
        return 1;
    }
    auto const* input = static_cast<T const*>(inputs[0]);
    auto const* offset = static_cast<T const*>(inputs[1]);
    auto const* mask = static_cast<T const*>(inputs[2]);
    auto const* weight = static_cast<T const*>(inputs[3]);
    auto const* bias = static_cast<T const*>(inputs[4]);
    auto* out = static_cast<T*>(output);
    auto* columns = static_cast<T*>(workspace);
    int const gemmM = static_cast<int>(spatial);
    int const gemmN = outChannels / p.groups;
    int const gemmK = s.channels / p.groups * taps;
    float const alpha = 1.f;
    float const beta = 0.f;
    if (cublasSetStream(handle, stream) != CUBLAS_STATUS_SUCCESS) {
        return 1;
    }
    for (int64_t b = 0; b < n; ++b) {
        T const* inputB = input + b * s.channels * s.height * s.width;
        T const* offsetB = offset + b * 2 * s.deform_groups * taps * spatial;
        T const* maskB = mask + b * s.deform_groups * taps * spatial;
        T* outB = out + b * outChannels * spatial;
        if (modulatedIm2col<T>(inputB, offsetB, maskB, s, columns, stream) != cudaSuccess) {
            return 1;
        }
        // Row-major out (O, HoWo) = W (O, C*K) x columns (C*K, HoWo), per group; in cuBLAS's column-major
        // terms: out^T (HoWo x O) = columns^T (HoWo x C*K) x W^T (C*K x O).
        for (int g = 0; g < p.groups; ++g) {
            T const* a = columns + static_cast<int64_t>(g) * gemmK * spatial;
            T const* bMat = weight + static_cast<int64_t>(g) * gemmN * gemmK;
            T* c = outB + static_cast<int64_t>(g) * gemmN * spatial;
            if (cublasGemmEx(handle, CUBLAS_OP_N, CUBLAS_OP_N, gemmM, gemmN, gemmK, &alpha, a, dataType, gemmM, bMat,
                             dataType, gemmK, &beta, c, dataType, gemmM, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT)
                != CUBLAS_STATUS_SUCCESS) {
                return 1;
            }
        }
        if (addBias<T>(outB, bias, outChannels, spatial, stream) != cudaSuccess) {
            return 1;
        }
    }
    return 0;
}

void describeFields(std::vector<PluginField>& fields, PluginFieldCollection& fc, DcnParams const* p) {
    fields.clear();
    fields.emplace_back("stride", p ? p->stride : nullptr, PluginFieldType::kINT32, 2);
    fields.emplace_back("padding", p ? p->padding : nullptr, PluginFieldType::kINT32, 2);
    fields.emplace_back("dilation", p ? p->dilation : nullptr, PluginFieldType::kINT32, 2);
    fields.emplace_back("groups", p ? &p->groups : nullptr, PluginFieldType::kINT32, 1);
    fields.emplace_back("deform_groups", p ? &p->deformGroups : nullptr, PluginFieldType::kINT32, 1);
    fc.nbFields = static_cast<int32_t>(fields.size());
    fc.fields = fields.data();
}

}  // namespace

// -- plugin ------------------------------------------------------------------------------------------

ModulatedDeformConv2dPlugin::ModulatedDeformConv2dPlugin(DcnParams const& params) : mParams(params) {}

ModulatedDeformConv2dPlugin::~ModulatedDeformConv2dPlugin() {
    if (mCublas != nullptr) {
        cublasDestroy(mCublas);
    }
}

IPluginCapability* ModulatedDeformConv2dPlugin::getCapabilityInterface(PluginCapabilityType type) noexcept {
    switch (type) {
    case PluginCapabilityType::kBUILD: return static_cast<IPluginV3OneBuild*>(this);
    case PluginCapabilityType::kRUNTIME: return static_cast<IPluginV3OneRuntime*>(this);
    case PluginCapabilityType::kCORE: return static_cast<IPluginV3OneCore*>(this);
    }
    return nullptr;
}

IPluginV3* ModulatedDeformConv2dPlugin::clone() noexcept {
    try {
        return new ModulatedDeformConv2dPlugin(mParams);
    } catch (std::exception const&) {
        return nullptr;
    }
}

char const* ModulatedDeformConv2dPlugin::getPluginName() const noexcept { return kName; }
char const* ModulatedDeformConv2dPlugin::getPluginVersion() const noexcept { return kVersion; }
char const* ModulatedDeformConv2dPlugin::getPluginNamespace() const noexcept { return kNamespace; }

int32_t ModulatedDeformConv2dPlugin::configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs,
                                                     DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept {
    return (nbInputs == kNbInputs && nbOutputs == 1 && in != nullptr && out != nullptr) ? 0 : 1;
}

int32_t ModulatedDeformConv2dPlugin::getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs,
                                                        DataType const* inputTypes, int32_t nbInputs) const noexcept {
    if (nbOutputs != 1 || nbInputs != kNbInputs) {
        return 1;
    }
    outputTypes[0] = inputTypes[0];
    return 0;
}

int32_t ModulatedDeformConv2dPlugin::getOutputShapes(DimsExprs const* inputs, int32_t nbInputs,
                                                     DimsExprs const* /*shapeInputs*/, int32_t /*nbShapeInputs*/,
                                                     DimsExprs* outputs, int32_t nbOutputs,
                                                     IExprBuilder& /*exprBuilder*/) noexcept {
    if (nbInputs != kNbInputs || nbOutputs != 1 || inputs[0].nbDims != 4 || inputs[1].nbDims != 4
        || inputs[3].nbDims != 4) {
        return 1;
    }
    outputs[0].nbDims = 4;
    outputs[0].d[0] = inputs[0].d[0];  // N from the input
    outputs[0].d[1] = inputs[3].d[0];  // O from the weight
    outputs[0].d[2] = inputs[1].d[2];  // Ho, Wo from the offsets
    outputs[0].d[3] = inputs[1].d[3];
    return 0;
}

bool ModulatedDeformConv2dPlugin::supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut,
                                                            int32_t nbInputs, int32_t nbOutputs) noexcept {
    if (nbInputs != kNbInputs || nbOutputs != 1 || pos < 0 || pos >= nbInputs + nbOutputs) {
        return false;
    }
    PluginTensorDesc const& d = inOut[pos].desc;
    if (d.format != TensorFormat::kLINEAR) {
        return false;
    }
    if (pos == 0) {
        return d.type == DataType::kFLOAT || d.type == DataType::kHALF;
    }
    return d.type == inOut[0].desc.type;
}

int32_t ModulatedDeformConv2dPlugin::getNbOutputs() const noexcept { return 1; }

size_t ModulatedDeformConv2dPlugin::getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                                                     DynamicPluginTensorDesc const* /*outputs*/,
                                                     int32_t /*nbOutputs*/) const noexcept {
    if (nbInputs != kNbInputs) {
        return 0;
    }
    size_t const element = inputs[0].desc.type == DataType::kHALF ? 2 : 4;
    size_t const columns = static_cast<size_t>(inputs[0].max.d[1]) * inputs[3].max.d[2] * inputs[3].max.d[3]
        * inputs[1].max.d[2] * inputs[1].max.d[3];
    return columns * element + 256;
}

int32_t ModulatedDeformConv2dPlugin::onShapeChange(PluginTensorDesc const* /*in*/, int32_t nbInputs,
                                                   PluginTensorDesc const* /*out*/, int32_t nbOutputs) noexcept {
    return (nbInputs == kNbInputs && nbOutputs == 1) ? 0 : 1;
}

int32_t ModulatedDeformConv2dPlugin::enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
                                             void const* const* inputs, void* const* outputs, void* workspace,
                                             cudaStream_t stream) noexcept {
    try {
        if (mCublas == nullptr && cublasCreate(&mCublas) != CUBLAS_STATUS_SUCCESS) {
            mCublas = nullptr;
            return 1;
        }
        if (inputDesc[0].type == DataType::kHALF) {
            return runDcn<__half>(mCublas, CUDA_R_16F, inputDesc, inputs, outputs[0], workspace, mParams, stream);
        }
        return runDcn<float>(mCublas, CUDA_R_32F, inputDesc, inputs, outputs[0], workspace, mParams, stream);
    } catch (std::exception const&) {
        return 1;
    }
}

IPluginV3* ModulatedDeformConv2dPlugin::attachToContext(IPluginResourceContext* /*context*/) noexcept {
    // The runtime copy creates its cuBLAS handle here, not in the first enqueue: cublasCreate allocates
    // and may synchronize, which would break a CUDA-graph capture of that enqueue.
    try {
        auto* plugin = new ModulatedDeformConv2dPlugin(mParams);
        if (cublasCreate(&plugin->mCublas) != CUBLAS_STATUS_SUCCESS) {
            plugin->mCublas = nullptr;  // enqueue retries
        }
        return plugin;
    } catch (std::exception const&) {
        return nullptr;
    }
}

PluginFieldCollection const* ModulatedDeformConv2dPlugin::getFieldsToSerialize() noexcept {
    describeFields(mFields, mFieldCollection, &mParams);
    return &mFieldCollection;
}

// -- creator -----------------------------------------------------------------------------------------

ModulatedDeformConv2dCreator::ModulatedDeformConv2dCreator() { describeFields(mFields, mFieldCollection, nullptr); }

char const* ModulatedDeformConv2dCreator::getPluginName() const noexcept { return kName; }
char const* ModulatedDeformConv2dCreator::getPluginVersion() const noexcept { return kVersion; }
char const* ModulatedDeformConv2dCreator::getPluginNamespace() const noexcept { return kNamespace; }

PluginFieldCollection const* ModulatedDeformConv2dCreator::getFieldNames() noexcept { return &mFieldCollection; }

IPluginV3* ModulatedDeformConv2dCreator::createPlugin(char const* /*name*/, PluginFieldCollection const* fc,
                                                      TensorRTPhase /*phase*/) noexcept {
    try {
        DcnParams p;
        for (int32_t i = 0; fc != nullptr && i < fc->nbFields; ++i) {
            PluginField const& f = fc->fields[i];
            bool ok = true;
            if (std::strcmp(f.name, "stride") == 0) {
                ok = readInts(f, p.stride, 2);
            } else if (std::strcmp(f.name, "padding") == 0) {
                ok = readInts(f, p.padding, 2);
            } else if (std::strcmp(f.name, "dilation") == 0) {
                ok = readInts(f, p.dilation, 2);
            } else if (std::strcmp(f.name, "groups") == 0) {
                ok = readInts(f, &p.groups, 1);
            } else if (std::strcmp(f.name, "deform_groups") == 0) {
                ok = readInts(f, &p.deformGroups, 1);
            }
            if (!ok) {
                return nullptr;
            }
        }
        if (p.groups < 1 || p.deformGroups < 1) {
            return nullptr;
        }
        return new ModulatedDeformConv2dPlugin(p);
    } catch (std::exception const&) {
        return nullptr;
    }
}

}  // namespace vsrdeploy

// -- library entry points (IPluginRegistry::loadLibrary / trt.get_plugin_registry().load_library) -------

namespace {
ILoggerFinder* gLoggerFinder{nullptr};
}

extern "C" __attribute__((visibility("default"))) void setLoggerFinder(ILoggerFinder* finder) {
    gLoggerFinder = finder;
}

extern "C" __attribute__((visibility("default"))) IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
    static vsrdeploy::ModulatedDeformConv2dCreator creator;
    static IPluginCreatorInterface* const creators[] = {&creator};
    nbCreators = 1;
    return creators;
}
