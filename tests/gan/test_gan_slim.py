"""gan_slim end to end on tiny generators: MACs fall, shapes stay, resume continues, files load back, configs check."""

from __future__ import annotations

import copy

import pytest
import torch

import slimkit
from slimkit.gan import GanSlimConfig, gan_slim

NOISE, CLASSES = 8, 3


@pytest.fixture(scope="module")
def data():
    splits = slimkit.load_dataset("synthetic", num_samples=40, num_test=8, in_channels=1, num_classes=CLASSES,
                                  image_size=16, normalize=False, val_fraction=0.0)
    return splits.train


def _cgan(seed: int = 0):
    torch.manual_seed(seed)
    teacher = slimkit.create_model("dcgan_g", width=0.125, noise_dim=NOISE, num_classes=CLASSES, image_size=16)
    discriminator = slimkit.create_model("dcgan_d", width=0.125, num_classes=CLASSES)
    return teacher, copy.deepcopy(teacher), discriminator


def _inputs():
    return (torch.randn(2, NOISE, generator=torch.Generator().manual_seed(1)), torch.tensor([0, 2]))


QUICK = {"epochs": 1, "batch_size": 8, "max_steps_per_epoch": 2, "progress": False, "device": "cpu"}


def test_zero_scales_are_removed_and_macs_fall(data):
    teacher, student, disc = _cgan()
    x = _inputs()
    shape = teacher(*x).shape
    # a threshold lr_g * strength = 1 per step zeroes every scale below 1 at once
    report = gan_slim(student, disc, teacher, data, GanSlimConfig(**QUICK, lr_g=1e-3, strength=1000.0))
    assert report.zero_channels > 0 and report.threshold == 0.0
    assert report.macs_after < report.macs_before and report.macs_reduction > 1.5
    assert report.channels_after < report.channels_before
    student.eval()
    with torch.no_grad():
        out = student(*x)
    assert out.shape == shape and torch.isfinite(out).all()
    assert slimkit.profile(student, x).macs < slimkit.profile(teacher, x).macs / 1.5
    assert [r["phase"] for r in report.history] == ["train"]
    assert report.history[0]["zero_scales"] > 0.5


def test_lr_scale_lets_the_penalty_zero_scales_in_a_short_run(data):
    # under Adam the threshold lr_g * strength = 1e-3 per step cannot bring a scale from ~1 to 0 in two steps;
    # with their own SGD step the threshold lr_scale * strength = 1 does, while the gradients (<< strength) cannot hold them
    kept = gan_slim(_cgan()[1], _cgan()[2], _cgan()[0], data, GanSlimConfig(**QUICK, lr_g=2e-4, strength=5.0))
    assert kept.history[0]["zero_scales"] == 0.0 and kept.zero_channels == 0
    teacher, student, disc = _cgan()
    report = gan_slim(student, disc, teacher, data, GanSlimConfig(**QUICK, lr_g=2e-4, strength=5.0, lr_scale=0.2))
    assert report.history[0]["zero_scales"] > 0.5 and report.zero_channels > 0
    assert report.macs_after < report.macs_before


def test_macs_target_raises_the_threshold(data):
    teacher, student, disc = _cgan()
    report = gan_slim(student, disc, teacher, data, **QUICK, strength=0.0, target_macs_reduction=2.0,
                      finetune_epochs=1)
    assert report.macs_reduction >= 2.0 and report.threshold > 0
    assert [r["phase"] for r in report.history] == ["train", "finetune"]
    assert teacher(*_inputs()).shape == student(*_inputs()).shape


def test_image_to_image_generator(data):
    torch.manual_seed(0)
    teacher = slimkit.create_model("resnet_g", width=0.25, blocks=1)
    student, disc = copy.deepcopy(teacher), slimkit.create_model("patch_d", width=0.25)
    report = gan_slim(student, disc, teacher, data, **QUICK, target_macs_reduction=1.5)
    assert report.macs_reduction >= 1.5
    x = torch.rand(2, 1, 16, 16)
    assert student(x).shape == x.shape


