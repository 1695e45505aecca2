"""Checks `kdstore loss` against each loss computed the way its official implementation computes
it, written here in PyTorch (float64) from the official code's formulas: mdistiller (KD, DKD),
hunto/image_classification_sota (DIST), hchoi71/MIX-KD (MIXSTD), RepDistiller (SP), CECNL/EEG-KD
(SK), TRL's generalised JSD and reverse KL (with kdstore's documented T² factor), ifding/DLKD
(AlignLoss, CorrLoss, SupConLoss and their heads, as its `mlkd` mode combines them), and for
several teachers Rorozhl/CA-MKD (its CAMKD logit term and EBKD baseline) and the probability mean
of `--ensemble mean`; yuanli2333/Teacher-free-Knowledge-Distillation (`loss_kd_regularization`,
`loss_kd_self`), lgcnsai/PS-KD-Pytorch (its soft targets and `Custom_CrossEntropy_PSKD`), an
independent reference of kdstore's documented BD-KD construction, and ljrprocc/DFKD's `curr_v`
self-paced weights on per-sample KD losses (`--sample-weight`), and the common PyTorch
multi-kernel MMD (`guassian_kernel` + `MMD_loss.forward`) between groups. Random inputs,
several settings each; plus two values printed by the official SP and SK code on fixed inputs.

usage: check_losses.py KDSTORE_BINARY
Prints one line per case and exits 1 on the first value off by more than 1e-6 relative.
"""

import json
import math
import os
import subprocess
import sys
import tempfile

import warnings

import numpy as np
import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)
# Tf-KD runs on torch 1.2, where nn.KLDivLoss() means over batch x classes; newer torch says so.
warnings.filterwarnings("ignore", message="reduction: .mean. divides")


# ---- the official formulas -----------------------------------------------------------------------

def ce(zs, zt, y, yp, lam, **_):
    return (lam * F.cross_entropy(zs, y, reduction="none") + (1 - lam) * F.cross_entropy(zs, yp, reduction="none")).mean()


def kd_term(zs, zt, T):
    return F.kl_div(F.log_softmax(zs / T, dim=1), F.softmax(zt / T, dim=1), reduction="none").sum(1).mean() * T**2


def kd(zs, zt, y, yp, lam, temperature=4.0, ce_weight=0.1, kd_weight=0.9):
    return ce_weight * ce(zs, zt, y, yp, lam) + kd_weight * kd_term(zs, zt, temperature)


def reverse_kl(zs, zt, y, yp, lam, temperature=1.0):
    T = temperature
    return F.kl_div(F.log_softmax(zt / T, dim=1), F.softmax(zs / T, dim=1), reduction="none").sum(1).mean() * T**2


def jsd(zs, zt, y, yp, lam, temperature=1.0, beta=0.5):
    T = temperature
    s, t = F.log_softmax(zs / T, dim=1), F.log_softmax(zt / T, dim=1)
    m = torch.logsumexp(torch.stack([s + math.log(1 - beta), t + math.log(beta)]), dim=0)
    kl_t = F.kl_div(m, t, reduction="none", log_target=True).sum(1)
    kl_s = F.kl_div(m, s, reduction="none", log_target=True).sum(1)
    return (beta * kl_t + (1 - beta) * kl_s).mean() * T**2


def dist(zs, zt, y, yp, lam, beta=1.0, gamma=1.0, tau=1.0):
    def cosine(a, b, eps=1e-8):
        return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)

    def pearson(a, b):
        return cosine(a - a.mean(1).unsqueeze(1), b - b.mean(1).unsqueeze(1))

    def inter(a, b):
        return 1 - pearson(a, b).mean()

    ys, yt = (zs / tau).softmax(dim=1), (zt / tau).softmax(dim=1)
    return beta * tau**2 * inter(ys, yt) + gamma * tau**2 * inter(ys.transpose(0, 1), yt.transpose(0, 1))


