"""Real integer execution: export to an int8 QDQ ONNX model and run it with ONNX Runtime's int8 CPU kernels.

Path: unwrap slimkit's quantized layers (weights baked to their quantized values), fold BatchNorm, export fp32 ONNX,
measure every activation tensor's range on the calibration batches with slimkit's own observers (input ranges that
the torch model already calibrated or learned, e.g. with LSQ, are carried over as they are; a layer's input range
is also given to the tensors upstream whose parameters ORT passes on to it through Flatten/MaxPool/Reshape; a layer
right after an AveragePool, which passes parameters on the same way but does not commute with clipping, gets the
range of the pool's input), and let ``onnxruntime.quantization.quantize_static`` write QuantizeLinear/DequantizeLinear pairs from
exactly those ranges (passed as its calibration cache, so ORT's calibrators never run). ORT's graph optimizer then
fuses ``DQ -> Conv -> Q`` into ``QLinearConv`` and ``DQ -> MatMul/Gemm -> Q`` into ``QLinearMatMul``/``QGemm``,
which run on u8s8 (VNNI where present) kernels. ``quantize_static`` is used for the graph rewrite because it already
knows which operators ORT can fuse (Relu absorbed into the conv's output range, int32 biases, per-channel weight
scales); re-implementing that rewrite would add risk and no speed.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import logging
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from slimkit.core.errors import DataError, GraphError
from slimkit.core.io import atomic_write_bytes
from slimkit.export.onnx import INPUT_NAME, export_onnx, onnx_session
from slimkit.quant.api import calibration_inputs
from slimkit.quant.fake_quant import FakeQuantize
from slimkit.quant.fold import fold_batchnorm
from slimkit.quant.modules import is_quant_layer, quantizable_types, to_float_layer
from slimkit.quant.observers import ObserverKind, make_observer


def float_copy(model: nn.Module) -> tuple[nn.Module, dict[str, tuple[float, float]], set[str], set[str]]:
    """A float copy of ``model`` with quantized weights baked in.

    Returns:
        ``(model, input_ranges, quantized, float_layers)``: calibrated input ranges of quantized layers
        (fqn -> (lo, hi)), the fqns of quantized layers and of conv/linear layers left in float.
    """
    model = copy.deepcopy(model).cpu().eval()
    ranges: dict[str, tuple[float, float]] = {}
    quantized: set[str] = set()
    floats: set[str] = set()
    for fqn, module in list(model.named_modules()):
        if is_quant_layer(module):
            iq = getattr(module, "input_quant", None)
            if isinstance(iq, FakeQuantize) and iq.enabled:
                scale, zero_point = iq.qparams()
                s, z = float(scale), int(zero_point)
                ranges[fqn] = ((iq.qmin - z) * s, (iq.qmax - z) * s)
            parent, _, child = fqn.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, to_float_layer(module))
            quantized.add(fqn)
        elif isinstance(module, quantizable_types()):
            floats.add(fqn)
    fold_batchnorm(model)
    return model, ranges, quantized, floats


def _observe_ranges(
    path: Path, inputs: list[torch.Tensor], observer: ObserverKind | str, percentile: float
) -> dict[str, tuple[float, float]]:
    """Range of every float tensor of the ONNX graph over ``inputs``, per slimkit's observer."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    floats = {vi.name for vi in list(graph.value_info) + list(graph.input) + list(graph.output)
              if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}
    initializers = {init.name for init in graph.initializer}
    outputs = {o.name for o in graph.output}
    wanted = [vi for vi in graph.value_info if vi.name in floats and vi.name not in outputs]
    graph.output.extend(wanted)
    names = [INPUT_NAME] + [o.name for o in graph.output]
    with tempfile.TemporaryDirectory(prefix="slimkit-calib-") as tmp:
        augmented = Path(tmp) / "augmented.onnx"
        onnx.save(model, str(augmented))
        session = onnx_session(augmented)
        out_names = [o.name for o in session.get_outputs()]
        observers = {n: make_observer(observer, bits=8, symmetric=False, axis=None, percentile=percentile)
                     for n in names if n in floats and n not in initializers}
        for x in inputs:
            feed = x.detach().cpu().numpy().astype(np.float32)
            results = dict(zip(out_names, session.run(out_names, {INPUT_NAME: feed})))
            results[INPUT_NAME] = feed
            for name, obs in observers.items():
                if name in results:
                    obs.update(torch.from_numpy(np.asarray(results[name])))
    ranges = {}
    for name, obs in observers.items():
        if obs.lo is None:
            continue
        lo, hi = obs.range()
        ranges[name] = (float(lo), float(hi))
    return ranges


