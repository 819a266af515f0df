"""Tests of fastce.profiling: fastce.profile / ProfileAccumulator against independent
oracles; at the end, the exact sums of its kernel (_profile.h's superaccumulator).

Every expected value here is computed from the definitions with float64
NumPy/SciPy, or by sklearn / cleanlab themselves; nothing is taken from
fastce's own helpers. Data are generated with fixed seeds.
"""
import json
import math
import os
import pickle
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.special as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.calibration import calibration_curve
from sklearn.metrics import (accuracy_score, confusion_matrix, hamming_loss, log_loss,
                             precision_score, recall_score, top_k_accuracy_score)

import fastce
from fastce import ProfileAccumulator
from fastce._kernels.dispatch import kernels

from conftest import FLOAT_DTYPES

CLAMP = 100.0
RTOL = {np.float64: 1e-12, np.float32: 1e-5}

# ----------------------------------------------------------------- helpers

def arr(values):
    """A to_dict() list (None for undefined) as a float64 array with NaN."""
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def close(actual, expected, rtol, what, atol=0.0):
    actual = arr(actual) if isinstance(actual, list) else (
        np.nan if actual is None else actual)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True,
                               err_msg=what)


def wmean(x, w):
    return np.sum(w * x) / np.sum(w)


def ratio(num, den):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def calibration_oracle(conf, correct, w, n_bins):
    b = np.minimum(np.floor(conf * n_bins).astype(np.int64), n_bins - 1)
    weight = np.bincount(b, w, n_bins)
    mean_conf = ratio(np.bincount(b, w * conf, n_bins), weight)
    acc = ratio(np.bincount(b, w * correct, n_bins), weight)
    filled = weight > 0
    gaps = np.abs(acc - mean_conf)
    ece = np.sum(weight[filled] * gaps[filled]) / np.sum(weight)
    mce = np.max(gaps[filled])
    return dict(weight=weight, mean_confidence=mean_conf, accuracy=acc, ece=ece, mce=mce,
                bins=b)


def multiclass_oracle(P, logP, y, w, n_bins=15):
    """Per-sample statistics and report fields from float64 probabilities."""
    n, c = P.shape
    rows = np.arange(n)
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    with np.errstate(divide="ignore"):
        loss = -np.maximum(logP[rows, y], -CLAMP)
    pred = np.argmax(P, axis=1)
    conf = P.max(axis=1)
    s = np.sort(P, axis=1)
    margin = s[:, -1] - (s[:, -2] if c > 1 else 0.0)
    entropy = -np.sum(sp.xlogy(P, P), axis=1)
    self_conf = P[rows, y]
    onehot = np.eye(c)[y]
    brier = np.sum((P - onehot) ** 2, axis=1)
    correct = (pred == y).astype(np.float64)
    top5 = ((P > self_conf[:, None]).sum(axis=1) < 5).astype(np.float64)
    cal = calibration_oracle(conf, correct, w, n_bins)
    cls_w = np.bincount(y, w, c)
    return dict(
        loss=loss, pred=pred, self_conf=self_conf, w=w,
        n_samples=n, n_classes=c, weight_sum=np.sum(w),
        loss_mean=wmean(loss, w), accuracy=wmean(correct, w),
        top5_accuracy=wmean(top5, w) if c > 5 else None,
        brier_mean=wmean(brier, w), entropy_mean=wmean(entropy, w),
        margin_mean=wmean(margin, w), confidence_mean=wmean(conf, w),
        cal=cal,
        per_class=dict(
            support=np.bincount(y, minlength=c),
            weight=cls_w,
            loss_mean=ratio(np.bincount(y, w * loss, c), cls_w),
            accuracy=ratio(np.bincount(y, w * correct, c), cls_w),
            precision=ratio(np.bincount(y, w * correct, c), np.bincount(pred, w, c)),
            mean_self_confidence=ratio(np.bincount(y, w * self_conf, c), cls_w),
            predicted_count=np.bincount(pred, minlength=c)),
        confusion=np.bincount(y * c + pred, minlength=c * c).reshape(c, c),
    )


def binary_oracle(x, y, kind, w, n_bins=15):
    """The binary task as the two classes [1 - p, p]."""
    x = x.astype(np.float64)
    if kind == "logits":
        logP = np.stack([sp.log_expit(-x), sp.log_expit(x)], axis=1)
        P = np.stack([sp.expit(-x), sp.expit(x)], axis=1)
    else:
        P = np.stack([1.0 - x, x], axis=1)
        with np.errstate(divide="ignore"):
            logP = np.log(P)
    out = multiclass_oracle(P, logP, y, w, n_bins)
    # Brier of the binary task is 2 (p - y)^2 (the same number).
    out["brier_mean"] = wmean(2.0 * (P[:, 1] - y) ** 2, out["w"])
    out["P"] = P
    return out


def multilabel_oracle(x, Y, kind, w, n_bins=15):
    x = x.astype(np.float64)
    n, L = x.shape
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    W = np.repeat(w[:, None], L, axis=1)
    if kind == "logits":
        p = sp.expit(x)
        logp1, logp0 = sp.log_expit(x), sp.log_expit(-x)
        pred = (x > 0).astype(np.int64)
    else:
        p = x
        with np.errstate(divide="ignore"):
            logp1, logp0 = np.log(p), np.log(1.0 - p)
        pred = (p > 0.5).astype(np.int64)
    loss = -np.maximum(np.where(Y == 1, logp1, logp0), -CLAMP)
    q = 1.0 - p
    conf = np.maximum(p, q)
    correct = (pred == Y).astype(np.float64)
    entropy = -(sp.xlogy(p, p) + sp.xlogy(q, q))
    cal = calibration_oracle(conf.ravel(), correct.ravel(), W.ravel(), n_bins)
    per_label_ece = [calibration_oracle(conf[:, j], correct[:, j], w, n_bins)["ece"]
                     for j in range(L)]
    sw = W.sum(axis=0)
    return dict(
        loss=loss, pred=pred, n_samples=n, n_classes=L, weight_sum=w.sum(),
        loss_mean=wmean(loss, W), accuracy=wmean(correct, W),
        brier_mean=wmean(2 * (p - Y) ** 2, W), entropy_mean=wmean(entropy, W),
        margin_mean=wmean(np.abs(p - q), W), confidence_mean=wmean(conf, W), cal=cal,
        per_label=dict(support=Y.sum(axis=0), loss_mean=(W * loss).sum(0) / sw,
                       accuracy=(W * correct).sum(0) / sw, ece=np.array(per_label_ece)))


