"""Recipe stage ``deep_compression``: k-means weight sharing, codebook fine-tuning, and the ``.slim`` file.

Runs after pruning stages (pruned zeros stay zero and are stored sparsely). Writes ``<run_dir>/<filename>`` and
``compression.txt`` / ``compression.json`` (the size breakdown by stage and layer) in the stage folder::

    - type: deep_compression
      bits: 5
      layer_bits: {"features.*": 8}
      finetune_epochs: 2
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from slimkit.core.io import atomic_write_bytes, atomic_write_json
from slimkit.recipe._registry import register_stage
from slimkit.recipe.context import StageContext


@dataclass(frozen=True)
class DeepCompressionConfig:
    """Options of the ``deep_compression`` stage.

    Attributes:
        bits: bits per shared weight index (2**bits centroids per layer).
        layer_bits: per-layer overrides, fqn or glob -> bits.
        ignore: layers left unshared (stored raw, or sparse if pruned).
        finetune_epochs: epochs of codebook fine-tuning (0: none); indices stay fixed.
        lr: fine-tuning learning rate.
        huffman: Huffman-code index gaps and codebook indices.
        index_bits: sparse gap width (None: best per tensor).
        filename: name of the ``.slim`` file in the run folder.

    After the stage the model holds plain weights equal to the shared values (codebook parametrizations are
    removed so that run snapshots, export and later stages see an ordinary model).
    """

    bits: int = 5
    layer_bits: dict[str, int] = field(default_factory=dict)
    ignore: tuple[str, ...] = ()
    finetune_epochs: int = 1
    lr: float = 1e-3
    huffman: bool = True
    index_bits: int | None = None
    filename: str = "model.slim"

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 16:
            raise ValueError(f"bits must be in [1, 16], got {self.bits}")
        if self.finetune_epochs < 0 or self.lr <= 0:
            raise ValueError("finetune_epochs must be >= 0 and lr > 0")
        if self.index_bits is not None and not 1 <= self.index_bits <= 16:
            raise ValueError(f"index_bits must be in [1, 16], got {self.index_bits}")


@register_stage("deep_compression", DeepCompressionConfig, compresses=True)
def deep_compression_stage(ctx: StageContext, config: DeepCompressionConfig) -> dict[str, Any]:
    """Share weights by k-means, fine-tune the codebooks, and write the compact ``.slim`` file."""
    from slimkit.quant.kmeans import share_weights, strip_sharing
    from slimkit.state import save_compressed

    ctx.freeze_reference()
    sharing = share_weights(ctx.model, bits=config.bits, layer_bits=config.layer_bits, ignore=config.ignore)
    metrics: dict[str, Any] = {"shared_layers": len(sharing.layers)}
    if config.finetune_epochs:
        from slimkit.train import TrainConfig

        metrics["accuracy_before_finetune"] = ctx.evaluate(split="val")["accuracy"]
        ctx.fit(TrainConfig(epochs=config.finetune_epochs, lr=config.lr, batch_size=ctx.batch_size, seed=ctx.seed))
    report = save_compressed(
        ctx.model, ctx.run_dir / config.filename, huffman=config.huffman, index_bits=config.index_bits,
        metadata={"stage": "deep_compression", "bits": config.bits},
    )
    strip_sharing(ctx.model)
    atomic_write_bytes(ctx.stage_dir / "compression.txt", (report.table() + "\n").encode())
    atomic_write_json(ctx.stage_dir / "compression.json", report.to_dict())
    stages = report.stage_ratios()
    metrics.update(
        file=str(report.path), file_bytes=report.file_bytes, ratio=report.ratio,
        ratio_pruning=stages["pruning"], ratio_quantization=stages["quantization"], ratio_huffman=stages["huffman"],
        summary={"size_bytes": report.file_bytes},  # the before/after table shows the .slim file's size
    )
    return metrics
