"""fastce.linear: the seeds' logistic-regression objective in one pass over X,
softmax regression, and cross-entropy over hidden @ weight.T without the
N x V logits.

Objectives follow scikit-learn's LogisticRegression: the sample-weighted mean
loss plus (l2 / 2) ||coef||^2, which is ``C`` in sklearn with
l2 = 1 / (C * sum(sample_weight)).
"""
import math

import numpy as np

from fastce._kernels.dispatch import kernels
from fastce._api.layout import int64_labels
from fastce._api.validation import (
    as_array, as_values, check_fraction, check_int, check_real, check_reduction, compute_dtype,
    describe_position,
    finish_reduction, resolve_threads,
)

_linear = kernels("_linear")
_softmax = kernels("_softmax")

__all__ = ["logistic_regression_loss", "softmax_regression_loss", "fused_linear_cross_entropy"]

# Chunks of rows for the BLAS-based losses hold about this many logits (8 MiB
# of float32), and at least _MIN_CHUNK_ROWS rows: each chunk also updates the
# whole V x H weight gradient, which only pays for itself over enough rows.
_CHUNK_LOGITS = 1 << 21
_MIN_CHUNK_ROWS = 256


def _is_sparse(X):
    try:
        import scipy.sparse
    except ImportError:
        return False
    return scipy.sparse.issparse(X)


def _check_compressed(indptr, indices, data, n_major, n_minor, fmt):
    """Validate a compressed (CSR/CSC/BSR) structure in O(nnz), before any
    kernel or scipy routine trusts it: scipy's constructors accept arrays that
    later read or write out of bounds. Returns nnz."""
    for array, name in ((indptr, "indptr"), (indices, "indices")):
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise ValueError(f"X (scipy.sparse {fmt}) has a malformed {name}: expected a "
                             f"1-D integer array, got dtype {array.dtype}, shape {array.shape}")
    if indptr.shape[0] != n_major + 1:
        raise ValueError(f"X (scipy.sparse {fmt}) has indptr of length {indptr.shape[0]}, "
                         f"expected {n_major + 1}")
    if indptr[0] != 0:
        raise ValueError(f"X (scipy.sparse {fmt}) has indptr[0] = {indptr[0]}, expected 0")
    if n_major and np.any(indptr[1:] < indptr[:-1]):
        position = int(np.flatnonzero(indptr[1:] < indptr[:-1])[0]) + 1
        raise ValueError(f"X (scipy.sparse {fmt}) has an indptr that decreases at position "
                         f"{position} ({indptr[position - 1]} -> {indptr[position]})")
    nnz = int(indptr[-1])
    if nnz > indices.shape[0] or nnz > data.shape[0]:
        raise ValueError(f"X (scipy.sparse {fmt}) has indptr[-1] = {nnz}, past the end of "
                         f"indices ({indices.shape[0]}) or data ({data.shape[0]})")
    used = indices[:nnz]
    if nnz and (used.min() < 0 or used.max() >= n_minor):
        position = int(np.flatnonzero((used < 0) | (used >= n_minor))[0])
        raise ValueError(f"X (scipy.sparse {fmt}) holds index {used[position]} at position "
                         f"{position} of indices, outside [0, {n_minor})")
    return nnz