def check_scalars(d, o, rtol, names=("loss_mean", "accuracy", "brier_mean", "entropy_mean",
                                     "margin_mean", "confidence_mean", "weight_sum")):
    for name in names:
        close(d[name], o[name], rtol, name)


def check_calibration(d, o, rtol):
    cal = o["cal"]
    close(d["ece"], cal["ece"], rtol, "ece", atol=1e-15)
    close(d["mce"], cal["mce"], rtol, "mce", atol=1e-15)
    n_bins = len(cal["weight"])
    np.testing.assert_allclose(d["calibration"]["bin_edges"], np.linspace(0, 1, n_bins + 1),
                               rtol=1e-15, atol=1e-15)
    close(d["calibration"]["weight"], cal["weight"], rtol, "calibration weight")
    close(d["calibration"]["mean_confidence"], cal["mean_confidence"], rtol,
          "calibration mean_confidence")
    close(d["calibration"]["accuracy"], cal["accuracy"], rtol, "calibration accuracy")


def check_quantiles(d, loss):
    assert set(d["loss_quantiles"]) == {"0.5", "0.9", "0.99", "0.999"}
    for key, got in d["loss_quantiles"].items():
        want = np.quantile(loss, float(key))
        assert got == pytest.approx(want, rel=0.01), (key, got, want)


def check_histogram(d, n_expected):
    h = d["loss_histogram"]
    assert len(h["edges"]) == len(h["counts"]) + 1
    assert np.all(np.diff(h["edges"]) > 0)
    assert sum(h["counts"]) == n_expected


def hardest_oracle(loss, k):
    index = np.arange(loss.size)
    return np.lexsort((index, -loss))[:k]


