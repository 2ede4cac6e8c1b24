"""The before/after comparison printed at the end of every run."""

from __future__ import annotations

from typing import Any

from torch import nn

from slimkit.core.forward import training_mode
from slimkit.recipe.context import StageContext
from slimkit.recipe.quant_figures import (
    INTEGER,
    QuantizedAfter,
    integer_latencies,
    mark_after,
    quantized_after,
)
from slimkit.recipe.schema import ReportSection
from slimkit.report.table import format_bytes, format_count, format_table

# a compressing stage may report these in metrics["summary"] to override what the runner measures, e.g. the
# accuracy of the real int8 ONNX model or the size of the .slim file on disk
OVERRIDABLE = ("accuracy", "size_bytes", "latency_ms")


def _measure(model: nn.Module, ctx: StageContext) -> dict[str, Any]:
    from slimkit.profile import profile

    report = profile(model, ctx.example_inputs)
    return {
        "accuracy": ctx.evaluate(model, split="test")["accuracy"] if _is_classifier(model, ctx) else None,
        "params": report.params,
        "nonzero_params": report.nonzero_params,
        "macs": report.macs,
        "size_bytes": report.size_bytes,
    }


def _is_classifier(model: nn.Module, ctx: StageContext) -> bool:
    """Whether ``model`` maps an input to one score per class (a generator's images have no test accuracy)."""
    import torch

    if getattr(ctx.data, "task", "classify") != "classify":  # e.g. text data for a sentence encoder
        return False
    with torch.no_grad(), training_mode(model, False):
        out = model(*ctx.example_inputs)
    classes = getattr(ctx.data, "num_classes", None)
    return isinstance(out, torch.Tensor) and out.ndim == 2 and (classes is None or out.shape[1] == classes)


def _latencies(before: nn.Module, after: nn.Module, ctx: StageContext, section: ReportSection,
               quant: QuantizedAfter | None = None) -> dict[str, Any]:
    from slimkit.profile import compare_latency

    out: dict[str, Any] = {}
    x = ctx.example_inputs[0]
    if quant is not None and quant.onnx_path is not None:
        return integer_latencies(before, quant.onnx_path, x, section.latency_batch_sizes, section.latency_repeats)
    for batch in section.latency_batch_sizes:
        inputs = (x.expand(batch, *x.shape[1:]).contiguous(),)
        a, b, _ = compare_latency(before, after, inputs, device=ctx.device, repeats=section.latency_repeats)
        out[f"latency_ms_bs{batch}"] = (a.median_ms, b.median_ms)
    return out


def summarize(
    before: nn.Module, ctx: StageContext, section: ReportSection, stages: list[dict[str, Any]]
) -> tuple[dict[str, Any], str]:
    """Measure ``before`` and ``ctx.model`` the same way; return (summary dict, printable table)."""
    b, a = _measure(before, ctx), _measure(ctx.model, ctx)
    notes = []
    for stage in reversed(stages):
        overrides = (stage.get("metrics") or {}).get("summary") or {}
        if overrides:
            for key in OVERRIDABLE:
                if key in overrides:
                    a[key] = overrides[key]
            notes.append(f"* after-values of {', '.join(k for k in OVERRIDABLE if k in overrides)} "
                         f"reported by stage '{stage['name']}'")
            break
    quant = quantized_after(ctx.model, stages, ctx.run_dir)
    if section.latency:
        for key, (lb, la) in _latencies(before, ctx.model, ctx, section, quant).items():
            b[key], a[key] = lb, la
    marks, quant_notes = mark_after(a, quant, ctx.run_dir) if quant is not None else ({}, [])
    notes.extend(quant_notes)
    rows = []

    def ratio(x: float, y: float, higher_is_better: bool = False) -> str:
        if not x or not y:
            return "-"
        return f"{(y / x if higher_is_better else x / y):.2f}x"

    def marked(key: str, text: str) -> str:
        return f"{text} [{marks[key]}]" if key in marks else text

    if b["accuracy"] is not None and a["accuracy"] is not None:
        rows.append(["accuracy", f"{100 * b['accuracy']:.2f}%", marked("accuracy", f"{100 * a['accuracy']:.2f}%"),
                     f"{100 * (a['accuracy'] - b['accuracy']):+.2f} pt"])
    rows.append(["params", format_count(b["params"]), format_count(a["params"]), ratio(b["params"], a["params"])])
    if a["nonzero_params"] != a["params"]:
        rows.append(["nonzero params", format_count(b["nonzero_params"]), format_count(a["nonzero_params"]),
                     ratio(b["nonzero_params"], a["nonzero_params"])])
    rows.append(["MACs", format_count(b["macs"]), format_count(a["macs"]), ratio(b["macs"], a["macs"])])
    rows.append(["size", format_bytes(b["size_bytes"]), marked("size_bytes", format_bytes(a["size_bytes"])),
                 ratio(b["size_bytes"], a["size_bytes"])])
    for key in sorted(k for k in b if k.startswith("latency_ms")):
        batch = key.rsplit("bs", 1)[1]
        where = "cpu" if marks.get(key) == INTEGER else ctx.device.type
        rows.append([f"latency bs{batch} ({where})", f"{b[key]:.3f} ms", marked(key, f"{a[key]:.3f} ms"),
                     ratio(b[key], a[key])])
    table = format_table(rows, ["", "before", "after", "change"], title="summary (before -> after)")
    if notes:
        table += "\n" + "\n".join(notes)
    return {"before": b, "after": a, "marks": marks, "notes": notes, "rows": rows}, table
