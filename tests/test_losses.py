"""Losses (``fer_lib.losses``) and the ArcFace head (``fer_lib.models.arcface``).

Checked against ``torch.nn.functional`` references and hand-worked cases (arithmetic in comments).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_lib.losses import (ClassificationLoss, balanced_softmax_loss, focal_loss, logit_adjusted_cross_entropy,
                            one_hot, smooth_targets, soft_cross_entropy)
from fer_lib.models.arcface import ArcFaceHead, LinearHead, arcface_logits, arcface_margin

C = 7
COUNTS = np.array([3995, 436, 4097, 7215, 4965, 4830, 3171])  # FER2013 train counts (imbalanced)


def _batch(seed: int = 0, n: int = 32, c: int = C, scale: float = 3.0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, generator=g) * scale
    y = torch.randint(0, c, (n,), generator=g)
    return logits, y


def _close(a, b, tol=1e-6):
    torch.testing.assert_close(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64),
                               rtol=tol, atol=tol)


# ----------------------------------------------------------------------------- targets
def test_one_hot_and_smooth_targets():
    t = one_hot(torch.tensor([2, 0]), 4)
    assert t.dtype == torch.float32
    _close(t, [[0, 0, 1, 0], [1, 0, 0, 0]])
    # (1 - 0.2) * onehot + 0.2 / 4  ->  0.05 off target, 0.85 on target
    _close(smooth_targets(t, 0.2), [[0.05, 0.05, 0.85, 0.05], [0.85, 0.05, 0.05, 0.05]])
    assert torch.allclose(smooth_targets(t, 0.2).sum(1), torch.ones(2))


# ----------------------------------------------------------------------------- cross-entropy
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_soft_cross_entropy_one_hot_equals_cross_entropy(seed):
    logits, y = _batch(seed)
    _close(soft_cross_entropy(logits, one_hot(y, C)), F.cross_entropy(logits, y))


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.3])
def test_soft_cross_entropy_smoothed_equals_label_smoothing(eps):
    logits, y = _batch(3)
    ours = soft_cross_entropy(logits, smooth_targets(one_hot(y, C), eps))
    _close(ours, F.cross_entropy(logits, y, label_smoothing=eps))
    assert not torch.isclose(ours, F.cross_entropy(logits, y))  # smoothing changes the value


def test_soft_cross_entropy_mixed_targets_equal_probability_targets():
    # MixUp-style targets: lam * onehot(a) + (1 - lam) * onehot(b); torch accepts probability targets
    logits, y = _batch(4)
    y2 = torch.roll(y, 1)
    t = 0.7 * one_hot(y, C) + 0.3 * one_hot(y2, C)
    ref = F.cross_entropy(logits, t)
    _close(soft_cross_entropy(logits, t), ref)
    _close(ref, 0.7 * F.cross_entropy(logits, y) + 0.3 * F.cross_entropy(logits, y2))


def test_soft_cross_entropy_hand_worked():
    # logits (0, ln 3): softmax = (1/4, 3/4); target class 1 -> -ln(3/4) = 0.287682
    logits = torch.tensor([[0.0, math.log(3.0)]])
    _close(soft_cross_entropy(logits, torch.tensor([[0.0, 1.0]])), -math.log(0.75))


# ----------------------------------------------------------------------------- focal
@pytest.mark.parametrize("seed", [0, 1])
def test_focal_gamma_zero_equals_cross_entropy(seed):
    logits, y = _batch(seed)
    _close(focal_loss(logits, one_hot(y, C), gamma=0.0), F.cross_entropy(logits, y))
    _close(focal_loss(logits, smooth_targets(one_hot(y, C), 0.1), gamma=0.0),
           F.cross_entropy(logits, y, label_smoothing=0.1))


def test_focal_gamma_two_hand_worked():
    # logits (2, 0, -1), target class 0:
    #   p0 = e^2 / (e^2 + 1 + e^-1) = 7.389056 / 8.756935 = 0.843794
    #   (1 - p0)^2 = 0.156206^2 = 0.024400 ;  -ln p0 = 0.169846
    #   focal = 0.024400 * 0.169846 = 0.0041443
    e2, em1 = math.exp(2.0), math.exp(-1.0)
    p0 = e2 / (e2 + 1.0 + em1)
    expected = (1 - p0) ** 2 * -math.log(p0)
    assert expected == pytest.approx(0.0041443, abs=1e-6)
    out = focal_loss(torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[1.0, 0.0, 0.0]]), gamma=2.0)
    assert out.item() == pytest.approx(expected, rel=1e-5)


def test_focal_gamma_two_soft_target_hand_worked():
    # logits (0, ln 3): p = (1/4, 3/4); target (0.5, 0.5), gamma 2:
    #   class 0: 0.5 * (3/4)^2 * -ln(1/4) = 0.5 * 0.5625 * 1.386294 = 0.389895
    #   class 1: 0.5 * (1/4)^2 * -ln(3/4) = 0.5 * 0.0625 * 0.287682 = 0.008990
    #   total 0.398885
    expected = 0.5 * 0.75 ** 2 * math.log(4) + 0.5 * 0.25 ** 2 * -math.log(0.75)
    out = focal_loss(torch.tensor([[0.0, math.log(3.0)]]), torch.tensor([[0.5, 0.5]]), gamma=2.0)
    assert out.item() == pytest.approx(expected, rel=1e-5)


def test_focal_batch_mean_and_below_ce():
    logits, y = _batch(5, n=8)
    t = one_hot(y, C)
    per_sample = torch.stack([focal_loss(logits[i:i + 1], t[i:i + 1], 2.0) for i in range(8)])
    _close(focal_loss(logits, t, 2.0), per_sample.mean())
    assert focal_loss(logits, t, 2.0) < F.cross_entropy(logits, y)  # (1 - p)^gamma < 1 down-weights


# ----------------------------------------------------------------------------- logit adjustment
def test_logit_adjusted_hand_worked():
    # logits (1, 0), prior (0.8, 0.2), target class 1.
    # tau = 1: z' = (1 + ln 0.8, ln 0.2); softmax_1 = 0.2 / (0.8 e + 0.2) = 0.2 / 2.374625 = 0.084224
    #          CE = -ln 0.084224 = 2.474278
    logits = torch.tensor([[1.0, 0.0]])
    t = torch.tensor([[0.0, 1.0]])
    log_prior = torch.tensor([0.8, 0.2]).log()
    p1 = 0.2 / (0.8 * math.e + 0.2)
    assert -math.log(p1) == pytest.approx(2.474278, abs=1e-6)
    assert logit_adjusted_cross_entropy(logits, t, log_prior, 1.0).item() == pytest.approx(-math.log(p1), rel=1e-6)
    # tau = 0.5: z' = (1 + 0.5 ln 0.8, 0.5 ln 0.2);
    #          softmax_1 = sqrt(0.2) / (e sqrt(0.8) + sqrt(0.2)) = 0.447214 / 2.878519 = 0.155362 -> CE 1.861995
    p1h = math.sqrt(0.2) / (math.e * math.sqrt(0.8) + math.sqrt(0.2))
    assert -math.log(p1h) == pytest.approx(1.861995, abs=1e-6)
    assert logit_adjusted_cross_entropy(logits, t, log_prior, 0.5).item() == pytest.approx(-math.log(p1h), rel=1e-6)
    # tau = 0: plain CE: softmax_1 = 1 / (e + 1) -> ln(1 + e) = 1.313262
    assert logit_adjusted_cross_entropy(logits, t, log_prior, 0.0).item() == pytest.approx(math.log(1 + math.e),
                                                                                           rel=1e-6)


def test_logit_adjusted_equals_ce_on_shifted_logits():
    logits, y = _batch(6)
    log_prior = torch.as_tensor(COUNTS / COUNTS.sum(), dtype=torch.float32).log()
    for tau in (0.5, 1.0, 2.0):
        _close(logit_adjusted_cross_entropy(logits, one_hot(y, C), log_prior, tau),
               F.cross_entropy(logits + tau * log_prior, y))


def test_balanced_softmax_hand_worked_and_equals_tau_one():
    # counts (80, 20) -> prior (0.8, 0.2): the tau = 1 case above, 2.474278
    out = balanced_softmax_loss(torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([80, 20]))
    assert out.item() == pytest.approx(-math.log(0.2 / (0.8 * math.e + 0.2)), rel=1e-6)
    logits, y = _batch(7)
    counts = torch.as_tensor(COUNTS)
    prior = torch.as_tensor(COUNTS / COUNTS.sum(), dtype=torch.float32)
    t = smooth_targets(one_hot(y, C), 0.1)
    _close(balanced_softmax_loss(logits, t, counts), logit_adjusted_cross_entropy(logits, t, prior.log(), 1.0))
    _close(balanced_softmax_loss(logits, one_hot(y, C), counts), F.cross_entropy(logits + prior.log(), y))


# ----------------------------------------------------------------------------- ClassificationLoss
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_classification_loss_ce(eps):
    logits, y = _batch(8)
    loss = ClassificationLoss("ce", label_smoothing=eps)
    _close(loss(logits, one_hot(y, C)), F.cross_entropy(logits, y, label_smoothing=eps))


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_classification_loss_focal(eps):
    logits, y = _batch(9)
    t = one_hot(y, C)
    loss = ClassificationLoss("focal", label_smoothing=eps, focal_gamma=1.5)
    expected = focal_loss(logits, smooth_targets(t, eps) if eps else t, gamma=1.5)
    _close(loss(logits, t), expected)
    if eps:
        assert not torch.isclose(loss(logits, t), focal_loss(logits, t, gamma=1.5))
    # gamma is really passed on: a different gamma gives a different value
    assert not torch.isclose(loss(logits, t), ClassificationLoss("focal", eps, focal_gamma=3.0)(logits, t))


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_classification_loss_balanced_softmax(eps):
    logits, y = _batch(10)
    t = one_hot(y, C)
    st = smooth_targets(t, eps) if eps else t
    # tau is forced to 1 for Balanced Softmax, whatever is passed
    loss = ClassificationLoss("balanced_softmax", label_smoothing=eps, class_counts=COUNTS, tau=0.3)
    _close(loss(logits, t), balanced_softmax_loss(logits, st, torch.as_tensor(COUNTS)))
    prior = COUNTS / COUNTS.sum()
    _close(loss.log_prior, np.log(prior))
    _close(loss(logits, t), F.cross_entropy(logits + torch.as_tensor(np.log(prior), dtype=torch.float32), y,
                                            label_smoothing=eps))


@pytest.mark.parametrize("eps,tau", [(0.0, 1.0), (0.1, 0.5), (0.1, 2.0)])
def test_classification_loss_logit_adjusted(eps, tau):
    logits, y = _batch(11)
    t = one_hot(y, C)
    st = smooth_targets(t, eps) if eps else t
    loss = ClassificationLoss("logit_adjusted", label_smoothing=eps, class_counts=COUNTS, tau=tau)
    log_prior = torch.as_tensor(np.log(COUNTS / COUNTS.sum()), dtype=torch.float32)
    _close(loss(logits, t), logit_adjusted_cross_entropy(logits, st, log_prior, tau))
    _close(loss(logits, t), F.cross_entropy(logits + tau * log_prior, y, label_smoothing=eps))


@pytest.mark.parametrize("kind", ["balanced_softmax", "logit_adjusted"])
def test_classification_loss_needs_counts(kind):
    with pytest.raises(ValueError, match="class counts"):
        ClassificationLoss(kind)


def test_classification_loss_prior_buffer_follows_module():
    loss = ClassificationLoss("logit_adjusted", class_counts=COUNTS)
    assert "log_prior" in dict(loss.named_buffers())
    loss = loss.double()
    assert loss.log_prior.dtype == torch.float64


# ----------------------------------------------------------------------------- ArcFace logits
S, M = 30.0, 0.35


def test_arcface_target_logit_hand_worked():
    # cos = 0.5 -> theta = 60 deg = pi/3; target logit = 30 cos(pi/3 + 0.35) = 30 cos(1.397198) = 30 * 0.172728
    #   = 5.181844; non-targets keep 30 * cos.
    cos = torch.tensor([[0.5, 0.2, -0.3], [0.1, 0.5, 0.9]], dtype=torch.float64)
    t = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    out = arcface_logits(cos, t, S, M)
    target_logit = S * math.cos(math.pi / 3 + M)
    assert target_logit == pytest.approx(5.181844, abs=1e-6)
    expected = S * cos.clone()
    expected[0, 0] = target_logit
    expected[1, 1] = target_logit
    _close(out, expected, tol=1e-9)
    assert out[0, 0] < S * 0.5  # the margin lowers the target logit


def test_arcface_plain_when_no_target_or_no_margin():
    cos = torch.tensor([[0.5, -0.2, 0.9]])
    t = torch.tensor([[1.0, 0.0, 0.0]])
    _close(arcface_logits(cos, None, S, M), S * cos)
    _close(arcface_logits(cos, t, S, 0.0), S * cos)
    _close(arcface_logits(cos, torch.zeros_like(cos), S, M), S * cos)  # zero target -> no margin anywhere


def test_arcface_soft_target_splits_margin():
    # MixUp 0.5/0.5 on classes 0 and 1: each gets m * 0.5 = 0.175 rad
    cos = torch.tensor([[0.5, 0.3, 0.8]], dtype=torch.float64)
    t = torch.tensor([[0.5, 0.5, 0.0]], dtype=torch.float64)
    out = arcface_logits(cos, t, S, M)
    expected = [S * math.cos(math.acos(0.5) + 0.175), S * math.cos(math.acos(0.3) + 0.175), S * 0.8]
    _close(out[0], expected, tol=1e-9)
    # 0.7 / 0.3 split
    t2 = torch.tensor([[0.7, 0.0, 0.3]], dtype=torch.float64)
    expected2 = [S * math.cos(math.acos(0.5) + 0.7 * M), S * 0.3, S * math.cos(math.acos(0.8) + 0.3 * M)]
    _close(arcface_logits(cos, t2, S, M)[0], expected2, tol=1e-9)


def test_arcface_fallback_past_pi():
    # cos = -0.99 -> theta = 3.000 rad; theta + 0.35 = 3.35 > pi, so the fallback applies:
    #   cos - m sin(m) = -0.99 - 0.35 * sin(0.35) = -0.99 - 0.35 * 0.342898 = -1.110014 ; times 30 = -33.30
    cos = torch.tensor([[-0.99, 0.1]], dtype=torch.float64)
    t = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    assert math.acos(-0.99) + M > math.pi
    out = arcface_logits(cos, t, S, M)
    fallback = S * (-0.99 - M * math.sin(M))
    assert fallback == pytest.approx(-33.3004, abs=1e-3)
    _close(out[0], [fallback, S * 0.1], tol=1e-9)
    # the plain formula would instead give 30 cos(3.350053) = -29.35, i.e. non-monotone
    assert out[0, 0].item() != pytest.approx(S * math.cos(math.acos(-0.99) + M), abs=1e-3)
    # just inside the boundary (theta + m < pi) the angular formula still applies
    c_in = math.cos(math.pi - M) + 1e-3
    out_in = arcface_logits(torch.tensor([[c_in]], dtype=torch.float64), torch.ones(1, 1, dtype=torch.float64), S, M)
    assert out_in.item() == pytest.approx(S * math.cos(math.acos(c_in) + M), rel=1e-9)
    # with a half-target the fallback uses m t = 0.175: cos - 0.175 sin(0.175)
    out_half = arcface_logits(cos, torch.tensor([[0.5, 0.0]], dtype=torch.float64), S, M)
    assert math.acos(-0.99) + 0.175 > math.pi
    assert out_half[0, 0].item() == pytest.approx(S * (-0.99 - 0.175 * math.sin(0.175)), rel=1e-9)


def test_arcface_target_logit_monotone_in_cos():
    cos = torch.linspace(-1, 1, 2001, dtype=torch.float64)[:, None]
    out = arcface_logits(cos, torch.ones_like(cos), S, M)[:, 0]
    assert torch.all(out[1:] >= out[:-1])
    assert torch.all(out <= S * cos[:, 0] + 1e-9)  # the margin never raises the target logit


# ----------------------------------------------------------------------------- margin schedule
def test_arcface_margin_schedule():
    m, plain, warm = 0.35, 2.0, 4.0
    assert arcface_margin(0.0, m, plain, warm) == 0.0
    assert arcface_margin(1.99, m, plain, warm) == 0.0
    assert arcface_margin(2.0, m, plain, warm) == 0.0  # ramp starts at 0
    assert arcface_margin(3.0, m, plain, warm) == pytest.approx(0.35 * 0.25)
    assert arcface_margin(4.0, m, plain, warm) == pytest.approx(0.175)
    assert arcface_margin(5.5, m, plain, warm) == pytest.approx(0.35 * 3.5 / 4)
    assert arcface_margin(6.0, m, plain, warm) == pytest.approx(0.35)
    assert arcface_margin(50.0, m, plain, warm) == pytest.approx(0.35)
    ramp = [arcface_margin(e, m, plain, warm) for e in np.linspace(0, 10, 101)]
    assert all(b >= a for a, b in zip(ramp, ramp[1:]))


def test_arcface_margin_no_warmup_switches_on_at_once():
    assert arcface_margin(1.999, 0.35, 2.0, 0.0) == 0.0
    assert arcface_margin(2.0, 0.35, 2.0, 0.0) == 0.35
    assert arcface_margin(2.001, 0.35, 2.0, 0.0) == 0.35
    assert arcface_margin(0.0, 0.35, 0.0, 0.0) == 0.35  # no plain epochs: margin from the first step


# ----------------------------------------------------------------------------- ArcFace head
def test_arcface_head_scaled_cosine():
    torch.manual_seed(0)
    head = ArcFaceHead(16, C, s=S, m=M)
    x = torch.randn(5, 16) * 4
    w = head.weight.detach()
    cos = (x / x.norm(dim=1, keepdim=True)) @ (w / w.norm(dim=1, keepdim=True)).T
    with torch.no_grad():
        _close(head.cosine(x), cos, tol=1e-5)
        _close(head(x), S * cos, tol=1e-4)
        # scaling the embedding does not change the logits (it is L2-normalised)
        _close(head(x * 10), S * cos, tol=1e-4)
        # margin 0 with a target gives the plain logits
        y = torch.tensor([0, 1, 2, 3, 4])
        _close(head(x, one_hot(y, C), margin=0.0), S * cos, tol=1e-4)
        # with a target and the head's own margin, only the target entries change, to s cos(theta + m)
        out = head(x, one_hot(y, C))
        exp = S * cos.clone().double()
        for i, k in enumerate(y.tolist()):
            exp[i, k] = S * math.cos(math.acos(cos[i, k].item()) + M)
        _close(out, exp, tol=1e-4)
        # an explicit margin overrides the head's m
        out2 = head(x, one_hot(y, C), margin=0.1)
        for i, k in enumerate(y.tolist()):
            assert out2[i, k].item() == pytest.approx(S * math.cos(math.acos(cos[i, k].item()) + 0.1), abs=1e-3)


def test_arcface_head_gradients_flow():
    torch.manual_seed(1)
    head = ArcFaceHead(8, 3)
    x = torch.randn(4, 8, requires_grad=True)
    loss = F.cross_entropy(head(x, one_hot(torch.tensor([0, 1, 2, 0]), 3)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert torch.isfinite(x.grad).all() and torch.isfinite(head.weight.grad).all()
    assert head.weight.grad.abs().sum() > 0


def test_linear_head_ignores_target_and_margin():
    torch.manual_seed(2)
    head = LinearHead(8, 3)
    x = torch.randn(4, 8)
    with torch.no_grad():
        ref = x @ head.weight.T + head.bias
        _close(head(x), ref, tol=1e-5)
        _close(head(x, one_hot(torch.tensor([0, 1, 2, 0]), 3), margin=0.5), ref, tol=1e-5)


def test_missing_class_in_training_keeps_logit_adjustment_finite():
    from fer_lib.losses import ClassificationLoss, balanced_softmax_loss, one_hot
    import numpy as np
    lg, t = torch.randn(3, 4), one_hot(torch.tensor([0, 1, 2]), 4)
    assert torch.isfinite(balanced_softmax_loss(lg, t, torch.tensor([10.0, 5, 3, 0])))
    assert torch.isfinite(ClassificationLoss("balanced_softmax", 0.1, class_counts=np.array([10, 5, 3, 0]))(lg, t))
    with pytest.raises(ValueError, match="loss: expected one of"):
        ClassificationLoss("bogus")
