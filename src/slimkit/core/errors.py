"""One error family, so callers can catch everything slimkit raises with a single ``except``."""

from __future__ import annotations


class SlimkitError(Exception):
    """Base of every error slimkit raises on purpose."""


class ConfigError(SlimkitError, ValueError):
    """A config or recipe field is invalid; the message names the field."""


class DataError(SlimkitError):
    """A dataset cannot be found or read; the message names the path and how to get it."""


class GraphError(SlimkitError):
    """The dependency graph cannot be built or a transform cannot be applied safely.

    The message names the module path and type, e.g. ``features.3 (Conv2d): ...``.
    """


class CodecError(SlimkitError):
    """A compressed file is truncated, altered, or of an unknown version."""


class CheckpointError(SlimkitError):
    """A checkpoint file is missing, altered, or does not match the model."""


class FormatError(CodecError, CheckpointError):
    """A file's bytes are malformed, altered, or claim more than they hold (or than the load limits allow).

    Raised before anything the file claims is allocated; see :mod:`slimkit.core.limits`.
    """


class ExportError(SlimkitError):
    """A model cannot be exported, or the exported graph does not reproduce it."""
