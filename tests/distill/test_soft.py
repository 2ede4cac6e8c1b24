import pytest
import torch
import torch.nn.functional as F

from slimkit.core.errors import ConfigError
from slimkit.distill import distillation_loss, soft_target_loss


def _logits(seed, n=6, c=5):
    return torch.randn(n, c, generator=torch.Generator().manual_seed(seed)) * 3


@pytest.mark.parametrize("temperature", [1.0, 2.0, 8.0])
def test_matches_the_kl_formula(temperature):
    s, t = _logits(0), _logits(1)
    p_t = torch.softmax(t / temperature, dim=1)
    log_p_s = torch.log_softmax(s / temperature, dim=1)
    kl = (p_t * (torch.log(p_t) - log_p_s)).sum(dim=1).mean()
    assert soft_target_loss(s, t, temperature).item() == pytest.approx(temperature**2 * kl.item(), rel=1e-5)


def test_zero_iff_same_distribution_and_shift_invariant():
    s = _logits(0)
    assert soft_target_loss(s, s.clone(), 3.0).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_target_loss(s, s + 7.0, 3.0).item() == pytest.approx(0.0, abs=1e-5)  # softmax ignores shifts
    assert soft_target_loss(s, _logits(1), 3.0).item() > 0


@pytest.mark.parametrize("temperature", [1.0, 4.0])
def test_gradient_is_t_times_probability_gap(temperature):
    s, t = _logits(0).requires_grad_(), _logits(1)
    soft_target_loss(s, t, temperature).backward()
    expected = temperature * (torch.softmax(s / temperature, 1) - torch.softmax(t / temperature, 1)) / s.shape[0]
    assert torch.allclose(s.grad, expected.detach(), atol=1e-6)


def test_high_temperature_approaches_logit_matching():
    # Hinton et al.: for large T and zero-mean logits the gradient tends to (s - t) / (C * N)
    s = _logits(0).double() * 0.1
    t = _logits(1).double() * 0.1
    s, t = (s - s.mean(1, keepdim=True)).requires_grad_(), t - t.mean(1, keepdim=True)
    soft_target_loss(s, t, 100.0).backward()
    expected = (s - t).detach() / (s.shape[1] * s.shape[0])
    assert (s.grad - expected).abs().max() < 0.02 * expected.abs().max()
    assert s.grad.dtype == torch.float64


def test_teacher_gets_no_gradient():
    s, t = _logits(0).requires_grad_(), _logits(1).requires_grad_()
    soft_target_loss(s, t, 2.0).backward()
    assert t.grad is None


def test_distillation_loss_mixes_hard_and_soft():
    s, t = _logits(0), _logits(1)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    hard = F.cross_entropy(s, y)
    soft = soft_target_loss(s, t, 4.0)
    assert torch.allclose(distillation_loss(s, t, y, alpha=0.0, temperature=4.0), hard)
    assert torch.allclose(distillation_loss(s, t, y, alpha=1.0, temperature=4.0), soft)
    assert torch.allclose(distillation_loss(s, t, y, alpha=0.3, temperature=4.0), 0.7 * hard + 0.3 * soft)


def test_errors_name_the_problem():
    with pytest.raises(ConfigError, match="temperature"):
        soft_target_loss(_logits(0), _logits(1), 0.0)
    with pytest.raises(ConfigError, match="differ"):
        soft_target_loss(_logits(0, c=5), _logits(1, c=4), 1.0)
    with pytest.raises(ConfigError, match="alpha"):
        distillation_loss(_logits(0), _logits(1), torch.zeros(6, dtype=torch.long), alpha=1.5, temperature=1.0)