def test_quantized_pruned_student_saves_and_loads_identical(data, tmp_path):
    teacher, student, disc = _cgan()
    report = gan_slim(student, disc, teacher, data, **QUICK, weight_bits=4, activation_bits=8,
                      target_macs_reduction=2.0)
    assert report.macs_reduction >= 2.0 and report.weight_bits == 4
    assert report.size_ratio > 4 * report.params_before / report.params_after  # 4-bit weights: up to 8x
    assert any(type(m).__name__ == "QuantConv2d" for m in student.modules())
    student.eval()
    x = _inputs()
    path = slimkit.save_model(student, tmp_path / "gs.pt", example_inputs=x)
    loaded = slimkit.load_model(path).eval()
    with torch.no_grad():
        assert torch.equal(loaded(*x), student(*x))
    assert repr(loaded) == repr(student)


def _states_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_resume_continues_from_the_checkpoint(data, tmp_path):
    options = {**QUICK, "epochs": 2, "strength": 50.0, "lr_g": 1e-3, "finetune_epochs": 1, "weight_bits": 8,
               "activation_bits": 8}
    teacher, whole, disc_whole = _cgan()
    straight = gan_slim(whole, disc_whole, teacher, data, **options)

    teacher, student, disc = _cgan()
    first = gan_slim(student, disc, teacher, data, **{**options, "epochs": 1, "finetune_epochs": 0},
                     checkpoint_dir=tmp_path)
    assert (tmp_path / "train" / "last.pt").is_file() and first.resumed_from_epoch == 0
    teacher, student, disc = _cgan()  # a fresh process: the models as they were before the run
    resumed = gan_slim(student, disc, teacher, data, **options, checkpoint_dir=tmp_path)
    assert resumed.resumed_from_epoch == 1
    assert [r["epoch"] for r in resumed.history] == [1, 2, 1]
    assert resumed.history[0] == first.history[0]
    assert _states_equal(student, whole) and _states_equal(disc, disc_whole)
    assert resumed.macs_after == straight.macs_after

    # a finished run resumes to the same result without training again
    teacher, again, disc = _cgan()
    done = gan_slim(again, disc, teacher, data, **options, checkpoint_dir=tmp_path)
    assert _states_equal(again, whole)
    assert [r["seconds"] for r in done.history] == [r["seconds"] for r in resumed.history]


def test_resume_refuses_another_configuration(data, tmp_path):
    teacher, student, disc = _cgan()
    gan_slim(student, disc, teacher, data, **QUICK, checkpoint_dir=tmp_path)
    teacher, student, disc = _cgan()
    with pytest.raises(slimkit.CheckpointError, match="strength"):
        gan_slim(student, disc, teacher, data, **{**QUICK, "strength": 0.5}, checkpoint_dir=tmp_path)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", -1), ("epochs", 1.5), ("lr_g", 0.0), ("lr_d", -1e-3), ("lr_scale", 0.0), ("strength", -0.1), ("distill_weight", -1.0),
        ("gan_weight", -1.0), ("weight_bits", 1), ("weight_bits", 9), ("activation_bits", 16),
        ("target_macs_reduction", 0.5), ("target_params_reduction", 0.9), ("finetune_epochs", -2), ("batch_size", 0), ("max_steps_per_epoch", 0),
        ("seed", -1), ("device", "tpu"),
    ],
)
def test_config_errors_name_the_field(field, value):
    with pytest.raises(slimkit.ConfigError, match=field):
        GanSlimConfig(**{field: value})


def test_keyword_and_dict_options_are_checked_by_name(data):
    teacher, student, disc = _cgan()
    with pytest.raises(slimkit.ConfigError, match="lr_g"):
        gan_slim(student, disc, teacher, data, lr_g=-1.0)
    with pytest.raises(slimkit.ConfigError, match="unknown option"):
        gan_slim(student, disc, teacher, data, {"epochs": 1, "sparsity_rho": 0.1})
    with pytest.raises(slimkit.ConfigError, match="activation_bits"):
        GanSlimConfig(activation_bits=8)  # activations quantized, weights float: not supported
    with pytest.raises(slimkit.ConfigError, match="teacher"):
        gan_slim(student, disc, student, data, **QUICK)


def test_config_is_exported():
    assert slimkit.GanSlimConfig is GanSlimConfig and slimkit.gan_slim is gan_slim


