"""Stage ``decompose``: replace Linear/Conv2d layers by low-rank factors (SVD, Tucker-2, CP).

```yaml
- {type: decompose, method: tucker, energy: 0.9, ignore: [features.0]}
- {type: distill, epochs: 2, hints: {features.8: features.8}}     # recover from the pre-decomposition model
```
The per-layer report goes to the stage folder as ``decompose.txt`` and ``decompose.json``.
"""

from __future__ import annotations

from typing import Any

from slimkit.core.io import atomic_write_bytes, atomic_write_json
from slimkit.lowrank import DecomposeConfig, decompose
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext


@register_stage("decompose", DecomposeConfig, compresses=True, adds_modules=True)
def decompose_stage(ctx: StageContext, config: DecomposeConfig) -> dict[str, Any]:
    """Replace layers by low-rank factors (SVD, Tucker-2, CP) chosen by rank, energy, VBMF or a budget."""
    inputs = tuple(x.to(ctx.device) for x in ctx.example_inputs)
    report = decompose(ctx.model, inputs, config)
    atomic_write_bytes(ctx.stage_dir / "decompose.txt", (report.table() + "\n").encode())
    atomic_write_json(ctx.stage_dir / "decompose.json", report.to_dict())
    return {
        "decomposed_layers": len(report.decomposed),
        "skipped_layers": len(report.skipped),
        "params_before": report.params_before,
        "params_after": report.params_after,
        "macs_before": report.macs_before,
        "macs_after": report.macs_after,
        "layer_params_reduction": report.layer_params_reduction,
        "layer_macs_reduction": report.layer_macs_reduction,
    }
