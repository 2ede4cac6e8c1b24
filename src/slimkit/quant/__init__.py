"""Quantization: uniform integer (PTQ, QAT with STE/LSQ), binary/ternary weights, mixed precision, int8 ONNX.

One verb, config objects, granularity values, ``filter_fn`` targeting::

    from slimkit.quant import quantize, Int8Config, PerTensor
    report = quantize(model, Int8Config(granularity=PerTensor()), calibration_data=batches)
"""

from slimkit.quant.api import quantize, register_quantize_handler
from slimkit.quant.binary import BinaryWeight, SignActivation, TernaryWeight, TTQWeight, clip_latent_weights
from slimkit.quant.config import (
    BinaryConfig,
    BinaryMethod,
    Int8Config,
    QuantConfig,
    QuantMode,
    TernaryConfig,
    TernaryMethod,
)
from slimkit.quant.fake_quant import FakeQuantize
from slimkit.quant.fold import fold_batchnorm
from slimkit.quant.granularity import PerChannel, PerTensor
from slimkit.quant.kmeans import share_weights, strip_sharing
from slimkit.quant.mixed import MixedPrecisionConfig, allocate_bits, measure_sensitivity
from slimkit.quant.modules import register_quant_layer
from slimkit.quant.observers import OBSERVERS, ObserverKind, make_observer
from slimkit.quant.report import LayerQuant, QuantReport


def __getattr__(name: str):  # loaded when asked for: the training hook imports slimkit.train, the ONNX export onnx
    if name == "ClipLatentWeights":
        from slimkit.quant.hooks import ClipLatentWeights

        return ClipLatentWeights
    if name in ("IntegerModel", "export_onnx_int8"):
        from slimkit.quant import onnx_int8

        return getattr(onnx_int8, name)
    raise AttributeError(f"module 'slimkit.quant' has no attribute {name!r}")

__all__ = [
    "OBSERVERS", "BinaryConfig", "ClipLatentWeights", "BinaryMethod", "BinaryWeight", "FakeQuantize", "Int8Config", "IntegerModel",
    "LayerQuant", "MixedPrecisionConfig", "ObserverKind", "PerChannel", "PerTensor", "QuantConfig", "QuantMode",
    "QuantReport", "SignActivation", "TTQWeight", "TernaryConfig", "TernaryMethod", "TernaryWeight", "share_weights", "strip_sharing",
    "allocate_bits", "clip_latent_weights", "export_onnx_int8", "fold_batchnorm",
    "make_observer", "measure_sensitivity", "quantize", "register_quant_layer", "register_quantize_handler",
]
