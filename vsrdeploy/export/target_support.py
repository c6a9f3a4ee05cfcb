"""What each deployment target can import, as documented, so ``vsrdeploy check`` can say so before
a user reaches the device.

TensorRT: ``onnx/onnx-tensorrt`` ``docs/operators.md`` (TensorRT 10.15 table, opsets 9-24) and the
Q/DQ importer rules (``QuantDequantLinearHelper``): symmetric quantization only (zero point 0), INT8
(or FP8/INT4/FP4) quantized types, UINT8 only as a network input or output, per-axis scales only for
constant (weight) inputs, scales > 0. TensorRT 11 keeps the same parser table (it adds Swish, and DFT
through a plugin) but builds strongly typed networks only: precision comes from the ONNX types
(FP16-converted or Q/DQ graphs), not from builder flags.
"""
from __future__ import annotations

from ..models.dcn_names import PLUGIN_NODE

TENSORRT_10_OPS = frozenset("""
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh Attention AveragePool BatchNormalization
BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh
CumSum DeformConv DepthToSpace DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike
Flatten Floor Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool
Greater GreaterOrEqual GridSample GroupNormalization GRU HammingWindow HannWindow HardSigmoid HardSwish
Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization LeakyRelu Less
LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean
MeanVarianceNormalization Min Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad
ParametricSoftplus Pow PRelu QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike
Range Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd
ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RMSNormalization RNN RoiAlign
RotaryEmbedding Round STFT ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid
Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub Sum Tan Tanh
TensorScatter ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
""".split())
TENSORRT_11_OPS = TENSORRT_10_OPS | {"Swish"}

#: OpenVINO's ONNX frontend cannot import DeformConv-19 (it reads only the mmcv/torchvision variants).
OPENVINO_MISSING = frozenset({"DeformConv"})
#: ONNX Runtime (>= 1.25) runs every standard op vsrdeploy exports, DeformConv included.
ORT_MISSING: frozenset[str] = frozenset()

PLUGIN_OPS = frozenset({PLUGIN_NODE})