def dkd(zs, zt, y, yp, lam, alpha=1.0, beta=8.0, temperature=4.0, warmup=20.0):
    T = temperature
    gt = torch.zeros_like(zs).scatter_(1, y.unsqueeze(1), 1).bool()
    other = ~gt

    def cat_mask(p):
        return torch.cat([(p * gt).sum(1, keepdims=True), (p * other).sum(1, keepdims=True)], dim=1)

    ps, pt = cat_mask(F.softmax(zs / T, dim=1)), cat_mask(F.softmax(zt / T, dim=1))
    tckd = F.kl_div(torch.log(ps), pt, reduction="sum") * T**2 / zs.shape[0]
    pt2 = F.softmax(zt / T - 1000.0 * gt, dim=1)
    ls2 = F.log_softmax(zs / T - 1000.0 * gt, dim=1)
    nckd = F.kl_div(ls2, pt2, reduction="sum") * T**2 / zs.shape[0]
    return alpha * tckd + beta * nckd


def mixkd(zs, zt, y, yp, lam, ce_weight=0.1, kd_weight=0.9, temperature=1.0):
    ss, st = torch.std(zs, dim=-1, keepdim=True), torch.std(zt, dim=-1, keepdim=True)
    target = lam[:, None] * F.one_hot(y, zs.shape[1]) + (1 - lam[:, None]) * F.one_hot(yp, zs.shape[1])
    loss_cls = ce_weight * torch.sum(-F.log_softmax(zs / ss, -1) * target) / zs.shape[0]
    T = temperature  # kdstore's extension; the official loss is T = 1
    kl = F.kl_div(F.log_softmax(zs / ss / T, dim=1), F.softmax(zt / st / T, dim=1), reduction="batchmean") * T**2
    return loss_cls + kd_weight * kl


def sp(fs, ft):
    b = fs.shape[0]
    gs, gt = F.normalize(fs.view(b, -1) @ fs.view(b, -1).t()), F.normalize(ft.view(b, -1) @ ft.view(b, -1).t())
    return ((gt - gs) ** 2).sum() / (b * b)


def sk(fs, ft):
    def gram(f):
        if f.dim() == 2:
            f = f[:, None, None, :]
        c = f.shape[1]
        f = f - f.mean(axis=3).unsqueeze(axis=3)
        f = F.normalize(f, dim=3).flatten(start_dim=1)
        return f @ f.t() / c

    return F.mse_loss(gram(ft), gram(fs))


class DlkdHeads(torch.nn.Module):
    """The official heads: MLPHead(s, 16t, t) for alignment, MLPHead(s, s, s) for correlation and the
    linear embeddings of SupConLoss, named as kdstore reads them."""

    def __init__(self, s, t, feat_dim):
        super().__init__()
        mlp = lambda i, h, o: torch.nn.Sequential(torch.nn.Linear(i, h), torch.nn.BatchNorm1d(h), torch.nn.ReLU(), torch.nn.Linear(h, o))
        self.align, self.corr = mlp(s, 16 * t, t), mlp(s, s, s)
        self.embed_s, self.embed_t = torch.nn.Linear(s, feat_dim), torch.nn.Linear(t, feat_dim)


def dlkd(zs, y, fs, ft, heads, views=4, gamma=1.0, alpha=50.0, beta=1.0, delta=20.0, corr_temperature=0.5,
         supcon_temperature=0.07, base_temperature=0.07, feat_dim=128):
    n = zs.shape[0]
    nor = torch.arange(0, n, views)
    aug = torch.tensor([r for r in range(n) if r % views != 0])
    ce_loss = F.cross_entropy(zs[nor], y[nor])
    # AlignLoss: 2 - 2 * mean cosine of the projected student and the raw teacher features.
    s, t = F.normalize(heads.align(fs), dim=1), F.normalize(ft, dim=1)
    align_loss = 2 - 2 * (s * t).sum(dim=-1).mean()
    # CorrLoss: each rotated row against every unrotated row, KL of the softened similarities.
    g = heads.corr(fs)
    sim_s = F.cosine_similarity(g[aug].unsqueeze(1), g[nor].unsqueeze(0), dim=2)
    sim_t = F.cosine_similarity(ft[aug].unsqueeze(1), ft[nor].unsqueeze(0), dim=2).detach()
    T = corr_temperature
    corr_loss = F.kl_div(F.log_softmax(sim_s / T, dim=1), F.softmax(sim_t / T, dim=1), reduction="batchmean")
    # SupConLoss over [student; teacher] embeddings, eps inside the log.
    unit = lambda x: x / x.pow(2).sum(1, keepdim=True).pow(0.5)
    features = torch.cat([unit(heads.embed_s(fs)), unit(heads.embed_t(ft))], dim=0)
    logits = features @ features.T / supcon_temperature
    logits = logits - logits.max(dim=1, keepdim=True)[0].detach()
    mask = torch.eq(y.view(-1, 1), y.view(1, -1)).double().repeat(2, 2)
    logits_mask = torch.scatter(torch.ones_like(mask), 1, torch.arange(2 * n).view(-1, 1), 0)
    mask = mask * logits_mask
    log_prob = logits - torch.log((torch.exp(logits) * logits_mask).sum(1, keepdim=True) + 1e-7)
    supcon = (-(supcon_temperature / base_temperature) * (mask * log_prob).sum(1) / mask.sum(1)).view(2, n).mean()
    return gamma * ce_loss + alpha * corr_loss + beta * supcon + delta * align_loss