def _weight_consumers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    """Initializer name -> the Conv/Gemm/MatMul node that uses it as its weight."""
    found = {}
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm", "MatMul") and len(node.input) > 1:
            found[node.input[1]] = node
    return found


# Ops whose int8 output ORT's QDQ quantizer gives its input's scale and zero point (QDQDirect8BitOp) and that
# commute with an elementwise monotonic quantizer: q(op(x)) == op(q(x)), so a range meant for the output is exact
# on the input too. AveragePool also shares parameters but averaging does not commute with clipping: not listed.
_SHARED_EXACT_OPS = frozenset({"Flatten", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "MaxPool", "Slice"})


def _sharing_chain(graph: onnx.GraphProto, tensor: str) -> list[str]:
    """Tensors upstream of ``tensor`` whose quantization parameters ORT gives ``tensor``.

    ORT quantizes the output of a Flatten/MaxPool/... with its input's parameters, so a range set on a layer's input
    alone would be ignored when that input comes out of such an op. The chain stops at a tensor that something else
    also reads (its range is not this layer's alone) or that a non-sharing op produced.
    """
    producers = {out: node for node in graph.node for out in node.output}
    readers = collections.Counter(name for node in graph.node for name in node.input)
    outputs = {o.name for o in graph.output}
    chain = []
    node = producers.get(tensor)
    while node is not None and node.op_type in _SHARED_EXACT_OPS:
        upstream = node.input[0]
        if readers[upstream] != 1 or upstream in outputs:
            break
        chain.append(upstream)
        node = producers.get(upstream)
    return chain


