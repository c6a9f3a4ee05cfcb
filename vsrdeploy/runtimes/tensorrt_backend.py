"""The ``tensorrt`` backend: the bundle's engines (built by ``vsrdeploy build``) on one CUDA device.

Every binding is a torch CUDA tensor, so recurrent state stays on the device between steps. Options:
``precision`` (fp32 | fp16 | int8; must match an engine set built for the bundle), ``cuda_graphs=True``
to capture each cell once per input shape and replay it (saves launch overhead on small frames),
``plugin`` (the DCN plugin library when the engines need it). Build engines with `vsrdeploy build` first.

Written against the public TensorRT 10/11 Python API; not run on the development machines (no GPU).
"""
from __future__ import annotations


import torch

from ..errors import BackendUnavailable, ConfigError
from .base import Backend, register_backend


def _torch_dtype(trt, dtype):
    table = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int32: torch.int32, trt.int8: torch.int8,
             trt.bool: torch.bool}
    for trt_name, torch_type in (("int64", torch.int64), ("bfloat16", torch.bfloat16), ("uint8", torch.uint8)):
        if hasattr(trt, trt_name):
            table[getattr(trt, trt_name)] = torch_type
    if dtype not in table:
        raise BackendUnavailable(f"the engine has a {dtype} input or output, which vsrdeploy cannot bind")
    return table[dtype]


ALIGNMENT = 256  # TensorRT requires tensor addresses aligned to 256 bytes


class _CellEngine:
    """One cell's engine. Runs on the backend's own stream (TensorRT syncs extra on the legacy default
    stream); with ``cuda_graphs`` every input-shape key gets its own execution context and graph, since
    a captured graph is only valid for the shapes (and context state) it was captured with."""

    def __init__(self, trt, runtime, plan: bytes, name: str, device: torch.device, stream, cuda_graphs: bool,
                 profile: dict):
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
        self.stream = stream
        self.cuda_graphs = cuda_graphs
        self.profile = profile
        self.graphs: dict[tuple, tuple] = {}  # input shapes -> (context, graph, static inputs, static outputs)

    def _bind(self, context, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        for n in self.inputs:
            t = inputs[n]
            if not context.set_input_shape(n, tuple(t.shape)):
                raise ConfigError(f"cell {self.name}: input {n} of shape {tuple(t.shape)} is outside the engines' "
                                  f"profile (LR frames {self.profile['min_hw']} .. {self.profile['max_hw']}, batch <= "
                                  f"{self.profile['max_batch']}); rebuild with `vsrdeploy build --min-shape/--max-shape`")
            context.set_tensor_address(n, t.data_ptr())
        outs = {}
        for n in self.outputs:
            shape = tuple(context.get_tensor_shape(n))
            outs[n] = torch.empty(shape, dtype=self.dtypes[n], device=self.device)
            context.set_tensor_address(n, outs[n].data_ptr())
        return outs

    def _execute(self, context, stream) -> None:
        if not context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError(f"TensorRT failed to run cell {self.name}")

    def _feed(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        missing = set(self.inputs) - set(inputs)
        if missing:
            raise ConfigError(f"cell {self.name} needs input(s) {', '.join(sorted(missing))}")
        feed = {}
        for n in self.inputs:
            t = inputs[n].to(self.device, self.dtypes[n]).contiguous()
            if t.data_ptr() % ALIGNMENT:  # e.g. a per-frame view into a batched output
                t = t.clone()
            feed[n] = t
        return feed

    def __call__(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        caller = torch.cuda.current_stream(self.device)
        feed = self._feed(inputs)
        self.stream.wait_stream(caller)
        for t in feed.values():
            t.record_stream(self.stream)
        with torch.cuda.stream(self.stream):
            if not self.cuda_graphs:
                outs = self._bind(self.context, feed)
                self._execute(self.context, self.stream)
            else:
                outs = self._replay(feed)
        caller.wait_stream(self.stream)
        for t in outs.values():
            t.record_stream(caller)
        return outs

    def _replay(self, feed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        key = tuple(tuple(feed[n].shape) for n in self.inputs)
        if key not in self.graphs:
            context = self.engine.create_execution_context()
            static_in = {n: t.clone() for n, t in feed.items()}
            static_out = self._bind(context, static_in)
            self._execute(context, self.stream)  # TensorRT must run once after a shape change before capture
            self.stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, stream=self.stream):  # a side stream, never the default one
                self._execute(context, self.stream)
            self.graphs[key] = (context, graph, static_in, static_out)
        _, graph, static_in, static_out = self.graphs[key]
        for n, t in feed.items():
            static_in[n].copy_(t)
        graph.replay()
        return {n: t.clone() for n, t in static_out.items()}  # the next replay overwrites static_out


@register_backend("tensorrt")
class TensorRTBackend(Backend):
    unsupported_ops = frozenset()  # checked by the ONNX parser at build time (`vsrdeploy check` beforehand)
    preferred_dcn = "native"
    precisions = {"fp32": {"precision": "fp32"}, "fp16": {"precision": "fp16"}}
    resources = ("cells", "runtime")
    row_strips = False  # a strip's height would fall outside the engines' optimization profile

    @classmethod
    def unavailable_reason(cls):
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            return "TensorRT is not installed (NVIDIA's tensorrt package; JetPack on Jetson)"
        if not torch.cuda.is_available():
            return "no CUDA GPU visible to PyTorch"
        return None

    def __init__(self, bundle, precision: str | None = None, cuda_graphs: bool = False,
                 plugin: str | None = None, **options):
        super().__init__(bundle, **options)
        from . import tensorrt_engines as trt_export

        trt = trt_export.import_tensorrt()
        self.precision = precision or bundle.precision
        index, plans = trt_export.read_engine_index(bundle, self.precision)
        gpu, sm = trt_export.gpu_identity()
        if index["tensorrt"] != trt.__version__ or index["gpu"] != gpu or index["sm"] != sm:
            raise BackendUnavailable(f"the engines of {bundle.path} were built with TensorRT {index['tensorrt']} "
                                     f"for {index['gpu']} (sm {index['sm']}); this is TensorRT {trt.__version__} on "
                                     f"{gpu} (sm {sm}): run `vsrdeploy build {bundle.path} --precision "
                                     f"{self.precision}` again")
        if index.get("plugin_sha256"):  # the library comes from --plugin / the environment / our build only
            library = trt_export.find_plugin(plugin)
            if library is None:
                raise BackendUnavailable(f"these engines need the DCN plugin: pass plugin=PATH (--plugin) or set "
                                         f"${trt_export.PLUGIN_ENV} (README, 'Deploying to TensorRT')")
            trt_export.load_plugin(trt, library)
        self.device = torch.device("cuda", torch.cuda.current_device())
        self.runtime = trt.Runtime(trt_export.logger(trt))
        self.stream = torch.cuda.Stream(self.device)
        self.profile = index["profile"]
        self.cells = {name: _CellEngine(trt, self.runtime, plan, name, self.device, self.stream, cuda_graphs,
                                        self.profile)
                      for name, plan in plans.items()}

    def run(self, cell, inputs):
        outs = self.cells[cell](inputs)
        return {k: v.float() if v.dtype != torch.float32 else v for k, v in outs.items()}
