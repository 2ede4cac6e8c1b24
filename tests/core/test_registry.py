"""One registry mechanism for every extension point: names, types (along the MRO) and operators."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from slimkit.core.errors import ConfigError
from slimkit.core.registry import Registry


def test_names_are_case_insensitive_and_unknown_names_list_the_known() -> None:
    r: Registry[int] = Registry("thing")
    r.register("Alpha", "beta")(1)
    assert r.get("ALPHA") == 1 and r["beta"] == 1 and "alpha" in r and r.names() == ["alpha", "beta"]
    with pytest.raises(ConfigError, match="unknown thing 'gamma'; choose one of: alpha, beta"):
        r.get("gamma")
    assert r.get("gamma", None) is None
    with pytest.raises(ConfigError, match="already registered"):
        r.add("alpha", 2)
    r["alpha"] = 3  # the mapping spelling replaces, as the dicts it stands for did
    assert r.get("alpha") == 3 and len(r) == 2


def test_operator_names_keep_their_case() -> None:
    ops: Registry[str] = Registry("op", casefold=False)
    ops["T"], ops["t"] = "reverse dims", "transpose 2-d"
    assert ops["T"] != ops["t"] and len(ops) == 2


def test_types_resolve_along_the_mro() -> None:
    class MyConv(nn.Conv2d):
        pass

    layers: Registry[str] = Registry("layer rule")
    layers.register(nn.Conv2d, nn.Conv1d)("conv")
    assert layers.for_type(MyConv) == "conv" and layers.for_type(nn.Linear) is None
    assert layers.names() == ["Conv1d", "Conv2d"] and nn.Conv2d in layers and [1] not in layers


@pytest.mark.parametrize("module, name", [
    ("slimkit.graph.tracer", "LEAF_HANDLERS"), ("slimkit.graph.ops", "OP_HANDLERS"),
    ("slimkit.profile.counters", "OP_COUNTERS"), ("slimkit.prune.layers", "LAYER_PRUNERS"),
    ("slimkit.quant.api", "_HANDLERS"), ("slimkit.quant.api", "QUANT_METHODS"),
    ("slimkit.state.quant_kinds", "_QUANTIZERS"),
    ("slimkit.core.shapes", "attribute_syncers"), ("slimkit.prune.importance", "CRITERIA"),
    ("slimkit.models._registry", "MODELS"), ("slimkit.recipe._registry", "STAGES"),
    ("slimkit.prune.unstructured.magnitude", "WEIGHT_SCORES"), ("slimkit.lowrank._base", "METHODS"),
    ("slimkit.quant.modules", "QUANT_LAYERS"),
])
def test_every_extension_point_is_a_registry(module: str, name: str) -> None:
    import importlib

    table = getattr(importlib.import_module(module), name)
    assert isinstance(table, Registry), f"{module}.{name} is a {type(table).__name__}"


def test_layer_and_op_tables_answer_for_their_keys() -> None:
    from slimkit.core.shapes import attribute_syncers
    from slimkit.profile.counters import OP_COUNTERS
    from slimkit.prune.layers import LAYER_PRUNERS

    class Wide(nn.Linear):
        pass

    assert LAYER_PRUNERS.for_type(Wide) is LAYER_PRUNERS[nn.Linear]
    assert torch.ops.aten.mm in OP_COUNTERS and OP_COUNTERS.get(torch.ops.aten.relu, None) is None
    assert attribute_syncers.for_type(Wide) is attribute_syncers.for_type(nn.Linear) is not None


def test_discover_imports_every_module_of_a_package_on_first_read(tmp_path, monkeypatch) -> None:
    """A new file in the discovered package registers itself: no list names it (how criteria/ works)."""
    package = tmp_path / "slimkit_test_plugins"
    package.mkdir()
    (package / "__init__.py").write_text("from slimkit.core.registry import Registry\nTABLE = Registry('plugin')\n")
    (package / "one.py").write_text("from slimkit_test_plugins import TABLE\nTABLE.add('one', 1)\n")
    (package / "_private.py").write_text("raise RuntimeError('modules starting with _ are not imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import slimkit_test_plugins

    table = slimkit_test_plugins.TABLE
    table.discover = "slimkit_test_plugins"
    assert table.names() == ["one"] and table.get("one") == 1 and table.discover is None


def test_criteria_in_their_own_files_are_found() -> None:
    from slimkit.prune.importance import CRITERIA

    assert {"taylor", "apoz"} <= set(CRITERIA.names())
    assert CRITERIA.get("taylor").__module__ == "slimkit.prune.criteria.taylor"


def test_one_rule_per_layer_type_serves_pruner_syncer_and_tracer() -> None:
    from slimkit.core.shapes import LAYER_RULES, has_syncer, register_layer_rule, sync_attributes
    from slimkit.prune.layers import LAYER_PRUNERS, prune_out_channels

    conv = LAYER_RULES.for_type(nn.Conv2d)
    assert conv.out == (("weight", 0), ("bias", 0)) and conv.in_ == (("weight", 1),) and conv.sync is not None
    assert LAYER_PRUNERS is LAYER_RULES and has_syncer(nn.Conv2d) and not has_syncer(nn.ReLU)

    class Scale(nn.Module):
        def __init__(self, n: int) -> None:
            super().__init__()
            self.gain, self.n = nn.Parameter(torch.ones(n)), n

    def sync(m: nn.Module) -> None:
        m.n = m.gain.shape[0]

    register_layer_rule(Scale, sync=sync, out=[("gain", 0)], in_=[("gain", 0)])
    try:
        layer = Scale(6)
        prune_out_channels(layer, [0, 5])
        assert layer.gain.shape == (4,) and layer.n == 4 and has_syncer(Scale)
        layer.gain = nn.Parameter(torch.ones(3))
        sync_attributes(layer)
        assert layer.n == 3
    finally:
        LAYER_RULES.remove(Scale)
