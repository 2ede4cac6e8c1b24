"""fp32 ONNX export with a dynamic batch dimension, written atomically and verified with ONNX Runtime.

A pruned model exports like a normally built one (the engine keeps module attributes true), so this is plain
``torch.onnx.export``, plus what deployment needs and the exporter leaves out: the batch dimension left free,
the file written atomically, ``Identity(initializer)`` nodes inlined (they stop ONNX Runtime from fusing a conv
with its bias), and the exported graph run once by ONNX Runtime on the example inputs and compared with PyTorch.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from slimkit.core.errors import ExportError
from slimkit.core.io import atomic_write_bytes
from slimkit.train.evaluation import training_mode

INPUT_NAME, OUTPUT_NAME = "input", "output"


def _names(prefix: str, count: int) -> list[str]:
    return [prefix] if count == 1 else [f"{prefix}_{i}" for i in range(count)]


def export_onnx(model: nn.Module, example_inputs: Any, path: str | Path, *, verify: bool = True,
                atol: float = 1e-4, opset: int = 17) -> Path:
    """Write ``model`` (eval mode, fp32) to ``path`` as ONNX with a free batch dimension; return the path.

    Inputs are named ``input`` (``input_0``, ``input_1``, ... for several), outputs ``output`` likewise. With
    ``verify`` ONNX Runtime runs the file on ``example_inputs`` and every output must match PyTorch's within
    ``atol``; otherwise :class:`ExportError` says by how much, and the file is removed. The model's train/eval
    flags are restored afterwards.

    Example:
        >>> slimkit.export_onnx(pruned, torch.randn(1, 3, 32, 32), "pruned.onnx")
    """
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)
    path = Path(path)
    with training_mode(model, False), torch.no_grad():
        expected = model(*inputs)
        outputs = expected if isinstance(expected, (tuple, list)) else (expected,)
        input_names = _names(INPUT_NAME, len(inputs))
        output_names = _names(OUTPUT_NAME, len(outputs))
        axes = {name: {0: "batch"} for name in input_names + output_names}
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:  # the TorchScript exporter is ~40x faster to run for CNNs than the dynamo one
                torch.onnx.export(model, inputs, buffer, dynamo=False, input_names=input_names,
                                  output_names=output_names, dynamic_axes=axes, opset_version=opset)
            except Exception:  # noqa: BLE001 - fall back to the dynamo exporter for what TorchScript cannot trace
                buffer = io.BytesIO()
                try:
                    program = torch.onnx.export(model, inputs, dynamo=True, input_names=input_names,
                                                output_names=output_names, verbose=False,
                                                dynamic_shapes=tuple({0: "batch"} for _ in inputs))
                    program.save(buffer)  # type: ignore[union-attr]
                except Exception as err:  # noqa: BLE001
                    raise ExportError(f"{type(model).__name__}: ONNX export failed ({type(err).__name__}: {err})") from None
    proto = inline_constant_identities(onnx.load_from_string(buffer.getvalue()))
    atomic_write_bytes(path, proto.SerializeToString())
    if verify:
        try:
            _verify(path, inputs, [o.detach().cpu() for o in outputs], atol)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    return path


def _verify(path: Path, inputs: tuple, expected: list[torch.Tensor], atol: float) -> None:
    session = onnx_session(path)
    feed = {i.name: t.detach().cpu().numpy() for i, t in zip(session.get_inputs(), inputs)}
    got = session.run(None, feed)
    if len(got) != len(expected):
        raise ExportError(f"{path}: the ONNX graph has {len(got)} outputs, the model {len(expected)}")
    for k, (g, e) in enumerate(zip(got, expected)):
        e_np = e.numpy()
        if g.shape != e_np.shape:
            raise ExportError(f"{path}: output {k} has shape {g.shape} in ONNX Runtime, {e_np.shape} in PyTorch")
        diff = float(np.max(np.abs(g - e_np))) if g.size else 0.0
        if not diff <= atol:
            raise ExportError(f"{path}: output {k} differs from PyTorch by up to {diff:.3g} (atol {atol})")


def onnx_session(path: str | Path, threads: int | None = None, optimized_path: str | None = None) -> Any:
    """An ONNX Runtime CPU session with every graph optimization on; ``threads`` intra-op threads if given."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: the "optimized model is hardware specific" notice is expected
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if optimized_path:
        options.optimized_model_filepath = optimized_path
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def inline_constant_identities(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace ``Identity(initializer)`` nodes by a copy of the initializer.

    The TorchScript exporter de-duplicates equal tensors (e.g. two all-zero biases after BatchNorm folding) into
    one initializer plus Identity nodes; a conv whose bias comes from a node is not fused (``QLinearConv``,
    conv + bias).
    """
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    keep = []
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in initializers:
            copy_ = onnx.TensorProto()
            copy_.CopyFrom(initializers[node.input[0]])
            copy_.name = node.output[0]
            graph.initializer.append(copy_)
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    return model
