"""Options of :func:`slimkit.gan_slim` (GAN Slimming, Wang et al. 2020) and what it reports."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from slimkit.core.errors import ConfigError

# fields a resumed run may change (they do not change what is computed)
RESUME_FREE_FIELDS = ("progress", "device", "epochs", "finetune_epochs")


def _bits(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or not 2 <= value <= 8):
        raise ConfigError(f"{name}: must be an integer in [2, 8] or None (float), got {value!r}")


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (value >= 0 if allow_zero else value > 0)
    if not ok:
        raise ConfigError(f"{name}: must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _count(name: str, value: int, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name}: must be an integer >= {minimum}, got {value!r}")


@dataclass(frozen=True)
class GanSlimConfig:
    """GAN Slimming: one minimax objective trained end to end, then the zero-scale channels are removed.

    Attributes:
        epochs: passes over ``data`` with the sparsity penalty on (generator and discriminator alternate per batch).
        lr_g: Adam learning rate of the student generator (betas 0.5, 0.999, as DCGAN).
        lr_d: Adam learning rate of the discriminator.
        strength: rho, the L1 weight on the normalization scales; the proximal step after each generator update
            soft-thresholds every scale by ``lr_g * strength``. 0 turns slimming off (distillation/QAT only).
            With Adam a scale moves about ``lr_g`` per step when its gradient is consistent, so ``strength < 1``
            zeroes the scales whose gradient is weak or noisy and ``strength >= 1`` shrinks every scale.
        lr_scale: None keeps the normalization scales in the generator's Adam (threshold ``lr_g * strength``).
            A float gives them their own plain SGD step of this learning rate, soft-thresholded by
            ``lr_scale * strength`` (proximal gradient descent, as in the paper's proximal step): a scale reaches 0
            when its loss gradient stays below ``strength`` in magnitude, so the sparsity comes from the penalty
            and a larger ``lr_scale`` reaches it in fewer steps.
        distill_weight: weight of the distillation distance to the teacher (pixel L1 plus the feature distance
            when ``feature_fn`` is given).
        gan_weight: weight of the generator's adversarial loss (non-saturating, logits through BCE); 0 leaves
            the discriminator untouched (distillation only).
        weight_bits: quantize conv/linear weights to this many bits during training (LSQ learned steps, STE);
            None keeps them in float.
        activation_bits: quantize the inputs of those layers to this many bits; None keeps them in float.
        target_macs_reduction: after training the channels with zero scale are removed; when that leaves more
            than ``macs_before / target_macs_reduction`` MACs, the |scale| threshold is raised (smallest scales
            first) until the target is met. None (and no params target): remove exactly the zero-scale channels.
        target_params_reduction: the same for the parameter count (storage); with both, both are met.
        finetune_epochs: epochs of the same objective without the penalty after the removal.
        batch_size: batch size when ``data`` is a dataset (a loader or list of batches is used as it is).
        max_steps_per_epoch: cap on batches per epoch (quick runs); None: the whole of ``data``.
        seed: seeds weights' RNG use, the data order and the noise.
        progress: a tqdm bar per epoch and one line per epoch on stderr.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
    """

    epochs: int = 10
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    strength: float = 0.1
    lr_scale: float | None = None
    distill_weight: float = 1.0
    gan_weight: float = 0.1
    weight_bits: int | None = None
    activation_bits: int | None = None
    target_macs_reduction: float | None = None
    target_params_reduction: float | None = None
    finetune_epochs: int = 0
    batch_size: int = 64
    max_steps_per_epoch: int | None = None
    seed: int = 0
    progress: bool = True
    device: str = "auto"

    def __post_init__(self) -> None:
        _count("epochs", self.epochs, 0)
        _count("finetune_epochs", self.finetune_epochs, 0)
        _count("batch_size", self.batch_size, 1)
        _count("seed", self.seed, 0)
        if self.max_steps_per_epoch is not None:
            _count("max_steps_per_epoch", self.max_steps_per_epoch, 1)
        _positive("lr_g", self.lr_g)
        _positive("lr_d", self.lr_d)
        if self.lr_scale is not None:
            _positive("lr_scale", self.lr_scale)
        for name in ("strength", "distill_weight", "gan_weight"):
            _positive(name, getattr(self, name), allow_zero=True)
        if self.distill_weight == 0 and self.gan_weight == 0:
            raise ConfigError("distill_weight: distill_weight and gan_weight are both 0; nothing would be trained")
        _bits("weight_bits", self.weight_bits)
        _bits("activation_bits", self.activation_bits)
        if self.activation_bits is not None and self.weight_bits is None:
            raise ConfigError("activation_bits: quantized activations need weight_bits too (set weight_bits)")
        for name in ("target_macs_reduction", "target_params_reduction"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1):
                raise ConfigError(f"{name}: must be >= 1 or None, got {value!r}")
        if not isinstance(self.progress, bool):
            raise ConfigError(f"progress: must be true or false, got {self.progress!r}")
        if not isinstance(self.device, str) or not re.fullmatch(r"auto|cpu|cuda(:\d+)?", self.device):
            raise ConfigError(f"device: must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GanSlimReport:
    """What GAN Slimming did to the student generator.

    MACs are of one sample (batch 1 of the example inputs); ``size_bytes_*`` count every parameter at 32 bits
    except quantized weights at their bit width (plus their scales). ``history`` holds one record per epoch:
    ``phase`` (``train``/``finetune``), ``epoch``, ``loss_g``, ``loss_d``, ``loss_gan``, ``loss_distill``,
    ``l1_to_teacher`` (mean |student - teacher| on a fixed batch, eval mode), ``zero_scales`` (fraction of
    normalization scales exactly 0), ``seconds``, and ``score`` when ``gan_slim`` was given a ``score_fn``.
    ``best_epoch`` / ``best_score``: the epoch of the last phase whose generator was kept, and its score (None
    without ``score_fn``).
    """

    macs_before: int
    macs_after: int
    params_before: int
    params_after: int
    size_bytes_before: int
    size_bytes_after: int
    channels_before: int
    channels_after: int
    zero_channels: int
    threshold: float
    weight_bits: int | None
    activation_bits: int | None
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from_epoch: int = 0
    best_epoch: int | None = None
    best_score: float | None = None

    @property
    def macs_reduction(self) -> float:
        return self.macs_before / max(self.macs_after, 1)

    @property
    def size_ratio(self) -> float:
        """How many times smaller the stored student is than the float student it started from."""
        return self.size_bytes_before / max(self.size_bytes_after, 1)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["macs_reduction"] = self.macs_reduction
        d["size_ratio"] = self.size_ratio
        return d

    def table(self) -> str:
        bits = "float" if self.weight_bits is None else f"W{self.weight_bits}A{self.activation_bits or 32}"
        rows = [f"{'phase':<9}{'epoch':>6}{'loss_g':>9}{'loss_d':>9}{'distill':>9}{'l1_teacher':>11}{'zero':>7}"]
        for r in self.history:
            rows.append(f"{r['phase']:<9}{r['epoch']:>6}{r['loss_g']:>9.4f}{r['loss_d']:>9.4f}"
                        f"{r['loss_distill']:>9.4f}{r['l1_to_teacher']:>11.4f}{100 * r['zero_scales']:>6.1f}%")
        rows.append(f"channels {self.channels_before} -> {self.channels_after} ({self.zero_channels} with zero "
                    f"scale, threshold {self.threshold:.3g}); MACs {self.macs_before:,} -> {self.macs_after:,} "
                    f"({self.macs_reduction:.2f}x); size {self.size_bytes_before:,} -> {self.size_bytes_after:,} "
                    f"bytes ({self.size_ratio:.1f}x, {bits})")
        if self.best_epoch is not None:
            phase = self.history[-1]["phase"] if self.history else "train"
            rows.append(f"kept {phase} epoch {self.best_epoch} (score {self.best_score:.4g}, lower is better)")
        return "\n".join(rows)
