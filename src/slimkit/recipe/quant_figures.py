"""Which "after" figures of a quantized model are real: the integer model's when one was exported, else simulated.

A quantized model in PyTorch is a fake-quant model: its weights are stored at 32 bits and every forward pass adds
quantize/dequantize work, so its measured size and latency say nothing about the integer model. When the
``quantize`` stage wrote an int8 ONNX file (``onnx_int8: true``) and no later stage changed the model, the summary
shows that file's size, ONNX Runtime's accuracy (recorded by the stage) and ONNX Runtime's CPU latency; otherwise
it shows the size estimated at the layers' bit widths and the fake-quant latency and accuracy, marked simulated.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

INTEGER = "int8"  # marks on figures measured on the exported integer model
SIMULATED = "sim"  # marks on figures of the fake-quant model


@dataclass(frozen=True)
class QuantizedAfter:
    """How the final model is quantized, found from the model and the run manifest.

    Attributes:
        stage: name of the last ``quantize`` stage ('' when the model was quantized otherwise).
        onnx_path: the integer ONNX file when it is current (None: the figures are simulated).
        accuracy_int8: the integer model's test accuracy recorded by the stage.
        estimated_size_bytes: the stage's size at the layers' bit widths.
    """

    stage: str
    onnx_path: Path | None
    accuracy_int8: float | None
    estimated_size_bytes: int | None

    @property
    def integer(self) -> bool:
        return self.onnx_path is not None


def is_fake_quant(model: nn.Module) -> bool:
    """Whether ``model`` holds a simulated-quantization module (quantized layer, fake-quant, binary/ternary weight)."""
    from slimkit.quant.binary import BinaryWeight, SignActivation, TernaryWeight, TTQWeight
    from slimkit.quant.fake_quant import FakeQuantize
    from slimkit.quant.modules import QuantLayerMixin

    kinds = (QuantLayerMixin, FakeQuantize, BinaryWeight, SignActivation, TernaryWeight, TTQWeight)
    return any(isinstance(m, kinds) for m in model.modules())


def quantized_after(model: nn.Module, stages: list[dict[str, Any]], run_dir: Path) -> QuantizedAfter | None:
    """None when ``model`` is not quantized; else where its real (or simulated) figures come from.

    The int8 file counts only if every stage after the one that wrote it left the model unchanged (same snapshot
    checksum): after a QAT fine-tuning, say, the file holds the weights before training.
    """
    if not is_fake_quant(model):
        return None
    done = [s for s in stages if s.get("status") == "done"]
    last = next((i for i in range(len(done) - 1, -1, -1) if done[i].get("type") == "quantize"), None)
    if last is None:
        return QuantizedAfter("", None, None, None)
    entry = done[last]
    metrics = entry.get("metrics") or {}
    path = metrics.get("onnx_int8")
    current = path is not None and all(s.get("sha256") == entry.get("sha256") for s in done[last + 1:])
    onnx_path = None
    if current:  # recorded as the run wrote it; the run folder may have moved since
        moved = run_dir / Path(str(entry.get("file", ""))).parent / Path(path).name
        onnx_path = next((p for p in (Path(path), moved) if p.is_file()), None)
    return QuantizedAfter(entry.get("name", "quantize"), onnx_path, metrics.get("accuracy_int8"),
                          metrics.get("size_bytes"))


class _OnnxModule(nn.Module):
    """An ONNX Runtime session called like a torch module, so it is timed alternately with the torch model."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        from slimkit.quant import IntegerModel

        self.runner = IntegerModel(path, threads=torch.get_num_threads())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.runner.predict(x)


def integer_latencies(before: nn.Module, path: Path, example: torch.Tensor, batch_sizes: tuple[int, ...],
                      repeats: int) -> dict[str, tuple[float, float]]:
    """``latency_ms_bsN -> (before in PyTorch, integer model in ONNX Runtime)``, both on the CPU, alternately."""
    from slimkit.profile import compare_latency

    runner = _OnnxModule(path)
    out = {}
    for batch in batch_sizes:
        inputs = (example.expand(batch, *example.shape[1:]).contiguous().cpu(),)
        a, b, _ = compare_latency(before, runner, inputs, device="cpu", repeats=repeats)
        out[f"latency_ms_bs{batch}"] = (a.median_ms, b.median_ms)
    return out


def mark_after(after: dict[str, Any], quant: QuantizedAfter, run_dir: Path) -> tuple[dict[str, str], list[str]]:
    """Put the integer (or estimated) size and accuracy in ``after``; return (marks per key, footnotes).

    Latency keys are marked here too; the caller measures them (:func:`integer_latencies` when integer).
    """
    marks: dict[str, str] = {}
    latency = [k for k in after if k.startswith("latency_ms")]
    if quant.integer:
        assert quant.onnx_path is not None
        after["size_bytes_fake_quant"] = after.get("size_bytes")
        after["size_bytes"] = quant.onnx_path.stat().st_size
        marks["size_bytes"] = INTEGER
        if quant.accuracy_int8 is not None and after.get("accuracy") is not None:
            after["accuracy_simulated"] = after["accuracy"]
            after["accuracy"] = quant.accuracy_int8
            marks["accuracy"] = INTEGER
        marks.update({k: INTEGER for k in latency})
        try:
            shown = quant.onnx_path.relative_to(run_dir)
        except ValueError:
            shown = quant.onnx_path
        note = (f"[{INTEGER}] measured on the integer model {shown} (file size, ONNX Runtime test accuracy, "
                "ONNX Runtime CPU latency; the before-latency is PyTorch's, timed alternately on the CPU)")
        return marks, [note]
    size = "the fake-quant model's own storage"
    if quant.estimated_size_bytes:
        after["size_bytes_fake_quant"] = after.get("size_bytes")
        after["size_bytes"] = quant.estimated_size_bytes
        size = "estimated at its layers' bit widths"
    marks["size_bytes"] = SIMULATED
    if after.get("accuracy") is not None:
        marks["accuracy"] = SIMULATED
    marks.update({k: SIMULATED for k in latency})
    hint = f"; stage '{quant.stage}' with onnx_int8: true measures the integer model" if quant.stage else ""
    note = (f"[{SIMULATED}] simulated: the model is fake-quantized in PyTorch (size {size}, latency of the "
            f"fake-quant model, not of integer kernels){hint}")
    return marks, [note]
