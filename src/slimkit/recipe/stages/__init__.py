"""One module per stage type; each registers itself with ``register_stage``."""
