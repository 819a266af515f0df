"""Row kernels and array loops of the softmax family.

A row of logits is handled in at most three short passes, the later ones
reading it back from L1/L2:
  1. the row maximum;
  2. (only with label smoothing or probability targets) the target-weighted
     gaps ``sum_c f_c (row_max - z_c)``, read before a gradient written in
     place can overwrite the row;
  3. ``exp(z_c - row_max)``, written straight into the gradient or output
     while it is summed, so forward+gradient costs one exp per element;
  then a scaling of that buffer. No N x C temporary is ever allocated.

Accuracy: the sum of exponentials is kept as ``rest`` = (sum) - 1, the term
of one maximum (exactly exp(0) = 1) left out, and ``log1p(rest)`` replaces
``log(sum)``. When the target dominates its row the loss is tiny (e.g. 1e-11)
and log(1 + 1e-11) computed as log of a rounded sum would keep only 5 digits.
"""
from cython cimport floating
from cython.parallel cimport prange
cimport numpy as cnp
from libc.math cimport log, log1p, INFINITY
from libc.stdint cimport int64_t

from fastce._arrays cimport array_data, float_typenum
from fastce._blocks cimport (
    BlockScratch, first_bad_position, n_blocks_for, rows_per_block,
    scratch_alloc, scratch_free, sum_in_block_order, threads_for,
)
from fastce._vecmath cimport (
    SHORT_ROW_CLASSES, SHORT_RUN_ROWS, fastce_is_valid_weight, row_exp_rest, row_hessian,
    row_log_softmax, row_max, row_scale, rows_exp_rest,
)

# The numpy C-API table (PyArray_SIZE & co. in _arrays.pxd go through it).
cnp.import_array()

cdef enum RowMode:
    MODE_LOG_SOFTMAX = 0
    MODE_SOFTMAX = 1
    MODE_LOGSUMEXP = 2

LOG_SOFTMAX = MODE_LOG_SOFTMAX
SOFTMAX = MODE_SOFTMAX
LOGSUMEXP = MODE_LOGSUMEXP


# ---------------------------------------------------------------- row kernels

cdef inline double row_weighted_gap(const floating* z__c, const floating* class_weight__c,
                                    Py_ssize_t n_classes, double row_max) noexcept nogil:
    """sum_c w_c (row_max - z_c): the smoothing term before its log-sum part.

    A class of weight 0 adds nothing, even if it is masked (-inf).
    """
    cdef double gap = 0.0, weight = 1.0
    cdef Py_ssize_t c
    for c in range(n_classes):
        if class_weight__c != NULL:
            weight = class_weight__c[c]
            if weight == 0.0:
                continue
        gap += weight * (row_max - z__c[c])
    return gap


cdef inline Py_ssize_t row_soft_target_sums(
    const floating* z__c, const floating* target__c, const floating* class_weight__c,
    Py_ssize_t n_classes, double row_max, double smoothing, bint kl_mode,
    double* target_mass, double* weighted_gap,
) noexcept nogil:
    """For smoothed targets t_c = (1-eps) y_c + eps/C and factors f_c = w_c t_c:
    set target_mass = sum f_c and weighted_gap = sum f_c (row_max - z_c).

    Checks each y_c on the way (finite, >= 0; in [0, 1] for KL); returns the
    first bad class or -1. A zero factor adds nothing, so an unreachable masked
    class costs no NaN. ``kl_mode`` (no weights, no smoothing) also adds
    sum y log y, turning the cross-entropy into KL(y || softmax(z)).
    """
    cdef double mass = 0.0, gap = 0.0, target, factor
    cdef double uniform = smoothing / <double>n_classes
    cdef Py_ssize_t c
    for c in range(n_classes):
        target = target__c[c]
        if not fastce_is_valid_weight(target) or (kl_mode and target > 1.0):
            return c
        if kl_mode and target > 0.0:
            gap += target * log(target)
        factor = (1.0 - smoothing) * target + uniform
        if class_weight__c != NULL:
            factor = factor * class_weight__c[c]
        if factor != 0.0:
            mass += factor
            gap += factor * (row_max - z__c[c])
    target_mass[0] = mass
    weighted_gap[0] = gap
    return -1


