"""Pure-NumPy reference for ``fastce.linear`` (the contract, "Linear models").

Every function has the signature of its compiled counterpart; ``n_threads`` is
accepted and ignored, and so is ``chunk_size`` (after it is checked): the
reference computes the full logits, which is what the compiled kernels avoid.

* The compute dtype is the data's (X, or hidden): float32 or float64. The
  parameters (coef, intercept, weight, bias) and the sample weights are rounded
  to it first, as the compiled functions convert them; then everything is
  evaluated in float64 in its stable form (softplus through exp(-|t|),
  max-shifted log-sum-exp).
* The loss is a numpy.float64 (per-sample losses for ``reduction="none"`` are in
  the compute dtype). Gradients have the dtype of the parameter they belong to
  (coef's, for the linear models); the logistic grad_intercept is a float.
* X may be a dense array (any memory order) or a scipy.sparse matrix, which is
  converted to CSR. SciPy is never imported here: a sparse matrix is recognised
  by its ``tocsr`` method and used through ``@``.

Validation is light but covers what the contract names: y labels, sample
weights (finite and >= 0), shapes, l2 and chunk_size.
"""


import numpy as np

from fastce import reference
from fastce._api.validation import check_int
from fastce.reference import _quiet, _sigmoid, _softmax_parts, _softplus, _times

__all__ = ["logistic_regression_loss", "softmax_regression_loss", "fused_linear_cross_entropy"]


# --------------------------------------------------------------------------
# Plumbing
# --------------------------------------------------------------------------

def _float_dtype(dtype, name):
    """float32 stays float32, float64 stays float64; anything else is a TypeError here."""
    dtype = np.dtype(dtype)
    if dtype in (np.float32, np.float64):
        return dtype
    raise TypeError(f"{name} must be float32 or float64, got dtype {dtype}")


def _design_matrix(X):
    """(X as float64 dense ndarray or float64 CSR matrix, compute dtype)."""
    if hasattr(X, "tocsr"):  # scipy.sparse, any format
        csr = X.tocsr()
        if csr.ndim != 2:
            raise ValueError(f"X must be 2-D, got shape {csr.shape}")
        dtype = _float_dtype(csr.dtype, "X")
        return csr.astype(np.float64), dtype
    X = np.asarray(X)
    dtype = _float_dtype(X.dtype, "X")
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, got shape {X.shape}")
    return X.astype(np.float64), dtype


