"""Distillation losses as pure functions (seeds 002 and 003).

Conventions: ``student_logits`` (N, C), ``teachers`` a list of K teacher logits (N, C), ``target`` the
target distribution t (N, C) -- one-hot, or mixed by MixUp/CutMix, so "the probability a teacher
gives the true class" is sum_c t_c p_c. ``T`` is the softening temperature (a number, as in the formulas). KL terms are
per-sample KL(p_teacher || p_student) at temperature T times T^2 (Hinton et al. 2015), averaged
over the batch (``torch.nn.KLDivLoss(reduction="batchmean")``'s convention).

Single teacher
    KD (Hinton; seed 002 §2.1, seed 003 eq. 1):  L = alpha * KL_T(p_t || p_s) T^2 + (1 - alpha) * CE
    DKD (Zhao et al. 2022; seed 003 eq. 2-4):  L = alpha * TCKD + beta * NCKD, with
        TCKD = KL([p_t^y, 1 - p_t^y] || [p_s^y, 1 - p_s^y]) T^2   (binary target / non-target split)
        NCKD = KL(p_t^{\\y} || p_s^{\\y}) T^2                      (distribution over the non-target classes)
      scaled by min(epoch / warmup, 1) (CE is not); the target class y is argmax t (the dominant class of a mixed
      image). ``epoch`` is the fractional progress the engine passes, 0-based (epoch e, step i of S: e + i / S), so
      the ramp is linear per step, starts at 0 and reaches 1 after ``warmup`` epochs. The DKD reference code
      (megvii-research/mdistiller, ``DKD.forward_train``) multiplies by min(epoch / warmup, 1) with the integer
      1-based epoch: k / warmup throughout epoch k, full from epoch ``warmup`` on. Ours reaches the reference's value
      at the end of each epoch rather than at its start: it lags by at most one epoch (half an epoch on average).

Multiple teachers (seed 002 §2.2)
    CA-WKD, eq. 1-4:  L^k_CE = -sum_c t_c log softmax(z_Tk)_c per sample,
        w^k = (1 - softmax_k(L^k_CE)) / (K - 1),  L_KL = sum_k w^k KL_T(p_Tk || p_s) T^2,  L = L_KL + CE.
      The weights always sum to 1, so when every teacher is wrong the student still follows them (the
      drawback the seed names).
    alpha-guided CA-WKD, eq. 5-6:  L = alpha L_KL + (1 - alpha) CE, alpha = sigmoid(gamma (Conf_avg - theta)),
        Conf_avg = batch mean of the probability softmax(mean_k z_Tk) gives the true class.  [The seed leaves
        "confidence" undefined; the true-class probability is what makes alpha fall when teachers misclassify.]
    adaptive alpha, §2.2.3:  alpha = batch mean of max_k p_Tk(y | x);  L = alpha KL_T(p_T* || p_s) T^2
        + (1 - alpha) CE, T* the most confident teacher per sample; ``with_ce=False`` drops CE (L = KL only).
    AVER (reference):  KD against the mean of the teachers' softened distributions.
    EBKD (reference; Kwon et al. 2020), as the public baseline section 04 compares with -- the CA-MKD reference
      code (github.com/Rorozhl/CA-MKD, ``helper/loops.py``, ``ensemble_method == 'EBKD'``): per sample,
        H_k = -sum_c p_Tk,c log p_Tk,c  with p_Tk = softmax(z_Tk) (T = 1: the reference does not soften it),
        w_k = 1 - H_k / sum_j H_j  (lower entropy, more weight; the weights sum to K - 1 and are not normalised),
        L_KL = sum_{n,k} w_kn KL_T(p_Tk || p_s)_n T^2 / (N K)  (the reference's division by batch size and K),
        L = alpha L_KL + (1 - alpha) CE  (the reference weights CE and KL by separate gamma and alpha).
      With K = 1 the weight is 0, so EBKD needs at least two teachers.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .classification import soft_cross_entropy


def kl_div(teacher_logits: torch.Tensor, student_logits: torch.Tensor, T: float) -> torch.Tensor:
    """Per-sample KL(softmax(z_t/T) || softmax(z_s/T)) * T^2, shape (N,)."""
    log_ps = F.log_softmax(student_logits.float() / T, dim=1)
    log_pt = F.log_softmax(teacher_logits.float() / T, dim=1)
    return (log_pt.exp() * (log_pt - log_ps)).sum(1) * T * T


def kl_to_probs(p_teacher: torch.Tensor, student_logits: torch.Tensor, T: float) -> torch.Tensor:
    """Per-sample KL(p_teacher || softmax(z_s/T)) * T^2 for a given teacher distribution."""
    log_ps = F.log_softmax(student_logits.float() / T, dim=1)
    p = p_teacher.float()
    return (p * (torch.log(p.clamp_min(1e-12)) - log_ps)).sum(1) * T * T


def true_class_prob(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """sum_c t_c softmax(z)_c per sample: the probability of the (possibly mixed) true class."""
    return (F.softmax(logits.float(), dim=1) * target).sum(1)


def kd_loss(student_logits, teacher, target, T: float = 4.0, alpha: float = 0.5, ce=None) -> dict:
    ce = soft_cross_entropy(student_logits, target) if ce is None else ce
    return {"loss_kd": alpha * kl_div(teacher, student_logits, T).mean(), "loss_ce": (1 - alpha) * ce}


def dkd_terms(student_logits: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor, T: float):
    """(TCKD, NCKD) per sample for hard target indices ``target``."""
    mask = F.one_hot(target, student_logits.shape[1]).bool()
    ps, pt = F.softmax(student_logits.float() / T, 1), F.softmax(teacher.float() / T, 1)
    bs = torch.stack([ps[mask], 1 - ps[mask]], 1).clamp_min(1e-12)
    bt = torch.stack([pt[mask], 1 - pt[mask]], 1).clamp_min(1e-12)
    tckd = (bt * (bt.log() - bs.log())).sum(1) * T * T
    big = torch.finfo(torch.float32).max / 4
    log_ps_nt = F.log_softmax(student_logits.float() / T - big * mask, 1)
    log_pt_nt = F.log_softmax(teacher.float() / T - big * mask, 1)
    nckd = (log_pt_nt.exp() * (log_pt_nt - log_ps_nt)).masked_fill(mask, 0).sum(1) * T * T
    return tckd, nckd


def dkd_loss(student_logits, teacher, target, T: float = 4.0, alpha: float = 1.0, beta: float = 8.0,
             warmup: float = 0.0, epoch: float = 0.0, ce=None) -> dict:
    tckd, nckd = dkd_terms(student_logits, teacher, target.argmax(1), T)
    ramp = min(epoch / warmup, 1.0) if warmup > 0 else 1.0
    ce = soft_cross_entropy(student_logits, target) if ce is None else ce
    return {"loss_tckd": ramp * alpha * tckd.mean(), "loss_nckd": ramp * beta * nckd.mean(), "loss_ce": ce}


def ca_wkd_weights(teachers: list[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Seed 002 eq. 1: (K, N) per-sample teacher weights from the teachers' cross-entropy."""
    k = len(teachers)
    if k < 2:
        raise ValueError("CA-WKD needs at least two teachers")
    ce = torch.stack([-(target * F.log_softmax(z.float(), 1)).sum(1) for z in teachers])  # (K, N)
    return (1.0 - F.softmax(ce, dim=0)) / (k - 1)


