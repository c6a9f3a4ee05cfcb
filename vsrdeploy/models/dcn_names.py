"""The names deformable convolution goes by in bundles: its export modes and vsrdeploy's TensorRT plugin node.

Apart from ``models.dcn`` so that the runtimes and the manifest check can name them without importing PyTorch.
"""
#: how ``ModulatedDeformConv2d`` appears in an ONNX export: "decomposed" (GridSample + 1x1 Conv per group of taps,
#: traced from ``models.dcn``'s decomposed function), "native" (ONNX DeformConv, opset 19) or "plugin"
#: (vsrdeploy's TensorRT plugin)
DCN_EXPORT_MODES = ("native", "decomposed", "plugin")
PLUGIN_DOMAIN = "vsrdeploy"
PLUGIN_OP = "ModulatedDeformConv2d"
PLUGIN_NODE = f"{PLUGIN_DOMAIN}::{PLUGIN_OP}"  # how bundles and backends name the plugin node's op
#: TensorRT's ONNX parser finds a plugin by op type + these two node attributes; the namespace keeps ours
#: apart from NVIDIA's own ModulatedDeformConv2d plugin (namespace "").
PLUGIN_VERSION = "1"
