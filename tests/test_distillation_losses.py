"""Distillation losses (``fer_lib.losses.distillation``): seeds 002 (CA-WKD and variants) and 003 (KD vs DKD).

Every formula is checked against an independent reference written here with ``math``/``numpy`` in float64
(never by calling the function under test), on tiny tensors. Each check is chosen so that a plausible
mistake would fail it: swapped KL direction, missing T^2, wrong normaliser (K - 1), softmax over the wrong
dimension, mean of logits vs mean of probabilities, KL weighted by alpha when CE is dropped, ...
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fer_lib.losses.distillation import (adaptive_alpha_loss, alpha_guided_alpha, alpha_guided_loss, aver_loss,
                                         ca_wkd_loss, ca_wkd_weights, dkd_loss, dkd_terms, ebkd_loss, ebkd_weights,
                                         kd_loss, kl_div, kl_to_probs, most_confident, true_class_prob)


# ---------------------------------------------------------------------------------------------- references

def _close(actual, expected, rtol=1e-5, atol=1e-6):
    a = torch.as_tensor(actual).detach().double()
    e = torch.as_tensor(np.asarray(expected, dtype=np.float64))
    torch.testing.assert_close(a, e.reshape(a.shape) if e.numel() == a.numel() else e, rtol=rtol, atol=atol)


def np_softmax(z, T: float = 1.0, axis: int = -1):
    z = np.asarray(z, dtype=np.float64) / T
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_kl(p, q):
    """KL(p || q) along the last axis (p, q distributions)."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    return (p * (np.log(p) - np.log(q))).sum(-1)


def np_ce(z, t):
    """Per-sample -sum_c t_c log softmax(z)_c."""
    return -(np.asarray(t, np.float64) * np.log(np_softmax(z))).sum(-1)


def T_(x):  # noqa: N802 - tiny helper: float32 tensor without grad
    return torch.tensor(x, dtype=torch.float32)


def onehot(y, c):
    return F.one_hot(torch.tensor(y), c).float()


# ---------------------------------------------------------------------------------------------- 1. kl_div

def test_kl_div_matches_torch_kl_div_with_T_squared():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(4, 5, generator=g) * 2, torch.randn(4, 5, generator=g) * 2
    T = 3.0
    ref = F.kl_div(F.log_softmax(s / T, 1), F.softmax(t / T, 1), reduction="none").sum(1) * T ** 2
    out = kl_div(t, s, T)
    assert out.shape == (4,)
    _close(out, ref.numpy())
    # guard: the reversed direction and the unscaled value are really different on this example
    rev = F.kl_div(F.log_softmax(t / T, 1), F.softmax(s / T, 1), reduction="none").sum(1) * T ** 2
    assert (rev - ref).abs().max() > 1e-2 and (ref / T ** 2 - ref).abs().max() > 1e-2


def test_kl_div_two_class_by_hand():
    # student z_s = [2, 0], teacher z_t = [0, 1], T = 2
    # p_s = [e^1, 1] / (e^1 + 1),   p_t = [1, e^0.5] / (1 + e^0.5)
    T = 2.0
    ps1 = math.exp(1.0) / (math.exp(1.0) + 1.0)
    ps = [ps1, 1.0 - ps1]
    pt1 = 1.0 / (1.0 + math.exp(0.5))
    pt = [pt1, 1.0 - pt1]
    kl = pt[0] * math.log(pt[0] / ps[0]) + pt[1] * math.log(pt[1] / ps[1])
    expected = kl * T * T  # ~ 1.8049 (0.4512 * 4)
    assert abs(ps1 - 0.7310586) < 1e-6 and abs(pt1 - 0.3775407) < 1e-6
    out = kl_div(T_([[0.0, 1.0]]), T_([[2.0, 0.0]]), T)
    _close(out, [expected])
    # direction: KL(p_t || p_s), not KL(p_s || p_t)
    wrong = (ps[0] * math.log(ps[0] / pt[0]) + ps[1] * math.log(ps[1] / pt[1])) * T * T
    assert abs(wrong - expected) > 1e-2


def test_kl_div_zero_when_student_equals_teacher():
    z = T_([[1.0, -2.0, 0.5], [3.0, 3.0, -1.0]])
    _close(kl_div(z, z.clone(), 4.0), [0.0, 0.0], atol=1e-6)
    # and shift-invariant: adding a per-row constant to the student logits changes nothing
    _close(kl_div(z, z + T_([[5.0], [-2.0]]), 4.0), [0.0, 0.0], atol=1e-5)


def test_kl_to_probs_agrees_with_kl_div():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(3, 4, generator=g) * 2, torch.randn(3, 4, generator=g) * 2
    T = 2.5
    _close(kl_to_probs(F.softmax(t / T, 1), s, T), kl_div(t, s, T).numpy())
    # and against numpy
    _close(kl_to_probs(F.softmax(t / T, 1), s, T), np_kl(np_softmax(t.numpy(), T), np_softmax(s.numpy(), T)) * T * T)


