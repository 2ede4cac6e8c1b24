import math

import pytest

from slimkit.core.config import config_to_dict, parse_config
from slimkit.core.errors import ConfigError
from slimkit.train import TrainConfig
from slimkit.train.optim import lr_factor


def test_defaults_and_round_trip():
    config = parse_config(TrainConfig, {"epochs": 5, "optimizer": "adamw", "grad_clip": 1.0})
    assert config.epochs == 5 and config.optimizer == "adamw" and config.distill_alpha == 0.0
    assert parse_config(TrainConfig, config_to_dict(config)) == config


@pytest.mark.parametrize(
    "field,value",
    [("epochs", -1), ("batch_size", 0), ("optimizer", "rmsprop"), ("lr", 0.0), ("momentum", 1.0),
     ("schedule", "linear"), ("gamma", 0.0), ("warmup_epochs", -1), ("label_smoothing", 1.0),
     ("max_steps_per_epoch", 0), ("distill_alpha", 1.5), ("distill_temperature", 0.0), ("grad_clip", 0.0),
     ("device", "tpu"), ("amp", "int8"), ("distributed", "yes")],
)
def test_bad_fields_are_named(field, value):
    with pytest.raises(ConfigError, match=field):
        parse_config(TrainConfig, {field: value})


def test_nesterov_needs_sgd_momentum():
    with pytest.raises(ConfigError, match="nesterov"):
        parse_config(TrainConfig, {"nesterov": True, "optimizer": "adam"})


def test_unknown_field_is_named():
    with pytest.raises(ConfigError, match="learning_rate"):
        parse_config(TrainConfig, {"learning_rate": 0.1})


def _curve(steps_per_epoch=10, **kw):
    config = TrainConfig(**kw)
    return [lr_factor(s, config=config, steps_per_epoch=steps_per_epoch) for s in range(config.epochs * steps_per_epoch)]


def test_cosine_with_warmup():
    curve = _curve(epochs=4, schedule="cosine", warmup_epochs=1)
    assert curve[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])  # linear warm-up to the peak
    assert curve[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(curve[10:], curve[11:]))  # then decreasing
    assert curve[25] == pytest.approx(0.5 * (1 + math.cos(math.pi * 15 / 30)))
    assert curve[-1] < 0.01


def test_step_and_constant():
    step = _curve(epochs=6, schedule="step", step_size=2, gamma=0.5)
    assert step[0] == step[19] == 1.0 and step[20] == step[39] == 0.5 and step[40] == 0.25
    assert set(_curve(epochs=3, schedule="constant")) == {1.0}
