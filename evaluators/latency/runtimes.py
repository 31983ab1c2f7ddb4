"""The runtime a latency is measured on: the one the user deploys.

Eager PyTorch at batch 1 in fp32 mostly counts kernel launches on a GPU: a block of a few tiny
kernels costs as much as a convolution a hundred times its FLOPs, so a search timed that way
ranks blocks as no deployed engine would. So the timer runs the candidate the way it will run:

* `eager`: PyTorch, in `precision` (fp32 | fp16 | bf16: the weights and input cast), optionally
  `channels_last`, and on CUDA optionally replayed as a CUDA graph (launches recorded once);
* `onnxruntime`: the model exported to ONNX and run by ONNX Runtime's CPU or CUDA execution
  provider (`pip install 'attnas[onnx]'`; `onnxruntime-gpu` for CUDA);
* `tensorrt`: an engine built from that ONNX by TensorRT (`pip install 'attnas[tensorrt]'`, CUDA only).

`runner(model, config)` returns a function that runs one inference and returns its milliseconds:
CUDA events on the device's own stream (`cuda:N`, not the current device) for eager and TensorRT,
the wall clock around a synchronous call for ONNX Runtime and on the CPU.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from attnas.evaluators.latency.timing import LatencyConfig

RUNTIMES = ("eager", "onnxruntime", "tensorrt")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
EXTRAS = {"onnxruntime": ("onnxruntime", "pip install 'attnas[onnx]' (onnxruntime-gpu for CUDA)"),
          "tensorrt": ("tensorrt", "pip install 'attnas[tensorrt]' on a machine with CUDA")}


def check_runtime(runtime: str, precision: str, device: str, cuda_graphs: bool = False, channels_last: bool = False) -> None:
    """Refuse, in one line and before any timing, a runtime setting that cannot run here."""
    import importlib.util

    if runtime not in RUNTIMES:
        raise ValueError(f"runtime={runtime!r} is not a runtime; valid: {', '.join(RUNTIMES)}")
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not a precision; valid: {', '.join(PRECISIONS)}")
    on_cuda = torch.device(device).type == "cuda"
    if runtime in EXTRAS and importlib.util.find_spec(EXTRAS[runtime][0]) is None:
        raise ValueError(f"runtime={runtime} needs {EXTRAS[runtime][0]}, which is not installed: "
                         f"{EXTRAS[runtime][1]}")
    if runtime == "tensorrt" and not on_cuda:
        raise ValueError("runtime=tensorrt runs on CUDA only; use device=cuda, or runtime=onnxruntime on the CPU")
    if runtime == "onnxruntime" and precision == "bf16":
        raise ValueError("runtime=onnxruntime has no bf16 kernels; use precision=fp16 or fp32, or runtime=tensorrt")
    if cuda_graphs and not (on_cuda and runtime == "eager"):
        raise ValueError("cuda_graphs=true needs runtime=eager on device=cuda (ONNX Runtime and TensorRT "
                         "launch their own kernels)")
    if channels_last and runtime != "eager":
        raise ValueError(f"channels_last=true is an eager setting; runtime={runtime} chooses its own layout")


def runner(model: nn.Module, cfg: "LatencyConfig") -> Callable[[], float]:
    """One inference of `model` on a fixed random input of the configured shape, in milliseconds."""
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"latency device {cfg.device!r} asked for, but CUDA is not available; use device=cpu")
    check_runtime(cfg.runtime, cfg.precision, cfg.device, cfg.cuda_graphs, cfg.channels_last)
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    dtype = PRECISIONS[cfg.precision]
    model = model.eval().to(device)
    x = torch.randn(cfg.batch_size, 3, *cfg.input_size, device=device)
    with torch.cuda.device(device) if device.type == "cuda" else contextlib.nullcontext():
        if cfg.runtime == "onnxruntime":
            return _onnxruntime(model, x, dtype, device, cfg.threads)
        if cfg.runtime == "tensorrt":
            return _tensorrt(model, x, dtype, device)
        return _eager(model, x, dtype, device, cfg.channels_last, cfg.cuda_graphs)


def wall_clock(call: Callable[[], Any], device: torch.device) -> Callable[[], float]:
    def run() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - started) * 1000.0

    return run


def cuda_events(call: Callable[[], Any], device: torch.device, stream: "torch.cuda.Stream | None" = None) -> Callable[[], float]:
    """Time `call` with CUDA events recorded on `stream` (default: `device`'s current stream)."""
    stream = stream or torch.cuda.current_stream(device)

    def run() -> float:
        with torch.cuda.device(device):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            torch.cuda.synchronize(device)
            start.record(stream)
            with torch.cuda.stream(stream):
                call()
            end.record(stream)
            end.synchronize()
        return start.elapsed_time(end)

    return run


def _eager(model: nn.Module, x: torch.Tensor, dtype: torch.dtype, device: torch.device, channels_last: bool,
           cuda_graphs: bool) -> Callable[[], float]:
    model, x = model.to(dtype=dtype), x.to(dtype)
    if channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    call: Callable[[], Any] = lambda: model(x)  # noqa: E731
    if device.type != "cuda":
        return wall_clock(call, device)
    if cuda_graphs:
        call = _graphed(model, x, device)
    return cuda_events(call, device)


def _graphed(model: nn.Module, x: torch.Tensor, device: torch.device) -> Callable[[], None]:
    """`model(x)` captured once as a CUDA graph (warmed up on a side stream, as capture requires)."""
    side = torch.cuda.Stream(device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        for _ in range(3):
            model(x)
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        model(x)
    return graph.replay


def onnx_bytes(model: nn.Module, x: torch.Tensor) -> bytes:
    """The model as ONNX, for the input shape of `x` (static: what a deployed engine is built for).
    The TorchScript-based exporter: a second for ResNet-50 where the torch.export one takes ten,
    and this runs once per timed candidate."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its deprecation notice, once per candidate
        torch.onnx.export(model, (x,), buffer, dynamo=False, opset_version=17, input_names=["images"],
                          output_names=["embedding"])
    return buffer.getvalue()


def _onnxruntime(model: nn.Module, x: torch.Tensor, dtype: torch.dtype, device: torch.device,
                 threads: int | None) -> Callable[[], float]:
    import onnxruntime as ort

    model, x = model.to(dtype=dtype), x.to(dtype)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    provider: Any = "CPUExecutionProvider"
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError("runtime=onnxruntime on CUDA needs onnxruntime-gpu (this ONNX Runtime has "
                               f"{', '.join(ort.get_available_providers())}): pip install onnxruntime-gpu")
        provider = ("CUDAExecutionProvider", {"device_id": device.index})
    session = ort.InferenceSession(onnx_bytes(model, x), options, providers=[provider])
    if device.type != "cuda":
        feed = {"images": x.cpu().numpy()}
        return wall_clock(lambda: session.run(None, feed), device)
    # inputs and outputs stay on the GPU: what is timed is the engine, not copies to the host
    binding = session.io_binding()
    binding.bind_input("images", "cuda", device.index, x.cpu().numpy().dtype, list(x.shape), x.data_ptr())
    binding.bind_output("embedding", "cuda", device.index)
    return wall_clock(lambda: session.run_with_iobinding(binding), device)


def _tensorrt(model: nn.Module, x: torch.Tensor, dtype: torch.dtype, device: torch.device) -> Callable[[], float]:
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.ERROR)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch: the only mode of TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(onnx_bytes(model, x)):
        raise RuntimeError(f"TensorRT could not parse the ONNX of {getattr(model, 'spec', 'the model')}: "
                           f"{parser.get_error(0) if parser.num_errors else 'no reason given'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, 1 << 30)
    if dtype != torch.float32:  # TensorRT picks the fastest of fp32 and the allowed lower precision per layer
        config.set_flag(trt.BuilderFlag.FP16 if dtype == torch.float16 else trt.BuilderFlag.BF16)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(f"TensorRT could not build an engine for {getattr(model, 'spec', 'the model')}")
    engine = trt.Runtime(logger).deserialize_cuda_engine(serialized)
    context = engine.create_execution_context()
    buffers = []  # kept alive with the runner: the engine reads and writes them by address
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            buffer = x.contiguous()
        else:
            element = torch.from_numpy(np.empty(0, trt.nptype(engine.get_tensor_dtype(name)))).dtype
            buffer = torch.empty(tuple(engine.get_tensor_shape(name)), device=device, dtype=element)
        buffers.append(buffer)
        context.set_tensor_address(name, buffer.data_ptr())
    stream = torch.cuda.Stream(device)

    def call() -> None:
        context.execute_async_v3(stream.cuda_stream)

    call.keep = (engine, context, buffers)  # type: ignore[attr-defined]
    return cuda_events(call, device, stream)