# ---------------------------------------------------------------------------------------------- 2. kd_loss

KD_S, KD_TEACHER, KD_Y, KD_T = [1.0, 2.0, 0.0], [3.0, 0.0, 1.0], 1, 2.0


def _kd_by_hand():
    """One sample, 3 classes, T = 2: returns (KL * T^2, CE)."""
    T = KD_T
    es = [math.exp(v / T) for v in KD_S]  # e^0.5, e^1, e^0
    et = [math.exp(v / T) for v in KD_TEACHER]  # e^1.5, e^0, e^0.5
    ps = [v / sum(es) for v in es]
    pt = [v / sum(et) for v in et]
    kl = sum(a * math.log(a / b) for a, b in zip(pt, ps)) * T * T
    ce = -math.log(math.exp(KD_S[KD_Y]) / sum(math.exp(v) for v in KD_S))  # CE at T = 1
    return kl, ce


def test_kd_loss_by_hand_alpha_07():
    kl, ce = _kd_by_hand()
    s, tz, t = T_([KD_S]), T_([KD_TEACHER]), onehot([KD_Y], 3)
    out = kd_loss(s, tz, t, T=KD_T, alpha=0.7)
    _close(out["loss_kd"], 0.7 * kl)
    _close(out["loss_ce"], 0.3 * ce)
    _close(sum(out.values()), 0.7 * kl + 0.3 * ce)
    # CE uses T = 1 (not the softened student)
    assert abs(ce - 0.40760596) < 1e-6


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_kd_loss_alpha_extremes(alpha):
    kl, ce = _kd_by_hand()
    out = kd_loss(T_([KD_S]), T_([KD_TEACHER]), onehot([KD_Y], 3), T=KD_T, alpha=alpha)
    total = float(sum(out.values()))
    assert total == pytest.approx(ce if alpha == 0.0 else kl, rel=1e-5)
    assert float(out["loss_kd" if alpha == 0.0 else "loss_ce"]) == 0.0


def test_kd_loss_batch_mean_and_soft_targets():
    g = torch.Generator().manual_seed(2)
    s, tz = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    t = T_([[0.6, 0.4, 0, 0], [0, 0, 1, 0], [0, 0.3, 0, 0.7]])
    T = 3.0
    out = kd_loss(s, tz, t, T=T, alpha=0.25)
    kl = np_kl(np_softmax(tz.numpy(), T), np_softmax(s.numpy(), T)) * T * T
    _close(out["loss_kd"], 0.25 * kl.mean())
    _close(out["loss_ce"], 0.75 * np_ce(s.numpy(), t.numpy()).mean())


def test_kd_gradient_is_T_times_prob_difference():
    # d/dz_s [KL_T(p_t || p_s) T^2] = T (p_s^T - p_t^T): a missing T^2 would give (p_s - p_t) / T
    T = 2.0
    s = T_([KD_S]).requires_grad_(True)
    kd_loss(s, T_([KD_TEACHER]), onehot([KD_Y], 3), T=T, alpha=1.0)["loss_kd"].backward()
    _close(s.grad, T * (np_softmax([KD_S], T) - np_softmax([KD_TEACHER], T)))


# ---------------------------------------------------------------------------------------------- 3. DKD

def _dkd_by_hand(s, tz, y, T):
    """Returns (TCKD, NCKD, full KL, teacher p_target), all with T^2, from math only."""
    es = [math.exp(v / T) for v in s]
    et = [math.exp(v / T) for v in tz]
    ps = [v / sum(es) for v in es]
    pt = [v / sum(et) for v in et]
    bs, bt = [ps[y], 1 - ps[y]], [pt[y], 1 - pt[y]]
    tckd = sum(a * math.log(a / b) for a, b in zip(bt, bs)) * T * T
    nt = [j for j in range(len(s)) if j != y]
    qs = [ps[j] / (1 - ps[y]) for j in nt]
    qt = [pt[j] / (1 - pt[y]) for j in nt]
    nckd = sum(a * math.log(a / b) for a, b in zip(qt, qs)) * T * T
    kl = sum(a * math.log(a / b) for a, b in zip(pt, ps)) * T * T
    return tckd, nckd, kl, pt[y]


@pytest.mark.parametrize("y", [0, 1, 2])
def test_dkd_terms_by_hand(y):
    s, tz, T = [1.0, 2.0, 0.0], [3.0, 0.0, 1.0], 2.0
    tckd, nckd, kl, pty = _dkd_by_hand(s, tz, y, T)
    a, b = dkd_terms(T_([s]), T_([tz]), torch.tensor([y]), T)
    _close(a, [tckd])
    _close(b, [nckd])
    # decomposition (Zhao et al. 2022): KL = TCKD + (1 - p_t^target) NCKD, all with T^2
    assert kl == pytest.approx(tckd + (1 - pty) * nckd, rel=1e-12)
    _close(a + (1 - pty) * b, [kl])