def weighted_kl(student_logits, teachers, weights: torch.Tensor, T: float) -> torch.Tensor:
    """sum_k w^k KL_T(p_Tk || p_s) T^2, batch mean (seed 002 eq. 2-3)."""
    return (weights * torch.stack([kl_div(z, student_logits, T) for z in teachers])).sum(0).mean()


def ca_wkd_loss(student_logits, teachers, target, T: float = 4.0, ce=None) -> dict:
    ce = soft_cross_entropy(student_logits, target) if ce is None else ce
    return {"loss_kd": weighted_kl(student_logits, teachers, ca_wkd_weights(teachers, target), T), "loss_ce": ce}


def alpha_guided_alpha(teachers, target, gamma: float = 2.0, theta: float = 0.3) -> torch.Tensor:
    """Seed 002 eq. 6 (a scalar): sigmoid(gamma * (Conf_avg - theta))."""
    conf = true_class_prob(torch.stack([z.float() for z in teachers]).mean(0), target).mean()
    return torch.sigmoid(gamma * (conf - theta))


def alpha_guided_loss(student_logits, teachers, target, T: float = 4.0, gamma: float = 2.0, theta: float = 0.3,
                      ce=None) -> dict:
    alpha = alpha_guided_alpha(teachers, target, gamma, theta)
    ce = soft_cross_entropy(student_logits, target) if ce is None else ce
    return {"loss_kd": alpha * weighted_kl(student_logits, teachers, ca_wkd_weights(teachers, target), T),
            "loss_ce": (1 - alpha) * ce}


