"""``gan_slim``: GAN Slimming (Wang et al., ECCV 2020), compressing a generator end to end in one minimax objective.

The student generator ``G`` is trained against a discriminator ``D`` and a frozen teacher ``T``::

    min_G max_D  gan_weight * L_GAN(G, D) + distill_weight * d(G(x), T(x)) + strength * sum |gamma|

- ``L_GAN``: non-saturating GAN loss, ``D`` and ``G`` updated alternately on every batch;
- ``d``: pixel L1 between student and teacher images plus a feature distance (``feature_fn``);
- the L1 term on the scales ``gamma`` of the student's BatchNorm / affine InstanceNorm layers is optimized by a
  proximal step after each generator update (soft-thresholding by ``lr_g * strength``), so scales reach exactly 0;
- with ``weight_bits``/``activation_bits`` the student trains through fake quantization (slimkit's QAT, LSQ
  learned steps, straight-through estimator) in the same loop.

Afterwards the zero-scale channels are removed by the structured engine (more when ``target_macs_reduction``
asks), and ``finetune_epochs`` continue the objective without the penalty. With ``score_fn`` (e.g. FID against
held-out real images) the student is scored after every epoch of the last phase and the best epoch's weights are
kept: the adversarial game oscillates from epoch to epoch, and the last epoch is often not the best one.

Example:
    >>> data = slimkit.load_dataset("fashion_mnist", normalize=False)
    >>> student = copy.deepcopy(teacher)
    >>> report = slimkit.gan_slim(student, discriminator, teacher, data.train,
    ...                           GanSlimConfig(epochs=5, strength=0.05, weight_bits=8, activation_bits=8))
    >>> print(report.table())
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from slimkit.core.config import parse_config
from slimkit.core.errors import CheckpointError, ConfigError, DataError
from slimkit.gan.config import RESUME_FREE_FIELDS, GanSlimConfig, GanSlimReport
from slimkit.gan.inputs import GanBatch, MakeInputs, default_inputs, to_device
from slimkit.gan.losses import FeatureFn, d_loss, distill_loss, g_loss
from slimkit.gan.quant import qat_config, quantize_generator, stored_bytes
from slimkit.gan.sparsity import norm_scales, proximal_l1_, remove_channels, zero_fraction
from slimkit.train.checkpoint import (
    load_checkpoint,
    load_optimizer_state_by_name,
    optimizer_state_by_name,
    parameter_names,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from slimkit.train.distributed import resolve_device
from slimkit.train.engine import seed_everything
from slimkit.train.evaluation import training_mode

_CALIBRATION_BATCHES = 4

ScoreFn = Callable[[nn.Module], float]


class _Batches:
    """Epoch-wise iteration over ``data``: a dataset (batched and shuffled, seeded per epoch), a slimkit loader,
    or any re-iterable of batches."""

    def __init__(self, data: Any, config: GanSlimConfig) -> None:
        from slimkit.data.loader import Loader, make_loader

        if isinstance(data, Loader) or hasattr(data, "set_epoch"):
            self.loader: Any = data
        elif hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, (list, tuple)):
            self.loader = make_loader(data, batch_size=config.batch_size, shuffle=True, seed=config.seed)
        elif isinstance(data, Iterable):
            self.loader = data
        else:
            raise DataError(f"data: expected a dataset, a loader or an iterable of batches, got {type(data).__name__}")
        n = len(self.loader) if hasattr(self.loader, "__len__") else None
        cap = config.max_steps_per_epoch
        self.steps = min(n, cap) if n is not None and cap is not None else (n if n is not None else cap)
        self.cap = cap

    def epoch(self, epoch: int) -> Iterable[Any]:
        if hasattr(self.loader, "set_epoch"):
            self.loader.set_epoch(epoch)
        for i, batch in enumerate(self.loader):
            if self.cap is not None and i >= self.cap:
                break
            yield batch


def _first(batches: _Batches, make_inputs: MakeInputs, seed: int, count: int) -> list[GanBatch]:
    rng = torch.Generator().manual_seed(seed)
    out = []
    for batch in batches.epoch(0):
        out.append(make_inputs(batch, rng))
        if len(out) >= count:
            break
    if not out:
        raise DataError("data: yielded no batch")
    return out


def _adam(params: Iterable[nn.Parameter], lr: float) -> torch.optim.Optimizer:
    return torch.optim.Adam([p for p in params if p.requires_grad], lr=lr, betas=(0.5, 0.999))


def _set_trainable(params: list[nn.Parameter], flag: bool) -> None:
    for p in params:
        p.requires_grad_(flag)


class _Trainer:
    """One phase (sparsity training or fine-tuning): optimizers, the step, the epoch records, the checkpoints."""

    def __init__(self, phase: str, generator: nn.Module, discriminator: nn.Module, teacher: nn.Module,
                 config: GanSlimConfig, strength: float, feature_fn: FeatureFn | None, device: torch.device,
                 fixed: GanBatch, score_fn: ScoreFn | None = None) -> None:
        self.phase, self.g, self.d, self.t = phase, generator, discriminator, teacher
        self.score_fn = score_fn
        self.best: dict[str, Any] | None = None  # {"epoch", "score", "generator"}: the best-scoring epoch so far
        self.config, self.strength, self.feature_fn, self.device = config, strength, feature_fn, device
        self.fixed = fixed
        self.scales = norm_scales(generator)
        scale_ids = {id(s) for s in self.scales} if config.lr_scale is not None else set()
        self.opt_g = _adam([p for p in generator.parameters() if id(p) not in scale_ids], config.lr_g)
        # lr_scale: the scales take plain SGD steps, so the threshold lr_scale * strength is the prox of the penalty
        self.opt_scale = (torch.optim.SGD([s for s in self.scales if s.requires_grad], lr=config.lr_scale)
                          if config.lr_scale is not None and self.scales else None)
        self.d_params = [p for p in discriminator.parameters() if p.requires_grad]
        self.opt_d = _adam(self.d_params, config.lr_d)
        self.history: list[dict[str, Any]] = []

    def step(self, batch: GanBatch) -> tuple[float, float, float, float]:
        with torch.no_grad():
            target = self.t(*batch.inputs)  # (B, C, H, W)
        real = batch.real if batch.real is not None else target
        fake = self.g(*batch.inputs)
        loss_d = fake.new_zeros(())
        if self.config.gan_weight > 0:  # discriminator: real -> 1, student -> 0
            loss_d = d_loss(self.d(real, *batch.condition), self.d(fake.detach(), *batch.condition))
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
        # generator: fool the discriminator, stay close to the teacher
        _set_trainable(self.d_params, False)  # no discriminator gradients from the generator's step
        loss_gan = g_loss(self.d(fake, *batch.condition)) if self.config.gan_weight > 0 else fake.new_zeros(())
        loss_distill = (distill_loss(fake, target, self.feature_fn) if self.config.distill_weight > 0
                        else fake.new_zeros(()))
        loss_g = self.config.gan_weight * loss_gan + self.config.distill_weight * loss_distill
        self.opt_g.zero_grad(set_to_none=True)
        if self.opt_scale is not None:
            self.opt_scale.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        if self.opt_scale is not None:
            self.opt_scale.step()
        _set_trainable(self.d_params, True)
        step = (self.opt_scale or self.opt_g).param_groups[0]["lr"]
        proximal_l1_(self.scales, step * self.strength)
        return float(loss_g.detach()), float(loss_d.detach()), float(loss_gan.detach()), float(loss_distill.detach())

    def l1_to_teacher(self) -> float:
        with torch.no_grad(), training_mode(self.g, False):
            return float((self.g(*self.fixed.inputs) - self.t(*self.fixed.inputs)).abs().mean())

    def run_epoch(self, epoch: int, epochs: int, batches: _Batches, make_inputs: MakeInputs) -> dict[str, Any]:
        started = time.perf_counter()
        rng = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch + (50_000 if self.phase != "train"
                                                                                   else 0))
        show = self.config.progress and sys.stderr.isatty()
        bar = tqdm(total=batches.steps, desc=f"gan_slim {self.phase} {epoch + 1}/{epochs}", unit="step",
                   leave=False, disable=not show, dynamic_ncols=True)
        sums = torch.zeros(4, dtype=torch.float64)
        steps = 0
        with training_mode(self.g, True), training_mode(self.d, True):
            for raw in batches.epoch(epoch):
                losses = self.step(to_device(make_inputs(raw, rng), self.device))
                sums += torch.tensor(losses, dtype=torch.float64)
                steps += 1
                bar.set_postfix(g=f"{losses[0]:.3f}", d=f"{losses[1]:.3f}", refresh=False)
                bar.update(1)
        bar.close()
        if steps == 0:
            raise DataError("data: yielded no batch in an epoch")
        mean = (sums / steps).tolist()
        record = {"phase": self.phase, "epoch": epoch + 1, "loss_g": mean[0], "loss_d": mean[1], "loss_gan": mean[2],
                  "loss_distill": mean[3], "l1_to_teacher": self.l1_to_teacher(),
                  "zero_scales": zero_fraction(self.scales), "steps": steps,
                  "seconds": time.perf_counter() - started}
        if self.score_fn is not None:
            record["score"] = self._score(epoch + 1)
        if self.config.progress:
            scored = f"  score {record['score']:.4g}" if "score" in record else ""
            tqdm.write(f"gan_slim {self.phase} epoch {epoch + 1}/{epochs}  loss_g {mean[0]:.4f}  loss_d {mean[1]:.4f}"
                       f"  l1_to_teacher {record['l1_to_teacher']:.4f}  zero scales "
                       f"{100 * record['zero_scales']:.1f}%{scored}  {record['seconds']:.1f}s", file=sys.stderr)
        return record

    def _score(self, epoch: int) -> float:
        """Score the generator (eval mode, lower is better) and remember its weights when it is the best so far."""
        with torch.no_grad(), training_mode(self.g, False):
            value = self.score_fn(self.g)  # type: ignore[misc]
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"score_fn: must return a number (lower is better), got {value!r}") from None
        if value != value:  # NaN: never the best
            return value
        if self.best is None or value < self.best["score"]:
            self.best = {"epoch": epoch, "score": value,
                         "generator": {k: v.detach().clone() for k, v in self.g.state_dict().items()}}
        return value

    def keep_best(self) -> None:
        """Load the best-scoring epoch's generator weights (the discriminator stays as trained last)."""
        if self.best is not None:
            self.g.load_state_dict(self.best["generator"])

    # checkpoints: tensors and plain values only (slimkit's training checkpoint container)
    def payload(self, epoch: int) -> dict[str, Any]:
        g_names, d_names = parameter_names(self.g), parameter_names(self.d)
        return {"phase": self.phase, "epoch": epoch, "config": asdict(self.config),
                "generator": self.g.state_dict(), "discriminator": self.d.state_dict(),
                "opt_g": optimizer_state_by_name(self.opt_g, g_names),
                "opt_d": optimizer_state_by_name(self.opt_d, d_names),
                "history": self.history, "rng": rng_state(), "best": copy.copy(self.best)}

    def restore(self, checkpoint: dict[str, Any], where: Path) -> int:
        saved = checkpoint.get("config", {})
        for name, value in asdict(self.config).items():
            if name not in RESUME_FREE_FIELDS and saved.get(name) != value:
                raise CheckpointError(f"{where}: checkpoint was written with {name}={saved.get(name)!r}, this run "
                                      f"has {name}={value!r}; use another checkpoint_dir or resume=False")
        try:
            self.g.load_state_dict(checkpoint["generator"])
            self.d.load_state_dict(checkpoint["discriminator"])
        except RuntimeError as err:
            raise CheckpointError(f"{where}: the checkpoint does not fit these models ({err})") from None
        load_optimizer_state_by_name(self.opt_g, checkpoint["opt_g"], parameter_names(self.g))
        load_optimizer_state_by_name(self.opt_d, checkpoint["opt_d"], parameter_names(self.d))
        self.history = list(checkpoint["history"])
        self.best = checkpoint.get("best") if self.score_fn is not None else None
        set_rng_state(checkpoint["rng"])
        return int(checkpoint["epoch"])

    def train(self, epochs: int, batches: _Batches, make_inputs: MakeInputs, checkpoint_dir: Path | None,
              resume: bool) -> int:
        start = 0
        checkpoint = load_checkpoint(checkpoint_dir) if checkpoint_dir is not None and resume else None
        if checkpoint is not None:
            start = min(self.restore(checkpoint, checkpoint_dir / "last.pt"), epochs)  # type: ignore[operator]
        for epoch in range(start, epochs):
            self.history.append(self.run_epoch(epoch, epochs, batches, make_inputs))
            if checkpoint_dir is not None:
                save_checkpoint(checkpoint_dir, self.payload(epoch + 1))
        return start