def test_dkd_decomposition_on_a_batch():
    g = torch.Generator().manual_seed(3)
    s, tz = torch.randn(4, 5, generator=g) * 2, torch.randn(4, 5, generator=g) * 2
    y = torch.tensor([0, 4, 2, 2])
    T = 3.0
    tckd, nckd = dkd_terms(s, tz, y, T)
    pty = np_softmax(tz.numpy(), T)[np.arange(4), y.numpy()]
    _close(tckd + torch.tensor(1 - pty, dtype=torch.float32) * nckd, kl_div(tz, s, T).numpy(), rtol=1e-4, atol=1e-5)
    assert (tckd > 0).all() and (nckd > 0).all()


def test_dkd_loss_warmup_ramp():
    s, tz, T = T_([[1.0, 2.0, 0.0]]), T_([[3.0, 0.0, 1.0]]), 2.0
    t = onehot([0], 3)
    tckd, nckd, _, _ = _dkd_by_hand([1.0, 2.0, 0.0], [3.0, 0.0, 1.0], 0, T)
    ce = np_ce([[1.0, 2.0, 0.0]], [[1, 0, 0]])[0]
    for epoch, ramp in [(0, 0.0), (2.5, 0.25), (5, 0.5), (10, 1.0), (25, 1.0)]:
        out = dkd_loss(s, tz, t, T=T, alpha=1.0, beta=8.0, warmup=10, epoch=epoch)
        _close(out["loss_tckd"], ramp * 1.0 * tckd)
        _close(out["loss_nckd"], ramp * 8.0 * nckd)
        _close(out["loss_ce"], ce)  # CE is never ramped
    out = dkd_loss(s, tz, t, T=T, alpha=1.0, beta=8.0, warmup=0, epoch=0)  # no warm-up: full from the start
    _close(out["loss_tckd"], tckd)
    _close(out["loss_nckd"], 8.0 * nckd)


def test_dkd_ramp_lags_mdistillers_by_at_most_one_epoch():
    # mdistiller (DKD.forward_train): min(epoch / warmup, 1) with the integer 1-based epoch k, constant over the
    # epoch. Ours: the same formula on the engine's fractional 0-based progress (epoch index + step / steps), so
    # during 1-based epoch k it rises from (k - 1) / W to k / W: mdistiller's value is reached at the epoch's end.
    s, tz, t, W, steps = T_([[1.0, 2.0, 0.0]]), T_([[3.0, 0.0, 1.0]]), onehot([0], 3), 20, 4
    full = float(dkd_loss(s, tz, t, T=2.0, warmup=0)["loss_tckd"])
    for k in (1, 2, 10, 20, 21):
        ref = min(k / W, 1.0)
        ours = [float(dkd_loss(s, tz, t, T=2.0, warmup=W, epoch=(k - 1) + i / steps)["loss_tckd"]) / full
                for i in range(steps + 1)]
        assert ours[0] == pytest.approx(min((k - 1) / W, 1.0)) and ours[-1] == pytest.approx(ref)
        assert all(ref - 1 / W - 1e-6 <= r <= ref + 1e-6 for r in ours)