def test_a_list_of_batches_and_a_custom_input_maker(data):
    """Any re-iterable of batches works; ``make_inputs`` decides the generator's call and the real side."""
    from slimkit.gan import GanBatch

    teacher, student, disc = _cgan()
    batches = [data.get_batch(torch.arange(i, i + 8)) for i in range(0, 24, 8)]
    calls = []

    def make(batch, rng):
        x, y = batch
        calls.append(len(y))
        return GanBatch((torch.randn(len(y), NOISE, generator=rng), y), None, (y,))  # teacher images are "real"

    report = gan_slim(student, disc, teacher, batches, epochs=1, progress=False, device="cpu", make_inputs=make,
                      target_macs_reduction=1.5)
    assert report.history[0]["steps"] == 3 and report.macs_reduction >= 1.5
    assert calls and set(calls) == {8}


class _Scores:
    """A score_fn that returns the given values in turn and snapshots the generator at each call."""

    def __init__(self, *values: float) -> None:
        self.values, self.snapshots = list(values), []

    def __call__(self, generator: torch.nn.Module) -> float:
        assert not generator.training  # scored in eval mode
        self.snapshots.append({k: v.clone() for k, v in generator.state_dict().items()})
        return self.values.pop(0)


def _equal_to(model: torch.nn.Module, snapshot: dict) -> bool:
    state = model.state_dict()
    return state.keys() == snapshot.keys() and all(torch.equal(state[k], snapshot[k]) for k in state)


def test_score_fn_keeps_the_best_epoch_of_the_last_phase(data):
    teacher, student, disc = _cgan()
    scores = _Scores(3.0, 1.0, 2.0)
    report = gan_slim(student, disc, teacher, data, **{**QUICK, "epochs": 3, "strength": 0.0, "lr_g": 1e-2},
                      score_fn=scores)
    assert [r["score"] for r in report.history] == [3.0, 1.0, 2.0]
    assert report.best_epoch == 2 and report.best_score == 1.0
    assert not _equal_to(student, scores.snapshots[2])  # the epochs did move the weights ...
    assert _equal_to(student, scores.snapshots[1])  # ... and the second epoch's generator is the one kept
    assert "kept train epoch 2" in report.table()

    # without score_fn the last epoch is kept, as before
    teacher, plain, disc = _cgan()
    report = gan_slim(plain, disc, teacher, data, **{**QUICK, "epochs": 3, "strength": 0.0, "lr_g": 1e-2})
    assert report.best_epoch is None and "score" not in report.history[0]
    assert _equal_to(plain, scores.snapshots[2])


def test_score_fn_scores_the_finetuning_when_there_is_one(data):
    teacher, student, disc = _cgan()
    scores = _Scores(0.5, 2.0)
    report = gan_slim(student, disc, teacher, data, **{**QUICK, "strength": 1000.0, "lr_g": 1e-3,
                                                         "finetune_epochs": 2}, score_fn=scores)
    assert [r["phase"] for r in report.history] == ["train", "finetune", "finetune"]
    assert "score" not in report.history[0] and [r["score"] for r in report.history[1:]] == [0.5, 2.0]
    assert report.best_epoch == 1 and _equal_to(student, scores.snapshots[0])
    assert report.macs_reduction > 1.5  # the kept weights are the pruned student's


def test_score_fn_best_epoch_survives_a_resume(data, tmp_path):
    options = {**QUICK, "strength": 0.0, "lr_g": 1e-2}
    teacher, student, disc = _cgan()
    first_scores = _Scores(1.0, 5.0)
    gan_slim(student, disc, teacher, data, **{**options, "epochs": 2}, score_fn=first_scores,
             checkpoint_dir=tmp_path)
    teacher, student, disc = _cgan()  # a fresh process
    report = gan_slim(student, disc, teacher, data, **{**options, "epochs": 3}, score_fn=_Scores(4.0),
                      checkpoint_dir=tmp_path)
    assert report.resumed_from_epoch == 2 and [r["score"] for r in report.history] == [1.0, 5.0, 4.0]
    assert report.best_epoch == 1 and _equal_to(student, first_scores.snapshots[0])


def test_score_fn_must_return_a_number(data):
    teacher, student, disc = _cgan()
    with pytest.raises(slimkit.ConfigError, match="score_fn"):
        gan_slim(student, disc, teacher, data, **{**QUICK, "strength": 0.0}, score_fn=lambda g: "good")
