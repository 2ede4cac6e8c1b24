"""Feature distillation with hints (Romero et al. 2015, "FitNets: Hints for Thin Deep Nets").

The student learns to reproduce chosen intermediate features of the teacher: a learned adapter (a 1x1 conv for
feature maps, a linear layer for vectors/tokens) maps the student's features to the teacher's channels, and the
mean squared error between the two is added to the loss. The adapter absorbs channel-count differences (a
half-width student, a pruned or decomposed model) so the hint constrains what the features encode, not how many
channels carry it.

:class:`HintHook` plugs this into :func:`slimkit.train.fit` as a training hook, alone or with soft targets::

    hook = HintHook({"features.6": "features.6"}, weight=1.0)
    fit(student, data.train, TrainConfig(distill_alpha=0.7), teacher=teacher, hooks=[hook])

Features are caught with forward hooks on the named modules, so nothing in the models changes. With a teacher
given to ``fit``, the engine's own teacher forward fills the teacher's features; otherwise the hook runs its
``teacher`` on the batch itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from slimkit.core.errors import ConfigError
from slimkit.core.forward import training_mode
from slimkit.core.modules import get_submodule, label
from slimkit.train.hooks import Hook, TrainState


def make_adapter(student_channels: int, teacher_channels: int, ndim: int) -> nn.Module:
    """A 1x1 conv (``ndim == 4``) or linear map from student to teacher channels.

    Initialized to the identity when the channel counts match: after compression the features usually still
    line up, and the hint should start from "already matching" rather than from a random projection.
    """
    if ndim == 4:
        adapter: nn.Module = nn.Conv2d(student_channels, teacher_channels, 1, bias=False)
    else:
        adapter = nn.Linear(student_channels, teacher_channels, bias=False)
    if student_channels == teacher_channels:
        with torch.no_grad():
            adapter.weight.copy_(torch.eye(teacher_channels).reshape(adapter.weight.shape))
    return adapter


def hint_loss(student: torch.Tensor, teacher: torch.Tensor, adapter: nn.Module) -> torch.Tensor:
    """MSE between ``adapter(student)`` and the (detached) teacher features.

    Feature maps of different spatial size are average-pooled to the smaller one; vectors/tokens carry the
    channels last.
    """
    teacher = teacher.detach()
    if student.dim() == 4:
        mapped = adapter(student)  # (N, C_t, H_s, W_s)
        if mapped.shape[-2:] != teacher.shape[-2:]:
            size = (min(mapped.shape[-2], teacher.shape[-2]), min(mapped.shape[-1], teacher.shape[-1]))
            mapped = F.adaptive_avg_pool2d(mapped, size)
            teacher = F.adaptive_avg_pool2d(teacher, size)
    else:
        mapped = adapter(student)  # (..., C_t)
    if mapped.shape != teacher.shape:
        raise ConfigError(
            f"hint features do not line up: student maps to {tuple(mapped.shape)}, teacher has {tuple(teacher.shape)}"
        )
    return F.mse_loss(mapped.float(), teacher.float())


def _channels(feature: torch.Tensor) -> int:
    return int(feature.shape[1] if feature.dim() == 4 else feature.shape[-1])


class _Catcher:
    """Forward hooks that keep the latest output of each named module."""

    def __init__(self, model: nn.Module, names: Sequence[str], role: str) -> None:
        self.features: dict[str, torch.Tensor] = {}
        self.handles = []
        for name in names:
            module = get_submodule(model, name)
            self.handles.append(module.register_forward_hook(self._keep(name, module, role)))

    def _keep(self, name: str, module: nn.Module, role: str):
        def hook(_module: nn.Module, _args: Any, output: Any) -> None:
            if isinstance(output, (tuple, list)):
                output = output[0]
            if not isinstance(output, torch.Tensor):
                raise ConfigError(f"{role} hint layer {label(name, module)} does not output a tensor")
            self.features[name] = output

        return hook

    def take(self) -> dict[str, torch.Tensor]:
        features, self.features = self.features, {}
        return features

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles = []
        self.features = {}


class HintHook(Hook):
    """FitNets hint loss as a :class:`slimkit.train.Hook` (its adapters are trained with the model).

    Args:
        layers: student module name -> teacher module name (a sequence of names means the same name in both).
        weight: multiplier of the summed-over-layers MSE hint loss.
        teacher: the teacher to read features from when ``fit`` is given none (``state.teacher`` wins).
        example_inputs: a batch used once to learn the feature shapes; without it the first training batch is
            not available when the optimizer is built, so shapes are then inferred from the modules themselves
            (``out_channels`` / ``out_features`` / ``num_features`` of the module or its last such child).
    """

    def __init__(
        self,
        layers: Mapping[str, str] | Sequence[str],
        *,
        weight: float = 1.0,
        teacher: nn.Module | None = None,
        example_inputs: torch.Tensor | Sequence[torch.Tensor] | None = None,
    ) -> None:
        pairs = dict(layers) if isinstance(layers, Mapping) else {name: name for name in layers}
        if not pairs:
            raise ConfigError("HintHook: give at least one (student layer, teacher layer) pair")
        if weight < 0:
            raise ConfigError(f"HintHook: weight must be >= 0, got {weight}")
        self.pairs = pairs
        self.weight = float(weight)
        self.teacher = teacher
        if isinstance(example_inputs, torch.Tensor):
            example_inputs = (example_inputs,)
        self.example_inputs = tuple(example_inputs) if example_inputs is not None else None
        self.adapters = nn.ModuleDict()
        self._student: _Catcher | None = None
        self._teacher: _Catcher | None = None

    # -- set-up -------------------------------------------------------------------------------------------------
    def _teacher_of(self, state: TrainState) -> nn.Module:
        teacher = state.teacher if state.teacher is not None else self.teacher
        if teacher is None:
            raise ConfigError("HintHook: no teacher (pass teacher= to fit or to HintHook)")
        return teacher

    def _probe_shapes(self, student: nn.Module, teacher: nn.Module, device: torch.device) -> dict[str, tuple]:
        """(student channels, teacher channels, ndim) per pair from one forward on the example inputs."""
        assert self.example_inputs is not None
        inputs = tuple(x.to(device) for x in self.example_inputs)
        s_catch = _Catcher(student, list(self.pairs), "student")
        t_catch = _Catcher(teacher, list(self.pairs.values()), "teacher")
        modes = (student.training, teacher.training)
        try:
            student.eval()
            teacher.eval()
            with torch.no_grad():
                student(*inputs)
                teacher(*inputs)
            s_feat, t_feat = s_catch.take(), t_catch.take()
        finally:
            student.train(modes[0])
            teacher.train(modes[1])
            s_catch.remove()
            t_catch.remove()
        return {s: (_channels(s_feat[s]), _channels(t_feat[t]), s_feat[s].dim()) for s, t in self.pairs.items()}

    def _infer_shapes(self, student: nn.Module, teacher: nn.Module) -> dict[str, tuple]:
        def channels(model: nn.Module, name: str) -> tuple[int, int]:
            module = get_submodule(model, name)
            for m in [module, *reversed(list(module.modules()))]:  # the module itself, then its last children
                for attr, ndim in (("out_channels", 4), ("num_features", 4), ("out_features", 2)):
                    if isinstance(getattr(m, attr, None), int):
                        return getattr(m, attr), (2 if isinstance(m, nn.BatchNorm1d) else ndim)
            raise ConfigError(
                f"HintHook: cannot tell how many channels {label(name, module)} outputs; pass example_inputs="
            )

        shapes = {}
        for s, t in self.pairs.items():
            (cs, ndim), (ct, _) = channels(student, s), channels(teacher, t)
            shapes[s] = (cs, ct, ndim)
        return shapes

    def trainable_parameters(self, state: TrainState) -> Iterable[nn.Parameter]:
        teacher = self._teacher_of(state)
        if self.example_inputs is not None:
            shapes = self._probe_shapes(state.model, teacher, state.device)
        else:
            shapes = self._infer_shapes(state.model, teacher)
        self.adapters = nn.ModuleDict(
            {s.replace(".", "__"): make_adapter(cs, ct, ndim) for s, (cs, ct, ndim) in shapes.items()}
        ).to(state.device)
        return list(self.adapters.parameters())

    def on_train_start(self, state: TrainState) -> None:
        self._student = _Catcher(state.model, list(self.pairs), "student")
        self._teacher = _Catcher(self._teacher_of(state), list(self.pairs.values()), "teacher")

    def on_train_end(self, state: TrainState) -> None:
        self.remove()

    def remove(self) -> None:
        """Take the forward hooks off both models (done at the end of training)."""
        for catcher in (self._student, self._teacher):
            if catcher is not None:
                catcher.remove()
        self._student = self._teacher = None

    # -- per step -----------------------------------------------------------------------------------------------
    def extra_loss(self, state: TrainState, outputs: Any, targets: torch.Tensor) -> torch.Tensor | None:
        if self._student is None or self._teacher is None or self.weight == 0:
            return None
        s_feat = self._student.take()
        t_feat = self._teacher.take()
        if len(t_feat) < len(self.pairs):  # fit ran no teacher forward this step: run ours
            teacher = self._teacher_of(state)
            inputs = state.inputs if isinstance(state.inputs, (tuple, list)) else (state.inputs,)
            with torch.no_grad(), training_mode(teacher, False):
                teacher(*inputs)
            t_feat = self._teacher.take()
        missing = [s for s in self.pairs if s not in s_feat]
        if missing:
            raise ConfigError(f"HintHook: student layer(s) {missing} did not run in the forward pass")
        losses = [
            hint_loss(s_feat[s], t_feat[t], self.adapters[s.replace(".", "__")]) for s, t in self.pairs.items()
        ]
        return self.weight * torch.stack(losses).sum()
