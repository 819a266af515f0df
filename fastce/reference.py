"""Pure-NumPy reference for fastce: the contract (SPEC.md) in executable form.

Every function here has the signature of its compiled counterpart in ``fastce``.
It is the oracle the kernels are tested against and the baseline they are
benchmarked against, and it is written for clarity, not speed:

* Inputs are cast up to float64, and every formula is evaluated there in its
  numerically stable form: max-shifted log-sum-exp, softplus through
  exp(-|t|), and the xlogy rule that a zero factor gives exactly 0, even
  against inf or NaN. There are no eps fudges.
* Per-sample losses, gradients and outputs are then cast to the compute dtype:
  float32 and float64 as given, float16 -> float32, integer and bool -> float64.
  A scalar loss (reduction "mean" or "sum") is a numpy.float64.
* ``return_grad=True`` returns ``(loss, grad)``. ``grad`` is the derivative of the
  returned loss with respect to the first argument (for ``reduction="none"``, of
  the sum of the per-sample losses).
* ``grad_out`` and ``out``, when given, receive the result via np.copyto and are
  returned. ``n_threads`` is accepted and ignored.
* A "mean" over nothing (empty batch, every target ignored, zero total weight)
  is 0.0 with a zero gradient. PyTorch gives NaN.

Validation is light. The compiled package does the full checking.
"""

import functools

import numpy as np

__all__ = [
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy",
    "logistic_loss",
    "cross_entropy",
    "log_softmax",
    "softmax",
    "logsumexp",
    "sigmoid",
    "log_sigmoid",
]

_REDUCTIONS = ("mean", "sum", "none")


# --------------------------------------------------------------------------
# Plumbing: dtypes, reductions, outputs
# --------------------------------------------------------------------------