def _rounded(value, dtype, name, shape=None):
    """`value` rounded to the compute dtype, returned as float64 (optionally shape-checked)."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{name} has unsupported dtype {array.dtype}")
    if shape is not None and array.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {array.shape}")
    return array.astype(dtype).astype(np.float64)


def _sample_weight(sample_weight, n_samples, dtype):
    if sample_weight is None:
        return np.ones(n_samples)
    sw = np.asarray(sample_weight)
    if sw.dtype.kind not in "biuf":
        raise TypeError(f"sample_weight has unsupported dtype {sw.dtype}")
    if sw.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},), got {sw.shape}")
    sw = sw.astype(np.float64)
    bad = ~(np.isfinite(sw) & (sw >= 0))
    if np.any(bad):
        position = int(np.flatnonzero(bad)[0])
        raise ValueError(f"sample_weight must be finite and >= 0; got {sw[position]!r} "
                         f"at index {position}")
    return sw.astype(dtype).astype(np.float64)


def _l2(l2):
    value = float(l2)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"l2 must be finite and >= 0, got {l2!r}")
    return value


def _weighted_mean(sw, values, total):
    """Σ sw·values / total along axis 0; 0 when total is 0. A zero weight gives exactly 0."""
    if total == 0:
        return np.zeros(values.shape[1:])
    factor = sw.reshape((-1,) + (1,) * (values.ndim - 1))
    return np.sum(_times(factor, values), axis=0) / total


# --------------------------------------------------------------------------
# Logistic regression
# --------------------------------------------------------------------------

@_quiet
def logistic_regression_loss(X, y, coef, intercept=0.0, *, sample_weight=None, l2=0.0,
                             return_grad=False, n_threads=None):
    """sklearn's binary LogisticRegression objective, labels y in {0, 1}.

    z = X·coef + intercept
    loss = Σ sw·ℓ / Σ sw + (l2/2)·‖coef‖²,  ℓ = softplus(z) − y·z = (1 − y)·softplus(z) + y·softplus(−z)
    grad_coef = Xᵀ(sw·(σ(z) − y)) / Σ sw + l2·coef,   grad_intercept = Σ sw·(σ(z) − y) / Σ sw
    σ(z) − y is (1 − y)·σ(z) − y·σ(−z): no cancellation. With Σ sw = 0 the data terms are 0.
    l2 = 1/(C·Σ sw) gives sklearn's LogisticRegression(C=C).
    """
    X, dtype = _design_matrix(X)
    n_samples, n_features = X.shape
    coef = np.asarray(coef)
    grad_dtype = _float_dtype(coef.dtype, "coef") if coef.dtype.kind == "f" else np.dtype(np.float64)
    w = _rounded(coef, dtype, "coef", (n_features,))
    b = float(_rounded(intercept, dtype, "intercept", ()))
    labels = np.asarray(y)
    if labels.shape != (n_samples,):
        raise ValueError(f"y must have shape ({n_samples},), got {labels.shape}")
    if labels.dtype.kind not in "biuf" or not np.all((labels == 0) | (labels == 1)):
        raise ValueError("y must contain only 0 and 1 (binary labels)")
    labels = labels.astype(np.float64)
    sw = _sample_weight(sample_weight, n_samples, dtype)
    l2 = _l2(l2)
    total = float(np.sum(sw))

    z = np.asarray(X @ w).reshape(n_samples) + b
    per_sample = _times(1.0 - labels, _softplus(z)) + _times(labels, _softplus(-z))
    loss = np.float64(_weighted_mean(sw, per_sample, total) + 0.5 * l2 * np.dot(w, w))
    if not return_grad:
        return loss
    residual = _times(1.0 - labels, _sigmoid(z)) - _times(labels, _sigmoid(-z))
    weighted = np.zeros(n_samples) if total == 0 else _times(sw, residual) / total
    grad_coef = np.asarray(X.T @ weighted).reshape(n_features) + l2 * w
    grad_intercept = np.float64(np.sum(weighted))
    return loss, grad_coef.astype(grad_dtype), grad_intercept


# --------------------------------------------------------------------------
# Softmax (multinomial) regression
# --------------------------------------------------------------------------

@_quiet
def softmax_regression_loss(X, y, coef, intercept=None, *, sample_weight=None, l2=0.0,
                            return_grad=False, n_threads=None):
    """sklearn's multinomial LogisticRegression objective; coef (n_classes, n_features).

    Z = X·coefᵀ + intercept,  CE_i = logsumexp(Z_i) − Z_i,y_i
    loss = Σ sw·CE / Σ sw + (l2/2)·‖coef‖_F²   (the intercept is not penalised)
    G = sw·(softmax(Z) − onehot(y)) / Σ sw,  grad_coef = Gᵀ·X + l2·coef,  grad_intercept = Σ_i G_i
    grad_intercept is None when intercept is None.
    """
    X, dtype = _design_matrix(X)
    n_samples, n_features = X.shape
    coef = np.asarray(coef)
    grad_dtype = _float_dtype(coef.dtype, "coef") if coef.dtype.kind == "f" else np.dtype(np.float64)
    if coef.ndim != 2 or coef.shape[1] != n_features or coef.shape[0] < 1:
        raise ValueError(f"coef must have shape (n_classes, {n_features}), got {coef.shape}")
    n_classes = coef.shape[0]
    W = _rounded(coef, dtype, "coef")
    b = None if intercept is None else _rounded(intercept, dtype, "intercept", (n_classes,))
    labels = np.asarray(y)
    if labels.shape != (n_samples,):
        raise ValueError(f"y must have shape ({n_samples},), got {labels.shape}")
    if labels.dtype.kind not in "iu":
        raise ValueError(f"y must hold integer class indices, got dtype {labels.dtype}")
    out_of_range = (labels < 0) | (labels >= n_classes)
    if np.any(out_of_range):
        position = int(np.flatnonzero(out_of_range)[0])
        raise ValueError(f"y: class index {labels[position]} at position {position} "
                         f"is out of range [0, {n_classes})")
    labels = labels.astype(np.intp)
    sw = _sample_weight(sample_weight, n_samples, dtype)
    l2 = _l2(l2)
    total = float(np.sum(sw))

    Z = np.asarray(X @ W.T).reshape(n_samples, n_classes)
    if b is not None:
        Z = Z + b
    _, shifted, exp_shifted, rest, top = _softmax_parts(Z)
    log_probs = shifted - np.log1p(rest)
    ce = -np.take_along_axis(log_probs, labels[:, None], axis=1)[:, 0]
    loss = np.float64(_weighted_mean(sw, ce, total) + 0.5 * l2 * np.sum(W * W))
    if not return_grad:
        return loss
    # p_y − 1 for the top class is −rest/(1 + rest), without cancelling against 1.
    probs = exp_shifted / (1.0 + rest)
    y_col = labels[:, None]
    p_y = np.take_along_axis(probs, y_col, axis=1)
    residual = probs.copy()
    np.put_along_axis(residual, y_col, np.where(y_col == top, -rest / (1.0 + rest), p_y - 1.0),
                      axis=1)
    G = np.zeros_like(residual) if total == 0 else _times(sw[:, None], residual) / total
    grad_coef = np.asarray(X.T @ G).reshape(n_features, n_classes).T + l2 * W
    grad_intercept = None if b is None else np.sum(G, axis=0).astype(grad_dtype)
    return loss, np.ascontiguousarray(grad_coef.astype(grad_dtype)), grad_intercept


# --------------------------------------------------------------------------
# Fused linear + cross-entropy
# --------------------------------------------------------------------------

@_quiet
def fused_linear_cross_entropy(hidden, weight, target, *, bias=None, ignore_index=-100,
                               label_smoothing=0.0, reduction="mean", chunk_size=None,
                               return_grad=False, n_threads=None):
    """cross_entropy(hidden @ weightᵀ + bias, target) with torch's semantics.

    The reference forms the full (N, V) logits in float64 and reuses
    fastce.reference.cross_entropy, whose gradient G (with respect to the logits)
    gives grad_hidden = G·weight, grad_weight = Gᵀ·hidden and grad_bias = Σ_i G_i.
    "mean" averages over non-ignored samples; all ignored gives 0.0 and zero grads.
    reduction "none" returns per-sample losses (N,) and the gradients of their sum.
    """
    reference._check_reduction(reduction)
    if chunk_size is not None:  # the same rule as fastce.linear's
        check_int(chunk_size, "chunk_size", "a positive int", lowest=1)
    hidden = np.asarray(hidden)
    weight = np.asarray(weight)
    dtype = _float_dtype(hidden.dtype, "hidden")
    _float_dtype(weight.dtype, "weight")
    if hidden.ndim != 2:
        raise ValueError(f"hidden must be 2-D (N, H), got shape {hidden.shape}")
    n_samples, n_hidden = hidden.shape
    if weight.ndim != 2 or weight.shape[1] != n_hidden:
        raise ValueError(f"weight must have shape (V, {n_hidden}), got {weight.shape}")
    n_classes = weight.shape[0]
    target = np.asarray(target)
    if target.shape != (n_samples,):
        raise ValueError(f"target must have shape ({n_samples},), got {target.shape}")
    if target.dtype.kind not in "iu":
        raise ValueError(f"target must hold integer class indices, got dtype {target.dtype}")
    h = hidden.astype(np.float64)
    Wt = _rounded(weight, dtype, "weight")
    logits = h @ Wt.T
    if bias is not None:
        bias = np.asarray(bias)
        _float_dtype(bias.dtype, "bias")
        logits = logits + _rounded(bias, dtype, "bias", (n_classes,))

    result = reference.cross_entropy(logits, target, ignore_index=ignore_index,
                                     label_smoothing=label_smoothing, reduction=reduction,
                                     return_grad=return_grad)
    if not return_grad:
        return result.astype(dtype) if reduction == "none" else result
    loss, G = result
    if reduction == "none":
        loss = loss.astype(dtype)
    grads = ((G @ Wt).astype(hidden.dtype), (G.T @ h).astype(weight.dtype))
    if bias is not None:
        grads += (np.sum(G, axis=0).astype(bias.dtype),)
    return (loss,) + grads