def make_multiclass(n, c, dtype, seed, *, clamp_rows=0, absent_class=False, noise=0.1,
                    boost=2.5):
    """Logits of a model that is mostly right; ``noise`` of the labels flipped."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, c - 1 if absent_class else c, n)
    z = rng.normal(0.0, 1.5, (n, c))
    z[np.arange(n), truth] += boost
    if absent_class:
        z[:, c - 1] -= 8.0  # the last class: never a label, (almost) never predicted
    labels = truth.copy()
    flip = rng.random(n) < noise
    labels[flip] = rng.integers(0, c - 1 if absent_class else c, int(flip.sum()))
    if clamp_rows:
        rows = rng.choice(n, clamp_rows, replace=False)
        z[rows, labels[rows]] = z[rows].max(axis=1) - 250.0  # -log p_y > 100: clamped
    return z.astype(dtype), labels


def make_weights(n, seed, labels=None, zero_class=None):
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.0, 3.0, n)
    w[rng.random(n) < 0.05] = 0.0
    if zero_class is not None:
        w[labels == zero_class] = 0.0
    return w


def softmax64(z):
    z = z.astype(np.float64)
    return sp.softmax(z, axis=1), sp.log_softmax(z, axis=1)


# ------------------------------------------------------- 1. multiclass vs oracle

@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("c", [3, 7])
def test_multiclass_logits_vs_oracle(dtype, weighted, c):
    n = 2000
    z, y = make_multiclass(n, c, dtype, seed=c * 10 + weighted, clamp_rows=15,
                           absent_class=(c == 7))
    w = make_weights(n, 5, y, zero_class=1 if weighted else None) if weighted else None
    rtol = RTOL[dtype]
    P, logP = softmax64(z)
    o = multiclass_oracle(P, logP, y, w)
    rep = fastce.profile(z, y, sample_weight=w, top_k=n, chunk_size=333, n_bins=15)
    d = rep.to_dict()
    assert d["n_samples"] == n and d["n_classes"] == c
    assert d["task"] == "multiclass" and d["kind"] == "logits"
    check_scalars(d, o, rtol)
    if c > 5:
        close(d["top5_accuracy"], o["top5_accuracy"], rtol, "top5")
    else:
        assert d["top5_accuracy"] is None
    check_calibration(d, o, rtol)
    for name, want in o["per_class"].items():
        if name in ("support", "predicted_count"):
            assert d["per_class"][name] == want.tolist(), name
        else:
            close(d["per_class"][name], want, rtol, name)
    assert np.array_equal(np.array(d["confusion"]), o["confusion"])
    # every per-sample loss, label and prediction (top_k = n keeps them all)
    order = hardest_oracle(o["loss"], n)
    assert d["hardest"]["index"] == order.tolist()
    close(d["hardest"]["loss"], o["loss"][order], rtol, "hardest loss")
    assert max(d["hardest"]["loss"]) == CLAMP
    assert d["hardest"]["label"] == y[order].tolist()
    assert d["hardest"]["predicted"] == o["pred"][order].tolist()
    check_quantiles(d, o["loss"])
    check_histogram(d, n)
    # attributes are the same fields
    assert rep.n_samples == n and rep.loss_mean == d["loss_mean"]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_multiclass_vs_sklearn(dtype, weighted):
    n, c = 3000, 8
    z, y = make_multiclass(n, c, dtype, seed=42 + weighted)
    w = make_weights(n, 7) if weighted else None
    rtol = RTOL[dtype]
    P, _ = softmax64(z)
    pred = np.argmax(P, axis=1)
    d = fastce.profile(z, y, sample_weight=w, top_k=n, label_issues=False).to_dict()
    # the predictions fastce made (all rows are in hardest with top_k = n)
    fast_pred = np.empty(n, dtype=np.int64)
    fast_pred[d["hardest"]["index"]] = d["hardest"]["predicted"]
    assert np.array_equal(fast_pred, pred)
    labels = list(range(c))
    close(d["accuracy"], accuracy_score(y, pred, sample_weight=w), rtol, "accuracy")
    assert np.array_equal(np.array(d["confusion"]), confusion_matrix(y, pred, labels=labels))
    close(d["per_class"]["precision"],
          precision_score(y, pred, labels=labels, average=None, sample_weight=w,
                          zero_division=np.nan), rtol, "precision")
    close(d["per_class"]["accuracy"],
          recall_score(y, pred, labels=labels, average=None, sample_weight=w,
                       zero_division=np.nan), rtol, "recall")
    close(d["top5_accuracy"], top_k_accuracy_score(y, P, k=5, labels=labels, sample_weight=w),
          rtol, "top5")
    close(d["loss_mean"], log_loss(y, P, labels=labels, sample_weight=w), rtol, "log_loss")
    ww = np.ones(n) if w is None else w
    close(d["brier_mean"], wmean(np.sum((P - np.eye(c)[y]) ** 2, axis=1), ww), rtol, "brier")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_multiclass_probs_vs_oracle(dtype, weighted):
    n, c = 2500, 6
    z, y = make_multiclass(n, c, np.float64, seed=3)
    P = sp.softmax(z, axis=1).astype(dtype)
    P[:7, 0] = 0.0  # exact zeros: 0 log 0 = 0 and, where labelled, a clamped loss
    y[:3] = 0
    w = make_weights(n, 9) if weighted else None
    P64 = P.astype(np.float64)
    with np.errstate(divide="ignore"):
        o = multiclass_oracle(P64, np.log(P64), y, w)
    d = fastce.profile(P, y, kind="probs", sample_weight=w, top_k=n, chunk_size=1000).to_dict()
    assert d["kind"] == "probs"
    rtol = RTOL[dtype]
    check_scalars(d, o, rtol)
    close(d["top5_accuracy"], o["top5_accuracy"], rtol, "top5")
    check_calibration(d, o, rtol)
    for name, want in o["per_class"].items():
        close(d["per_class"][name], want, rtol, name)
    order = hardest_oracle(o["loss"], n)
    assert d["hardest"]["index"][:3] == [0, 1, 2]  # the three clamped losses, ties by index
    assert d["hardest"]["loss"][:3] == [CLAMP] * 3
    assert d["hardest"]["index"] == order.tolist()
    check_quantiles(d, o["loss"])
    check_histogram(d, n)


def test_one_class_and_ties():
    # one class: p = 1, loss 0, margin p(1) - 0 = 1, entropy 0
    z = np.random.default_rng(0).normal(size=(50, 1))
    d = fastce.profile(z, np.zeros(50, dtype=np.int64)).to_dict()
    assert d["loss_mean"] == 0.0 and d["accuracy"] == 1.0
    assert d["margin_mean"] == 1.0 and d["confidence_mean"] == 1.0
    assert d["entropy_mean"] == 0.0 and d["brier_mean"] == 0.0
    # ties: argmax is the lowest index; margin 0
    P = np.array([[0.25, 0.25, 0.25, 0.25], [0.1, 0.45, 0.45, 0.0]])
    for kind, x in (("probs", P), ("logits", np.log(np.maximum(P, 1e-300)))):
        d = fastce.profile(x, np.array([3, 2]), kind=kind, label_issues=False).to_dict()
        assert d["per_class"]["predicted_count"] == [1, 1, 0, 0], kind
        assert d["margin_mean"] == pytest.approx(0.0, abs=1e-15)
        assert d["accuracy"] == 0.0


def test_quantiles_and_hardest_ties_on_repeated_rows():
    # 40 distinct rows repeated 50 times: the losses tie exactly in groups of 50
    base_z, base_y = make_multiclass(40, 5, np.float64, seed=11)
    z, y = np.tile(base_z, (50, 1)), np.tile(base_y, 50)
    _, logP = softmax64(base_z)
    loss = np.tile(-logP[np.arange(40), base_y], 50)
    d = fastce.profile(z, y, top_k=120, chunk_size=77).to_dict()
    order = hardest_oracle(loss, 120)
    assert d["hardest"]["index"] == order.tolist()
    assert len(set(d["hardest"]["loss"][:50])) == 1
    check_quantiles(d, loss)
    # label issues on tied self-confidences are ranked by index
    issues = d["label_issues"]
    keys = list(zip(issues["self_confidence"], issues["index"]))
    assert keys == sorted(keys)


@pytest.mark.parametrize("weighted", [False, True])
def test_sums_are_exact_vs_fsum(weighted):
    # The report's means are (correctly rounded exact sum) / (correctly rounded
    # exact sum): math.fsum of fastce's own per-sample losses, bitwise.
    n, c = 3000, 4
    z, y = make_multiclass(n, c, np.float64, seed=90)
    if weighted:
        w = make_weights(n, 91)
        w[0], w[1:1200] = 2.0 ** 53, 1.0  # 1199 ones that a float64 running sum drops
        w[1200:1210] = 1e300
        w[1210:1220] = [1e-300, 5e-324, 1e-310, 3.0, 1e16, 7e-200, 1e-16, 1e-17, 2.5, 1e200]
    else:
        w = np.ones(n)
    d = fastce.profile(z, y, sample_weight=w if weighted else None, top_k=n,
                       chunk_size=101).to_dict()
    loss = np.empty(n)
    loss[d["hardest"]["index"]] = d["hardest"]["loss"]
    assert d["weight_sum"] == math.fsum(w)
    assert d["loss_mean"] == math.fsum(w * loss) / math.fsum(w)
    for k in range(c):
        rows = y == k
        assert d["per_class"]["weight"][k] == math.fsum(w[rows])
        assert d["per_class"]["loss_mean"][k] == math.fsum(w[rows] * loss[rows]) / math.fsum(
            w[rows])
    if weighted:
        assert math.fsum(w) != float(np.cumsum(w)[-1])  # the naive sum is off


@pytest.mark.parametrize("n_bins", [1, 2, 10, 40])
def test_calibration_bins(n_bins):
    z, y = make_multiclass(2000, 5, np.float64, seed=n_bins)
    w = make_weights(2000, 3)
    P, logP = softmax64(z)
    o = multiclass_oracle(P, logP, y, w, n_bins=n_bins)
    d = fastce.profile(z, y, sample_weight=w, n_bins=n_bins, label_issues=False).to_dict()
    check_calibration(d, o, 1e-12)
    if n_bins == 1:
        assert d["ece"] == pytest.approx(abs(o["accuracy"] - o["confidence_mean"]), rel=1e-12)
        assert d["mce"] == d["ece"]


@pytest.mark.parametrize("n_bins", [10, 15, 20])
def test_calibration_bin_of_grid_confidences(n_bins):
    # Probabilities on a grid of tenths (a forest of 10 trees, votes / 10).
    # A confidence c belongs to the b with bin_edges[b] <= c < bin_edges[b + 1]
    # of the report's own edges (np.digitize). The double 0.6 lies below the
    # edge 0.6000000000000001 of 10 bins, but 0.6 * 10 rounds to 6.0 exactly.
    rng = np.random.default_rng(n_bins)
    n = 2000
    p = rng.integers(0, 11, n) / 10.0
    y = (rng.random(n) < p).astype(np.int64)
    d = fastce.profile(p, y, task="binary", kind="probs", n_bins=n_bins).to_dict()
    conf = np.maximum(p, 1.0 - p)
    edges = np.array(d["calibration"]["bin_edges"])
    assert np.array_equal(edges, np.linspace(0.0, 1.0, n_bins + 1))
    exact_bin = np.clip(np.digitize(conf, edges) - 1, 0, n_bins - 1)
    weight = np.bincount(exact_bin, minlength=n_bins).astype(np.float64)
    assert d["calibration"]["weight"] == weight.tolist()
    for b, mean_conf in enumerate(d["calibration"]["mean_confidence"]):
        if mean_conf is not None:
            assert edges[b] <= mean_conf <= edges[b + 1], (b, mean_conf, edges[b])


def test_neg_inf_logits():
    z, y = make_multiclass(300, 7, np.float64, seed=95)
    z[:5, :] = -np.inf
    z[:5, 0] = 0.0
    y[:5] = 1  # p_y = 0: loss clamped at 100
    z[5:10, 3] = -np.inf
    P, logP = softmax64(z)
    o = multiclass_oracle(P, logP, y, None)
    d = fastce.profile(z, y, top_k=300).to_dict()
    check_scalars(d, o, 1e-12)
    close(d["top5_accuracy"], o["top5_accuracy"], 1e-12, "top5")
    assert d["hardest"]["index"][:5] == [0, 1, 2, 3, 4]
    assert d["hardest"]["loss"][:5] == [CLAMP] * 5


def test_report_options_and_degenerate_inputs():
    z, y = make_multiclass(300, 7, np.float64, seed=96)
    assert fastce.profile(z, y, confusion_max_classes=6).confusion is None
    assert np.array_equal(fastce.profile(z, y, confusion_max_classes=7).confusion,
                          confusion_matrix(y, z.argmax(1), labels=range(7)))
    d = fastce.profile(z, y, top_k=0).to_dict()
    assert d["hardest"] == {"index": [], "loss": [], "label": [], "predicted": []}
    names = [f"c{i}" for i in range(7)]
    assert fastce.profile(z, y, class_names=names).class_names == names
    assert fastce.profile(z, y, label_issues=False).label_issues is None
    # no rows
    d = fastce.profile(np.zeros((0, 3)), np.zeros(0, dtype=np.int64)).to_dict()
    assert d["n_samples"] == 0 and d["n_classes"] == 3 and d["loss_mean"] is None
    assert d["per_class"]["support"] == [0, 0, 0]
    json.dumps(d, allow_nan=False)
    # all weights zero: every weighted mean undefined, counts still there
    d = fastce.profile(z, y, sample_weight=np.zeros(300)).to_dict()
    assert d["weight_sum"] == 0.0
    for key in ("loss_mean", "accuracy", "top5_accuracy", "ece", "mce"):
        assert d[key] is None, key
    assert d["per_class"]["support"] == np.bincount(y, minlength=7).tolist()
    assert sum(d["loss_histogram"]["counts"]) == 300
    json.dumps(d, allow_nan=False)
    # lists and small integer/float16 dtypes are accepted
    assert fastce.profile(z.tolist(), y.tolist()).to_dict() == fastce.profile(z, y).to_dict()


# ----------------------------------------------------------- binary / multilabel

@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", ["logits", "probs"])
def test_binary_vs_oracle(dtype, weighted, kind):
    n = 3000
    rng = np.random.default_rng(21 + weighted)
    y = rng.integers(0, 2, n)
    x = rng.normal(0, 2, n) + 2.0 * (2 * y - 1)
    x[:5] = -300.0 * (2 * y[:5] - 1)  # confidently wrong: loss clamped at 100
    if kind == "probs":
        x = sp.expit(x)
    x = x.astype(dtype)
    w = make_weights(n, 23) if weighted else None
    o = binary_oracle(x, y, kind, w)
    d = fastce.profile(x, y, task="binary", kind=kind, sample_weight=w, top_k=n,
                       chunk_size=700).to_dict()
    rtol = RTOL[dtype]
    assert d["n_classes"] == 2 and d["task"] == "binary" and d["top5_accuracy"] is None
    check_scalars(d, o, rtol)
    check_calibration(d, o, rtol)
    for name, want in o["per_class"].items():
        close(d["per_class"][name], want, rtol, name)
    assert np.array_equal(np.array(d["confusion"]), o["confusion"])
    order = hardest_oracle(o["loss"], n)
    assert d["hardest"]["index"] == order.tolist()
    close(d["hardest"]["loss"], o["loss"][order], rtol, "hardest loss")
    assert d["hardest"]["predicted"] == o["pred"][order].tolist()
    check_quantiles(d, o["loss"])
    check_histogram(d, n)
    # sklearn
    pred = o["pred"]
    close(d["accuracy"], accuracy_score(y, pred, sample_weight=w), rtol, "accuracy")
    assert np.array_equal(np.array(d["confusion"]), confusion_matrix(y, pred, labels=[0, 1]))
    close(d["per_class"]["precision"],
          precision_score(y, pred, labels=[0, 1], average=None, sample_weight=w,
                          zero_division=np.nan), rtol, "precision")
    close(d["per_class"]["accuracy"],
          recall_score(y, pred, labels=[0, 1], average=None, sample_weight=w,
                       zero_division=np.nan), rtol, "recall")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_binary_calibration_vs_sklearn_calibration_curve(dtype):
    # With every p >= 0.5 the top label is class 1, its confidence is p, and
    # top-label calibration is sklearn's reliability curve.
    rng = np.random.default_rng(5)
    n, n_bins = 4000, 10
    p = rng.uniform(0.5, 1.0, n).astype(dtype)
    y = (rng.random(n) < p).astype(np.int64)
    d = fastce.profile(p, y, task="binary", kind="probs", n_bins=n_bins).to_dict()
    prob_true, prob_pred = calibration_curve(y, p.astype(np.float64), n_bins=n_bins,
                                             strategy="uniform")
    cal = d["calibration"]
    filled = [i for i, wt in enumerate(cal["weight"]) if wt > 0]
    np.testing.assert_allclose([cal["accuracy"][i] for i in filled], prob_true, rtol=1e-12)
    np.testing.assert_allclose([cal["mean_confidence"][i] for i in filled], prob_pred,
                               rtol=1e-12)
    assert all(cal["weight"][i] == 0 for i in range(n_bins // 2))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("kind", ["logits", "probs"])
def test_multilabel_vs_oracle(dtype, weighted, kind):
    n, L = 1500, 4
    rng = np.random.default_rng(31 + weighted)
    Y = (rng.random((n, L)) < [0.1, 0.3, 0.5, 0.8]).astype(np.int64)
    x = rng.normal(0, 2, (n, L)) + 1.5 * (2 * Y - 1)
    x[:4, 0] = -300.0 * (2 * Y[:4, 0] - 1)
    if kind == "probs":
        x = sp.expit(x)
    x = x.astype(dtype)
    w = make_weights(n, 33) if weighted else None
    o = multilabel_oracle(x, Y, kind, w)
    d = fastce.profile(x, Y, task="multilabel", kind=kind, sample_weight=w,
                       chunk_size=256).to_dict()
    rtol = RTOL[dtype]
    assert d["n_samples"] == n and d["n_classes"] == L and d["task"] == "multilabel"
    assert d["label_issues"] is None and d["per_class"] is None
    check_scalars(d, o, rtol)
    close(d["accuracy"], 1.0 - hamming_loss(Y, o["pred"], sample_weight=w), rtol, "hamming")
    check_calibration(d, o, rtol)
    assert d["per_label"]["support"] == o["per_label"]["support"].tolist()
    for name in ("loss_mean", "accuracy", "ece"):
        close(d["per_label"][name], o["per_label"][name], rtol, name, atol=1e-15)


# ------------------------------------------------------ 2. probs == logits

@pytest.mark.parametrize("weighted", [False, True])
def test_probs_equals_logits(weighted):
    n, c = 3000, 7
    z, y = make_multiclass(n, c, np.float64, seed=77)
    w = make_weights(n, 78) if weighted else None
    P, _ = softmax64(z)
    a = fastce.profile(z, y, sample_weight=w, kind="logits", top_k=200).to_dict()
    b = fastce.profile(P, y, sample_weight=w, kind="probs", top_k=200).to_dict()
    for key in ("n_samples", "n_classes", "task", "confusion", "label_issues"):
        if key == "label_issues":
            assert a[key]["index"] == b[key]["index"]
            close(a[key]["self_confidence"], arr(b[key]["self_confidence"]), 1e-12, key)
        else:
            assert a[key] == b[key], key
    for key in ("weight_sum", "loss_mean", "accuracy", "top5_accuracy", "brier_mean",
                "entropy_mean", "margin_mean", "confidence_mean", "ece", "mce"):
        close(a[key], b[key], 1e-12, key)
    for key in ("weight", "mean_confidence", "accuracy"):
        close(a["calibration"][key], arr(b["calibration"][key]), 1e-12, key)
    for key, value in a["per_class"].items():
        close(value, arr(b["per_class"][key]), 1e-12, key)
    assert a["hardest"]["index"] == b["hardest"]["index"]
    close(a["hardest"]["loss"], arr(b["hardest"]["loss"]), 1e-12, "hardest")
    for key in a["loss_quantiles"]:
        close(a["loss_quantiles"][key], b["loss_quantiles"][key], 0.02, key)


# ------------------------------------------------------ 3. label issues vs cleanlab

def cleanlab_issues(labels, pred_probs):
    # skipped here, not for the whole module, so the exact-sum tests run without cleanlab
    cleanlab_filter = pytest.importorskip("cleanlab.filter")
    mask = cleanlab_filter.find_label_issues(labels, pred_probs,
                                             filter_by="confident_learning", n_jobs=1)
    return np.flatnonzero(mask)


def check_ranking(issues, self_conf_oracle, rtol):
    index = np.array(issues["index"], dtype=np.int64)
    conf = np.array(issues["self_confidence"], dtype=np.float64)
    np.testing.assert_allclose(conf, self_conf_oracle[index], rtol=rtol, atol=1e-300)
    assert np.array_equal(np.lexsort((index, conf)), np.arange(index.size))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("c,absent", [(5, False), (7, True)])
def test_label_issues_multiclass_vs_cleanlab(dtype, c, absent):
    n = 3000
    z, y = make_multiclass(n, c, dtype, seed=100 + c, absent_class=absent, boost=3.0)
    P, _ = softmax64(z)
    want = cleanlab_issues(y, P)
    assert 100 < want.size < 600
    self_conf = P[np.arange(n), y]
    for kind, x in (("logits", z), ("probs", P)):
        for chunk in (None, 256):
            d = fastce.profile(x, y, kind=kind, chunk_size=chunk).to_dict()
            issues = d["label_issues"]
            got = np.sort(issues["index"])
            assert np.array_equal(got, want), (kind, chunk, np.setxor1d(got, want))
            check_ranking(issues, self_conf, RTOL[dtype] if kind == "logits" else 1e-15)
    # float32 probabilities as given (cleanlab on the same numbers in float64)
    P32 = P.astype(np.float32)
    d = fastce.profile(P32, y, kind="probs").to_dict()
    assert np.array_equal(np.sort(d["label_issues"]["index"]),
                          cleanlab_issues(y, P32.astype(np.float64)))
    # sample_weight does not change the (unweighted) label issues
    w = make_weights(n, 1)
    dw = fastce.profile(z, y, sample_weight=w).to_dict()
    assert dw["label_issues"] == fastce.profile(z, y).to_dict()["label_issues"]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("kind", ["logits", "probs"])
def test_label_issues_binary_vs_cleanlab(dtype, kind):
    n = 3000
    rng = np.random.default_rng(9)
    truth = rng.integers(0, 2, n)
    x = rng.normal(0, 1.5, n) + 2.5 * (2 * truth - 1)
    y = truth.copy()
    flip = rng.random(n) < 0.1
    y[flip] = 1 - y[flip]
    if kind == "probs":
        x = sp.expit(x)
    x = x.astype(dtype)
    p = sp.expit(x.astype(np.float64)) if kind == "logits" else x.astype(np.float64)
    pred_probs = np.stack([1.0 - p, p], axis=1)
    want = cleanlab_issues(y, pred_probs)
    assert want.size > 100
    d = fastce.profile(x, y, task="binary", kind=kind, chunk_size=500).to_dict()
    got = np.sort(d["label_issues"]["index"])
    assert np.array_equal(got, want), np.setxor1d(got, want)
    check_ranking(d["label_issues"], pred_probs[np.arange(n), y], 1e-12)


# ------------------------------------------------------------- 4. exactness

def _exact_data(task, weighted):
    rng = np.random.default_rng(500)
    if task == "multiclass":
        x, y = make_multiclass(9000, 4, np.float32, seed=501)  # 36000 elements: threads run
    elif task == "binary":
        n = 33000
        y = rng.integers(0, 2, n)
        x = (rng.normal(0, 2, n) + 1.5 * (2 * y - 1)).astype(np.float64)
    else:
        n = 9000
        y = (rng.random((n, 4)) < 0.4).astype(np.int64)
        x = (rng.normal(0, 2, (n, 4)) + (2 * y - 1)).astype(np.float32)
    w = make_weights(x.shape[0], 502) if weighted else None
    return x, y, w


def _dumps(d):
    return json.dumps(d, allow_nan=False)


@pytest.mark.parametrize("task", ["multiclass", "binary", "multilabel"])
@pytest.mark.parametrize("weighted", [False, True])
def test_bitwise_identical_over_chunks_threads_and_merges(task, weighted):
    x, y, w = _exact_data(task, weighted)
    n = x.shape[0]
    keywords = dict(task=task, sample_weight=w, top_k=25)
    ref = fastce.profile(x, y, chunk_size=n, n_threads=1, **keywords).to_dict()
    ref_json = _dumps(ref)
    runs = [(chunk, threads) for chunk in (7, 4096, n) for threads in (1, 2)] + [(1, 2)]
    for chunk, threads in runs:
        d = fastce.profile(x, y, chunk_size=chunk, n_threads=threads, **keywords).to_dict()
        assert d == ref, (chunk, threads)
        assert _dumps(d) == ref_json, (chunk, threads)

    # accumulators over random disjoint row ranges, merged in orders and trees
    ref = fastce.profile(x, y, label_issues=False, **keywords).to_dict()
    rng = np.random.default_rng(7)
    cuts = np.unique(np.concatenate([[0, n], rng.integers(1, n, 11)]))
    ranges = list(zip(cuts[:-1], cuts[1:]))

    def part(lo, hi):
        acc = ProfileAccumulator(task=task, top_k=25)
        step = int(rng.integers(50, 3000))
        for s in range(lo, hi, step):
            e = min(s + step, hi)
            acc.update(x[s:e], y[s:e], start=s, sample_weight=None if w is None else w[s:e],
                       n_threads=2)
        return acc

    for trial in range(3):
        parts = [part(lo, hi) for lo, hi in ranges]
        order = rng.permutation(len(parts))
        if trial == 0:  # sequential into a fresh accumulator
            total = ProfileAccumulator(task=task, top_k=25)
            for i in order:
                total.merge(parts[i])
        elif trial == 1:  # a pairwise tree, through pickles
            level = [pickle.loads(pickle.dumps(parts[i])) for i in order]
            while len(level) > 1:
                level = [level[i].merge(level[i + 1]) if i + 1 < len(level) else level[i]
                         for i in range(0, len(level), 2)]
            total = level[0]
        else:  # right-leaning fold
            total = parts[order[-1]]
            for i in order[-2::-1]:
                total = parts[i].merge(total)
        d = total.report().to_dict()
        assert d == ref, trial
        assert _dumps(d) == _dumps(ref), trial

    # one accumulator fed the ranges out of order, with start=
    acc = ProfileAccumulator(task=task, top_k=25)
    for i in rng.permutation(len(ranges)):
        lo, hi = ranges[i]
        acc.update(x[lo:hi], y[lo:hi], start=lo, sample_weight=None if w is None else w[lo:hi])
    assert acc.report().to_dict() == ref


# ---------------------------------------------------------------- 5. inputs

@pytest.mark.parametrize("task", ["multiclass", "binary"])
def test_file_and_array_like_inputs(tmp_path, task):
    n = 5000
    if task == "multiclass":
        x, y = make_multiclass(n, 6, np.float32, seed=55)
    else:
        rng = np.random.default_rng(56)
        y = rng.integers(0, 2, n)
        x = (rng.normal(0, 2, n) + (2 * y - 1)).astype(np.float32)
    w = make_weights(n, 57)
    x_copy, y_copy, w_copy = x.copy(), y.copy(), w.copy()
    keywords = dict(task=task, chunk_size=777, top_k=50)
    ref = fastce.profile(x, y, sample_weight=w, **keywords).to_dict()
    assert np.array_equal(x, x_copy) and np.array_equal(y, y_copy) and np.array_equal(w, w_copy)

    xp, yp, wp = tmp_path / "x.npy", tmp_path / "y.npy", tmp_path / "w.npy"
    np.save(xp, x), np.save(yp, y), np.save(wp, w)
    results = {"npy path": fastce.profile(str(xp), str(yp), sample_weight=str(wp), **keywords),
               "npy pathlib": fastce.profile(xp, yp, sample_weight=wp, **keywords)}
    mx = np.memmap(tmp_path / "x.raw", dtype=x.dtype, mode="w+", shape=x.shape)
    mx[:] = x
    mx.flush()
    mx = np.memmap(tmp_path / "x.raw", dtype=x.dtype, mode="r", shape=x.shape)
    results["memmap"] = fastce.profile(mx, y, sample_weight=w, **keywords)
    results["open_memmap"] = fastce.profile(np.load(xp, mmap_mode="r"),
                                            np.load(yp, mmap_mode="r"), sample_weight=w,
                                            **keywords)
    try:
        import h5py
    except ImportError:
        h5py = None
    if h5py is not None:
        with h5py.File(tmp_path / "data.h5", "w") as f:
            f.create_dataset("x", data=x, chunks=True)
            f.create_dataset("y", data=y)
        with h5py.File(tmp_path / "data.h5", "r") as f:
            results["h5py"] = fastce.profile(f["x"], f["y"], sample_weight=w, **keywords)
        results["h5 path"] = fastce.profile(f"{tmp_path}/data.h5:x", f"{tmp_path}/data.h5:y",
                                            sample_weight=w, **keywords)
    try:
        import zarr
    except ImportError:
        zarr = None
    if zarr is not None:
        zx = zarr.create_array(str(tmp_path / "x.zarr"), shape=x.shape, dtype=x.dtype,
                               chunks=(500,) + x.shape[1:])
        zx[:] = x
        zy = zarr.create_array(str(tmp_path / "y.zarr"), shape=y.shape, dtype=y.dtype,
                               chunks=(1000,))
        zy[:] = y
        results["zarr"] = fastce.profile(zx, zy, sample_weight=w, **keywords)
        results["zarr path"] = fastce.profile(str(tmp_path / "x.zarr"),
                                              str(tmp_path / "y.zarr"), sample_weight=w,
                                              **keywords)
    for name, report in results.items():
        assert report.to_dict() == ref, name
    assert np.array_equal(x, x_copy) and np.array_equal(y, y_copy) and np.array_equal(w, w_copy)
    assert np.array_equal(np.load(xp), x_copy)


def test_unaligned_and_strided_inputs_give_the_same_report():
    x, y = make_multiclass(3000, 5, np.float32, seed=60)
    ref = fastce.profile(x, y).to_dict()
    buffer = np.zeros(x.size + 1, dtype=np.float32)
    shifted = buffer[1:].reshape(x.shape)  # rows start 4 bytes later
    shifted[:] = x
    assert fastce.profile(shifted, y).to_dict() == ref
    wide = np.zeros((x.shape[0], 8), dtype=np.float32)
    wide[:, :5] = x
    assert fastce.profile(wide[:, :5], y).to_dict() == ref
    assert fastce.profile(np.asfortranarray(x), y.astype(np.int32)).to_dict() == ref


# ------------------------------------------------------------- 6. bad input

def test_bad_inputs(tmp_path):
    n, c = 100, 4
    z, y = make_multiclass(n, c, np.float64, seed=70)
    P, _ = softmax64(z)
    with pytest.raises(ValueError, match="rows"):
        fastce.profile(z, y[:-1])
    with pytest.raises(ValueError, match="labels"):
        ProfileAccumulator().update(z, y[:-1])
    for bad_label in (4, -1):
        yb = y.copy()
        yb[37] = bad_label
        with pytest.raises(ValueError, match=r"labels.*row 37\b"):
            fastce.profile(z, yb, chunk_size=10)
        with pytest.raises(ValueError, match=r"labels.*row 37\b"):
            fastce.profile(P, yb, kind="probs", chunk_size=10)
    yb = (y % 2).copy()
    yb[37] = 2
    with pytest.raises(ValueError, match=r"labels.*row 37\b"):
        fastce.profile(z[:, 0], yb, task="binary", chunk_size=10)
    Yb = np.zeros((n, 3), dtype=np.int64)
    Yb[37, 1] = 2
    with pytest.raises(ValueError, match=r"labels.*row 37\b"):
        fastce.profile(z[:, :3], Yb, task="multilabel", chunk_size=10)
    for bad_value in (np.nan, 1.5, -0.25):
        Pb = P.copy()
        Pb[37, 2] = bad_value
        with pytest.raises(ValueError, match=r"predictions.*row 37, column 2\b"):
            fastce.profile(Pb, y, kind="probs", chunk_size=10)
        with pytest.raises(ValueError, match=r"predictions.*row 37\b"):
            fastce.profile(Pb[:, 2], y % 2, kind="probs", task="binary", chunk_size=10)
        with pytest.raises(ValueError, match=r"predictions.*row 37, column 2\b"):
            fastce.profile(Pb[:, :3], np.zeros((n, 3), dtype=np.int64), kind="probs",
                           task="multilabel", chunk_size=10)
    with pytest.raises(ValueError, match="2-D"):
        fastce.profile(z[:, 0], y)
    with pytest.raises(ValueError):
        fastce.profile(z[:, 0], y % 2, task="multilabel")
    with pytest.raises(ValueError):
        fastce.profile(z, y % 2, task="binary")
    missing = str(tmp_path / "missing.npy")
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        fastce.profile(missing, y)
    np.save(tmp_path / "z.npy", z)
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        fastce.profile(str(tmp_path / "z.npy"), missing)
    for bad_weight in (-1.0, np.nan, np.inf):
        w = np.ones(n)
        w[37] = bad_weight
        with pytest.raises(ValueError, match=r"sample_weight.*row 37\b"):
            fastce.profile(z, y, sample_weight=w, chunk_size=10)
        with pytest.raises(ValueError, match=r"sample_weight.*row 37\b"):
            fastce.profile(z[:, :3], np.zeros((n, 3), dtype=np.int64), task="multilabel",
                           sample_weight=w, chunk_size=10)
    with pytest.raises(ValueError, match="sample_weight"):
        fastce.profile(z, y, sample_weight=np.ones(n - 1))
    with pytest.raises(ValueError, match="kind"):
        fastce.profile(z, y, kind="x")
    with pytest.raises(ValueError, match="task"):
        fastce.profile(z, y, task="x")
    with pytest.raises(ValueError, match="n_bins"):
        fastce.profile(z, y, n_bins=0)
    with pytest.raises(ValueError, match="chunk_size"):
        fastce.profile(z, y, chunk_size=0)
    with pytest.raises(ValueError, match="top_k"):
        fastce.profile(z, y, top_k=-1)
    with pytest.raises(ValueError, match="kind"):
        ProfileAccumulator(kind="x")
    with pytest.raises(ValueError, match="task"):
        ProfileAccumulator(task="x")
    with pytest.raises(ValueError, match="n_bins"):
        ProfileAccumulator(n_bins=0)
    with pytest.raises(TypeError, match="labels"):
        fastce.profile(z, y.astype(np.float64))
    with pytest.raises(ValueError, match="class_names"):
        fastce.profile(z, y, class_names=["a", "b"])


def test_failed_update_leaves_accumulator_unchanged():
    n, c = 200, 4
    z, y = make_multiclass(n, c, np.float64, seed=71)
    w = np.ones(n)
    ref = ProfileAccumulator().update(z[:100], y[:100], sample_weight=w[:100]).report()
    acc = ProfileAccumulator().update(z[:100], y[:100], sample_weight=w[:100])
    yb = y.copy()
    yb[150] = 9
    with pytest.raises(ValueError, match="row 150"):
        acc.update(z[100:], yb[100:], sample_weight=w[100:])
    assert acc.report().to_dict() == ref.to_dict()
    wb = w.copy()
    wb[150] = -1.0
    with pytest.raises(ValueError, match="row 150"):
        acc.update(z[100:], y[100:], sample_weight=wb[100:])
    assert acc.report().to_dict() == ref.to_dict()


# ------------------------------------------------------------- 7. out of core

_WRITE = textwrap.dedent("""
    import sys, numpy as np
    path, label_path, n, c = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, c))
    labels = np.empty(n, dtype=np.int64)
    rng = np.random.default_rng(2024)
    step, correct = 100_000, 0
    for s in range(0, n, step):
        e = min(s + step, n)
        z = rng.standard_normal((e - s, c), dtype=np.float32)
        truth = rng.integers(0, c, e - s)
        z[np.arange(e - s), truth] += 5.0
        y = truth.copy()
        flip = rng.random(e - s) < 0.01
        y[flip] = rng.integers(0, c, int(flip.sum()))
        out[s:e] = z
        labels[s:e] = y
        correct += int(np.count_nonzero(np.argmax(z, axis=1) == y))
    out.flush()
    del out
    np.save(label_path, labels)
    print(correct)