def _quiet(function):
    """Run `function` with NumPy's floating-point warnings off: inf and NaN are legitimate values here."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with np.errstate(all="ignore"):
            return function(*args, **kwargs)
    return wrapper


def _compute_dtype(array, name):
    """float32/float64 as given, float16 -> float32, integer/bool -> float64; anything else is a TypeError."""
    dtype = array.dtype
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype in (np.float32, np.float64):
        return dtype
    if dtype == np.bool_ or np.issubdtype(dtype, np.integer):
        return np.dtype(np.float64)
    raise TypeError(f"{name}: unsupported dtype {dtype}")


def _check_reduction(reduction):
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _times(factor, value):
    """factor * value, where a zero factor gives exactly 0 even if value is inf or NaN (as 0·log 0 = 0)."""
    return np.where(factor == 0, 0.0, factor * value)


def _deliver(result, dtype, out, name):
    """Cast a float64 array to the compute dtype in C order; when `out` is given, copy into it and return it."""
    result = np.asarray(result, dtype=dtype, order="C")
    if out is None:
        return result
    if out.shape != result.shape or out.dtype != dtype:
        raise ValueError(f"{name} must have shape {result.shape} and dtype {dtype}, "
                         f"got shape {out.shape} and dtype {out.dtype}")
    np.copyto(out, result)
    return out


def _reduce(loss, grad, reduction, count, dtype, grad_out):
    """Apply `reduction` to the float64 per-sample `loss` and its gradient `grad` (None: not asked for).

    "mean" divides both by `count`. A mean over nothing (count 0) is 0.0 with a zero gradient.
    """
    if reduction == "none":
        result = np.asarray(loss, dtype=dtype)
    elif reduction == "sum":
        result = np.float64(np.sum(loss))
    elif count == 0:
        result = np.float64(0.0)
        grad = None if grad is None else np.zeros_like(grad)
    else:
        result = np.float64(np.sum(loss) / count)
        grad = None if grad is None else grad / count
    if grad is None:
        return result
    return result, _deliver(grad, dtype, grad_out, "grad_out")


# --------------------------------------------------------------------------
# Scalar math, elementwise
# --------------------------------------------------------------------------

def _softplus(t):
    """softplus(t) = log(1 + exp(t)) = max(t, 0) + log1p(exp(-|t|)).

    exp never overflows, and log1p keeps full relative accuracy where the result is tiny (t << 0).
    softplus(+inf) = inf, softplus(-inf) = 0, NaN propagates.
    """
    return np.maximum(t, 0.0) + np.log1p(np.exp(-np.abs(t)))


def _sigmoid(t):
    """σ(t) = 1 / (1 + exp(-t)), through e = exp(-|t|) <= 1: 1/(1+e) for t >= 0 and e/(1+e) for t < 0."""
    e = np.exp(-np.abs(t))
    return np.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# --------------------------------------------------------------------------
# Row math: softmax along the last axis
# --------------------------------------------------------------------------

def _softmax_parts(logits):
    """The pieces of a stable softmax along the last axis, all with keepdims.

    Returns (row_max, shifted, exp_shifted, rest, top):
      shifted = logits - row_max <= 0 and exp_shifted = exp(shifted);
      top is the index of one row maximum, whose exp_shifted is exactly 1;
      rest is the sum of exp_shifted over every other class.
    So sum(exp(shifted)) = 1 + rest, log_softmax = shifted - log1p(rest) and
    logsumexp = row_max + log1p(rest). log1p(rest) keeps full relative accuracy when one
    class dominates (a loss near 0), where log(1 + rest) would round to 0.
    A row of all -inf has row_max = -inf and shifted = NaN: it has no distribution.
    """
    n_classes = logits.shape[-1]
    row_max = np.max(logits, axis=-1, keepdims=True, initial=-np.inf)
    shifted = logits - row_max
    exp_shifted = np.exp(shifted)
    if n_classes > 0:
        top = np.argmax(logits, axis=-1, keepdims=True)
    else:
        top = np.zeros(logits.shape[:-1] + (1,), dtype=np.intp)
    is_top = np.arange(n_classes) == top
    rest = np.sum(np.where(is_top, 0.0, exp_shifted), axis=-1, keepdims=True)
    return row_max, shifted, exp_shifted, rest, top


# --------------------------------------------------------------------------
# Binary family (elementwise, any shape)
# --------------------------------------------------------------------------

@_quiet
def binary_cross_entropy_with_logits(logits, target, *, weight=None, pos_weight=None,
                                     reduction="mean", return_grad=False, grad_out=None,
                                     n_threads=None):
    """Binary cross-entropy from logits z and targets y in [0, 1], elementwise.

    loss = (1 - y)·softplus(z) + pw·y·softplus(-z)
    grad = (1 - y)·σ(z) - pw·y·σ(-z)
    both times `weight` (broadcast to the logits' shape); `pos_weight` pw broadcasts along the
    last axis. A term whose factor (1 - y, pw·y, or weight) is 0 contributes exactly 0, so a zero
    weight silences even a NaN logit. "mean" divides by logits.size, as torch does.
    This is torch's (1 - y)·z + (1 + (pw - 1)·y)·softplus(-z) without its cancellation.
    """
    _check_reduction(reduction)
    logits = np.asarray(logits)
    dtype = _compute_dtype(logits, "logits")
    z = logits.astype(np.float64)
    y = np.asarray(target, dtype=np.float64)
    if y.shape != z.shape:
        raise ValueError(f"target must have the logits' shape {z.shape}, got {y.shape}")
    pw = 1.0 if pos_weight is None else np.broadcast_to(np.asarray(pos_weight, np.float64), z.shape)
    w = 1.0 if weight is None else np.broadcast_to(np.asarray(weight, np.float64), z.shape)

    negative_factor = 1.0 - y
    positive_factor = pw * y
    loss = _times(w, _times(negative_factor, _softplus(z)) + _times(positive_factor, _softplus(-z)))
    grad = None
    if return_grad:
        grad = _times(w, _times(negative_factor, _sigmoid(z)) - _times(positive_factor, _sigmoid(-z)))
    return _reduce(loss, grad, reduction, z.size, dtype, grad_out)


@_quiet
def binary_cross_entropy(probs, target, *, weight=None, reduction="mean", return_grad=False,
                         grad_out=None, n_threads=None):
    """Binary cross-entropy from probabilities p in [0, 1] and targets y in [0, 1], elementwise.

    loss = -(y·max(log p, -100) + (1 - y)·max(log(1 - p), -100))
    grad = (p - y) / max(p·(1 - p), 1e-12)
    both times `weight`. The clamps (torch's) keep the loss finite at p in {0, 1}; a term whose
    target factor is 0 contributes exactly 0. log(1 - p) is evaluated as log1p(-p).
    "mean" divides by probs.size.
    """
    _check_reduction(reduction)
    probs = np.asarray(probs)
    dtype = _compute_dtype(probs, "probs")
    p = probs.astype(np.float64)
    if not np.all((p >= 0) & (p <= 1)):
        raise ValueError("probs must lie in [0, 1] (and not be NaN)")
    y = np.asarray(target, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"target must have the probs' shape {p.shape}, got {y.shape}")
    w = 1.0 if weight is None else np.broadcast_to(np.asarray(weight, np.float64), p.shape)

    log_p = np.maximum(np.log(p), -100.0)
    log_one_minus_p = np.maximum(np.log1p(-p), -100.0)
    loss = _times(w, -(_times(y, log_p) + _times(1.0 - y, log_one_minus_p)))
    grad = None
    if return_grad:
        grad = _times(w, (p - y) / np.maximum(p * (1.0 - p), 1e-12))
    return _reduce(loss, grad, reduction, p.size, dtype, grad_out)


@_quiet
def logistic_loss(scores, target, *, weight=None, reduction="mean", return_grad=False,
                  grad_out=None, n_threads=None):
    """Logistic loss for scores s and labels y in {-1, +1}, elementwise.

    loss = log(1 + exp(-y·s)) = softplus(-y·s)
    grad = -y·σ(-y·s)
    both times `weight` (a zero weight gives exactly 0). "mean" divides by scores.size.
    """
    _check_reduction(reduction)
    scores = np.asarray(scores)
    dtype = _compute_dtype(scores, "scores")
    s = scores.astype(np.float64)
    y = np.asarray(target, dtype=np.float64)
    if y.shape != s.shape:
        raise ValueError(f"target must have the scores' shape {s.shape}, got {y.shape}")
    if not np.all((y == 1) | (y == -1)):
        raise ValueError("target: logistic_loss labels must be -1 or +1")
    w = 1.0 if weight is None else np.broadcast_to(np.asarray(weight, np.float64), s.shape)

    margin = y * s
    loss = _times(w, _softplus(-margin))
    grad = None
    if return_grad:
        grad = _times(w, -y * _sigmoid(-margin))
    return _reduce(loss, grad, reduction, s.size, dtype, grad_out)


# --------------------------------------------------------------------------
# Softmax family (classes along `axis`)
# --------------------------------------------------------------------------

@_quiet
def cross_entropy(logits, target, *, weight=None, ignore_index=-100, label_smoothing=0.0,
                  reduction="mean", axis=-1, return_grad=False, grad_out=None, n_threads=None):
    """Softmax cross-entropy along `axis`, with torch.nn.functional.cross_entropy's semantics.

    Notation: p = softmax(z), lse = logsumexp(z), ε = label_smoothing, C classes,
    class weights w (default 1), W = Σ_c w_c, s = the reduction's scale.

    Integer target y (class indices; the logits' shape minus `axis`):
        loss = (1-ε)·w_y·(lse - z_y) + (ε/C)·Σ_c w_c·(lse - z_c)
        grad_c = s·[(1-ε)·w_y·(p_c - [c=y]) + (ε/C)·(W·p_c - w_c)]
      A sample with y == ignore_index contributes exactly 0 to the loss and the gradient,
      whatever its logits hold. "mean" divides by Σ w_y over the other samples (torch's).
    Float target y (class probabilities; the logits' shape):
        y' = (1-ε)·y + ε/C,  loss = -Σ_c w_c·y'_c·log p_c,  grad_c = s·[(Σ_k w_k·y'_k)·p_c - w_c·y'_c]
      "mean" divides by the number of samples.

    -inf logits are masks: p_c = 0. The loss is +inf only when target mass (y, or smoothing
    with w_c > 0) falls on a masked class. A term whose factor is 0 contributes exactly 0, so
    a zero class weight or ε = 0 silences a masked class (torch gives NaN for 0·inf there).
    A non-ignored row of all -inf has no distribution: its loss is NaN.
    A "mean" over zero total weight is 0.0 with a zero gradient (torch gives NaN).
    """
    _check_reduction(reduction)
    logits = np.asarray(logits)
    target = np.asarray(target)
    dtype = _compute_dtype(logits, "logits")
    z = np.moveaxis(logits.astype(np.float64), axis, -1)
    n_classes = z.shape[-1]
    if n_classes == 0:
        raise ValueError("logits: the class axis is empty")
    w = np.ones(n_classes) if weight is None else np.asarray(weight, dtype=np.float64)
    if w.shape != (n_classes,):
        raise ValueError(f"weight must have shape ({n_classes},), got {w.shape}")
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must lie in [0, 1], got {label_smoothing!r}")

    _, shifted, exp_shifted, rest, top = _softmax_parts(z)
    log_probs = shifted - np.log1p(rest)
    probs = exp_shifted / (1.0 + rest)

    if np.issubdtype(target.dtype, np.integer):
        loss, grad, count = _cross_entropy_class_indices(
            log_probs, probs, rest, top, target, w, eps, ignore_index, return_grad)
    else:
        if target.shape != logits.shape:
            raise ValueError(f"target: probability targets must have the logits' shape "
                             f"{logits.shape}, got {target.shape}")
        y = np.moveaxis(target.astype(np.float64), axis, -1)
        if not np.all(np.isfinite(y) & (y >= 0)):
            raise ValueError("target: probability targets must be finite and >= 0")
        loss, grad, count = _cross_entropy_probabilities(log_probs, probs, y, w, eps, return_grad)

    if grad is not None:
        grad = np.moveaxis(grad, -1, axis)
    return _reduce(loss, grad, reduction, count, dtype, grad_out)


def _cross_entropy_class_indices(log_probs, probs, rest, top, target, w, eps, ignore_index,
                                 want_grad):
    """Per-sample loss, gradient (classes last, or None) and the mean's denominator Σ w_y."""
    n_classes = log_probs.shape[-1]
    if target.shape != log_probs.shape[:-1]:
        raise ValueError(f"target: class indices must have the logits' shape without the class "
                         f"axis {log_probs.shape[:-1]}, got {target.shape}")
    ignored = (target == ignore_index)[..., None]
    out_of_range = ~ignored[..., 0] & ((target < 0) | (target >= n_classes))
    if np.any(out_of_range):
        position = tuple(int(i) for i in np.argwhere(out_of_range)[0])
        raise ValueError(f"target: class index {target[position]} at position {position} "
                         f"is out of range [0, {n_classes})")
    y = np.where(ignored, 0, target[..., None]).astype(np.intp)  # any valid class; masked below
    w_y = w[y]
    nll_factor = (1.0 - eps) * w_y
    smoothing_factor = eps / n_classes

    nll = -np.take_along_axis(log_probs, y, axis=-1)                        # lse - z_y
    smoothing = np.sum(_times(w, -log_probs), axis=-1, keepdims=True)       # Σ_c w_c·(lse - z_c)
    loss = _times(nll_factor, nll) + _times(smoothing_factor, smoothing)
    loss = np.where(ignored, 0.0, loss)[..., 0]
    count = np.sum(np.where(ignored, 0.0, w_y))

    grad = None
    if want_grad:
        # p_c - [c = y]. At c = y = top, p_y = 1/(1 + rest) and p_y - 1 = -rest/(1 + rest):
        # subtracting 1 from p_y ≈ 1 would lose exactly the digits that matter.
        p_y = np.take_along_axis(probs, y, axis=-1)
        probs_minus_onehot = probs.copy()
        np.put_along_axis(probs_minus_onehot, y,
                          np.where(y == top, -rest / (1.0 + rest), p_y - 1.0), axis=-1)
        grad = (_times(nll_factor, probs_minus_onehot)
                + _times(smoothing_factor, _times(w.sum(), probs) - w))
        grad = np.where(ignored, 0.0, grad)
    return loss, grad, count


def _cross_entropy_probabilities(log_probs, probs, y, w, eps, want_grad):
    """Per-sample loss, gradient (classes last, or None) and the mean's denominator (the sample count)."""
    n_classes = log_probs.shape[-1]
    smoothed = (1.0 - eps) * y + eps / n_classes
    coef = w * smoothed                                                     # w_c·y'_c
    loss = np.sum(_times(coef, -log_probs), axis=-1)
    grad = None
    if want_grad:
        grad = _times(np.sum(coef, axis=-1, keepdims=True), probs) - coef
    return loss, grad, loss.size


@_quiet
def log_softmax(x, *, axis=-1, out=None, n_threads=None):
    """log_softmax(x)_c = x_c - logsumexp(x) = (x_c - max x) - log1p(rest), along `axis`.

    -inf entries give -inf; a row of all -inf gives NaN (no distribution).
    """
    x = np.asarray(x)
    dtype = _compute_dtype(x, "x")
    logits = np.moveaxis(x.astype(np.float64), axis, -1)
    _, shifted, _, rest, _ = _softmax_parts(logits)
    return _deliver(np.moveaxis(shifted - np.log1p(rest), -1, axis), dtype, out, "out")


@_quiet
def softmax(x, *, axis=-1, out=None, n_threads=None):
    """softmax(x)_c = exp(x_c - max x) / Σ_k exp(x_k - max x), along `axis`.

    -inf entries give 0; a row of all -inf gives NaN (no distribution).
    """
    x = np.asarray(x)
    dtype = _compute_dtype(x, "x")
    logits = np.moveaxis(x.astype(np.float64), axis, -1)
    _, _, exp_shifted, rest, _ = _softmax_parts(logits)
    return _deliver(np.moveaxis(exp_shifted / (1.0 + rest), -1, axis), dtype, out, "out")


@_quiet
def logsumexp(x, *, axis=-1, n_threads=None):
    """logsumexp(x) = log Σ_c exp(x_c) = max x + log1p(rest), along `axis`.

    Returns x's shape without `axis` (a NumPy scalar of the compute dtype when 0-d).
    A row of all -inf gives -inf, a row containing +inf gives +inf (as scipy), NaN propagates.
    """
    x = np.asarray(x)
    dtype = _compute_dtype(x, "x")
    logits = np.moveaxis(x.astype(np.float64), axis, -1)
    row_max, _, _, rest, _ = _softmax_parts(logits)
    # An infinite row_max is the answer itself; shifting by it would give inf - inf.
    result = np.where(np.isinf(row_max), row_max, row_max + np.log1p(rest))[..., 0]
    return result.astype(dtype)[()]


@_quiet
def sigmoid(x, *, out=None, n_threads=None):
    """σ(x) = 1 / (1 + exp(-x)), through exp(-|x|) so that nothing overflows."""
    x = np.asarray(x)
    dtype = _compute_dtype(x, "x")
    return _deliver(_sigmoid(x.astype(np.float64)), dtype, out, "out")


@_quiet
def log_sigmoid(x, *, out=None, n_threads=None):
    """log σ(x) = -softplus(-x) = min(x, 0) - log1p(exp(-|x|)); accurate for x >> 0 and x << 0."""
    x = np.asarray(x)
    dtype = _compute_dtype(x, "x")
    return _deliver(-_softplus(-x.astype(np.float64)), dtype, out, "out")
