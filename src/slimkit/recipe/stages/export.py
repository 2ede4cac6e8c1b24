"""Stage ``export``: write the current model as ONNX (``model.onnx`` in the stage folder), checked with ONNX Runtime.

Exporting keeps the fp32 model as it is; for an integer model, the ``quantize`` stage writes its own int8 ONNX.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import torch

from slimkit.core.modules import model_device
from slimkit.export.onnx import export_onnx
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext


@dataclass(frozen=True)
class ExportStageConfig:
    """Options of the ``export`` stage.

    Attributes:
        filename: the ONNX file written in the stage folder.
        verify: run the file with ONNX Runtime on the example input and compare with PyTorch.
        atol: largest absolute difference accepted by ``verify``.
        opset: ONNX opset version.
    """

    filename: str = "model.onnx"
    verify: bool = True
    atol: float = 1e-4
    opset: int = 17

    def __post_init__(self) -> None:
        if not self.filename.endswith(".onnx") or "/" in self.filename or "\\" in self.filename:
            raise ValueError(f"filename must be a plain file name ending in .onnx, got {self.filename!r}")
        if not self.atol > 0:
            raise ValueError(f"atol must be > 0, got {self.atol}")


@register_stage("export", ExportStageConfig)
def export_stage(ctx: StageContext, config: ExportStageConfig) -> dict[str, Any]:
    """Export ``ctx.model`` (on the CPU, a copy) to ONNX with a free batch dimension."""
    model = copy.deepcopy(ctx.model).cpu() if model_device(ctx.model).type != "cpu" else ctx.model
    inputs = tuple(x[:1].cpu() if isinstance(x, torch.Tensor) and x.dim() > 0 else x for x in ctx.example_inputs)
    ctx.stage_dir.mkdir(parents=True, exist_ok=True)
    path = export_onnx(model, inputs, ctx.stage_dir / config.filename, verify=config.verify, atol=config.atol,
                       opset=config.opset)
    return {"onnx_path": str(path), "onnx_bytes": path.stat().st_size}