# ---- Teacher-free KD: my_loss_function.py (torch 1.2: nn.KLDivLoss() means over batch x classes) ---

def tfkd(zs, zt, y, yp, lam, alpha=0.1, temperature=20.0, multiplier=100.0, correct_prob=0.99):
    T = temperature
    loss_CE = F.cross_entropy(zs, y)
    K = zs.size(1)
    teacher_soft = torch.ones_like(zs)
    teacher_soft = teacher_soft * (1 - correct_prob) / (K - 1)
    for i in range(zs.shape[0]):
        teacher_soft[i, y[i]] = correct_prob
    loss_soft_regu = torch.nn.KLDivLoss()(F.log_softmax(zs, dim=1), F.softmax(teacher_soft / T, dim=1)) * multiplier
    return (1.0 - alpha) * loss_CE + alpha * loss_soft_regu


def tfkd_self(zs, zt, y, yp, lam, alpha=0.95, temperature=6.0, multiplier=50.0):
    T = temperature
    loss_CE = F.cross_entropy(zs, y)
    D_KL = torch.nn.KLDivLoss()(F.log_softmax(zs / T, dim=1), F.softmax(zt / T, dim=1)) * (T * T) * multiplier
    return (1.0 - alpha) * loss_CE + alpha * D_KL


# ---- PS-KD: main.py's soft targets, loss/pskd_loss.py; zt holds the previous epoch's logits -------

def pskd(zs, zt, y, yp, lam, alpha=0.8):
    targets_one_hot = torch.eye(zs.shape[1])[y]
    soft_targets = ((1 - alpha) * targets_one_hot) + (alpha * F.softmax(zt, dim=1))
    log_probs = F.log_softmax(zs, dim=1)
    return (-soft_targets * log_probs).mean(0).sum()


# ---- BD-KD: kdstore's documented construction (README), written independently --------------------

def bdkd(zs, zt, y, yp, lam, temperature=4.0, ce_weight=0.1, kd_weight=0.9, scale=0.1, beta=1.0):
    T = temperature
    ls, lt = F.log_softmax(zs / T, dim=1), F.log_softmax(zt / T, dim=1)
    h_s, h_t = -(ls.exp() * ls).sum(1), -(lt.exp() * lt).sum(1)
    w = (h_s > h_t).double() if scale == 0 else torch.sigmoid((h_s - h_t) / scale)
    forward = (lt.exp() * (lt - ls)).sum(1)
    reverse = (ls.exp() * (ls - lt)).sum(1)
    return ce_weight * F.cross_entropy(zs, y) + kd_weight * T**2 * (w * reverse + (1 - w) * forward).mean()


# ---- CuDFKD: datafree/datasets/utils.py curr_v, used per sample as (v * l).mean() ----------------

def curr_v(l, lamda, spl_type):
    if spl_type == "hard":
        v = (l < lamda).double()
    elif spl_type == "soft":
        v = (l < lamda).double()
        v *= 1 - l / lamda
    elif spl_type == "log":
        v = (1 + math.exp(-lamda)) / (1 + (l - lamda).exp())
    return v


# ---- MMD: the common PyTorch MMD_loss (guassian_kernel, mmd_rbf), as TASKED-style code uses it ------