def export_onnx_int8(
    model: nn.Module,
    example_inputs: tuple[torch.Tensor, ...],
    path: str | Path,
    *,
    calibration_data: Iterable[Any],
    observer: ObserverKind | str = ObserverKind.MINMAX,
    percentile: float = 99.99,
    per_channel: bool = True,
    calibration_batches: int = 8,
) -> Path:
    """Write an int8 QDQ ONNX model of ``model`` to ``path`` (atomically) and return the path.

    Args:
        model: a float model, or one quantized with :func:`slimkit.quantize` (its quantized layers become int8;
            layers it kept in float stay float; its calibrated input ranges are reused).
        example_inputs: a batch for tracing (the batch dimension is exported as dynamic).
        calibration_data: batches (tensors or ``(x, y)``) for the activation ranges of the exported graph.
        observer: slimkit observer used on every activation tensor.
        per_channel: per-output-channel weight scales.

    Raises:
        DataError: no calibration batches. GraphError: export or quantization failed (message says where).
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorsData, save_tensors_data

    device = torch.device("cpu")
    inputs = calibration_inputs(calibration_data, calibration_batches, device)
    if not inputs:
        raise DataError("export_onnx_int8: calibration_data gave no batches; int8 activations need ranges")
    float_model, torch_ranges, quantized, float_layers = float_copy(model)  # the user's model stays put
    example = tuple(t.to(device) for t in example_inputs)
    with tempfile.TemporaryDirectory(prefix="slimkit-int8-") as tmp:
        fp32_path = export_onnx(float_model, example, Path(tmp) / "fp32.onnx", verify=False)
        ranges = _observe_ranges(fp32_path, inputs, observer, percentile)
        graph = onnx.load(str(fp32_path)).graph
        consumers = _weight_consumers(graph)
        for fqn, rng in torch_ranges.items():  # ranges slimkit calibrated/learned on the torch model win
            node = consumers.get(f"{fqn}.weight")
            if node is not None and node.input[0] in ranges:
                ranges[node.input[0]] = rng
        for node in consumers.values():  # a layer's input range also where ORT takes that input's parameters from
            rng = ranges.get(node.input[0])
            for name in _sharing_chain(graph, node.input[0]) if rng is not None else ():
                if name in ranges:
                    ranges[name] = rng
        exclude = []
        if quantized:  # mirror the torch model: float layers stay float
            exclude = [consumers[f"{f}.weight"].name for f in float_layers if f"{f}.weight" in consumers]
        data = {k: (np.array(lo, dtype=np.float32), np.array(hi, dtype=np.float32)) for k, (lo, hi) in ranges.items()}
        cache = Path(tmp) / "ranges.json"
        save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), cache)
        out = Path(tmp) / "int8.onnx"
        root_logger = logging.getLogger()
        level = root_logger.level
        root_logger.setLevel(logging.ERROR)  # quantize_static logs a pre-processing hint on the root logger
        try:
            quantize_static(
                str(fp32_path), str(out), calibration_data_reader=None, calibration_cache_path=str(cache),
                quant_format=QuantFormat.QDQ, per_channel=per_channel, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=exclude,
                extra_options={"WeightSymmetric": True, "ActivationSymmetric": False},
            )
        except Exception as err:  # ORT raises plain exceptions; name the stage for the user
            raise GraphError(f"export_onnx_int8: onnxruntime quantize_static failed: {err}") from err
        finally:
            root_logger.setLevel(level)
        return atomic_write_bytes(path, out.read_bytes())


class IntegerModel:
    """Runs an (int8) ONNX model with ONNX Runtime on the CPU; call it like the torch model.

    Args:
        path: the ``.onnx`` file (from :func:`export_onnx_int8` or :func:`slimkit.export_onnx`).
        threads: intra-op threads (``None``: ORT's default).

    Example:
        >>> int8 = IntegerModel(export_onnx_int8(model, (x,), "m.int8.onnx", calibration_data=batches))
        >>> logits = int8(x)
    """

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: no such ONNX file")
        self.threads = threads
        self.session = onnx_session(self.path, threads)
        self.input_name = self.session.get_inputs()[0].name

    def predict(self, x: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Outputs for a batch ``x`` (float32, same layout as the torch model's input)."""
        feed = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        (out,) = self.session.run(None, {self.input_name: feed.astype(np.float32, copy=False)})[:1]
        return torch.from_numpy(out)

    __call__ = predict

    def evaluate(self, data: Iterable[Any]) -> dict[str, float]:
        """Top-1 accuracy over ``(x, y)`` batches: the integer model's own accuracy."""
        correct = total = 0
        for x, y in data:
            pred = self.predict(x).argmax(dim=1)
            correct += int((pred == y.cpu()).sum())
            total += int(y.numel())
        if total == 0:
            raise DataError("IntegerModel.evaluate: data gave no samples")
        return {"accuracy": correct / total, "samples": float(total)}

    def kernel_ops(self) -> dict[str, int]:
        """Operator counts of the graph ORT actually runs after its fusions (``QLinearConv`` etc. when int8)."""
        with tempfile.TemporaryDirectory(prefix="slimkit-ort-") as tmp:
            optimized = str(Path(tmp) / "optimized.onnx")
            with contextlib.suppress(Exception):
                onnx_session(self.path, self.threads, optimized)
            if not Path(optimized).is_file():
                return {}
            return dict(collections.Counter(n.op_type for n in onnx.load(optimized).graph.node))
