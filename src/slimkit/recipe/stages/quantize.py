"""Stage ``quantize``: quantize the recipe's model with a registered quantization method.

``scheme`` names the method (``slimkit stages`` and docs/quantization.md list them: uniform PTQ/QAT, mixed
precision, binary, ternary and any registered with ``register_quantize_handler(Config, name=...)``). The stage's
other fields are shared by the methods: each goes to the method's config field of the same name (mixed precision's
nested ``quant`` included), so ``weight_bits: 4`` means the same for ``uniform`` and ``mixed``; the method's other
fields go in ``options``. QAT, binary and ternary models are left ready to train: follow the stage with
``finetune``. With ``onnx_int8: true`` the stage also writes ``model.int8.onnx`` and reports the ONNX Runtime
integer model's own test accuracy (``accuracy_int8``) beside the simulated one.

    stages:
      - type: quantize
        scheme: uniform        # a registered quantization method: uniform, mixed, bwn, twn, ...
        weight_bits: 8
        activation_bits: 8
        options: {percentile: 99.9}   # any other field of the method's config
        onnx_int8: true
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from slimkit.core.errors import ConfigError
from slimkit.quant import IntegerModel, MixedPrecisionConfig, QuantConfig, export_onnx_int8, quantize
from slimkit.quant.api import fill_fields, quantization_method
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext

_OWN = ("scheme", "options", "onnx_int8")  # the stage's own fields; the others are shared by the methods
_READ_BY_STAGE = ("calibration_batches",)  # shared, and also read by the stage (how many batches it fetches)


@dataclass(frozen=True)
class QuantizeStageConfig:
    """Options of the ``quantize`` stage (see :class:`slimkit.quant.QuantConfig` for the uniform ones).

    Attributes:
        scheme: a registered quantization method: a built-in one (uniform, mixed, bwn, ttq, ...;
            docs/quantization.md lists them) or one registered with ``register_quantize_handler(Config, name=...)``.
        options: other fields of the method's config (``{percentile: 99.9}``, ``{allocation: greedy}``); the
            stage's own fields are given as such, not here.
        keep_first_last: None: the method's default (off for uniform/mixed, on for binary/ternary).
        candidate_bits: mixed precision's candidate widths.
        budget_ratio: mixed precision's budget: weight bytes / fp32 weight bytes.
        onnx_int8: also export the integer ONNX model and report its accuracy (uniform and mixed methods).
    """

    scheme: str = field(default="uniform", metadata={"registry": "slimkit.quant.api:QUANT_METHODS"})
    options: dict[str, Any] = field(default_factory=dict, metadata={"options_of": "scheme"})
    weight_bits: int = 8
    activation_bits: int | None = 8
    granularity: Literal["per_channel", "per_tensor"] = "per_channel"
    observer: Literal["minmax", "moving_average", "percentile", "mse"] = "minmax"
    weight_observer: Literal["minmax", "moving_average", "percentile", "mse"] = "minmax"
    mode: Literal["ptq", "qat"] = "ptq"
    learn_step: bool = False
    keep_first_last: bool | None = None
    ignore: tuple[str, ...] = ()
    calibration_batches: int = 8
    candidate_bits: tuple[int, ...] = (2, 4, 8)
    budget_ratio: float = 0.125
    onnx_int8: bool = False

    def __post_init__(self) -> None:
        built = self.build()  # validate every option now, before any work
        if self.onnx_int8 and not isinstance(built, (QuantConfig, MixedPrecisionConfig)):
            raise ValueError(f"onnx_int8: integer ONNX export is for uniform and mixed methods, not {self.scheme!r}")

    def build(self) -> Any:
        """The :mod:`slimkit.quant` config this stage applies (the ``scheme`` method's, built from the fields)."""
        try:
            method = quantization_method(self.scheme)
        except ConfigError as err:
            raise ValueError(f"scheme: {err}") from None
        shared = self._shared()
        own = sorted(set(self.options) & set(shared))
        if own:
            raise ValueError(f"options: {own[0]} is a field of the stage; write `{own[0]}: ...` beside `scheme`")
        unused = sorted(set(self._given()) - set(_flatten(fill_fields(method.config_cls, shared))))
        if unused:
            raise ValueError(f"{unused[0]}: method {self.scheme!r} ({method.config_cls.__name__}) has no such option")
        try:
            return method.build(self.options, shared=shared, where=self.scheme)
        except ConfigError as err:
            raise ValueError(str(err)) from None  # so the recipe's message names the stage too

    def _shared(self) -> dict[str, Any]:
        """The shared fields, but ``None`` where that is the field's default (the method's default then holds)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in _OWN and not (f.default is None and getattr(self, f.name) is None)}

    def _given(self) -> list[str]:
        """The shared fields set to something else than their default (they must mean something to the method)."""
        return [f.name for f in dataclasses.fields(self) if f.name not in _OWN + _READ_BY_STAGE
                and getattr(self, f.name) != (f.default if f.default_factory is dataclasses.MISSING
                                              else f.default_factory())]


def _flatten(data: dict[str, Any]) -> list[str]:
    return [k for key, value in data.items() for k in ([key] + (_flatten(value) if isinstance(value, dict) else []))]


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
        from slimkit.data import make_loader

        path = export_onnx_int8(ctx.model, ctx.example_inputs, ctx.stage_dir / "model.int8.onnx",
                                calibration_data=batches, observer=config.observer)
        loader = make_loader(ctx.data.test, batch_size=256, shuffle=False)
        metrics["accuracy_int8"] = IntegerModel(path).evaluate(loader)["accuracy"]
        metrics["onnx_int8"] = str(path)
    return metrics