def test_dkd_loss_beta_scales_only_nckd():
    s, tz = T_([[1.0, 2.0, 0.0], [0.0, -1.0, 2.0]]), T_([[3.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    t = onehot([0, 2], 3)
    lo = dkd_loss(s, tz, t, T=4.0, alpha=1.0, beta=2.0)
    hi = dkd_loss(s, tz, t, T=4.0, alpha=1.0, beta=8.0)
    _close(hi["loss_nckd"], 4.0 * float(lo["loss_nckd"]))
    _close(hi["loss_tckd"], float(lo["loss_tckd"]))
    _close(hi["loss_ce"], float(lo["loss_ce"]))
    assert float(lo["loss_nckd"]) > 0
    # alpha scales only TCKD
    a3 = dkd_loss(s, tz, t, T=4.0, alpha=3.0, beta=2.0)
    _close(a3["loss_tckd"], 3.0 * float(lo["loss_tckd"]))
    _close(a3["loss_nckd"], float(lo["loss_nckd"]))
    # and the batch values are means of the hand-worked per-sample terms
    h = [_dkd_by_hand(list(map(float, s[i])), list(map(float, tz[i])), yi, 4.0) for i, yi in enumerate([0, 2])]
    _close(lo["loss_tckd"], np.mean([x[0] for x in h]))
    _close(lo["loss_nckd"], 2.0 * np.mean([x[1] for x in h]))


def test_dkd_loss_mixed_target_uses_argmax_class():
    s_l, tz_l, T = [1.0, 2.0, 0.0], [3.0, 0.0, 1.0], 2.0
    t = T_([[0.4, 0.0, 0.6]])  # MixUp/CutMix: 0.6 class 2, 0.4 class 0 -> y = 2
    out = dkd_loss(T_([s_l]), T_([tz_l]), t, T=T, alpha=1.0, beta=8.0)
    tckd2, nckd2, _, _ = _dkd_by_hand(s_l, tz_l, 2, T)
    tckd0, nckd0, _, _ = _dkd_by_hand(s_l, tz_l, 0, T)
    _close(out["loss_tckd"], tckd2)
    _close(out["loss_nckd"], 8.0 * nckd2)
    assert abs(tckd2 - tckd0) > 1e-2 and abs(nckd2 - nckd0) > 1e-2  # the choice of y matters here
    _close(out["loss_ce"], np_ce([s_l], [[0.4, 0.0, 0.6]])[0])  # CE keeps the mixed target


def test_nckd_zero_when_non_target_distributions_coincide():
    # the student differs from the teacher only in the target logit: identical non-target distributions,
    # different target probabilities -> NCKD = 0, TCKD > 0
    tz = T_([[0.5, 2.0, -1.0, 1.0]])
    s = tz.clone()
    s[0, 1] = -3.0
    tckd, nckd = dkd_terms(s, tz, torch.tensor([1]), 2.0)
    _close(nckd, [0.0], atol=1e-6)
    hand_tckd, hand_nckd, _, _ = _dkd_by_hand(s[0].tolist(), tz[0].tolist(), 1, 2.0)
    assert abs(hand_nckd) < 1e-12
    _close(tckd, [hand_tckd])
    assert float(tckd) > 0.5


def test_dkd_finite_on_saturated_logits():
    # a student certain of the target (1 - p_s^y underflows) and a teacher certain of another class
    s = T_([[60.0, 0.0, 0.0], [0.0, 0.0, 0.0]]).requires_grad_(True)
    tz = T_([[0.0, 60.0, 0.0], [0.0, 0.0, 60.0]])
    out = dkd_loss(s, tz, onehot([0, 1], 3), T=1.0, alpha=1.0, beta=8.0)
    total = sum(out.values())
    assert torch.isfinite(total)
    total.backward()
    assert torch.isfinite(s.grad).all()


# ---------------------------------------------------------------------------------------------- 4. CA-WKD weights

def _ca_wkd_weights_ref(teachers, t):
    """numpy: CE per teacher per sample, w = (1 - softmax_k(CE)) / (K - 1). Shape (K, N)."""
    ce = np.stack([np_ce(z, t) for z in teachers])  # (K, N)
    e = np.exp(ce - ce.max(0, keepdims=True))
    sm = e / e.sum(0, keepdims=True)  # softmax over teachers (axis 0), not over samples
    return (1.0 - sm) / (len(teachers) - 1), ce


def test_ca_wkd_weights_by_hand_k3():
    # one sample worked fully with math; y = 0
    z = [[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 1.0]]
    ces = [-math.log(math.exp(r[0]) / sum(math.exp(v) for v in r)) for r in z]
    # CE_1 = log(e^2 + 2) - 2 ~ 0.2395, CE_2 = log(e + 2) ~ 1.5514, CE_3 = log 3 ~ 1.0986
    assert ces[0] == pytest.approx(math.log(math.exp(2) + 2) - 2) and ces[2] == pytest.approx(math.log(3))
    den = sum(math.exp(c) for c in ces)
    w = [(1 - math.exp(c) / den) / (3 - 1) for c in ces]
    out = ca_wkd_weights([T_([r]) for r in z], onehot([0], 3))
    assert out.shape == (3, 1)
    _close(out[:, 0], w)
    assert int(out[:, 0].argmax()) == 0 == int(np.argmin(ces))
    assert int(out[:, 0].argmin()) == 1  # highest CE, smallest weight


def test_ca_wkd_weights_batch_sum_to_one_and_mixed_targets():
    g = torch.Generator().manual_seed(4)
    teachers = [torch.randn(3, 4, generator=g) * 2 for _ in range(3)]
    t = T_([[1, 0, 0, 0], [0, 0.3, 0.7, 0], [0, 0, 0, 1]])
    out = ca_wkd_weights(teachers, t)
    ref, ce = _ca_wkd_weights_ref([z.numpy() for z in teachers], t.numpy())
    assert out.shape == (3, 3)
    _close(out, ref)
    _close(out.sum(0), np.ones(3))  # the (K - 1) normaliser makes them sum to 1
    assert (out.argmax(0).numpy() == ce.argmin(0)).all()
    assert (out >= 0).all() and (out <= 1 / (3 - 1) + 1e-6).all()


def test_ca_wkd_weights_k2_and_k4_normaliser():
    # K = 2: w = 1 - softmax = the other teacher's softmax share; K = 4: (1 - sm) / 3
    for k in (2, 4):
        teachers = [T_([[float(i), 0.0, -float(i)]]) for i in range(k)]
        out = ca_wkd_weights(teachers, onehot([0], 3))
        ref, _ = _ca_wkd_weights_ref([z.numpy() for z in teachers], onehot([0], 3).numpy())
        _close(out, ref)
        _close(out.sum(0), [1.0])


def test_ca_wkd_all_teachers_wrong_still_followed():
    # seed 002 §2.2.1 drawback: every teacher puts ~0 probability on the true class 0
    teachers = [T_([[-4.0, 5.0, 0.0]]), T_([[-4.0, 0.0, 6.0]]), T_([[-5.0, 4.0, 4.0]])]
    t = onehot([0], 3)
    p_true = [float(F.softmax(z, 1)[0, 0]) for z in teachers]
    assert max(p_true) < 1e-3  # all confidently wrong
    w = ca_wkd_weights(teachers, t)
    ref, _ = _ca_wkd_weights_ref([z.numpy() for z in teachers], t.numpy())
    _close(w, ref)
    _close(w.sum(0), [1.0])  # total teacher weight is NOT reduced
    assert float(w.max()) >= 1 / 3 - 1e-6  # some teacher gets at least the uniform share
    # equally-wrong teachers share exactly uniformly
    same = [T_([[-4.0, 5.0, 0.0]])] * 3
    _close(ca_wkd_weights(same, t)[:, 0], [1 / 3] * 3)
    # so the KL term pulls the student towards wrong teachers with full strength: a convex combination
    s = T_([[3.0, 0.0, 0.0]])  # student that is right
    loss_kd = float(ca_wkd_loss(s, teachers, t, T=1.0)["loss_kd"])
    kls = [float(kl_div(z, s, 1.0)) for z in teachers]
    _close(loss_kd, float((ref[:, 0] * np.array(kls)).sum()))
    assert min(kls) - 1e-5 <= loss_kd <= max(kls) + 1e-5  # never below the least-wrong teacher's KL


def test_ca_wkd_weights_k1_raises():
    with pytest.raises(ValueError):
        ca_wkd_weights([T_([[1.0, 0.0]])], onehot([0], 2))
    with pytest.raises(ValueError):
        ca_wkd_loss(T_([[0.0, 0.0]]), [T_([[1.0, 0.0]])], onehot([0], 2))


# ---------------------------------------------------------------------------------------------- 5. CA-WKD loss

def test_ca_wkd_loss_equals_weighted_kl_plus_ce():
    g = torch.Generator().manual_seed(5)
    s = torch.randn(2, 4, generator=g)
    teachers = [torch.randn(2, 4, generator=g) * 2 for _ in range(3)]
    t = T_([[0, 1, 0, 0], [0.5, 0, 0, 0.5]])
    T = 2.0
    w, _ = _ca_wkd_weights_ref([z.numpy() for z in teachers], t.numpy())  # (K, N)
    kls = np.stack([np_kl(np_softmax(z.numpy(), T), np_softmax(s.numpy(), T)) * T * T for z in teachers])
    out = ca_wkd_loss(s, teachers, t, T=T)
    _close(out["loss_kd"], (w * kls).sum(0).mean())
    _close(out["loss_ce"], np_ce(s.numpy(), t.numpy()).mean())  # weight 1: eq. 4 L = L_KL + L_CE
    # guard: uniform weights would give a different value here
    assert abs((w * kls).sum(0).mean() - kls.mean()) > 1e-3


# ---------------------------------------------------------------------------------------------- 6. alpha-guided

def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def test_alpha_guided_alpha_by_hand():
    # N = 2, K = 2, C = 3; true classes 0 and 2
    a = [[4.0, 0.0, 0.0], [0.0, 2.0, 1.0]]
    b = [[0.0, 4.0, 0.0], [0.0, 0.0, 3.0]]
    y = [0, 2]
    mean = [[(a[i][c] + b[i][c]) / 2 for c in range(3)] for i in range(2)]  # [[2,2,0],[0,1,2]]
    conf = [math.exp(mean[i][y[i]]) / sum(math.exp(v) for v in mean[i]) for i in range(2)]
    conf_avg = sum(conf) / 2
    gamma, theta = 2.0, 0.3
    alpha = _sigmoid(gamma * (conf_avg - theta))
    out = alpha_guided_alpha([T_(a), T_(b)], onehot(y, 3), gamma=gamma, theta=theta)
    assert out.dim() == 0
    _close(out, alpha)
    # guard: mean of the teachers' probabilities (instead of softmax of mean logits) differs here
    conf_p = [(np_softmax(a[i])[y[i]] + np_softmax(b[i])[y[i]]) / 2 for i in range(2)]
    assert abs(_sigmoid(gamma * (sum(conf_p) / 2 - theta)) - alpha) > 1e-3
    # non-default gamma / theta enter as gamma * (conf - theta)
    _close(alpha_guided_alpha([T_(a), T_(b)], onehot(y, 3), gamma=5.0, theta=0.6), _sigmoid(5.0 * (conf_avg - 0.6)))


def test_alpha_guided_confidently_wrong_teachers_favour_ce():
    gamma, theta = 2.0, 0.3
    teachers = [T_([[-5.0, 8.0, 0.0], [9.0, -5.0, 0.0]]), T_([[-5.0, 0.0, 8.0], [8.0, 0.0, -5.0]])]
    t = onehot([0, 1], 3)
    alpha = float(alpha_guided_alpha(teachers, t, gamma, theta))
    floor = _sigmoid(-gamma * theta)  # ~0.3543: the value at Conf_avg = 0
    assert floor - 1e-9 <= alpha < floor + 1e-3
    assert alpha < 0.5  # CE weight (1 - alpha) > KL weight alpha
    s = T_([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    out = alpha_guided_loss(s, teachers, t, T=2.0, gamma=gamma, theta=theta)
    ce = np_ce(s.numpy(), t.numpy()).mean()
    w, _ = _ca_wkd_weights_ref([z.numpy() for z in teachers], t.numpy())
    kls = np.stack([np_kl(np_softmax(z.numpy(), 2.0), np_softmax(s.numpy(), 2.0)) * 4.0 for z in teachers])
    _close(out["loss_ce"], (1 - alpha) * ce)
    _close(out["loss_kd"], alpha * (w * kls).sum(0).mean())


def test_alpha_guided_confidently_right_teachers_favour_kl():
    teachers = [T_([[8.0, 0.0, 0.0], [0.0, 7.0, 0.0]]), T_([[9.0, 1.0, 0.0], [0.0, 8.0, 2.0]])]
    alpha = float(alpha_guided_alpha(teachers, onehot([0, 1], 3)))
    assert alpha > 0.5
    assert alpha == pytest.approx(_sigmoid(2.0 * (1.0 - 0.3)), abs=2e-3)  # Conf_avg ~ 1


# ---------------------------------------------------------------------------------------------- 7. adaptive alpha

def _three_way_batch():
    """Sample i picks a different teacher: sample 0 -> teacher 2, sample 1 -> teacher 0, sample 2 -> teacher 1."""
    y = [0, 1, 2]
    t0 = [[1.0, 0.0, 0.0], [0.0, 4.0, 0.0], [2.0, 0.0, 0.5]]
    t1 = [[0.0, 2.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 3.0]]
    t2 = [[3.0, 0.0, 1.0], [1.0, 2.0, 0.0], [1.0, 0.0, 1.0]]
    return y, [t0, t1, t2]


def test_most_confident_picks_per_sample_teacher():
    y, teachers = _three_way_batch()
    probs = np.stack([np_softmax(z)[np.arange(3), y] for z in teachers])  # (K, N)
    idx_ref, best_ref = probs.argmax(0), probs.max(0)
    assert idx_ref.tolist() == [2, 0, 1]
    idx, best = most_confident([T_(z) for z in teachers], onehot(y, 3))
    assert idx.tolist() == [2, 0, 1]
    _close(best, best_ref)
    # true_class_prob with a mixed target is sum_c t_c p_c
    t_mix = T_([[0.5, 0.5, 0.0]])
    _close(true_class_prob(T_([[1.0, 0.0, 2.0]]), t_mix), (np_softmax([[1.0, 0.0, 2.0]]) * [[0.5, 0.5, 0]]).sum())


def test_adaptive_alpha_loss_with_ce_by_hand():
    y, teachers = _three_way_batch()
    s = T_([[0.5, 0.0, -0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    T = 2.0
    probs = np.stack([np_softmax(z)[np.arange(3), y] for z in teachers])
    alpha = probs.max(0).mean()  # batch mean of max_k p_Tk(y|x), at T = 1
    chosen = np.stack([teachers[k][i] for i, k in enumerate(probs.argmax(0))])
    kl = (np_kl(np_softmax(chosen, T), np_softmax(s.numpy(), T)) * T * T).mean()
    ce = np_ce(s.numpy(), np.eye(3)[y]).mean()
    out = adaptive_alpha_loss(s, [T_(z) for z in teachers], onehot(y, 3), T=T)
    assert set(out) == {"loss_kd", "loss_ce"}
    _close(out["loss_kd"], alpha * kl)
    _close(out["loss_ce"], (1 - alpha) * ce)
    # guard: per-sample choice matters (a single teacher for the whole batch gives other values)
    for k in range(3):
        kl_k = (np_kl(np_softmax(teachers[k], T), np_softmax(s.numpy(), T)) * T * T).mean()
        assert abs(kl_k - kl) > 1e-3


def test_adaptive_alpha_loss_without_ce_is_plain_kl_to_chosen_teacher():
    y, teachers = _three_way_batch()
    s = T_([[0.5, 0.0, -0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    T = 4.0
    probs = np.stack([np_softmax(z)[np.arange(3), y] for z in teachers])
    chosen = np.stack([teachers[k][i] for i, k in enumerate(probs.argmax(0))])
    kl = (np_kl(np_softmax(chosen, T), np_softmax(s.numpy(), T)) * T * T).mean()
    out = adaptive_alpha_loss(s, [T_(z) for z in teachers], onehot(y, 3), T=T, with_ce=False)
    assert set(out) == {"loss_kd"}  # no loss_ce key
    _close(out["loss_kd"], kl)  # not multiplied by alpha
    assert abs(probs.max(0).mean() - 1.0) > 0.05  # alpha != 1 here, so the check above is discriminating


# ---------------------------------------------------------------------------------------------- 8. AVER

def test_aver_loss_uses_mean_of_softened_distributions():
    s = T_([[0.0, 1.0, 0.0]])
    a, b = [[6.0, 0.0, 0.0]], [[0.0, 0.0, 6.0]]
    t = onehot([0], 3)
    T = 2.0
    p_avg = (np_softmax(a, T) + np_softmax(b, T)) / 2
    p_logit = np_softmax((np.array(a) + np.array(b)) / 2, T)
    ps = np_softmax(s.numpy(), T)
    kl_avg = np_kl(p_avg, ps)[0] * T * T
    kl_logit = np_kl(p_logit, ps)[0] * T * T
    assert abs(kl_avg - kl_logit) > 0.05  # the two "averages" differ on this example
    out = aver_loss(s, [T_(a), T_(b)], t, T=T, alpha=0.4)
    _close(out["loss_kd"], 0.4 * kl_avg)
    _close(out["loss_ce"], 0.6 * np_ce(s.numpy(), t.numpy())[0])


# ---------------------------------------------------------------------------------------------- 9. EBKD
# The CA-MKD reference code (Rorozhl/CA-MKD, helper/loops.py, ensemble_method == 'EBKD'): per sample,
# H_k = entropy of softmax(z_Tk) (T = 1), w_k = 1 - H_k / sum_j H_j (sums to K - 1, not normalised), and the
# KL term is sum_{k, n} w_kn KL_kn / (N K).

def _entropy(z):
    e = [math.exp(v) for v in z]
    p = [v / sum(e) for v in e]
    return -sum(q * math.log(q) for q in p)


def test_ebkd_weights_by_hand_two_teachers():
    # teacher A: logits [0, 0] -> p = [1/2, 1/2], H_A = ln 2 = 0.693147
    # teacher B: logits [ln 3, 0] -> p = [3/4, 1/4], H_B = -(3/4 ln 3/4 + 1/4 ln 1/4) = ln 4 - 3/4 ln 3 = 0.562335
    # sum = 1.255482;  w_A = 1 - 0.693147 / 1.255482 = 0.447904,  w_B = 1 - 0.562335 / 1.255482 = 0.552096
    h_a, h_b = math.log(2), math.log(4) - 0.75 * math.log(3)
    assert h_a == pytest.approx(_entropy([0.0, 0.0])) and h_b == pytest.approx(_entropy([math.log(3), 0.0]))
    out = ebkd_weights([T_([[0.0, 0.0]]), T_([[math.log(3), 0.0]])])
    assert out.shape == (2, 1)
    _close(out[:, 0], [1 - h_a / (h_a + h_b), 1 - h_b / (h_a + h_b)], atol=1e-6)
    _close(out[:, 0], [0.447904, 0.552096], atol=1e-6)
    # guard: the previous convention, softmax_k(-H_k), gives other weights here
    soft = np.exp([-h_a, -h_b]) / np.exp([-h_a, -h_b]).sum()
    assert abs(soft[0] - 0.447904) > 1e-2


def test_ebkd_weights_by_hand_three_teachers_sum_to_k_minus_1():
    a, b, u = [5.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]  # confident, mild, uniform
    # H_a = 0.079869, H_b = 0.975328, H_u = ln 3 = 1.098612; sum = 2.153810
    # w = 1 - H / sum = [0.962917, 0.547162, 0.489921], summing to K - 1 = 2
    h = [_entropy(z) for z in (a, b, u)]
    assert h[2] == pytest.approx(math.log(3))
    out = ebkd_weights([T_([a]), T_([b]), T_([u])])
    assert out.shape == (3, 1)
    _close(out[:, 0], [1 - v / sum(h) for v in h], atol=1e-6)
    _close(out[:, 0], [0.962917, 0.547162, 0.489921], atol=1e-6)
    _close(out.sum(0), [2.0])
    assert out[0, 0] > out[1, 0] > out[2, 0]  # lower entropy, more weight; uniform teacher least


def test_ebkd_weights_per_sample_and_at_T_1():
    # two samples where the confident teacher swaps: the sum over teachers is per sample (dim 0)
    ta, tb = T_([[5.0, 0.0, 0.0], [0.0, 0.0, 0.0]]), T_([[0.0, 0.0, 0.0], [0.0, 4.0, 0.0]])
    out = ebkd_weights([ta, tb])
    h = np.stack([-(np_softmax(z.numpy()) * np.log(np_softmax(z.numpy()))).sum(1) for z in (ta, tb)])
    _close(out, 1 - h / h.sum(0, keepdims=True))
    assert out[0, 0] > out[1, 0] and out[1, 1] > out[0, 1]
    # the entropies are those of softmax(z) (T = 1, as the reference), whatever the distillation temperature
    _close(ebkd_loss(T_([[0.0, 1.0, 0.0]]), [ta[:1], tb[:1]], onehot([0], 3), T=4.0, alpha=1.0)["loss_kd"],
           (out[:, 0].numpy() * np.array([float(kl_div(z[:1], T_([[0.0, 1.0, 0.0]]), 4.0)) for z in (ta, tb)])).sum()
           / 2)


def test_ebkd_weights_need_two_teachers_and_stay_finite_when_every_teacher_is_certain():
    with pytest.raises(ValueError, match="at least two teachers"):
        ebkd_weights([T_([[1.0, 0.0]])])
    certain = [T_([[200.0, 0.0, 0.0]]), T_([[0.0, 200.0, 0.0]])]  # entropies exactly 0 in float32
    out = ebkd_weights(certain)
    assert torch.isfinite(out).all()
    _close(out[:, 0], [1.0, 1.0])  # equally certain teachers weigh equally


def test_ebkd_loss_is_the_reference_weighted_kl_over_n_k():
    # loss_kd = alpha * sum_{k, n} w_kn KL_T(p_Tk || p_s)_n T^2 / (N K); CE weighted 1 - alpha
    g = torch.Generator().manual_seed(6)
    s = torch.randn(2, 3, generator=g)
    teachers = [torch.randn(2, 3, generator=g) * 3 for _ in range(3)]
    t = onehot([1, 2], 3)
    T = 2.0
    h = np.stack([-(np_softmax(z.numpy()) * np.log(np_softmax(z.numpy()))).sum(1) for z in teachers])
    w = 1 - h / h.sum(0, keepdims=True)
    kls = np.stack([np_kl(np_softmax(z.numpy(), T), np_softmax(s.numpy(), T)) * T * T for z in teachers])
    out = ebkd_loss(s, teachers, t, T=T, alpha=0.3)
    _close(out["loss_kd"], 0.3 * (w * kls).sum() / (2 * 3))
    _close(out["loss_ce"], 0.7 * np_ce(s.numpy(), t.numpy()).mean())


# ---------------------------------------------------------------------------------------------- 10. gradients

LOSSES = {
    "kd": lambda s, ts, t: kd_loss(s, ts[0], t, T=2.0, alpha=0.5),
    "dkd": lambda s, ts, t: dkd_loss(s, ts[0], t, T=2.0, alpha=1.0, beta=8.0, warmup=4, epoch=2),
    "ca_wkd": lambda s, ts, t: ca_wkd_loss(s, ts, t, T=2.0),
    "alpha_guided": lambda s, ts, t: alpha_guided_loss(s, ts, t, T=2.0),
    "adaptive": lambda s, ts, t: adaptive_alpha_loss(s, ts, t, T=2.0),
    "adaptive_no_ce": lambda s, ts, t: adaptive_alpha_loss(s, ts, t, T=2.0, with_ce=False),
    "aver": lambda s, ts, t: aver_loss(s, ts, t, T=2.0),
    "ebkd": lambda s, ts, t: ebkd_loss(s, ts, t, T=2.0),
    "kl_div": lambda s, ts, t: {"kl": kl_div(ts[0], s, 2.0).mean()},
    "kl_to_probs": lambda s, ts, t: {"kl": kl_to_probs(F.softmax(ts[1] / 2.0, 1), s, 2.0).mean()},
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradients_flow_to_student_only(name):
    g = torch.Generator().manual_seed(7)
    s = (torch.randn(3, 4, generator=g)).requires_grad_(True)
    teachers = [torch.randn(3, 4, generator=g) * 2 for _ in range(3)]
    t = T_([[1, 0, 0, 0], [0, 0.6, 0.4, 0], [0, 0, 0, 1]])
    out = LOSSES[name](s, teachers, t)
    assert all(v.dim() == 0 for v in out.values())
    total = sum(out.values())
    assert total.requires_grad and torch.isfinite(total)
    total.backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and float(s.grad.abs().sum()) > 0
    for z in teachers:
        assert not z.requires_grad and z.grad is None
    # the KD part alone is differentiable too (not only through CE)
    kd_keys = [k for k in out if k != "loss_ce"]
    s2 = s.detach().clone().requires_grad_(True)
    out2 = LOSSES[name](s2, teachers, t)
    sum(out2[k] for k in kd_keys).backward()
    assert float(s2.grad.abs().sum()) > 0
