"""A training hook that crashes on purpose, so users' tests can check that their runs resume exactly.

Example:
    >>> with pytest.raises(SimulatedCrash):
    ...     fit(model, data, config, hooks=[CrashAt(step=12)], checkpoint_dir=run)
    >>> fit(model, data, config, checkpoint_dir=run, resume=True)  # continues from the last checkpoint
"""

from __future__ import annotations

from slimkit.train import Hook


class SimulatedCrash(Exception):
    """Raised by :class:`CrashAt`; distinct from every real error so a test cannot confuse the two."""


class CrashAt(Hook):
    """Raises :class:`SimulatedCrash` right after optimizer step ``step`` (mid-epoch when ``step`` says so)."""

    def __init__(self, step: int):
        self.step = step

    def after_step(self, state) -> None:
        if state.step == self.step:
            raise SimulatedCrash(f"simulated crash after step {self.step}")
