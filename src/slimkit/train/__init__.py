"""The training engine: ``fit`` / ``evaluate`` with hooks, knowledge distillation, DDP and exact resume.

Compression methods do not write training loops; they pass :class:`Hook` objects to :func:`fit` (extra loss terms,
gradient and weight edits, epoch schedules) and a ``teacher`` for distillation.
"""

from slimkit.train.bn_recalibration import recalibrate_bn
from slimkit.train.config import TrainConfig
from slimkit.train.engine import TrainResult, fit, seed_everything
from slimkit.train.evaluation import evaluate
from slimkit.train.hooks import Hook, TrainState

__all__ = ["Hook", "TrainConfig", "TrainResult", "TrainState", "evaluate", "fit", "recalibrate_bn", "seed_everything"]