def _checked_csr(X):
    """A validated CSR matrix holding X's values, never X's own arrays when
    they would be changed: the caller's matrix is left as it was (unsorted
    indices and duplicates stay; both are summed correctly as they are)."""
    import scipy.sparse

    fmt = X.format
    if fmt in ("csr", "csc", "bsr"):
        block_rows, block_cols = X.blocksize if fmt == "bsr" else (1, 1)
        n_major, n_minor = (X.shape[1], X.shape[0]) if fmt == "csc" else \
            (X.shape[0] // block_rows, X.shape[1] // block_cols)
        if X.data.ndim != (3 if fmt == "bsr" else 1):
            raise ValueError(f"X (scipy.sparse {fmt}) has data of shape {X.data.shape}")
        nnz = _check_compressed(X.indptr, X.indices, X.data, n_major, n_minor, fmt)
        if fmt == "csr":
            return scipy.sparse.csr_matrix(
                (X.data[:nnz], X.indices[:nnz], X.indptr), shape=X.shape, copy=False)
    elif fmt == "coo":
        row, col = X.coords if hasattr(X, "coords") else (X.row, X.col)
        for index, name, bound in ((row, "row", X.shape[0]), (col, "col", X.shape[1])):
            if index.shape != X.data.shape:
                raise ValueError(f"X (scipy.sparse coo) has {name} of shape {index.shape} "
                                 f"but data of shape {X.data.shape}")
            if index.size and (index.min() < 0 or index.max() >= bound):
                raise ValueError(f"X (scipy.sparse coo) holds a {name} index outside "
                                 f"[0, {bound})")
    # A converted matrix is new: the conversion copies.
    return X.tocsr()


def _design_matrix(X):
    """(dense C-ordered array or None, f_order, csr or None, dtype, shape).

    An F-ordered X is used through its C-ordered transpose (no copy); sparse
    input is validated and taken as CSR; other dense layouts are copied once.
    """
    if _is_sparse(X):
        if len(X.shape) != 2:
            raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {X.shape}")
        csr = _checked_csr(X)
        if csr.dtype.kind not in "fiub":
            raise TypeError(f"X has unsupported dtype {csr.dtype}")
        dtype = compute_dtype(csr.dtype)
        csr = csr.astype(dtype, copy=False)
        return None, False, csr, dtype, csr.shape
    array = as_array(X, "X")
    if array.ndim != 2:
        raise ValueError(f"X must be 2-D (n_samples, n_features), got shape {array.shape}")
    dtype = compute_dtype(array.dtype)
    if array.dtype == dtype and array.flags.f_contiguous and not array.flags.c_contiguous:
        return array.T, True, None, dtype, array.shape
    return as_values(array, "X", dtype), False, None, dtype, array.shape


def _sample_weight(sample_weight, n_samples, dtype):
    if sample_weight is None:
        return None
    weight = as_values(sample_weight, "sample_weight", dtype)
    if weight.shape != (n_samples,):
        raise ValueError(f"sample_weight must have shape ({n_samples},), got {weight.shape}")
    return weight


def _check_l2(l2):
    value = check_real(l2, "l2", "a non-negative float")
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f"l2 must be finite and >= 0, got {l2!r}")
    return value


def _coef_dtype(coef):
    dtype = as_array(coef, "coef").dtype
    return dtype if dtype.kind == "f" and dtype.itemsize >= 4 else np.dtype(np.float64)


def _raise_bad_row(bad, y, weight, n_classes=None):
    label = y[bad].item()
    if weight is not None and not (weight[bad] >= 0 and np.isfinite(weight[bad])):
        raise ValueError(f"sample_weight must be finite and >= 0; got {weight[bad].item()!r} "
                         f"at position ({bad},)")
    allowed = "0 or 1" if n_classes is None else f"a class index in [0, {n_classes})"
    raise ValueError(f"y must be {allowed}; got {label!r} at position ({bad},)")