def gan_slim(generator: nn.Module, discriminator: nn.Module, teacher: nn.Module, data: Any,
             config: GanSlimConfig | dict | None = None, *, make_inputs: MakeInputs | None = None,
             feature_fn: FeatureFn | None = None, score_fn: ScoreFn | None = None,
             checkpoint_dir: str | os.PathLike | None = None, resume: bool = True, **options: Any) -> GanSlimReport:
    """Compress ``generator`` in place by GAN Slimming: GAN loss, distillation, proximal L1 on norm scales, QAT.

    Args:
        generator: the student (changed in place: quantized when asked, channels removed); usually a copy of the
            teacher. Its slimmable channels are those behind BatchNorm or affine InstanceNorm layers.
        discriminator: trained along (in place), called as ``discriminator(images, *condition)``; a discriminator
            trained with the teacher is the best start.
        teacher: the frozen generator the student imitates (not changed).
        data: a dataset (batched with ``config.batch_size``), a slimkit loader, or a re-iterable of batches.
        config: a :class:`GanSlimConfig` or dict; its fields also work as keywords (``epochs=5``).
        make_inputs: ``make_inputs(batch, rng) -> GanBatch`` (generator inputs, real images, discriminator
            condition); default :func:`slimkit.gan.default_inputs` (noise + labels for generators with a
            ``noise_dim`` attribute, else image-to-image).
        feature_fn: frozen features for the distillation distance (added to pixel L1), e.g.
            :func:`slimkit.gan.classifier_features` of a small classifier.
        score_fn: ``score_fn(generator) -> float``, lower is better (e.g. FID of its samples against held-out
            real images, never the test set); called in eval mode after every epoch of the last phase (fine-tuning
            when ``finetune_epochs > 0``, else training), whose best epoch's generator weights are kept. When that
            phase is the penalized training, the removal then meets the targets from the kept epoch's scales.
        checkpoint_dir: written after every epoch (``train/last.pt``, ``finetune/last.pt``); a rerun resumes.
        resume: continue from ``checkpoint_dir`` when it holds a checkpoint.

    Returns:
        A :class:`GanSlimReport` (MACs, size, channels before/after, per-epoch metrics).

    Raises:
        ConfigError: a bad option (the message names the field). DataError: ``data`` yields no batch.
        CheckpointError: the checkpoint was written by another configuration or other models.
    """
    base = asdict(config) if isinstance(config, GanSlimConfig) else dict(config or {})
    config = parse_config(GanSlimConfig, {**base, **options}, where="gan_slim")
    if teacher is generator:
        raise ConfigError("teacher: must be a separate model from the student generator (copy.deepcopy it)")
    device = resolve_device(config.device, False)
    seed_everything(config.seed)
    make_inputs = make_inputs or default_inputs(generator)
    batches = _Batches(data, config)
    first = [to_device(b, device) for b in _first(batches, make_inputs, config.seed, _CALIBRATION_BATCHES)]
    example = tuple(t[:1] for t in first[0].inputs)
    if not any(p.requires_grad for p in generator.parameters()):
        raise ConfigError("generator: no trainable parameter (a copy of a frozen teacher? requires_grad_(True) it)")
    if config.gan_weight > 0 and not any(p.requires_grad for p in discriminator.parameters()):
        raise ConfigError("discriminator: no trainable parameter, and gan_weight > 0 trains it")
    generator.to(device)
    discriminator.to(device)
    teacher.to(device)
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    teacher_trainable = [p for p in teacher.parameters() if p.requires_grad]
    _set_trainable(teacher_trainable, False)  # frozen for the run, given back as it was

    with training_mode(generator, generator.training), training_mode(teacher, False), contextlib.ExitStack() as undo:
        undo.callback(_set_trainable, teacher_trainable, True)
        params_before = sum(p.numel() for p in generator.parameters())
        size_before = 4 * params_before
        if config.weight_bits is not None:
            with training_mode(generator, False):
                quantize_generator(generator, qat_config(config.weight_bits, config.activation_bits),
                                   [b.inputs for b in first])
        last_phase_scored = score_fn if config.finetune_epochs == 0 else None
        trainer = _Trainer("train", generator, discriminator, teacher, config, config.strength, feature_fn, device,
                           first[0], last_phase_scored)
        resumed = trainer.train(config.epochs, batches, make_inputs, ckpt / "train" if ckpt else None, resume)
        trainer.keep_best()
        history, best = list(trainer.history), trainer.best
        with training_mode(generator, False):
            removal = remove_channels(generator, example, config.target_macs_reduction,
                                      config.target_params_reduction)
        if config.finetune_epochs > 0:
            tuner = _Trainer("finetune", generator, discriminator, teacher, config, 0.0, feature_fn, device,
                             first[0], score_fn)
            tuner.train(config.finetune_epochs, batches, make_inputs, ckpt / "finetune" if ckpt else None, resume)
            tuner.keep_best()
            history, best = history + tuner.history, tuner.best
    return GanSlimReport(
        macs_before=removal.macs_before, macs_after=removal.macs_after, params_before=params_before,
        params_after=sum(p.numel() for n, p in generator.named_parameters() if "_quant." not in n),
        size_bytes_before=size_before, size_bytes_after=stored_bytes(generator),
        channels_before=removal.channels_before, channels_after=removal.channels_after,
        zero_channels=removal.zero_channels, threshold=removal.threshold, weight_bits=config.weight_bits,
        activation_bits=config.activation_bits, history=history, resumed_from_epoch=resumed,
        best_epoch=None if best is None else best["epoch"], best_score=None if best is None else best["score"])