cdef inline void zero_row(floating* row__c, Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t c
    for c in range(n_classes):
        row__c[c] = 0


# ----------------------------------------------- cross-entropy, class indices

cdef double _ce_label_rows(
    const floating* logits__nc,
    const int64_t* target__n,
    const floating* class_weight__c,
    double class_weight_total,
    Py_ssize_t n_classes,
    int64_t ignore_index,
    double smoothing,
    floating* loss__n,
    floating* grad__nc,
    floating* hess__nc,
    double grad_scale,
    Py_ssize_t row_start,
    Py_ssize_t row_stop,
    double* weight_sum,
    Py_ssize_t* bad_row,
) noexcept nogil:
    """Rows [row_start, row_stop): torch's cross-entropy with class weights w,
    label smoothing eps and C classes, lse = log sum exp z:

        l = (1-eps) w_y (lse - z_y) + (eps/C) sum_c w_c (lse - z_c)
        g_c = s [(1-eps) w_y (p_c - [c=y]) + (eps/C) (W p_c - w_c)]

    ``grad__nc`` may alias ``logits__nc``. ``hess__nc`` (may be NULL; needs
    the gradient) receives the diagonal Hessian s p_c (1 - p_c) ((1-eps) w_y
    + (eps/C) W). Returns the sum of the row losses and adds sum w_y (the
    "mean" denominator) to ``weight_sum``.
    """
    cdef Py_ssize_t row
    cdef int64_t label
    cdef bint usable
    cdef const floating* z__c
    cdef floating* g__c = NULL
    cdef floating* exp__c = NULL
    cdef double block_loss = 0.0, block_weight = 0.0
    cdef double label_weight, nll_factor, uniform = smoothing / <double>n_classes
    cdef double target_logit, best, rest, log_sum, loss, gap, inv_sum
    cdef double prob_scale, target_exp
    # Short rows: each run of rows gets its max/exp/sum from the multi-row
    # kernel first (exps into run_exp, the logits stay intact for the loop).
    cdef bint short_rows = n_classes < SHORT_ROW_CLASSES
    cdef floating run_exp[SHORT_RUN_ROWS * SHORT_ROW_CLASSES]
    cdef double run_max[SHORT_RUN_ROWS]
    cdef double run_rest[SHORT_RUN_ROWS]
    cdef Py_ssize_t run_start = row_start, run_stop
    cdef Py_ssize_t run_length = SHORT_RUN_ROWS if short_rows else row_stop - row_start
    bad_row[0] = -1
    while run_start < row_stop:
        run_stop = min(run_start + run_length, row_stop)
        if short_rows:
            rows_exp_rest(logits__nc + run_start * n_classes, run_exp, run_stop - run_start,
                          n_classes, run_max, run_rest)
        for row in range(run_start, run_stop):
            z__c = logits__nc + row * n_classes
            if grad__nc != NULL:
                g__c = grad__nc + row * n_classes
            label = target__n[row]
            label_weight = 0.0
            usable = label != ignore_index
            if usable and (label < 0 or label >= n_classes):
                usable = False
                if bad_row[0] < 0:
                    bad_row[0] = row
            if usable:
                label_weight = class_weight__c[label] if class_weight__c != NULL else 1.0
            if not usable or (label_weight == 0.0 and smoothing == 0.0):
                # Ignored or invalid row, or a zero-weight class without smoothing:
                # exactly 0 loss and gradient whatever the logits hold.
                if g__c != NULL:
                    zero_row(g__c, n_classes)
                if hess__nc != NULL:
                    zero_row(hess__nc + row * n_classes, n_classes)
                if loss__n != NULL:
                    loss__n[row] = 0
                continue
            nll_factor = (1.0 - smoothing) * label_weight
            target_logit = z__c[label]  # read before the gradient overwrites the row
            best = run_max[row - run_start] if short_rows else row_max(z__c, n_classes)
            gap = 0.0
            if smoothing != 0.0:
                gap = row_weighted_gap(z__c, class_weight__c, n_classes, best)
            if short_rows:
                rest = run_rest[row - run_start]
                exp__c = &run_exp[(row - run_start) * n_classes]
            else:
                rest = row_exp_rest(z__c, g__c, n_classes, best)
                exp__c = g__c
            log_sum = log1p(rest)
            loss = 0.0
            if nll_factor != 0.0:
                loss = nll_factor * ((best - target_logit) + log_sum)
            if smoothing != 0.0:
                loss = loss + uniform * (gap + class_weight_total * log_sum)
            if g__c != NULL:
                inv_sum = 1.0 / (1.0 + rest)
                prob_scale = grad_scale * (nll_factor + uniform * class_weight_total) * inv_sum
                # exp(z_y - row_max), already computed: no second exp.
                target_exp = exp__c[label]
                if hess__nc != NULL:  # before the gradient overwrites the exps
                    row_hessian(hess__nc + row * n_classes, exp__c, n_classes, inv_sum, rest,
                                grad_scale * (nll_factor + uniform * class_weight_total))
                row_scale(g__c, exp__c, n_classes, prob_scale, class_weight__c,
                          grad_scale * uniform)
                # p_y - 1 = (e_y - 1 - rest) / (1 + rest) keeps its digits when the
                # target dominates (e_y = 1, the difference is exactly -rest).
                g__c[label] = <floating>(grad_scale * (
                    nll_factor * (target_exp - 1.0 - rest) * inv_sum
                    + uniform * (class_weight_total * target_exp * inv_sum - label_weight)))
            block_loss += loss
            block_weight += label_weight
            if loss__n != NULL:
                loss__n[row] = <floating>loss
        run_start = run_stop
    weight_sum[0] = block_weight
    return block_loss


cdef object _run_ce_labels(
    const floating* logits, const int64_t* target, const floating* class_weight,
    double class_weight_total, Py_ssize_t n_rows, Py_ssize_t n_classes,
    int64_t ignore_index, double smoothing, floating* loss_out, floating* grad_out,
    floating* hess_out, double grad_scale, int n_threads,
):
    cdef Py_ssize_t block_rows = rows_per_block(n_classes)
    cdef Py_ssize_t n_blocks = n_blocks_for(n_rows, block_rows)
    cdef int threads = threads_for(n_rows * n_classes, n_threads)
    cdef Py_ssize_t block, start, stop, bad
    cdef double loss_total, weight_total
    cdef BlockScratch scratch
    if not scratch_alloc(&scratch, n_blocks):
        scratch_free(&scratch)
        raise MemoryError()
    with nogil:
        for block in prange(n_blocks, num_threads=threads, schedule="static"):
            start = block * block_rows
            stop = min(start + block_rows, n_rows)
            scratch.loss[block] = _ce_label_rows(
                logits, target, class_weight, class_weight_total, n_classes, ignore_index,
                smoothing, loss_out, grad_out, hess_out, grad_scale, start, stop,
                &scratch.weight[block], &scratch.bad[block])
        loss_total = sum_in_block_order(scratch.loss, n_blocks)
        weight_total = sum_in_block_order(scratch.weight, n_blocks)
        bad = first_bad_position(scratch.bad, n_blocks)
    scratch_free(&scratch)
    return loss_total, weight_total, bad


def cross_entropy_labels(logits, target, class_weight, double class_weight_total,
                         Py_ssize_t n_classes, int64_t ignore_index, double smoothing,
                         loss_out, grad_out, double grad_scale, int n_threads,
                         hess_out=None):
    """Cross-entropy with class indices over C-contiguous (rows, n_classes) logits.

    ``target`` is int64 with one label per row; ``class_weight`` (C,), ``loss_out``
    (rows,) and ``grad_out`` (logits' size) share the logits' dtype, or are None.
    Returns ``(loss_sum, label_weight_sum, first_bad_row)``.
    """
    cdef int typenum = float_typenum(logits)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(logits)
    cdef Py_ssize_t n_rows = size // n_classes if n_classes > 0 else 0
    cdef void* logits_ptr = array_data(logits, typenum, n_rows * n_classes, False)
    cdef void* target_ptr = array_data(target, cnp.NPY_INT64, n_rows, False)
    cdef void* weight_ptr = array_data(class_weight, typenum, n_classes, False)
    cdef void* loss_ptr = array_data(loss_out, typenum, n_rows, True)
    cdef void* grad_ptr = array_data(grad_out, typenum, size, True)
    cdef void* hess_ptr = array_data(hess_out, typenum, size, True)
    if hess_ptr != NULL and grad_ptr == NULL:
        raise ValueError("fastce internal error: the Hessian needs the gradient")
    if n_rows == 0:
        return 0.0, 0.0, -1
    if typenum == cnp.NPY_FLOAT32:
        return _run_ce_labels(<const float*>logits_ptr, <const int64_t*>target_ptr,
                              <const float*>weight_ptr, class_weight_total, n_rows, n_classes,
                              ignore_index, smoothing, <float*>loss_ptr, <float*>grad_ptr,
                              <float*>hess_ptr, grad_scale, n_threads)
    return _run_ce_labels(<const double*>logits_ptr, <const int64_t*>target_ptr,
                          <const double*>weight_ptr, class_weight_total, n_rows, n_classes,
                          ignore_index, smoothing, <double*>loss_ptr, <double*>grad_ptr,
                          <double*>hess_ptr, grad_scale, n_threads)


cdef double _label_weight_rows(
    const int64_t* target__n, const double* class_weight__c, Py_ssize_t n_classes,
    int64_t ignore_index, Py_ssize_t row_start, Py_ssize_t row_stop,
    Py_ssize_t* bad_row,
) noexcept nogil:
    cdef Py_ssize_t row
    cdef int64_t label
    cdef double total = 0.0
    bad_row[0] = -1
    for row in range(row_start, row_stop):
        label = target__n[row]
        if label == ignore_index:
            continue
        if label < 0 or label >= n_classes:
            if bad_row[0] < 0:
                bad_row[0] = row
            continue
        total += class_weight__c[label] if class_weight__c != NULL else 1.0
    return total


def label_weight_total(target, class_weight, Py_ssize_t n_classes, int64_t ignore_index,
                       int n_threads):
    """sum of w[target] over non-ignored samples, and the first bad row.

    ``target`` is int64, ``class_weight`` float64 (C,) or None. The "mean"
    gradient is scaled by 1 / this sum, which must be known before the fused
    pass writes the gradient; it reads only the N labels (1/C of the logits'
    bytes), and its check is the range check the fused pass needs anyway.
    """
    cdef Py_ssize_t n_rows = cnp.PyArray_SIZE(<cnp.ndarray?>target)
    cdef const int64_t* target_ptr = <const int64_t*>array_data(target, cnp.NPY_INT64,
                                                                 n_rows, False)
    cdef const double* weight_ptr = <const double*>array_data(class_weight, cnp.NPY_FLOAT64,
                                                              n_classes, False)
    cdef Py_ssize_t block_rows = 4096
    cdef Py_ssize_t n_blocks = n_blocks_for(n_rows, block_rows)
    cdef int threads = threads_for(n_rows, n_threads)
    cdef Py_ssize_t block, start, stop, bad
    cdef double total
    cdef BlockScratch scratch
    if n_rows == 0:
        return 0.0, -1
    if not scratch_alloc(&scratch, n_blocks):
        scratch_free(&scratch)
        raise MemoryError()
    with nogil:
        for block in prange(n_blocks, num_threads=threads, schedule="static"):
            start = block * block_rows
            stop = min(start + block_rows, n_rows)
            scratch.weight[block] = _label_weight_rows(
                target_ptr, weight_ptr, n_classes, ignore_index, start, stop,
                &scratch.bad[block])
        total = sum_in_block_order(scratch.weight, n_blocks)
        bad = first_bad_position(scratch.bad, n_blocks)
    scratch_free(&scratch)
    return total, bad


# ----------------------------------------- cross-entropy, probability targets

cdef double _ce_soft_rows(
    const floating* logits__nc,
    const floating* target__nc,
    const floating* class_weight__c,
    Py_ssize_t n_classes,
    double smoothing,
    bint kl_mode,
    floating* loss__n,
    floating* grad__nc,
    double grad_scale,
    Py_ssize_t row_start,
    Py_ssize_t row_stop,
    Py_ssize_t* bad_position,
) noexcept nogil:
    """With f_c = w_c ((1-eps) y_c + eps/C) and F = sum f_c:

        l = sum_c f_c (lse - z_c) = sum_c f_c (row_max - z_c) + F log1p(rest)
        g_c = s (F p_c - f_c)
    """
    cdef Py_ssize_t row, c, bad_class
    cdef const floating* z__c
    cdef const floating* y__c
    cdef floating* g__c = NULL
    cdef double block_loss = 0.0, uniform = smoothing / <double>n_classes
    cdef double best, rest, mass, gap, loss, prob_scale, factor
    bad_position[0] = -1
    for row in range(row_start, row_stop):
        z__c = logits__nc + row * n_classes
        y__c = target__nc + row * n_classes
        if grad__nc != NULL:
            g__c = grad__nc + row * n_classes
        best = row_max(z__c, n_classes)
        bad_class = row_soft_target_sums(z__c, y__c, class_weight__c, n_classes, best,
                                         smoothing, kl_mode, &mass, &gap)
        if bad_class >= 0:
            if bad_position[0] < 0:
                bad_position[0] = row * n_classes + bad_class
            if g__c != NULL:
                zero_row(g__c, n_classes)
            if loss__n != NULL:
                loss__n[row] = 0
            continue
        rest = row_exp_rest(z__c, g__c, n_classes, best)
        loss = gap + mass * log1p(rest)
        if g__c != NULL:
            prob_scale = grad_scale * mass / (1.0 + rest)
            for c in range(n_classes):
                factor = (1.0 - smoothing) * y__c[c] + uniform
                if class_weight__c != NULL:
                    factor = factor * class_weight__c[c]
                g__c[c] = <floating>(prob_scale * g__c[c] - grad_scale * factor)
        block_loss += loss
        if loss__n != NULL:
            loss__n[row] = <floating>loss
    return block_loss


cdef object _run_ce_probs(
    const floating* logits, const floating* target, const floating* class_weight,
    Py_ssize_t n_rows, Py_ssize_t n_classes, double smoothing, bint kl_mode,
    floating* loss_out, floating* grad_out, double grad_scale, int n_threads,
):
    cdef Py_ssize_t block_rows = rows_per_block(n_classes)
    cdef Py_ssize_t n_blocks = n_blocks_for(n_rows, block_rows)
    cdef int threads = threads_for(n_rows * n_classes, n_threads)
    cdef Py_ssize_t block, start, stop, bad
    cdef double loss_total
    cdef BlockScratch scratch
    if not scratch_alloc(&scratch, n_blocks):
        scratch_free(&scratch)
        raise MemoryError()
    with nogil:
        for block in prange(n_blocks, num_threads=threads, schedule="static"):
            start = block * block_rows
            stop = min(start + block_rows, n_rows)
            scratch.loss[block] = _ce_soft_rows(
                logits, target, class_weight, n_classes, smoothing, kl_mode, loss_out,
                grad_out, grad_scale, start, stop, &scratch.bad[block])
        loss_total = sum_in_block_order(scratch.loss, n_blocks)
        bad = first_bad_position(scratch.bad, n_blocks)
    scratch_free(&scratch)
    return loss_total, bad


def cross_entropy_probs(logits, target, class_weight, Py_ssize_t n_classes, double smoothing,
                        loss_out, grad_out, double grad_scale, int n_threads,
                        bint kl_mode=False):
    """Cross-entropy with probability targets; every array C-contiguous of the
    logits' dtype (``target`` of the logits' size). With ``kl_mode`` (no
    weights, no smoothing) it is KL(target || softmax(logits)), same gradient.
    Returns ``(loss_sum, first_bad_flat_position)``."""
    cdef int typenum = float_typenum(logits)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(logits)
    cdef Py_ssize_t n_rows = size // n_classes if n_classes > 0 else 0
    cdef void* logits_ptr = array_data(logits, typenum, n_rows * n_classes, False)
    cdef void* target_ptr = array_data(target, typenum, size, False)
    cdef void* weight_ptr = array_data(class_weight, typenum, n_classes, False)
    cdef void* loss_ptr = array_data(loss_out, typenum, n_rows, True)
    cdef void* grad_ptr = array_data(grad_out, typenum, size, True)
    if n_rows == 0:
        return 0.0, -1
    if typenum == cnp.NPY_FLOAT32:
        return _run_ce_probs(<const float*>logits_ptr, <const float*>target_ptr,
                             <const float*>weight_ptr, n_rows, n_classes, smoothing, kl_mode,
                             <float*>loss_ptr, <float*>grad_ptr, grad_scale, n_threads)
    return _run_ce_probs(<const double*>logits_ptr, <const double*>target_ptr,
                         <const double*>weight_ptr, n_rows, n_classes, smoothing, kl_mode,
                         <double*>loss_ptr, <double*>grad_ptr, grad_scale, n_threads)


# ------------------------------------------- log_softmax, softmax, logsumexp

cdef void _normalize_rows(
    int mode,
    const floating* x__nc,
    floating* out,
    Py_ssize_t n_classes,
    Py_ssize_t row_start,
    Py_ssize_t row_stop,
) noexcept nogil:
    """``out`` is (N, C) for the softmaxes, (N,) for logsumexp; it may alias x."""
    cdef Py_ssize_t row
    cdef const floating* z__c
    cdef floating* out__c
    cdef floating* exp__c
    cdef double best, rest
    cdef bint short_rows = n_classes < SHORT_ROW_CLASSES
    cdef floating run_exp[SHORT_RUN_ROWS * SHORT_ROW_CLASSES]
    cdef double run_max[SHORT_RUN_ROWS]
    cdef double run_rest[SHORT_RUN_ROWS]
    cdef Py_ssize_t run_start = row_start, run_stop
    cdef Py_ssize_t run_length = SHORT_RUN_ROWS if short_rows else row_stop - row_start
    while run_start < row_stop:
        run_stop = min(run_start + run_length, row_stop)
        if short_rows:
            rows_exp_rest(x__nc + run_start * n_classes, run_exp, run_stop - run_start,
                          n_classes, run_max, run_rest)
        for row in range(run_start, run_stop):
            z__c = x__nc + row * n_classes
            out__c = out + row * n_classes
            if short_rows:
                best = run_max[row - run_start]
                rest = run_rest[row - run_start]
            else:
                best = row_max(z__c, n_classes)
                # softmax stores its exps straight into out; the others only sum.
                rest = row_exp_rest(z__c, out__c if mode == MODE_SOFTMAX else <floating*>NULL,
                                    n_classes, best)
            if mode == MODE_LOGSUMEXP:
                # An all -inf row sums to 0: log 0 = -inf, not the NaN of -inf - -inf
                # (an all-NaN row also has best = -inf, but its rest is NaN).
                if best == -INFINITY and rest == rest:
                    out[row] = <floating>best
                else:
                    out[row] = <floating>(best + log1p(rest))
            elif mode == MODE_LOG_SOFTMAX:
                row_log_softmax(z__c, out__c, n_classes, best, log1p(rest))
            else:
                exp__c = out__c
                if short_rows:
                    exp__c = &run_exp[(row - run_start) * n_classes]
                row_scale(out__c, exp__c, n_classes, 1.0 / (1.0 + rest), <floating*>NULL, 0.0)
        run_start = run_stop


cdef void _run_normalize(int mode, const floating* x, floating* out, Py_ssize_t n_rows,
                         Py_ssize_t n_classes, int n_threads) noexcept nogil:
    cdef Py_ssize_t block_rows = rows_per_block(n_classes)
    cdef Py_ssize_t n_blocks = n_blocks_for(n_rows, block_rows)
    cdef int threads = threads_for(n_rows * n_classes, n_threads)
    cdef Py_ssize_t block, start, stop
    for block in prange(n_blocks, num_threads=threads, schedule="static"):
        start = block * block_rows
        stop = min(start + block_rows, n_rows)
        _normalize_rows(mode, x, out, n_classes, start, stop)


def normalize(int mode, x, out, Py_ssize_t n_classes, int n_threads):
    """log_softmax / softmax (``out`` of x's size) or logsumexp (``out``: one value
    per row) of each row of C-contiguous ``x`` with ``n_classes`` per row."""
    cdef int typenum = float_typenum(x)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(x)
    cdef Py_ssize_t n_rows = size // n_classes if n_classes > 0 else 0
    cdef void* x_ptr = array_data(x, typenum, size, False)
    cdef void* out_ptr = array_data(out, typenum,
                                    n_rows if mode == MODE_LOGSUMEXP else size, True)
    if n_rows == 0:
        return
    with nogil:
        if typenum == cnp.NPY_FLOAT32:
            _run_normalize(mode, <const float*>x_ptr, <float*>out_ptr, n_rows, n_classes,
                           n_threads)
        else:
            _run_normalize(mode, <const double*>x_ptr, <double*>out_ptr, n_rows, n_classes,
                           n_threads)
