// vsrdeploy's TensorRT plugin (IPluginV3) for the `vsrdeploy::ModulatedDeformConv2d` ONNX node.
//
// Plugin name "ModulatedDeformConv2d", version "1", namespace "vsrdeploy" (the exported node carries
// plugin_version / plugin_namespace attributes, so TensorRT's ONNX parser finds this creator and not
// NVIDIA's own ModulatedDeformConv2d plugin). Inputs: input, offset, mask, weight, bias; FP32 or FP16,
// linear layout; one output (N, O, Ho, Wo) of the input type. Fields: stride[2], padding[2],
// dilation[2], groups, deform_groups (INT32).
#pragma once

#include <NvInferRuntime.h>
#include <cublas_v2.h>

#include <string>
#include <vector>

namespace vsrdeploy {

struct DcnParams {
    int32_t stride[2]{1, 1};
    int32_t padding[2]{1, 1};
    int32_t dilation[2]{1, 1};
    int32_t groups{1};
    int32_t deformGroups{1};
};

class ModulatedDeformConv2dPlugin final : public nvinfer1::IPluginV3,
                                          public nvinfer1::IPluginV3OneCore,
                                          public nvinfer1::IPluginV3OneBuild,
                                          public nvinfer1::IPluginV3OneRuntime {
public:
    explicit ModulatedDeformConv2dPlugin(DcnParams const& params);
    ~ModulatedDeformConv2dPlugin() override;

    // IPluginV3
    nvinfer1::IPluginCapability* getCapabilityInterface(nvinfer1::PluginCapabilityType type) noexcept override;
    nvinfer1::IPluginV3* clone() noexcept override;

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;

    // IPluginV3OneBuild
    int32_t configurePlugin(nvinfer1::DynamicPluginTensorDesc const* in, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* out, int32_t nbOutputs) noexcept override;
    int32_t getOutputDataTypes(nvinfer1::DataType* outputTypes, int32_t nbOutputs,
                               nvinfer1::DataType const* inputTypes, int32_t nbInputs) const noexcept override;
    int32_t getOutputShapes(nvinfer1::DimsExprs const* inputs, int32_t nbInputs, nvinfer1::DimsExprs const* shapeInputs,
                            int32_t nbShapeInputs, nvinfer1::DimsExprs* outputs, int32_t nbOutputs,
                            nvinfer1::IExprBuilder& exprBuilder) noexcept override;
    bool supportsFormatCombination(int32_t pos, nvinfer1::DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override;
    int32_t getNbOutputs() const noexcept override;
    size_t getWorkspaceSize(nvinfer1::DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                            nvinfer1::DynamicPluginTensorDesc const* outputs, int32_t nbOutputs) const noexcept override;

    // IPluginV3OneRuntime
    int32_t onShapeChange(nvinfer1::PluginTensorDesc const* in, int32_t nbInputs, nvinfer1::PluginTensorDesc const* out,
                          int32_t nbOutputs) noexcept override;
    int32_t enqueue(nvinfer1::PluginTensorDesc const* inputDesc, nvinfer1::PluginTensorDesc const* outputDesc,
                    void const* const* inputs, void* const* outputs, void* workspace,
                    cudaStream_t stream) noexcept override;
    nvinfer1::IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* context) noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldsToSerialize() noexcept override;

private:
    DcnParams mParams;
    cublasHandle_t mCublas{nullptr};
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

class ModulatedDeformConv2dCreator final : public nvinfer1::IPluginCreatorV3One {
public:
    ModulatedDeformConv2dCreator();
    char const* getPluginName() const noexcept override;
    char const* getPluginVersion() const noexcept override;
    char const* getPluginNamespace() const noexcept override;
    nvinfer1::PluginFieldCollection const* getFieldNames() noexcept override;
    nvinfer1::IPluginV3* createPlugin(char const* name, nvinfer1::PluginFieldCollection const* fc,
                                      nvinfer1::TensorRTPhase phase) noexcept override;

private:
    std::vector<nvinfer1::PluginField> mFields;
    nvinfer1::PluginFieldCollection mFieldCollection{};
};

}  // namespace vsrdeploy