def guassian_kernel(source, target, kernel_mul=2.0, kernel_num=5):
    n_samples = int(source.size()[0]) + int(target.size()[0])
    total = torch.cat([source, target], dim=0)
    total0 = total.unsqueeze(0).expand(int(total.size(0)), int(total.size(0)), int(total.size(1)))
    total1 = total.unsqueeze(1).expand(int(total.size(0)), int(total.size(0)), int(total.size(1)))
    L2_distance = ((total0 - total1) ** 2).sum(2)
    bandwidth = torch.sum(L2_distance.data) / (n_samples ** 2 - n_samples)
    bandwidth /= kernel_mul ** (kernel_num // 2)
    bandwidth_list = [bandwidth * (kernel_mul ** i) for i in range(kernel_num)]
    kernel_val = [torch.exp(-L2_distance / bandwidth_temp) for bandwidth_temp in bandwidth_list]
    return sum(kernel_val)


def mmd_rbf(source, target, kernel_mul=2.0, kernel_num=5):
    """MMD_loss.forward: assumes groups of equal size."""
    batch_size = int(source.size()[0])
    kernels = guassian_kernel(source, target, kernel_mul=kernel_mul, kernel_num=kernel_num)
    XX = kernels[:batch_size, :batch_size]
    YY = kernels[batch_size:, batch_size:]
    XY = kernels[:batch_size, batch_size:]
    YX = kernels[batch_size:, :batch_size]
    return torch.mean(XX + YY - XY - YX)


def mmd_unequal(source, target, kernel_mul=2.0, kernel_num=5):
    """kdstore's documented extension to groups of unequal size: the blocks' own means."""
    n = int(source.size()[0])
    kernels = guassian_kernel(source, target, kernel_mul=kernel_mul, kernel_num=kernel_num)
    return kernels[:n, :n].mean() + kernels[n:, n:].mean() - kernels[:n, n:].mean() - kernels[n:, :n].mean()


def mmd_groups(features, groups, pair, **settings):
    distinct = sorted(set(groups.tolist()))
    members = [features[groups == g] for g in distinct]
    values = [pair(members[a], members[b], **settings) for a in range(len(members)) for b in range(a + 1, len(members))]
    return sum(values) / len(values)


SPL_CASES = [("spl", "log", {}), ("spl", "log", {"lambda_0": 2.0, "alpha": 0.0001}),
             ("spl-hard", "hard", {"lambda_0": 1.5}), ("spl-soft", "soft", {"lambda_0": 2.5, "alpha": 0.001})]


LOGIT_CASES = [
    ("ce", ce, {}), ("kd", kd, {}), ("kd", kd, {"temperature": 1.0, "ce_weight": 0.0, "kd_weight": 1.0}),
    ("kd", kd, {"temperature": 2.5, "ce_weight": 0.5, "kd_weight": 0.5}),
    ("reverse-kl", reverse_kl, {}), ("reverse-kl", reverse_kl, {"temperature": 3.0}),
    ("jsd", jsd, {}), ("jsd", jsd, {"beta": 0.9, "temperature": 2.0}),
    ("dist", dist, {}), ("dist", dist, {"tau": 4.0}), ("dist", dist, {"beta": 2.0, "gamma": 0.5, "tau": 2.0}),
    ("dkd", dkd, {}), ("dkd", dkd, {"alpha": 1.0, "beta": 2.0, "temperature": 1.0}),
    ("dkd", dkd, {"alpha": 0.5, "beta": 0.5, "temperature": 1.0}),
    ("mixkd", mixkd, {}), ("mixkd", mixkd, {"ce_weight": 0.0, "kd_weight": 1.0, "temperature": 2.0}),
    ("tfkd", tfkd, {}), ("tfkd", tfkd, {"alpha": 0.95, "temperature": 40.0, "multiplier": 1.0}),
    ("tfkd", tfkd, {"alpha": 0.5, "temperature": 1.0, "multiplier": 10.0, "correct_prob": 0.9}),
    ("tfkd-self", tfkd_self, {}), ("tfkd-self", tfkd_self, {"alpha": 0.4, "temperature": 20.0, "multiplier": 50.0}),
    ("pskd", pskd, {}), ("pskd", pskd, {"alpha": 0.0}), ("pskd", pskd, {"alpha": 0.37}),
    ("bdkd", bdkd, {}), ("bdkd", bdkd, {"scale": 0.0}), ("bdkd", bdkd, {"temperature": 1.0, "scale": 2.0}),
    ("bdkd", bdkd, {"ce_weight": 0.0, "kd_weight": 1.0, "temperature": 2.0, "scale": 0.5}),
]


# ---- several teachers: Rorozhl/CA-MKD helper/loops.py (CAMKD and its EBKD baseline) -------------

def kl_rows_t2(zs, zt, T):
    # DistillKL(T)(y_s, y_t, is_ca=True): per sample, summed over classes, times T^2.
    return (F.kl_div(F.log_softmax(zs / T, dim=1), F.softmax(zt / T, dim=1), reduction="none") * T**2).sum(-1)


def camkd_kd(zs, teachers, y, temperature=4.0, ce_weight=0.1, kd_weight=0.9):
    loss_t = torch.stack([F.cross_entropy(zt, y, reduction="none") for zt in teachers], dim=0)
    attention = (1.0 - F.softmax(loss_t, dim=0)) / (len(teachers) - 1)
    loss_div = torch.stack([kl_rows_t2(zs, zt, temperature) for zt in teachers], dim=0)
    loss_div = torch.mul(attention, loss_div).sum() / (1.0 * loss_div.shape[1] * len(teachers))
    return ce_weight * F.cross_entropy(zs, y) + kd_weight * loss_div


def ebkd_kd(zs, teachers, y, temperature=4.0, ce_weight=0.1, kd_weight=0.9):
    entropy_list = []
    for zt in teachers:
        p = F.softmax(zt, dim=1)
        entropy_list.append((-p * torch.log(p)).sum(1))
    entropy_sum = torch.stack(entropy_list, dim=0).sum(dim=0)
    weight = torch.stack([1.0 - e / entropy_sum for e in entropy_list])
    loss_div = torch.stack([kl_rows_t2(zs, zt, temperature) for zt in teachers])
    loss_div = torch.mul(weight, loss_div).sum() / (1.0 * loss_div.shape[1] * len(teachers))
    return ce_weight * F.cross_entropy(zs, y) + kd_weight * loss_div


def mean_kd(zs, teachers, y, temperature=4.0, ce_weight=0.1, kd_weight=0.9):
    T = temperature
    q = torch.stack([F.softmax(zt / T, dim=1) for zt in teachers]).mean(0)
    term = F.kl_div(F.log_softmax(zs / T, dim=1), q, reduction="none").sum(1).mean() * T**2
    return ce_weight * F.cross_entropy(zs, y) + kd_weight * term


ENSEMBLE_CASES = [
    ("camkd", camkd_kd, {}), ("camkd", camkd_kd, {"ce_weight": 0.0, "kd_weight": 1.0}),
    ("camkd", camkd_kd, {"temperature": 2.0, "ce_weight": 1.0, "kd_weight": 1.0}),
    ("ebkd", ebkd_kd, {}), ("ebkd", ebkd_kd, {"ce_weight": 0.0, "kd_weight": 1.0, "temperature": 1.0}),
    ("mean", mean_kd, {}), ("mean", mean_kd, {"temperature": 2.0, "ce_weight": 0.0, "kd_weight": 1.0}),
]


# ---- top-k teachers: the dense logits kdstore documents (store::topk) ---------------------------

TOPK_FORMATS = [(4, "f16"), (2, "q8"), (10, "q8")]  # (k, values) per trial
TAIL_FLOOR = 1e-9


def top_k_columns(z, k, values):
    """What a top-k logits part stores for logits z: classes by descending logit (ties to the
    lower class), their log-probabilities as float16 or q8 bytes (-log p * 16, rounded, clamped to
    0..255), and the log-sum-exp as float32."""
    lse = np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)) + z.max(1)
    index = np.argsort(-z, axis=1, kind="stable")[:, :k]
    logprob = np.take_along_axis(z, index, 1) - lse[:, None]
    stored = logprob.astype(np.float16) if values == "f16" else np.clip(np.round(-logprob * 16), 0, 255).astype(np.uint8)
    return index.astype(np.uint8 if z.shape[1] <= 256 else np.uint16), stored, lse.astype(np.float32)


