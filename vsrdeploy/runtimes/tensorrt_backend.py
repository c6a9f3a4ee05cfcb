"""The ``tensorrt`` backend: the bundle's engines (built by ``vsrdeploy build``) on one CUDA device.

Every binding is a torch CUDA tensor, so recurrent state stays on the device between steps. Options:
``precision`` (fp32 | fp16 | int8; must match an engine set built for the bundle), ``cuda_graphs=True``
to capture each cell once per input shape and replay it (saves launch overhead on small frames),
``build=True`` to build missing engines with default settings instead of failing.

Written against the public TensorRT 10/11 Python API; not run on the development machines (no GPU).
"""
from __future__ import annotations

import json

import torch

from ..errors import BackendUnavailable, ConfigError
from .base import Backend, register_backend


def _torch_dtype(trt, dtype):
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.int8: torch.int8,
             trt.bool: torch.bool}
    if hasattr(trt, "int64"):
        table[trt.int64] = torch.int64
    if hasattr(trt, "bfloat16"):
        table[trt.bfloat16] = torch.bfloat16
    return table[dtype]


class _CellEngine:
    def __init__(self, trt, runtime, plan: bytes, name: str, device: torch.device, cuda_graphs: bool):
        self.trt = trt
        self.name = name
        self.engine = runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise BackendUnavailable(f"TensorRT could not load the engine of cell {name} (built by another TensorRT "
                                     "version or for another GPU?): rebuild with `vsrdeploy build --rebuild`")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: _torch_dtype(trt, self.engine.get_tensor_dtype(n)) for n in names}
        self.device = device
        self.cuda_graphs = cuda_graphs
        self.graphs: dict[tuple, tuple] = {}  # input shapes -> (graph, static inputs, static outputs)

    def _bind(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for n in self.inputs:
            t = inputs[n]
            self.context.set_input_shape(n, tuple(t.shape))
            self.context.set_tensor_address(n, t.data_ptr())
        outs = {}
        for n in self.outputs:
            shape = tuple(self.context.get_tensor_shape(n))
            outs[n] = torch.empty(shape, dtype=self.dtypes[n], device=self.device)
            self.context.set_tensor_address(n, outs[n].data_ptr())
        return outs

    def _execute(self, stream: torch.cuda.Stream) -> None:
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"TensorRT failed to run cell {self.name}")

    def __call__(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        missing = set(self.inputs) - set(inputs)
        if missing:
            raise ConfigError(f"cell {self.name} needs input(s) {', '.join(sorted(missing))}")
        feed = {n: inputs[n].to(self.device, self.dtypes[n]).contiguous() for n in self.inputs}
        stream = torch.cuda.current_stream(self.device)
        if not self.cuda_graphs:
            outs = self._bind(feed)
            self._execute(stream)
            return outs
        key = tuple(tuple(feed[n].shape) for n in self.inputs)
        if key not in self.graphs:
            static_in = {n: t.clone() for n, t in feed.items()}
            static_out = self._bind(static_in)
            self._execute(stream)  # TensorRT must run once after a shape change before capture
            stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):  # captures on PyTorch's side stream (never the default stream)
                self._execute(torch.cuda.current_stream(self.device))
            self.graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self.graphs[key]
        for n, t in feed.items():
            static_in[n].copy_(t)
        graph.replay()
        return {n: t.clone() for n, t in static_out.items()}  # the next replay overwrites static_out


@register_backend("tensorrt")
class TensorRTBackend(Backend):
    unsupported_ops = frozenset()  # checked by the ONNX parser at build time (`vsrdeploy check` beforehand)
    preferred_dcn = "native"
    precisions = {"fp32": {"precision": "fp32"}, "fp16": {"precision": "fp16"}}

    @classmethod
    def unavailable_reason(cls):
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return "TensorRT is not installed (NVIDIA's tensorrt package; JetPack on Jetson)"
        if not torch.cuda.is_available():
            return "no CUDA GPU visible to PyTorch"
        return None

    def __init__(self, bundle, precision: str | None = None, cuda_graphs: bool = False, build: bool = False,
                 plugin: str | None = None, **options):
        super().__init__(bundle, **options)
        from ..export import tensorrt as trt_export

        trt = trt_export.import_tensorrt()
        self.precision = precision or bundle.precision
        index_path = trt_export.engine_dir(bundle) / f"index-{self.precision}.json"
        if build or not index_path.exists():
            if not build:
                raise BackendUnavailable(f"no {self.precision} TensorRT engines for {bundle.path}: run "
                                         f"`vsrdeploy build {bundle.path} --precision {self.precision}`")
            trt_export.build_engines(bundle, self.precision, plugin=plugin)
        index = json.loads(index_path.read_text())
        gpu, sm = trt_export.gpu_identity()
        if index["tensorrt"] != trt.__version__ or index["gpu"] != gpu or index["sm"] != sm:
            raise BackendUnavailable(f"the engines in {index_path.parent} were built with TensorRT {index['tensorrt']} "
                                     f"for {index['gpu']} (sm {index['sm']}); this is TensorRT {trt.__version__} on "
                                     f"{gpu} (sm {sm}): run `vsrdeploy build {bundle.path} --precision "
                                     f"{self.precision}` again")
        if index.get("plugin"):
            trt_export.load_plugin(trt, trt_export.find_plugin(plugin) or index["plugin"])
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.cells = {name: _CellEngine(trt, self.runtime, (index_path.parent / file).read_bytes(), name, self.device,
                                        cuda_graphs)
                      for name, file in index["cells"].items()}
        self.profile = index["profile"]

    def run(self, cell, inputs):
        outs = self.cells[cell](inputs)
        return {k: v.float() if v.dtype != torch.float32 else v for k, v in outs.items()}
