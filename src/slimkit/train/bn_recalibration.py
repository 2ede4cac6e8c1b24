"""Re-estimate BatchNorm running statistics after a model's structure changed (adaptive BN, Li et al. 2020).

Removing channels changes what every following BatchNorm sees, but its running mean and variance still describe
the dense model, so a freshly pruned network often scores near chance until it is fine-tuned. A few forward passes
in train mode, with no gradient and no weight change, put the statistics back in line with the new structure;
EagleEye showed that accuracy after this recalibration ranks pruning candidates far better than raw accuracy.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from slimkit.core.errors import DataError
from slimkit.core.modules import model_device
from slimkit.train.evaluation import as_loader, forward, to_device, training_mode

_NORMS = (nn.modules.batchnorm._BatchNorm,)


def recalibrate_bn(
    model: nn.Module,
    data: Any,
    *,
    batches: int = 50,
    batch_size: int = 128,
    device: str | torch.device | None = None,
    seed: int = 0,
) -> int:
    """Recompute the running mean/variance of every BatchNorm in ``model`` from ``batches`` batches of ``data``.

    The statistics become the exact average over the batches seen (cumulative moving average), not a momentum
    blend with the stale values; weights, biases and every module's train/eval flag are left as they were.
    ``data`` is a dataset (``torch.utils.data.Dataset``: batches are drawn from it, shuffled by ``seed``) or any
    iterable of batches: a DataLoader, a list of input tensors or of ``(inputs, targets)`` pairs.
    Returns the number of samples used (0 when the model has no BatchNorm with running statistics).
    """
    if batches < 1:
        raise ValueError(f"recalibrate_bn: batches must be >= 1, got {batches}")
    norms = [m for m in model.modules() if isinstance(m, _NORMS) and m.track_running_stats]
    if not norms:
        return 0
    target = torch.device(device) if device is not None else model_device(model)
    if isinstance(data, torch.utils.data.Dataset):
        loader = as_loader(data, batch_size=batch_size, shuffle=True, seed=seed)
    else:
        loader = data
    saved = [(m, m.momentum, m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone())
             for m in norms]
    samples = 0
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the recalibration batches
        with training_mode(model, False), torch.no_grad():  # every flag restored afterwards
            for m in norms:
                m.train()
            for step, batch in enumerate(loader):
                if step >= batches:
                    break
                inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
                forward(model, to_device(inputs, target))
                samples += _batch_size(inputs)
        if samples == 0:
            raise DataError("recalibrate_bn: the data yielded no batch; give a non-empty dataset")
    except BaseException:
        for m, _, mean, var, tracked in saved:
            m.running_mean.copy_(mean)
            m.running_var.copy_(var)
            m.num_batches_tracked.copy_(tracked)
        raise
    finally:
        for m, momentum, *_ in saved:
            m.momentum = momentum
    return samples


def _batch_size(inputs: Any) -> int:
    first = inputs[0] if isinstance(inputs, (tuple, list)) else inputs
    return int(first.shape[0])
