"""Config base, registries, module walking, transactions, errors: what every capability builds on."""

from slimkit.core.config import config_to_dict, parse_config
from slimkit.core.errors import CheckpointError, CodecError, ConfigError, DataError, GraphError, SlimkitError
from slimkit.core.modules import count_params, get_submodule, iter_modules, label, set_submodule
from slimkit.core.registry import Registry
from slimkit.core.transaction import transaction

__all__ = [
    "CheckpointError", "CodecError", "ConfigError", "DataError", "GraphError", "Registry", "SlimkitError",
    "config_to_dict", "count_params", "get_submodule", "iter_modules", "label", "parse_config",
    "set_submodule", "transaction",
]