def logistic_regression_loss(X, y, coef, intercept=0.0, *, sample_weight=None, l2=0.0,
                             return_grad=False, n_threads=None):
    """Binary logistic-regression objective and gradient in ONE pass over X.

    loss = sum_i sw_i l_i / sum_i sw_i + (l2/2) ||coef||^2, l_i = log(1 + e^z_i) - y_i z_i,
    z = X coef + intercept; sklearn's LogisticRegression objective with
    l2 = 1 / (C * sum sw). The gradient is the seed's X^T (sigmoid(z) - y) / n,
    weighted: grad_coef = X^T (sw (sigmoid(z) - y)) / sum sw + l2 coef and
    grad_intercept = sum sw (sigmoid(z) - y) / sum sw.

    Each thread forms z_i and r_i = sigmoid(z_i) - y_i for its rows and adds
    sw_i r_i x_i to the gradient of its chunk of rows right away, so X is read
    once; the chunks' float64 partials are combined in a fixed order
    (deterministic for any n_threads).

    Parameters
    ----------
    X : (n_samples, n_features) float32/float64 array, C- or F-ordered (F order is
        read in place), or a scipy.sparse matrix (CSR; other formats are converted,
        CSR indices are converted to int64). Integers compute in float64.
    y : (n_samples,) labels in {0, 1}; anything else raises ValueError.
    coef : (n_features,); intercept : float.
    sample_weight : (n_samples,) finite, >= 0; default ones. Zero total weight
        leaves only the penalty; a row of weight exactly 0 is removed exactly.
    NaN in X, coef or intercept is data: it gives a NaN loss and NaN gradients
    (no row is skipped). A sparse X is validated (indices, indptr) before it is
    read, and never modified.
    l2 : the penalty's strength, >= 0.

    Returns the loss (float64), or ``(loss, grad_coef, grad_intercept)`` with
    grad_coef in coef's dtype and grad_intercept a float.
    """
    dense, f_order, csr, dtype, (n_samples, n_features) = _design_matrix(X)
    l2 = _check_l2(l2)
    coef_dtype = _coef_dtype(coef)
    coef_array = as_values(coef, "coef", dtype)
    if coef_array.shape != (n_features,):
        raise ValueError(f"coef must have shape ({n_features},), got {coef_array.shape}")
    labels = as_values(y, "y", dtype)
    if labels.shape != (n_samples,):
        raise ValueError(f"y must have shape ({n_samples},), got {labels.shape}")
    weight = _sample_weight(sample_weight, n_samples, dtype)
    intercept = check_real(intercept, "intercept", "a float")
    threads = resolve_threads(n_threads)
    if csr is not None:
        indices = csr.indices.astype(np.int64, copy=False)
        indptr = csr.indptr.astype(np.int64, copy=False)
        data = np.ascontiguousarray(csr.data)
    else:
        indices = indptr = data = None
    loss_sum, weight_sum, grad_sum, residual_sum, bad = _linear.logistic_kernel(
        dense, f_order, data, indices, indptr, n_samples, n_features, labels, weight,
        coef_array, intercept, return_grad, threads)
    if bad >= 0:
        _raise_bad_row(bad, labels, weight)
    coef64 = coef_array.astype(np.float64)
    penalty = 0.5 * l2 * float(coef64 @ coef64)
    loss = np.float64((loss_sum / weight_sum if weight_sum else 0.0) + penalty)
    if not return_grad:
        return loss
    scale = 1.0 / weight_sum if weight_sum else 0.0
    grad_coef = (grad_sum * scale + l2 * coef64).astype(coef_dtype)
    return loss, grad_coef, float(residual_sum * scale)