def dense_from_top_k(index, stored, lse, classes):
    """The documented tail treatment: stored classes get lse + log p, the others share the tail
    mass 1 - sum(p) equally (at least TAIL_FLOOR), as logits lse + log(tail / (C - k))."""
    logprob = -stored.astype(np.float64) / 16 if stored.dtype == np.uint8 else stored.astype(np.float64)
    lse = lse.astype(np.float64)
    k = index.shape[1]
    tail = np.maximum(1 - np.exp(logprob).sum(1), TAIL_FLOOR)
    z = np.repeat((lse + np.log(tail / (classes - k)))[:, None], classes, 1) if k < classes else np.zeros((len(lse), classes))
    np.put_along_axis(z, index.astype(np.int64), lse[:, None] + logprob, 1)
    return z


def run(binary, args, field="value"):
    out = subprocess.run([binary, "loss", *args, "--json"], capture_output=True, text=True)
    if out.returncode != 0:
        print(f"FAIL: kdstore loss {' '.join(args)}: {out.stderr.strip()}")
        sys.exit(1)
    return json.loads(out.stdout)[field]


def compare(label, got, want):
    rel = abs(got - want) / max(abs(want), 1e-12)
    if rel > 1e-6:
        print(f"FAIL: {label}: kdstore {got!r}, reference {want!r} (relative {rel:.2e})")
        sys.exit(1)
    print(f"ok: {label}: {got:.10g} (relative difference {rel:.1e})")