def most_confident(teachers, target) -> tuple[torch.Tensor, torch.Tensor]:
    """(index of the most confident teacher per sample, its true-class probability): seed 002 §2.2.3."""
    probs = torch.stack([true_class_prob(z, target) for z in teachers])  # (K, N)
    best, idx = probs.max(0)
    return idx, best


def adaptive_alpha_loss(student_logits, teachers, target, T: float = 4.0, with_ce: bool = True, ce=None) -> dict:
    idx, best = most_confident(teachers, target)
    chosen = torch.stack([z.float() for z in teachers])[idx, torch.arange(len(idx))]
    kl = kl_div(chosen, student_logits, T).mean()
    if not with_ce:
        return {"loss_kd": kl}
    alpha = best.mean()
    ce = soft_cross_entropy(student_logits, target) if ce is None else ce
    return {"loss_kd": alpha * kl, "loss_ce": (1 - alpha) * ce}


def aver_loss(student_logits, teachers, target, T: float = 4.0, alpha: float = 0.5, ce=None) -> dict:
    p = torch.stack([F.softmax(z.float() / T, 1) for z in teachers]).mean(0)
    ce = soft_cross_entropy(student_logits, target) if ce is None else ce
    return {"loss_kd": alpha * kl_to_probs(p, student_logits, T).mean(), "loss_ce": (1 - alpha) * ce}


def ebkd_weights(teachers, T: float = 1.0) -> torch.Tensor:
    """(K, N): w_k = 1 - H_k / sum_j H_j per sample, H_k the entropy of softmax(z_Tk / T) (CA-MKD's EBKD uses
    T = 1). They sum to K - 1. When every teacher is certain (all H_k = 0) each gets weight 1."""
    if len(teachers) < 2:
        raise ValueError(f"EBKD needs at least two teachers, got {len(teachers)}")
    ent = torch.stack([-(F.softmax(z.float() / T, 1) * F.log_softmax(z.float() / T, 1)).sum(1) for z in teachers])
    return 1.0 - ent / ent.sum(0).clamp_min(1e-12)


def ebkd_loss(student_logits, teachers, target, T: float = 4.0, alpha: float = 0.5, ce=None) -> dict:
    """alpha * sum_k w_k KL_T(p_Tk || p_s) T^2 / K (batch mean) + (1 - alpha) CE, as the CA-MKD reference."""
    ce = soft_cross_entropy(student_logits, target) if ce is None else ce
    kl = weighted_kl(student_logits, teachers, ebkd_weights(teachers), T) / len(teachers)
    return {"loss_kd": alpha * kl, "loss_ce": (1 - alpha) * ce}