def _chunk_rows(n_rows, n_outputs, chunk_size):
    if chunk_size is None:
        rows = max(_MIN_CHUNK_ROWS, _CHUNK_LOGITS // max(n_outputs, 1))
        return max(1, min(max(n_rows, 1), rows))
    return check_int(chunk_size, "chunk_size", "a positive int", lowest=1)


def _labels(y, n_samples, name="y"):
    labels = as_array(y, name)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer class indices, got dtype {labels.dtype}")
    if labels.shape != (n_samples,):
        raise ValueError(f"{name} must have shape ({n_samples},), got {labels.shape}")
    return int64_labels(labels, name, None)


def softmax_regression_loss(X, y, coef, intercept=None, *, sample_weight=None, l2=0.0,
                            return_grad=False, n_threads=None):
    """Multinomial logistic-regression objective and gradient.

    loss = sum_i sw_i CE(x_i W^T + b, y_i) / sum sw + (l2/2) ||W||_F^2 (the intercept
    is not penalised), sklearn's multinomial LogisticRegression with
    l2 = 1 / (C * sum sw). coef W is (n_classes, n_features), as in sklearn and torch.

    Rows go through NumPy's BLAS in chunks (X_c W^T), the fused cross-entropy kernel
    writes the gradient of each chunk's logits in place, and BLAS accumulates
    W's gradient (G_c^T X_c): extra memory is O(chunk x n_classes).

    Returns the loss, or ``(loss, grad_coef, grad_intercept)``; grad_intercept is
    None when ``intercept`` is None. X may be dense or scipy.sparse.
    """
    dense, f_order, csr, dtype, (n_samples, n_features) = _design_matrix(X)
    matrix = csr if csr is not None else (dense.T if f_order else dense)
    l2 = _check_l2(l2)
    coef_dtype = _coef_dtype(coef)
    W = as_values(coef, "coef", dtype)
    if W.ndim != 2 or W.shape[1] != n_features:
        raise ValueError(f"coef must have shape (n_classes, {n_features}), got {W.shape}")
    n_classes = W.shape[0]
    b = None
    if intercept is not None:
        b = as_values(intercept, "intercept", dtype)
        if b.shape != (n_classes,):
            raise ValueError(f"intercept must have shape ({n_classes},), got {b.shape}")
    labels = _labels(y, n_samples)
    if n_classes == 0 and n_samples:
        raise ValueError(f"coef has shape {W.shape}: 0 classes, so no label in y is valid")
    weight = _sample_weight(sample_weight, n_samples, dtype)
    if weight is not None and weight.size and not np.all(np.isfinite(weight) & (weight >= 0)):
        bad = int(np.flatnonzero(~(np.isfinite(weight) & (weight >= 0)))[0])
        raise ValueError(f"sample_weight must be finite and >= 0; got {weight[bad].item()!r} "
                         f"at position ({bad},)")
    threads = resolve_threads(n_threads)
    rows_per_chunk = _chunk_rows(n_samples, n_classes, None)
    loss_sum, weight_sum = 0.0, 0.0
    grad_W = np.zeros(W.shape, dtype=np.float64) if return_grad else None
    grad_b = np.zeros(n_classes, dtype=np.float64) if return_grad and b is not None else None
    logits_buffer = np.empty((min(rows_per_chunk, max(n_samples, 1)), n_classes), dtype=dtype)
    sample_losses = np.empty(logits_buffer.shape[0], dtype=dtype)
    for start in range(0, n_samples, rows_per_chunk):
        stop = min(start + rows_per_chunk, n_samples)
        X_c = matrix[start:stop]
        logits = logits_buffer[:stop - start]
        if csr is not None:
            logits[...] = X_c @ W.T
        else:
            np.matmul(X_c, W.T, out=logits)
        if b is not None:
            logits += b
        losses = sample_losses[:stop - start]
        _, _, bad = _softmax.cross_entropy_labels(
            logits, labels[start:stop], None, float(n_classes), n_classes, 0, False, 0.0,
            losses, logits if return_grad else None, 1.0, threads)
        if bad >= 0:
            _raise_bad_row(start + bad, labels, None, n_classes)
        chunk_weight = weight[start:stop] if weight is not None else None
        if chunk_weight is not None:
            loss_sum += float(losses.astype(np.float64) @ chunk_weight.astype(np.float64))
            weight_sum += float(chunk_weight.sum(dtype=np.float64))
        else:
            loss_sum += float(losses.sum(dtype=np.float64))
            weight_sum += stop - start
        if return_grad:
            if chunk_weight is not None:
                logits *= chunk_weight[:, None]
            grad_W += np.asarray(X_c.T @ logits, dtype=np.float64).T
            if grad_b is not None:
                grad_b += logits.sum(axis=0, dtype=np.float64)
    W64 = W.astype(np.float64)
    loss = np.float64((loss_sum / weight_sum if weight_sum else 0.0)
                      + 0.5 * l2 * float(np.sum(W64 * W64)))
    if not return_grad:
        return loss
    scale = 1.0 / weight_sum if weight_sum else 0.0
    grad_coef = (grad_W * scale + l2 * W64).astype(coef_dtype)
    grad_intercept = None if grad_b is None else (grad_b * scale).astype(coef_dtype)
    return loss, grad_coef, grad_intercept


def _fused_linear_operands(hidden, weight, bias):
    """hidden (N, H), weight (V, H) and bias (V,) in one compute dtype, checked."""
    H_arr = as_array(hidden, "hidden")
    if H_arr.ndim != 2:
        raise ValueError(f"hidden must be 2-D (N, H), got shape {H_arr.shape}")
    dtype = compute_dtype(H_arr.dtype)
    H_arr = as_values(H_arr, "hidden", dtype)
    W = as_values(weight, "weight", dtype)
    n_hidden = H_arr.shape[1]
    if W.ndim != 2 or W.shape[1] != n_hidden:
        raise ValueError(f"weight must have shape (V, {n_hidden}), got {W.shape}")
    b = None
    if bias is not None:
        b = as_values(bias, "bias", dtype)
        if b.shape != (W.shape[0],):
            raise ValueError(f"bias must have shape ({W.shape[0]},), got {b.shape}")
    return H_arr, W, b, dtype


def fused_linear_cross_entropy(hidden, weight, target, *, bias=None, ignore_index=-100,
                               label_smoothing=0.0, reduction="mean", chunk_size=None,
                               return_grad=False, n_threads=None):
    """Cross-entropy of logits = hidden @ weight.T (+ bias), never holding them whole.

    Semantics are :func:`fastce.cross_entropy`'s (torch's, with "mean" over zero
    weight giving 0.0 and zero gradients). Rows go in chunks: BLAS forms a chunk's
    logits, the fused cross-entropy kernel turns them into their gradient in place,
    and BLAS accumulates grad_hidden = G W and grad_weight += G^T H (grad_bias +=
    column sums of G). Extra memory is O(chunk_size x V); the default chunk holds
    about 2 million logits (8 MiB in float32), and at least 256 rows, since every
    chunk also updates the whole V x H weight gradient.

    Parameters
    ----------
    hidden : (N, H) float32/float64; weight : (V, H); bias : (V,) or None.
    target : (N,) integer class indices; ``ignore_index`` marks samples to skip.
    chunk_size : rows per chunk, None for the default.

    Returns the loss, or ``(loss, grad_hidden, grad_weight)``, plus ``grad_bias``
    when ``bias`` is given.
    """
    reduction = check_reduction(reduction)
    smoothing = check_fraction(label_smoothing, "label_smoothing")
    H_arr, W, b, dtype = _fused_linear_operands(hidden, weight, bias)
    n_rows, n_classes = H_arr.shape[0], W.shape[0]
    labels = _labels(target, n_rows, "target")
    ignore = check_int(ignore_index, "ignore_index")
    threads = resolve_threads(n_threads)
    rows_per_chunk = _chunk_rows(n_rows, n_classes, chunk_size)

    denominator, bad = _softmax.label_weight_total(labels, None, n_classes, ignore, True,
                                                      threads)
    if bad >= 0:
        raise ValueError(f"target holds class index {labels[bad]} at position "
                         f"{describe_position(bad, (n_rows,))}, outside [0, {n_classes}) "
                         "and not ignore_index")
    grad_scale = (1.0 / denominator if denominator else 0.0) if reduction == "mean" else 1.0
    per_sample = np.empty(n_rows, dtype=dtype) if reduction == "none" else None
    grad_hidden = np.empty_like(H_arr) if return_grad else None
    grad_weight = np.zeros_like(W) if return_grad else None
    weight_update = None
    grad_bias = np.zeros(n_classes, dtype=np.float64) if return_grad and b is not None else None
    buffer = np.empty((min(rows_per_chunk, max(n_rows, 1)), n_classes), dtype=dtype)
    total = 0.0
    for start in range(0, n_rows, rows_per_chunk):
        stop = min(start + rows_per_chunk, n_rows)
        logits = buffer[:stop - start]
        np.matmul(H_arr[start:stop], W.T, out=logits)
        if b is not None:
            logits += b
        if n_classes:
            chunk_total, _, _ = _softmax.cross_entropy_labels(
                logits, labels[start:stop], None, float(n_classes), n_classes, ignore, True,
                smoothing, None if per_sample is None else per_sample[start:stop],
                logits if return_grad else None, grad_scale, threads)
        else:  # V = 0: every label is ignore_index (checked above), nothing to add
            chunk_total = 0.0
            if per_sample is not None:
                per_sample[start:stop] = 0
        total += chunk_total
        if return_grad:
            np.matmul(logits, W, out=grad_hidden[start:stop])
            # NumPy's own BLAS: a second BLAS (SciPy's, for beta = 1) would bring a
            # second thread pool that fights this one for the cores (measured 2x).
            if start == 0:
                np.matmul(logits.T, H_arr[start:stop], out=grad_weight)
            else:
                if weight_update is None:
                    weight_update = np.empty_like(W)
                np.matmul(logits.T, H_arr[start:stop], out=weight_update)
                grad_weight += weight_update
            if grad_bias is not None:
                grad_bias += logits.sum(axis=0, dtype=np.float64)
    if reduction == "none":
        loss = per_sample
    else:
        loss = finish_reduction(total, reduction, denominator)
    if not return_grad:
        return loss
    if reduction == "mean" and not denominator:
        grad_hidden.fill(0)
        grad_weight.fill(0)
        if grad_bias is not None:
            grad_bias.fill(0)
    if grad_bias is not None:
        return loss, grad_hidden, grad_weight, grad_bias.astype(dtype)
    return loss, grad_hidden, grad_weight