def gen(shape, a, b, c):
    k = np.arange(1, int(np.prod(shape)) + 1, dtype=np.float64)
    return (np.sin(a * k) + c * np.cos(b * k ** 1.3)).reshape(shape)


def main(binary):
    rng = np.random.default_rng(2026)
    with tempfile.TemporaryDirectory() as tmp:
        path = lambda name: os.path.join(tmp, name)
        for trial, (batch, classes) in enumerate([(16, 10), (5, 3), (64, 100)]):
            zt = rng.normal(0, 3, (batch, classes))
            zs = 0.5 * zt + rng.normal(0, 2, (batch, classes))
            y = rng.integers(0, classes, batch)
            dtype = np.float32 if trial == 0 else np.float64  # float32 files are widened exactly
            np.save(path("s.npy"), zs.astype(dtype))
            np.save(path("t.npy"), zt.astype(dtype))
            np.save(path("y.npy"), y)
            zs_t, zt_t = torch.tensor(zs.astype(dtype).astype(np.float64)), torch.tensor(zt.astype(dtype).astype(np.float64))
            y_t, lam1 = torch.tensor(y), torch.ones(batch)

            files_with = lambda teacher: ["--student", path("s.npy"), "--teacher", teacher, "--labels", path("y.npy")]

            def check_logit_cases(teacher_files, zt_reference, what):
                for name, reference, settings in LOGIT_CASES:
                    sets = [a for k_, v in settings.items() for a in ("--set", f"{k_}={v}")]
                    got = run(binary, [name, *teacher_files, *sets])
                    want = reference(zs_t, zt_reference, y_t, y_t, lam1, **settings).item()
                    compare(f"{name} {settings} {what}B={batch} C={classes}", got, want)

            files = files_with(path("t.npy"))
            check_logit_cases(files, zt_t, "")
            # The same losses on a top-k teacher, given as an .npz of the store's top-k columns.
            k, values = TOPK_FORMATS[trial]
            zt_stored = zt.astype(dtype).astype(np.float64)
            index, stored, lse = top_k_columns(zt_stored, k, values)
            np.savez(path("topk.npz"), topk_index=index, topk_logprob=stored, lse=lse)
            zt_topk = torch.tensor(dense_from_top_k(index, stored, lse, classes))
            topk_files = files_with(path("topk.npz"))
            check_logit_cases(topk_files, zt_topk, f"top-{k} {values} teacher ")
            index2, stored2, lse2 = top_k_columns(0.6 * zt_stored + rng.normal(0, 1, (batch, classes)), k, values)
            np.savez(path("topk2.npz"), topk_index=index2, topk_logprob=stored2, lse=lse2)
            both = [zt_topk, torch.tensor(dense_from_top_k(index2, stored2, lse2, classes))]
            got = run(binary, ["kd", *topk_files, "--teacher", path("topk2.npz"), "--ensemble", "camkd"])
            compare(f"kd --ensemble camkd of two top-{k} {values} teachers B={batch}", got, camkd_kd(zs_t, both, y_t).item())
            # Mixed targets (mixup/cutmix views): partner labels and lam.
            yp = rng.integers(0, classes, batch)
            lam = rng.uniform(0, 1, batch)
            np.save(path("yp.npy"), yp)
            np.save(path("lam.npy"), lam)
            mixed = ["--partner-labels", path("yp.npy"), "--lam", path("lam.npy")]
            for name, reference in [("ce", ce), ("kd", kd), ("mixkd", mixkd)]:
                got = run(binary, [name, *files, *mixed])
                want = reference(zs_t, zt_t, y_t, torch.tensor(yp), torch.tensor(lam)).item()
                compare(f"{name} mixed targets B={batch}", got, want)
            # Several teachers (three and two), combined as CA-MKD's official code does.
            for count in (3, 2):
                teachers = [zt_t] + [torch.tensor(0.7 * zt + rng.normal(0, 2, (batch, classes))) for _ in range(count - 1)]
                for i, zt_i in enumerate(teachers[1:]):
                    np.save(path(f"t{i + 1}.npy"), zt_i.numpy())
                several = ["--student", path("s.npy"), "--labels", path("y.npy"), "--teacher", path("t.npy")]
                several += [a for i in range(1, count) for a in ("--teacher", path(f"t{i}.npy"))]
                for ensemble, reference, settings in ENSEMBLE_CASES:
                    sets = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
                    got = run(binary, ["kd", *several, "--ensemble", ensemble, *sets])
                    want = reference(zs_t, teachers, y_t, **settings).item()
                    compare(f"kd --ensemble {ensemble} {settings} K={count} B={batch} C={classes}", got, want)
            # Self-paced weights on the per-sample KD losses (CuDFKD: KL at T, times T^2, no CE).
            rows = kl_rows_t2(zs_t, zt_t, 4.0)
            for flag, variant, settings in SPL_CASES:
                iteration = 1200
                lamda = settings.get("lambda_0", 1.0) + settings.get("alpha", 0.0001) * iteration
                sets = [a for k, v in settings.items() for a in ("--set", f"spl.{k}={v}")]
                args = ["kd", *files, "--set", "ce_weight=0", "--set", "kd_weight=1", "--sample-weight", flag, *sets,
                        "--iteration", str(iteration)]
                v = curr_v(rows, lamda, variant)
                compare(f"kd --sample-weight {flag} {settings} B={batch}", run(binary, args), (v * rows).mean().item())
                for b, (got, want) in enumerate(zip(run(binary, args, "weights"), v.tolist())):
                    if abs(got - want) > 1e-9 * max(1.0, abs(want)):
                        print(f"FAIL: {flag} weight of row {b}: kdstore {got!r}, curr_v {want!r}")
                        sys.exit(1)
            # DKD during warm-up: epoch 5 of 20.
            got = run(binary, ["dkd", *files, "--epoch", "5"])
            compare(f"dkd epoch 5 B={batch}", got, 0.25 * dkd(zs_t, zt_t, y_t, y_t, lam1).item())

        # Feature losses on random features of several shapes.
        for fs_shape, ft_shape in [((16, 32), (16, 20)), ((8, 3, 4, 4), (8, 5, 2, 2)), ((8, 3, 2, 7), (8, 2, 3, 7))]:
            fs, ft = rng.normal(size=fs_shape), rng.normal(size=ft_shape)
            np.save(path("fs.npy"), fs)
            np.save(path("ft.npy"), ft)
            feats = ["--student", path("s1.npy"), "--student-features", path("fs.npy"), "--teacher-features", path("ft.npy")]
            np.save(path("s1.npy"), np.zeros((fs_shape[0], 2)))
            compare(f"sp {fs_shape} vs {ft_shape}", run(binary, ["sp", *feats]), sp(torch.tensor(fs), torch.tensor(ft)).item())
            if len(fs_shape) != 4 or fs_shape[3] == ft_shape[3]:
                compare(f"sk {fs_shape} vs {ft_shape}", run(binary, ["sk", *feats]), sk(torch.tensor(fs), torch.tensor(ft)).item())

        # MMD between the groups of a batch: equal groups (the official arithmetic), unequal ones.
        for rows, groups, settings, pair in [
            (12, [0] * 6 + [1] * 6, {}, mmd_rbf),
            (12, [3, 1, 2] * 4, {}, mmd_rbf),
            (10, [5] * 3 + [7] * 7, {}, mmd_unequal),
            (16, [0] * 8 + [1] * 8, {"kernel_mul": 3.0, "kernel_num": 3}, mmd_rbf),
        ]:
            fs = rng.normal(size=(rows, 7)) + np.array(groups)[:, None] * 0.3
            np.save(path("fs.npy"), fs)
            np.save(path("g.npy"), np.array(groups, dtype=np.int64))
            np.save(path("s1.npy"), np.zeros((rows, 2)))
            sets = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
            got = run(binary, ["mmd", "--student", path("s1.npy"), "--student-features", path("fs.npy"),
                               "--groups", path("g.npy"), *sets])
            want = mmd_groups(torch.tensor(fs), torch.tensor(groups), pair, **settings).item()
            compare(f"mmd {settings} groups {sorted(set(groups))} N={rows}", got, want)

        # DLKD on groups of views (identity view first), with heads initialised by PyTorch.
        for views, samples, s_dim, t_dim, settings in [
            (4, 8, 12, 10, {}),
            (3, 6, 7, 9, {"alpha": 2.0, "beta": 0.5, "delta": 1.0, "gamma": 0.3, "corr_temperature": 0.2,
                          "supcon_temperature": 0.1, "feat_dim": 16.0}),
        ]:
            n, classes = views * samples, 5
            y = np.repeat(rng.integers(0, classes, samples), views)
            zs, fs, ft = rng.normal(size=(n, classes)), rng.normal(size=(n, s_dim)), rng.normal(size=(n, t_dim))
            torch.manual_seed(views)
            heads = DlkdHeads(s_dim, t_dim, int(settings.get("feat_dim", 128)))
            np.savez(path("heads.npz"), **{k: v.numpy() for k, v in heads.state_dict().items()})
            for name, array in [("s.npy", zs), ("y.npy", y), ("fs.npy", fs), ("ft.npy", ft)]:
                np.save(path(name), array)
            settings = {"views": float(views), **settings}
            sets = [a for k, v in settings.items() for a in ("--set", f"{k}={v}")]
            got = run(binary, ["dlkd", "--student", path("s.npy"), "--labels", path("y.npy"), "--student-features",
                               path("fs.npy"), "--teacher-features", path("ft.npy"), "--heads", path("heads.npz"), *sets])
            want = dlkd(torch.tensor(zs), torch.tensor(y), torch.tensor(fs), torch.tensor(ft), heads,
                        **{k: (int(v) if k == "views" else v) for k, v in settings.items()}).item()
            compare(f"dlkd {settings} N={n}", got, want)

        # Values printed by the official RepDistiller SP and EEG-KD SK code (float64) on fixed inputs.
        for name, fs, ft, want in [
            ("sp", gen((4, 6), 0.7, 0.3, 0.5), gen((4, 5), 1.1, 0.2, 0.8), 3.699121167693359e-01),
            ("sp", gen((4, 3, 2, 2), 0.7, 0.3, 0.5), gen((4, 2, 2, 3), 1.1, 0.2, 0.8), 3.752476207698017e-01),
            ("sk", gen((4, 3, 1, 7), 0.7, 0.3, 0.5), gen((4, 2, 1, 7), 1.1, 0.2, 0.8), 4.141490603384697e-01),
            ("sk", gen((4, 3, 2, 5), 0.7, 0.3, 0.5), gen((4, 2, 3, 5), 1.1, 0.2, 0.8), 1.143093842666301e00),
        ]:
            np.save(path("fs.npy"), fs)
            np.save(path("ft.npy"), ft)
            np.save(path("s1.npy"), np.zeros((fs.shape[0], 2)))
            feats = ["--student", path("s1.npy"), "--student-features", path("fs.npy"), "--teacher-features", path("ft.npy")]
            compare(f"{name} official value {fs.shape} vs {ft.shape}", run(binary, [name, *feats]), want)


if __name__ == "__main__":
    main(sys.argv[1])