""")

_PROFILE = textwrap.dedent("""
    import json, resource, sys, threading, time
    import numpy as np
    import fastce

    def rss_anon_kb():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])

    fastce.profile(np.zeros((10, 3), np.float32), np.zeros(10, np.int64))  # warm up
    baseline = rss_anon_kb()
    peak, done = [baseline], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_anon_kb())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    report = fastce.profile(sys.argv[1], sys.argv[2], label_issues=True, progress=False)
    seconds = time.perf_counter() - t0
    done.set()
    sampler.join()
    d = report.to_dict()
    print(json.dumps({"baseline_kb": baseline, "peak_anon_kb": peak[0],
                      "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "seconds": seconds, "n_samples": d["n_samples"],
                      "accuracy": d["accuracy"], "n_issues": len(d["label_issues"]["index"])}))
""")


def test_out_of_core_profile_memory(tmp_path):
    n, c = 2_500_000, 100
    if shutil.disk_usage(tmp_path).free < 3 * n * c * 4:
        pytest.skip(f"needs about {3 * n * c * 4 >> 30} GB free in {tmp_path} for a 1 GB file")
    path, label_path = str(tmp_path / "logits.npy"), str(tmp_path / "labels.npy")
    env = dict(os.environ)
    written = subprocess.run([sys.executable, "-c", _WRITE, path, label_path, str(n), str(c)],
                             capture_output=True, text=True, env=env, timeout=300)
    assert written.returncode == 0, written.stderr
    n_correct = int(written.stdout.strip())
    file_kb = os.path.getsize(path) / 1024
    assert file_kb > 0.9 * 1024 * 1024
    run = subprocess.run([sys.executable, "-c", _PROFILE, path, label_path],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    print(result)
    assert result["n_samples"] == n
    assert result["accuracy"] == n_correct / n
    assert 0 < result["n_issues"] < 0.05 * n
    # anonymous memory (not the mapped file's pages) stays well below the file size
    assert result["peak_anon_kb"] - result["baseline_kb"] < 0.5 * file_kb, result


# =============================================================================
# Exact sums (the superaccumulator of _profile.h) (formerly test_exact_sums.py)
# The profile's exact sums (_profile.h's superaccumulator) against math.fsum.
#
# math.fsum returns the correctly rounded sum of its inputs, whatever their order.
# The superaccumulator keeps the sum exactly and rounds it once, so it must give
# the same float64, and the same integer state for every order and every split
# into merged parts: that is what makes a profile bitwise reproducible.
# =============================================================================

_profile = kernels("_profile")


def exact(values):
    return _profile.exact_sum(np.asarray(values, dtype=np.float64))


def value(state):
    return float(_profile.exact_values(state[None])[0])


finite_doubles = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(finite_doubles, max_size=60))
def test_equals_fsum_for_any_finite_doubles(values):
    try:
        expected = math.fsum(values)
    except OverflowError:  # the exact sum is finite, but fsum's intermediates overflow
        return
    assert value(exact(values)) == expected


@pytest.mark.parametrize("case", ["cancellation", "magnitudes", "subnormal", "many"])
def test_equals_fsum_on_hard_cases(case):
    rng = np.random.default_rng(3)
    if case == "cancellation":
        x = rng.standard_normal(1000) * 1e16
        values = np.concatenate([x, -x, [1.0, 2.0**-60]])
    elif case == "magnitudes":
        values = rng.standard_normal(2000) * 10.0 ** rng.integers(-300, 300, 2000)
    elif case == "subnormal":
        values = rng.standard_normal(500) * 1e-310
    else:
        values = rng.random(1_000_000)
    rng.shuffle(values)
    assert value(exact(values)) == math.fsum(values)


def test_state_is_the_same_for_every_order_and_split():
    rng = np.random.default_rng(4)
    values = rng.standard_normal(10_000) * 10.0 ** rng.integers(-20, 20, 10_000)
    whole = exact(values)
    assert np.array_equal(exact(values[::-1]), whole)
    for cut in (1, 777, 5000, 9999):
        merged = _profile.normalize(exact(values[:cut]) + exact(values[cut:]))
        assert np.array_equal(merged, whole)


def test_special_values():
    assert math.isnan(value(exact([1.0, np.nan])))
    assert value(exact([np.inf, 1.0])) == np.inf
    assert value(exact([-np.inf, 1.0])) == -np.inf
    assert math.isnan(value(exact([np.inf, -np.inf])))
    assert value(exact([])) == 0.0
    # The exact sum of huge terms can be finite where a running sum overflows.
    assert value(exact([1.7e308, 1.7e308, -1.7e308])) == 1.7e308
