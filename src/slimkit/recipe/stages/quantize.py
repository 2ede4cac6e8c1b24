"""Stage ``quantize``: uniform PTQ/QAT, binary, ternary or mixed-precision quantization of the recipe's model.

QAT, binary and ternary models are left ready to train: follow the stage with ``finetune``. With
``onnx_int8: true`` the stage also writes ``model.int8.onnx`` and reports the ONNX Runtime integer model's own
test accuracy (``accuracy_int8``) beside the simulated one.

    stages:
      - type: quantize
        scheme: uniform        # uniform | mixed | binaryconnect | bwn | xnor | twn | ttq | a registered method
        weight_bits: 8
        activation_bits: 8
        onnx_int8: true
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from slimkit.core.config import parse_config
from slimkit.core.errors import ConfigError
from slimkit.quant import (
    BinaryConfig,
    IntegerModel,
    MixedPrecisionConfig,
    PerChannel,
    PerTensor,
    QuantConfig,
    TernaryConfig,
    export_onnx_int8,
    quantize,
)
from slimkit.quant.api import quantization_method
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext

BUILT_IN = ("uniform", "mixed", "binaryconnect", "bwn", "xnor", "twn", "ttq")


@dataclass(frozen=True)
class QuantizeStageConfig:
    """Options of the ``quantize`` stage (see :class:`slimkit.quant.QuantConfig` for the uniform ones).

    Attributes:
        scheme: a built-in scheme (uniform, mixed, binaryconnect, bwn, xnor, twn, ttq; the other fields apply to
            them), or a method registered with ``register_quantize_handler(Config, name=...)``, whose config
            is built from ``options`` alone.
        options: the fields of a registered method's config.
    """

    scheme: str = "uniform"
    options: dict[str, Any] = field(default_factory=dict)
    weight_bits: int = 8
    activation_bits: int | None = 8
    granularity: Literal["per_channel", "per_tensor"] = "per_channel"
    observer: Literal["minmax", "moving_average", "percentile", "mse"] = "minmax"
    weight_observer: Literal["minmax", "moving_average", "percentile", "mse"] = "minmax"
    mode: Literal["ptq", "qat"] = "ptq"
    learn_step: bool = False
    keep_first_last: bool | None = None  # default: False for uniform/mixed, True for binary/ternary
    ignore: tuple[str, ...] = ()
    calibration_batches: int = 8
    candidate_bits: tuple[int, ...] = (2, 4, 8)  # mixed
    budget_ratio: float = 0.125  # mixed: weight bytes / fp32 weight bytes
    onnx_int8: bool = False

    def __post_init__(self) -> None:
        self.build()  # validate every option now, before any work

    def build(self) -> Any:
        """The :mod:`slimkit.quant` config this stage applies."""
        if self.scheme not in BUILT_IN:
            try:
                method = quantization_method(self.scheme)
            except ConfigError as err:
                raise ValueError(f"scheme: {err}; or a built-in scheme: {', '.join(BUILT_IN)}") from None
            try:
                return parse_config(method, dict(self.options), where=f"options ({self.scheme})")
            except ConfigError as err:
                raise ValueError(str(err)) from None  # so the recipe's message names the stage too
        if self.options:
            raise ValueError(f"options: are for registered methods; scheme {self.scheme!r} takes the stage's fields")
        if self.scheme in ("binaryconnect", "bwn", "xnor"):
            return BinaryConfig(method=self.scheme, keep_first_last=self._keep(True), ignore=self.ignore)
        if self.scheme in ("twn", "ttq"):
            return TernaryConfig(method=self.scheme, keep_first_last=self._keep(True), ignore=self.ignore)
        uniform = QuantConfig(
            weight_bits=self.weight_bits, activation_bits=self.activation_bits,
            granularity=PerChannel() if self.granularity == "per_channel" else PerTensor(),
            observer=self.observer, weight_observer=self.weight_observer, mode=self.mode,
            learn_step=self.learn_step, keep_first_last=self._keep(False), ignore=self.ignore,
            calibration_batches=self.calibration_batches,
        )
        if self.scheme == "mixed":
            return MixedPrecisionConfig(candidate_bits=self.candidate_bits, budget_ratio=self.budget_ratio,
                                        quant=uniform, calibration_batches=self.calibration_batches)
        return uniform

    def _keep(self, default: bool) -> bool:
        return default if self.keep_first_last is None else self.keep_first_last


@register_stage("quantize", QuantizeStageConfig, compresses=True)
def quantize_stage(ctx: StageContext, config: QuantizeStageConfig) -> dict[str, Any]:
    """Quantize ``ctx.model`` in place; report sizes, per-layer bits and accuracy (simulated and int8 ONNX)."""
    ctx.freeze_reference()
    batches = ctx.calibration_batches(config.calibration_batches)
    report = quantize(ctx.model, config.build(), calibration_data=batches)
    metrics: dict[str, Any] = {
        "method": report.method,
        "size_bytes": report.size_bytes,
        "size_bytes_fp32": report.size_bytes_fp32,
        "size_ratio": report.size_ratio,
        "layer_bits": report.layer_bits,
        "folded_bn": len(report.folded_bn),
    }
    (ctx.stage_dir / "quantize.txt").write_text(report.table() + "\n")
    metrics["accuracy"] = ctx.evaluate(split="test")["accuracy"]
    if config.onnx_int8:
        if config.scheme not in ("uniform", "mixed"):
            raise ConfigError("quantize.onnx_int8: integer ONNX export is for uniform/mixed schemes")
        from slimkit.data import make_loader

        path = export_onnx_int8(ctx.model, ctx.example_inputs, ctx.stage_dir / "model.int8.onnx",
                                calibration_data=batches, observer=config.observer)
        loader = make_loader(ctx.data.test, batch_size=256, shuffle=False)
        metrics["accuracy_int8"] = IntegerModel(path).evaluate(loader)["accuracy"]
        metrics["onnx_int8"] = str(path)
    return metrics
