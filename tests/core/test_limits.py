"""Load limits: a budget that grows with the file, a floor, a cap, and one environment variable over both."""

import pytest

from slimkit.core.errors import CheckpointError, CodecError, ConfigError, FormatError
from slimkit.core.limits import (
    ENV_VAR,
    LOAD_FLOOR_BYTES,
    LOAD_MAX_BYTES,
    LOAD_RATIO,
    check_budget,
    load_budget_bytes,
)


@pytest.fixture(autouse=True)
def no_override(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_budget_has_a_floor_a_ratio_and_a_cap():
    assert load_budget_bytes(0) == LOAD_FLOOR_BYTES
    assert load_budget_bytes(1000) == LOAD_FLOOR_BYTES
    big = 2 * LOAD_FLOOR_BYTES // LOAD_RATIO
    assert load_budget_bytes(big) == LOAD_RATIO * big
    assert load_budget_bytes(1 << 50) == LOAD_MAX_BYTES


@pytest.mark.parametrize("value", [str(1 << 45), "1000"])
def test_environment_sets_the_budget_for_every_size(monkeypatch, value):
    monkeypatch.setenv(ENV_VAR, value)
    assert load_budget_bytes(0) == load_budget_bytes(1 << 50) == int(value)


@pytest.mark.parametrize("value", ["lots", "-1", "1.5e9"])
def test_bad_environment_value_is_a_config_error(monkeypatch, value):
    monkeypatch.setenv(ENV_VAR, value)
    with pytest.raises(ConfigError, match=f"{ENV_VAR} must be a non-negative integer"):
        load_budget_bytes(10)


def test_check_budget_names_file_part_size_limit_and_remedy():
    check_budget("m.slim", "tensor 'w'", 100, 100)
    with pytest.raises(FormatError) as info:
        check_budget("m.slim", "tensor 'w'", 3 << 30, 1 << 30)
    message = str(info.value)
    assert message.startswith("m.slim: tensor 'w' claims 3221225472 bytes (3.0 GiB)")
    assert "load limit of 1073741824 bytes (1.0 GiB)" in message and f"{ENV_VAR}=3221225472" in message


def test_format_error_is_caught_as_codec_and_checkpoint_error():
    assert issubclass(FormatError, CodecError) and issubclass(FormatError, CheckpointError)
