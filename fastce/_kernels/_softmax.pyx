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
from numpy import ndarray as np_ndarray

from fastce._api.validation import resolve_threads
from libc.math cimport exp, fabs, log, log1p, INFINITY
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free, malloc

from fastce._kernels._arrays cimport array_data, float_typenum
from fastce._kernels._blocks cimport (
    BLOCK_ELEMENTS, LABEL_BLOCK_ROWS, LONG_ROW_CLASSES, LONG_ROW_MAX_ROWS,
    PARALLEL_MIN_ELEMENTS, BlockResult, BlockTotals, n_blocks_for, rows_per_block, run_blocks, threads_for,
)
from fastce._kernels._vecmath cimport (
    SHORT_ROW_CLASSES, SHORT_RUN_ROWS, fastce_is_valid_weight, row_exp_rest, row_hessian,
    row_log_softmax, row_max, row_scale, row_exp_sum, rows_exp_rest, rows_rest,
    FASTCE_COLS_TILE, cols_exp_rest, cols_hessian, cols_log_softmax, cols_max, cols_scale,
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
    Py_ssize_t n_classes, double row_max, double smoothing, bint kl_mode, bint log_target,
    double* target_mass, double* weighted_gap,
) noexcept nogil:
    """For smoothed targets t_c = (1-eps) y_c + eps/C and factors f_c = w_c t_c:
    set target_mass = sum f_c and weighted_gap = sum f_c (row_max - z_c).

    Checks each y_c on the way (finite, >= 0; in [0, 1] for KL); returns the
    first bad class or -1. A zero factor adds nothing, so an unreachable masked
    class costs no NaN. ``kl_mode`` (no weights, no smoothing) also adds
    sum y log y, turning the cross-entropy into KL(y || softmax(z)).
    ``log_target`` (KL only): the row holds log y, <= 0 (-inf for y = 0).
    """
    cdef double mass = 0.0, gap = 0.0, target, factor, log_value
    cdef double uniform = smoothing / <double>n_classes
    cdef Py_ssize_t c
    for c in range(n_classes):
        target = target__c[c]
        if log_target:
            if not target <= 0.0:  # NaN too
                return c
            log_value = target
            target = exp(log_value)
            if target > 0.0:
                gap += target * log_value
        elif not fastce_is_valid_weight(target) or (kl_mode and target > 1.0):
            return c
        elif kl_mode and target > 0.0:
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



# ------------------------------------------------- per-sample weights, masks

cdef struct SampleOptions:
    # Optional per-sample inputs of the cross-entropy loops, NULL when absent.
    # ``weight`` and ``keep`` hold one value per position (the loss's shape);
    # ``logit_keep`` one per logit, in the logits' row layout.
    const double* weight
    const unsigned char* keep
    const unsigned char* logit_keep



cdef inline double _sample_weight(const SampleOptions* samples, Py_ssize_t position,
                                  Py_ssize_t* bad_position) noexcept nogil:
    """The sample's weight (1 without sample_weight); an invalid one (negative,
    NaN, inf) is reported and gives 0, so the sample is skipped."""
    cdef double weight
    if samples.weight == NULL:
        return 1.0
    weight = samples.weight[position]
    if not fastce_is_valid_weight(weight):
        if bad_position[0] < 0:
            bad_position[0] = position
        return 0.0
    return weight


cdef inline bint _sample_kept(const SampleOptions* samples, Py_ssize_t position) noexcept nogil:
    return samples.keep == NULL or samples.keep[position] != 0


cdef inline void _masked_rows(const floating* z__nc, const unsigned char* keep__nc,
                              floating* out__nc, unsigned char* row_kept__n,
                              Py_ssize_t n_rows, Py_ssize_t n_classes) noexcept nogil:
    """Copy rows with every masked-out logit replaced by -inf (its value is
    never used, so NaN there cannot leak), and flag the rows that keep any."""
    cdef Py_ssize_t row, c, index
    cdef unsigned char any_kept
    for row in range(n_rows):
        any_kept = 0
        for c in range(n_classes):
            index = row * n_classes + c
            out__nc[index] = z__nc[index] if keep__nc[index] else -INFINITY
            any_kept = any_kept | keep__nc[index]
        row_kept__n[row] = any_kept != 0

# ----------------------------------------------- cross-entropy, class indices

cdef struct CrossEntropyTask:
    # The arguments of one cross-entropy call (class indices or probability
    # targets); arrays in the compute dtype unless typed here.
    bint is_double
    const void* logits
    const int64_t* target          # class indices, one per position
    const void* target_probs       # probability targets, the logits' size
    const void* class_weight
    double class_weight_total      # W = sum_c w_c (C without weights)
    Py_ssize_t n_classes
    Py_ssize_t inner               # the logits are (outer, C, inner)
    Py_ssize_t block_rows          # rows per block of the row loops
    int64_t ignore_index
    bint has_ignore
    double smoothing
    bint kl_mode
    bint log_target
    void* loss
    void* grad
    void* hess
    double grad_scale
    SampleOptions samples


cdef inline bint _usable_label(int64_t label, int64_t ignore_index, bint has_ignore,
                               Py_ssize_t n_classes, Py_ssize_t row,
                               Py_ssize_t* bad_row) noexcept nogil:
    """False for ignore_index (when ``has_ignore``: softmax regression ignores
    no label, and no int64 value could stand for "none") and for an index
    outside [0, C), which is reported."""
    if has_ignore and label == ignore_index:
        return False
    if label < 0 or label >= n_classes:
        if bad_row[0] < 0:
            bad_row[0] = row
        return False
    return True


cdef inline double _label_weight(int64_t label, bint usable,
                                 const floating* class_weight__c) noexcept nogil:
    if not usable:
        return 0.0
    return class_weight__c[label] if class_weight__c != NULL else 1.0


cdef inline double _position_weight(const CrossEntropyTask* task, Py_ssize_t position,
                                    int64_t label, bint kept, Py_ssize_t* bad) noexcept nogil:
    """The sample weight of a position that counts, 0 for one that does not
    (left out by a mask, ignored, or with an invalid label or sample weight,
    which is reported). Without sample weights or masks only the label's
    check remains."""
    cdef const SampleOptions* samples = &task.samples
    if samples.weight == NULL and samples.keep == NULL and kept:
        return 1.0 if _usable_label(label, task.ignore_index, task.has_ignore,
                                    task.n_classes, position, bad) else 0.0
    if not (kept and _sample_kept(samples, position)):
        return 0.0
    if not _usable_label(label, task.ignore_index, task.has_ignore, task.n_classes,
                         position, bad):
        return 0.0
    return _sample_weight(samples, position, bad)


cdef struct LabelConstants:
    # The task's scalars as a value: read once per block, so that the compiler
    # sees them as loop invariants (read through the task pointer they could
    # alias the gradient's stores) and forms each row's terms the same way.
    double smoothing
    double uniform               # eps / C
    double class_weight_total    # W
    double grad_scale            # s


cdef inline LabelConstants _label_constants(const CrossEntropyTask* task) noexcept nogil:
    cdef LabelConstants constants
    constants.smoothing = task.smoothing
    constants.uniform = task.smoothing / <double>task.n_classes
    constants.class_weight_total = task.class_weight_total
    constants.grad_scale = task.grad_scale
    return constants


cdef struct LabelRowTerms:
    # One row's (or position's) loss and the scalars that turn its exps into
    # the gradient and Hessian: the finish step the row, long-row and column
    # paths share.
    double loss
    double inv_sum       # 1 / sum_c exp(z_c - max)
    double grad_scale    # s sw
    double hess_scale    # s sw ((1-eps) w_y + (eps/C) W)
    double prob_scale    # hess_scale / sum: multiplies exp(z_c - max)
    double shift_scale   # s sw eps/C: multiplies w_c (the smoothing's target)


cdef inline void _label_row_terms(LabelConstants constants, double label_weight,
                                  double sample_weight, double best, double target_logit,
                                  double gap, double rest, double log_sum,
                                  LabelRowTerms* terms) noexcept nogil:
    """torch's l = (1-eps) w_y (lse - z_y) + (eps/C) sum_c w_c (lse - z_c), times sw,
    with lse = best + log_sum and gap = sum_c w_c (best - z_c); lse - z_y is
    formed as (best - z_y) + log_sum, exact when the target is the maximum."""
    cdef double nll_factor = (1.0 - constants.smoothing) * label_weight
    cdef double uniform = constants.uniform
    cdef double loss = 0.0
    if nll_factor != 0.0:
        loss = nll_factor * ((best - target_logit) + log_sum)
    if uniform != 0.0:
        loss = loss + uniform * (gap + constants.class_weight_total * log_sum)
    if sample_weight != 1.0:
        loss = sample_weight * loss
    terms.loss = loss
    terms.inv_sum = 1.0 / (1.0 + rest)
    terms.grad_scale = constants.grad_scale * sample_weight
    terms.hess_scale = terms.grad_scale * (nll_factor + uniform * constants.class_weight_total)
    terms.prob_scale = terms.hess_scale * terms.inv_sum
    terms.shift_scale = terms.grad_scale * uniform


cdef inline double _label_target_grad(LabelConstants constants, const LabelRowTerms* terms,
                                      double label_weight, double target_exp,
                                      double rest) noexcept nogil:
    """The gradient at the target class. p_y - 1 = (e_y - 1 - rest) / (1 + rest)
    keeps its digits when the target dominates (e_y = 1: exactly -rest)."""
    cdef double nll_factor = (1.0 - constants.smoothing) * label_weight
    cdef double uniform = constants.uniform
    return terms.grad_scale * (nll_factor * (target_exp - 1.0 - rest) * terms.inv_sum
                               + uniform * (constants.class_weight_total * target_exp
                                            * terms.inv_sum - label_weight))


cdef inline bint _skips_row(double sample_weight, double label_weight,
                            double smoothing) noexcept nogil:
    # Ignored, masked or invalid, a zero sample weight, or a zero-weight class
    # without smoothing: exactly 0 loss and gradient whatever the logits hold.
    return sample_weight == 0.0 or (label_weight == 0.0 and smoothing == 0.0)


cdef struct ShortRun:
    # Rows with fewer than SHORT_ROW_CLASSES classes are read in runs of up to
    # SHORT_RUN_ROWS rows: the multi-row kernel gives each run's max, sum of the exps
    # but one at the max (rest) and log1p(rest) first, and its exps, when a gradient
    # or a softmax reads them (float or double rows, hence the double storage), land
    # here, so the logits stay intact. Whether rows are short, and the run's first
    # row, stay in the loop's locals: with CPython's -fno-strict-aliasing, a field
    # would be reloaded after every store.
    double row_max[SHORT_RUN_ROWS]
    double rest[SHORT_RUN_ROWS]
    double log_sum[SHORT_RUN_ROWS]
    double exps[SHORT_RUN_ROWS * SHORT_ROW_CLASSES]


cdef inline Py_ssize_t _start_run(ShortRun* run, bint short_rows, const floating* first_row__c,
                                  Py_ssize_t run_start, Py_ssize_t row_stop,
                                  Py_ssize_t n_classes, bint with_exps) noexcept nogil:
    """Begin the run of rows at run_start (the rows first_row__c on); returns its stop.
    Long rows make one run of all the rows, each row summed when it is reached.
    The run's exps are kept only ``with_exps`` (a gradient or a softmax reads
    them; a loss or a log-softmax needs only the sums)."""
    if not short_rows:
        return row_stop
    cdef Py_ssize_t run_stop = min(run_start + SHORT_RUN_ROWS, row_stop)
    if with_exps:
        rows_exp_rest(first_row__c, <floating*>run.exps, run_stop - run_start, n_classes,
                      run.row_max, run.rest, run.log_sum)
    else:
        rows_rest(first_row__c, run_stop - run_start, n_classes, run.row_max, run.rest,
                  run.log_sum)
    return run_stop


cdef inline double _run_row_max(const ShortRun* run, bint short_rows, Py_ssize_t in_run,
                                const floating* z__c, Py_ssize_t n_classes) noexcept nogil:
    """The max of the run's row in_run: from the kernel pass for a short row, else read."""
    if short_rows:
        return run.row_max[in_run]
    return row_max(z__c, n_classes)


cdef inline floating* _run_row_sums(ShortRun* run, bint short_rows, Py_ssize_t in_run,
                                    const floating* z__c, floating* exp_out,
                                    Py_ssize_t n_classes, double best, double* rest,
                                    double* log_sum) noexcept nogil:
    """The row's rest and log1p(rest), given its max; returns where its exps are: the
    run's buffer for a short row, else exp_out (NULL: the exps are only summed)."""
    if short_rows:
        rest[0], log_sum[0] = run.rest[in_run], run.log_sum[in_run]
        return (<floating*>run.exps) + in_run * n_classes
    rest[0] = row_exp_rest(z__c, exp_out, n_classes, best)
    log_sum[0] = log1p(rest[0])
    return exp_out


cdef inline double _plain_run_loss(const ShortRun* run, const floating* block_logits__nc,
                                   const CrossEntropyTask* task, Py_ssize_t row_start,
                                   Py_ssize_t run_start, Py_ssize_t run_stop,
                                   double block_loss, double* block_weight,
                                   Py_ssize_t* bad_row) noexcept nogil:
    """block_loss plus the plain losses of a run of short rows (see _ce_label_rows),
    (max - z_y) + log1p(rest), added row by row in order over its usable rows, each
    adding 1 to the weight; an ignored or invalid label (reported) gives 0."""
    cdef floating* loss__n = <floating*>task.loss
    cdef Py_ssize_t n_classes = task.n_classes, row
    cdef int64_t label
    cdef double weight = block_weight[0], loss
    for row in range(run_start, run_stop):
        label = task.target[row]
        loss = 0.0
        if _usable_label(label, task.ignore_index, task.has_ignore, n_classes, row, bad_row):
            loss = ((run.row_max[row - run_start]
                     - <double>block_logits__nc[(row - row_start) * n_classes + label])
                    + run.log_sum[row - run_start])
            block_loss += loss
            weight += 1.0
        if loss__n != NULL:
            loss__n[row] = <floating>loss
    block_weight[0] = weight
    return block_loss


cdef double _ce_label_rows(const floating* block_logits__nc, const CrossEntropyTask* task,
                           Py_ssize_t row_start, Py_ssize_t row_stop,
                           const unsigned char* block_row_kept,
                           BlockResult* result) noexcept nogil:
    """Rows [row_start, row_stop) of torch's cross-entropy with class weights w,
    label smoothing eps and C classes (see _label_row_terms):

        g_c = s sw [(1-eps) w_y (p_c - [c=y]) + (eps/C) (W p_c - w_c)]

    and, when asked, the diagonal Hessian s sw p_c (1 - p_c) ((1-eps) w_y +
    (eps/C) W). Returns the sum of the row losses; sum sw w_y (the "mean"
    denominator) goes to ``result.weight``.

    ``block_logits__nc`` starts at row ``row_start`` (the caller's logits, or
    a masked copy of the block); every other array is indexed by the global
    row. The gradient may alias the logits. A row that is not kept
    (``block_row_kept``: no logit left after the per-logit mask) is skipped
    like an ignored one, without checking its label.
    """
    cdef Py_ssize_t n_classes = task.n_classes
    cdef const floating* class_weight__c = <const floating*>task.class_weight
    cdef floating* loss__n = <floating*>task.loss
    cdef floating* grad__nc = <floating*>task.grad
    cdef floating* hess__nc = <floating*>task.hess
    cdef Py_ssize_t row
    cdef int64_t label
    cdef const floating* z__c
    cdef floating* g__c = NULL
    cdef floating* exp__c = NULL
    cdef double block_loss = 0.0, block_weight = 0.0
    cdef double label_weight, sample_weight, target_logit, best, rest, log_sum, gap
    cdef LabelRowTerms terms
    cdef LabelConstants constants = _label_constants(task)
    cdef ShortRun run
    cdef bint short_rows = n_classes < SHORT_ROW_CLASSES
    # The plain loss of short rows (no gradient, weights, smoothing or masks): each
    # row's terms reduce to (max - z_y) + log1p(rest) and a weight of 1, formed
    # here in a loop of their own (the same bits as _label_row_terms gives them),
    # without the general loop's per-row tests and spilled constants.
    cdef bint plain = (short_rows and grad__nc == NULL and hess__nc == NULL
                       and class_weight__c == NULL and task.smoothing == 0.0
                       and task.samples.weight == NULL and task.samples.keep == NULL
                       and block_row_kept == NULL)
    cdef Py_ssize_t run_start = row_start, run_stop
    while run_start < row_stop:
        run_stop = _start_run(&run, short_rows,
                              block_logits__nc + (run_start - row_start) * n_classes,
                              run_start, row_stop, n_classes, grad__nc != NULL)
        if plain:
            block_loss = _plain_run_loss(&run, block_logits__nc, task, row_start, run_start,
                                         run_stop, block_loss, &block_weight, &result.bad)
            run_start = run_stop
            continue
        for row in range(run_start, run_stop):
            z__c = block_logits__nc + (row - row_start) * n_classes
            if grad__nc != NULL:
                g__c = grad__nc + row * n_classes
            label = task.target[row]
            sample_weight = _position_weight(
                task, row, label, block_row_kept == NULL or block_row_kept[row - row_start],
                &result.bad)
            label_weight = _label_weight(label, sample_weight != 0.0, class_weight__c)
            if _skips_row(sample_weight, label_weight, task.smoothing):
                if g__c != NULL:
                    zero_row(g__c, n_classes)
                if hess__nc != NULL:
                    zero_row(hess__nc + row * n_classes, n_classes)
                if loss__n != NULL:
                    loss__n[row] = 0
                continue
            target_logit = z__c[label]  # read before the gradient overwrites the row
            best = _run_row_max(&run, short_rows, row - run_start, z__c, n_classes)
            gap = 0.0
            if task.smoothing != 0.0:
                gap = row_weighted_gap(z__c, class_weight__c, n_classes, best)
            # (after the gap: the exps may overwrite the row, in the gradient)
            exp__c = _run_row_sums(&run, short_rows, row - run_start, z__c, g__c, n_classes,
                                   best, &rest, &log_sum)
            _label_row_terms(constants, label_weight, sample_weight, best, target_logit, gap,
                             rest, log_sum, &terms)
            if g__c != NULL:
                # exp(z_y - row_max), already computed: no second exp. Read, and
                # the Hessian formed, before the gradient overwrites the exps.
                target_exp = exp__c[label]
                if hess__nc != NULL:
                    row_hessian(hess__nc + row * n_classes, exp__c, n_classes, terms.inv_sum,
                                rest, terms.hess_scale)
                row_scale(g__c, exp__c, n_classes, terms.prob_scale, class_weight__c,
                          terms.shift_scale)
                g__c[label] = <floating>_label_target_grad(constants, &terms, label_weight,
                                                           target_exp, rest)
            block_loss += terms.loss
            block_weight += label_weight * sample_weight
            if loss__n != NULL:
                loss__n[row] = <floating>terms.loss
        run_start = run_stop
    result.weight = block_weight
    return block_loss


cdef inline bint _long_rows(Py_ssize_t n_rows, Py_ssize_t n_classes) noexcept nogil:
    """Few, very long rows (a vocabulary of 10^5 with a handful of rows) are
    split across threads, each row in segments of BLOCK_ELEMENTS classes whose
    (max, sum) are merged in segment order. Decided by the shape alone, so the
    result is still the same for every thread count."""
    return n_classes >= LONG_ROW_CLASSES and n_rows < LONG_ROW_MAX_ROWS


cdef struct RowSegments:
    # Per-segment partial results of one long row.
    double* row_max
    double* exp_sum
    double* gap
    Py_ssize_t* n_at_max
    Py_ssize_t n_segments


cdef inline bint segments_alloc(RowSegments* parts, Py_ssize_t n_classes) noexcept nogil:
    parts.n_segments = n_blocks_for(n_classes, BLOCK_ELEMENTS)
    parts.row_max = <double*>calloc(parts.n_segments, sizeof(double))
    parts.exp_sum = <double*>calloc(parts.n_segments, sizeof(double))
    parts.gap = <double*>calloc(parts.n_segments, sizeof(double))
    parts.n_at_max = <Py_ssize_t*>calloc(parts.n_segments, sizeof(Py_ssize_t))
    return (parts.row_max != NULL and parts.exp_sum != NULL and parts.gap != NULL
            and parts.n_at_max != NULL)


cdef inline void segments_free(RowSegments* parts) noexcept nogil:
    free(parts.row_max)
    free(parts.exp_sum)
    free(parts.gap)
    free(parts.n_at_max)


cdef double _split_row_max(const floating* z__c, Py_ssize_t n_classes, RowSegments* parts,
                           int threads) noexcept nogil:
    cdef Py_ssize_t segment, start
    cdef double best = -INFINITY
    for segment in prange(parts.n_segments, num_threads=threads, schedule="static",
                            use_threads_if=threads > 1):
        start = segment * BLOCK_ELEMENTS
        parts.row_max[segment] = row_max(z__c + start, min(<Py_ssize_t>BLOCK_ELEMENTS,
                                                           n_classes - start))
    for segment in range(parts.n_segments):
        if parts.row_max[segment] > best:
            best = parts.row_max[segment]
    return best


cdef double _split_row_exp_rest(const floating* z__c, floating* exp__c,
                                const floating* class_weight__c, bint with_gap,
                                Py_ssize_t n_classes, double best, RowSegments* parts,
                                int threads, double* gap) noexcept nogil:
    """row_exp_rest (and row_weighted_gap) of a long row, segment by segment.
    The gap is read before exp__c, which may alias z__c, overwrites a segment."""
    cdef Py_ssize_t segment, start, length, n_at_max = 0
    cdef double exp_sum = 0.0
    for segment in prange(parts.n_segments, num_threads=threads, schedule="static",
                            use_threads_if=threads > 1):
        start = segment * BLOCK_ELEMENTS
        length = min(<Py_ssize_t>BLOCK_ELEMENTS, n_classes - start)
        parts.gap[segment] = 0.0
        if with_gap:
            parts.gap[segment] = row_weighted_gap(
                z__c + start, class_weight__c + start if class_weight__c != NULL else NULL,
                length, best)
        parts.exp_sum[segment] = row_exp_sum(
            z__c + start, exp__c + start if exp__c != NULL else NULL, length, best,
            &parts.n_at_max[segment])
    gap[0] = 0.0
    for segment in range(parts.n_segments):
        exp_sum += parts.exp_sum[segment]
        n_at_max += parts.n_at_max[segment]
        gap[0] += parts.gap[segment]
    return exp_sum + <double>(n_at_max - 1)


cdef object _run_ce_labels_long(const floating* logits, const CrossEntropyTask* task,
                                Py_ssize_t n_rows, int n_threads):
    """_ce_label_rows for few, very long rows: the same terms, each row's passes
    run in parallel over its segments. (A per-logit mask takes the block path.)"""
    cdef Py_ssize_t n_classes = task.n_classes
    cdef const floating* class_weight = <const floating*>task.class_weight
    cdef floating* loss_out = <floating*>task.loss
    cdef floating* grad_out = <floating*>task.grad
    cdef floating* hess_out = <floating*>task.hess
    cdef int threads = threads_for(n_rows * n_classes, n_threads)
    cdef RowSegments parts
    cdef Py_ssize_t row, segment, start, length, bad_row = -1
    cdef int64_t label
    cdef const floating* z__c
    cdef floating* g__c = NULL
    cdef floating* h__c = NULL
    cdef double label_weight, sample_weight, best, rest, gap, target_exp, target_logit
    cdef double loss_total = 0.0, weight_total = 0.0
    cdef LabelRowTerms terms
    cdef LabelConstants constants = _label_constants(task)
    if not segments_alloc(&parts, n_classes):
        segments_free(&parts)
        raise MemoryError()
    with nogil:
        for row in range(n_rows):
            z__c = logits + row * n_classes
            if grad_out != NULL:
                g__c = grad_out + row * n_classes
            if hess_out != NULL:
                h__c = hess_out + row * n_classes
            label = task.target[row]
            sample_weight = _position_weight(task, row, label, True, &bad_row)
            label_weight = _label_weight(label, sample_weight != 0.0, class_weight)
            if _skips_row(sample_weight, label_weight, task.smoothing):
                if g__c != NULL:
                    zero_row(g__c, n_classes)
                if h__c != NULL:
                    zero_row(h__c, n_classes)
                if loss_out != NULL:
                    loss_out[row] = 0
                continue
            target_logit = z__c[label]
            best = _split_row_max(z__c, n_classes, &parts, threads)
            rest = _split_row_exp_rest(z__c, g__c, class_weight, task.smoothing != 0.0,
                                       n_classes, best, &parts, threads, &gap)
            _label_row_terms(constants, label_weight, sample_weight, best, target_logit, gap,
                             rest, log1p(rest), &terms)
            if g__c != NULL:
                target_exp = g__c[label]
                for segment in prange(parts.n_segments, num_threads=threads,
                                      schedule="static", use_threads_if=threads > 1):
                    start = segment * BLOCK_ELEMENTS
                    length = min(<Py_ssize_t>BLOCK_ELEMENTS, n_classes - start)
                    if h__c != NULL:
                        row_hessian(h__c + start, g__c + start, length, terms.inv_sum, rest,
                                    terms.hess_scale)
                    row_scale(g__c + start, g__c + start, length, terms.prob_scale,
                              class_weight + start if class_weight != NULL else NULL,
                              terms.shift_scale)
                g__c[label] = <floating>_label_target_grad(constants, &terms, label_weight,
                                                           target_exp, rest)
            loss_total += terms.loss
            weight_total += label_weight * sample_weight
            if loss_out != NULL:
                loss_out[row] = <floating>terms.loss
    segments_free(&parts)
    return loss_total, weight_total, bad_row


cdef double _ce_label_tile(const floating* logits, const CrossEntropyTask* task,
                           Py_ssize_t outer_index, Py_ssize_t tile_start, Py_ssize_t width,
                           BlockResult* result) noexcept nogil:
    """_ce_label_rows for a class axis that is not last: logits (outer, C, inner),
    one tile of ``width`` contiguous positions of one outer index, vectorised
    across positions. The same terms; the gradient may alias the logits."""
    cdef Py_ssize_t n_classes = task.n_classes, inner = task.inner
    cdef const floating* class_weight = <const floating*>task.class_weight
    cdef floating* loss_out = <floating*>task.loss
    cdef Py_ssize_t base = outer_index * n_classes * inner + tile_start
    cdef Py_ssize_t first = outer_index * inner + tile_start
    cdef const floating* z = logits + base
    cdef floating* g = <floating*>task.grad + base if task.grad != NULL else NULL
    cdef floating* h = <floating*>task.hess + base if task.hess != NULL else NULL
    cdef double col_max[FASTCE_COLS_TILE]
    cdef double col_rest[FASTCE_COLS_TILE]
    cdef double gap[FASTCE_COLS_TILE]
    cdef double target_logit[FASTCE_COLS_TILE]
    cdef double label_weight[FASTCE_COLS_TILE]
    cdef double sample_weight[FASTCE_COLS_TILE]
    cdef double inv_sum[FASTCE_COLS_TILE]
    cdef double prob_scale[FASTCE_COLS_TILE]
    cdef double shift_scale[FASTCE_COLS_TILE]
    cdef double hess_scale[FASTCE_COLS_TILE]
    cdef double target_exp[FASTCE_COLS_TILE]
    cdef LabelRowTerms terms[FASTCE_COLS_TILE]
    cdef int64_t label[FASTCE_COLS_TILE]
    cdef bint active[FASTCE_COLS_TILE]
    cdef Py_ssize_t w, c
    cdef double tile_loss = 0.0, tile_weight = 0.0, class_factor
    cdef LabelConstants constants = _label_constants(task)
    cols_max(z, inner, n_classes, width, col_max)
    for w in range(width):
        label[w] = task.target[first + w]
        sample_weight[w] = _position_weight(task, first + w, label[w], True, &result.bad)
        label_weight[w] = _label_weight(label[w], sample_weight[w] != 0.0, class_weight)
        active[w] = not _skips_row(sample_weight[w], label_weight[w], task.smoothing)
        # read before the gradient overwrites the logits
        target_logit[w] = z[label[w] * inner + w] if active[w] else 0.0
        gap[w] = 0.0
    if task.smoothing != 0.0:
        for c in range(n_classes):
            class_factor = class_weight[c] if class_weight != NULL else 1.0
            if class_factor == 0.0:
                continue
            for w in range(width):
                gap[w] += class_factor * (col_max[w] - z[c * inner + w])
    cols_exp_rest(z, g, inner, n_classes, width, col_max, col_rest)
    for w in range(width):
        prob_scale[w] = 0.0
        shift_scale[w] = 0.0
        hess_scale[w] = 0.0
        inv_sum[w] = 1.0 / (1.0 + col_rest[w])
        if not active[w]:
            if loss_out != NULL:
                loss_out[first + w] = 0
            continue
        _label_row_terms(constants, label_weight[w], sample_weight[w], col_max[w],
                         target_logit[w], gap[w], col_rest[w], log1p(col_rest[w]), &terms[w])
        tile_loss += terms[w].loss
        tile_weight += label_weight[w] * sample_weight[w]
        if loss_out != NULL:
            loss_out[first + w] = <floating>terms[w].loss
        hess_scale[w] = terms[w].hess_scale
        prob_scale[w] = terms[w].prob_scale
        shift_scale[w] = terms[w].shift_scale
        if g != NULL:
            target_exp[w] = g[label[w] * inner + w]
    if g != NULL:
        if h != NULL:
            cols_hessian(h, g, inner, n_classes, width, inv_sum, col_rest, hess_scale)
        cols_scale(g, g, inner, n_classes, width, prob_scale, class_weight, shift_scale)
        for w in range(width):
            if active[w]:
                g[label[w] * inner + w] = <floating>_label_target_grad(
                    constants, &terms[w], label_weight[w], target_exp[w], col_rest[w])
                continue
            # ignored position: exactly 0, even where its exps are NaN
            for c in range(n_classes):
                g[c * inner + w] = 0
                if h != NULL:
                    h[c * inner + w] = 0
    result.weight = tile_weight
    return tile_loss


cdef double _tiles_typed(const floating* logits, const CrossEntropyTask* task,
                         Py_ssize_t unit_start, Py_ssize_t unit_stop,
                         BlockResult* result) noexcept nogil:
    # Units are (outer index, tile) pairs, one per block.
    cdef Py_ssize_t tiles_per_outer = n_blocks_for(task.inner, FASTCE_COLS_TILE)
    cdef Py_ssize_t unit, outer_index, tile_start
    cdef double total = 0.0, weight = 0.0
    for unit in range(unit_start, unit_stop):
        outer_index = unit // tiles_per_outer
        tile_start = (unit - outer_index * tiles_per_outer) * FASTCE_COLS_TILE
        total += _ce_label_tile(logits, task, outer_index, tile_start,
                                min(<Py_ssize_t>FASTCE_COLS_TILE, task.inner - tile_start),
                                result)
        weight += result.weight
    result.weight = weight
    return total


cdef double _label_tiles_body(const void* task, Py_ssize_t start, Py_ssize_t stop,
                              void* thread_scratch, BlockResult* result) noexcept nogil:
    cdef const CrossEntropyTask* ce = <const CrossEntropyTask*>task
    if ce.is_double:
        return _tiles_typed(<const double*>ce.logits, ce, start, stop, result)
    return _tiles_typed(<const float*>ce.logits, ce, start, stop, result)


cdef inline size_t _masked_block_bytes(const CrossEntropyTask* task,
                                       size_t item_size) noexcept nogil:
    """Per-thread scratch of a per-logit mask: the block's logits with the
    masked entries set to -inf, then which of its rows keep a logit."""
    if task.samples.logit_keep == NULL:
        return 0
    return task.block_rows * task.n_classes * item_size + task.block_rows


cdef inline const floating* _block_logits(const floating* logits,
                                          const CrossEntropyTask* task, Py_ssize_t start,
                                          Py_ssize_t stop, void* thread_scratch,
                                          const unsigned char** row_kept) noexcept nogil:
    """The rows [start, stop) a block kernel reads: the logits themselves, or
    with a per-logit mask this thread's masked copy (and its row flags)."""
    cdef floating* copy = <floating*>thread_scratch
    cdef unsigned char* kept
    row_kept[0] = NULL
    if task.samples.logit_keep == NULL:
        return logits + start * task.n_classes
    kept = <unsigned char*>(copy + task.block_rows * task.n_classes)
    _masked_rows(logits + start * task.n_classes,
                 task.samples.logit_keep + start * task.n_classes, copy, kept, stop - start,
                 task.n_classes)
    row_kept[0] = kept
    return copy


cdef double _rows_typed(const floating* logits, const CrossEntropyTask* task,
                        Py_ssize_t start, Py_ssize_t stop, void* thread_scratch,
                        BlockResult* result) noexcept nogil:
    # Rows of class indices, or of probability targets when the task has them.
    cdef const unsigned char* row_kept
    cdef const floating* block_logits = _block_logits(logits, task, start, stop,
                                                      thread_scratch, &row_kept)
    if task.target_probs != NULL:
        return _ce_soft_rows(block_logits, task, start, stop, row_kept, result)
    return _ce_label_rows(block_logits, task, start, stop, row_kept, result)


cdef double _rows_body(const void* task, Py_ssize_t start, Py_ssize_t stop,
                       void* thread_scratch, BlockResult* result) noexcept nogil:
    cdef const CrossEntropyTask* ce = <const CrossEntropyTask*>task
    if ce.is_double:
        return _rows_typed(<const double*>ce.logits, ce, start, stop, thread_scratch, result)
    return _rows_typed(<const float*>ce.logits, ce, start, stop, thread_scratch, result)


cdef int sample_options(SampleOptions* samples, object sample_weight, object sample_mask,
                        object logit_mask, Py_ssize_t n_positions,
                        Py_ssize_t n_logits) except -1:
    """Fill ``samples`` from optional arrays: float64 ``sample_weight`` and uint8
    ``sample_mask`` with one value per position, uint8 ``logit_mask`` of the
    logits' size, all C-contiguous."""
    samples.weight = <const double*>array_data(sample_weight, cnp.NPY_FLOAT64, n_positions,
                                               False)
    samples.keep = <const unsigned char*>array_data(sample_mask, cnp.NPY_UINT8, n_positions,
                                                    False)
    samples.logit_keep = <const unsigned char*>array_data(logit_mask, cnp.NPY_UINT8,
                                                          n_logits, False)
    return 0


cdef int _cross_entropy_task(CrossEntropyTask* task, object logits, object class_weight,
                             Py_ssize_t n_classes, double smoothing, object loss_out,
                             object grad_out, object hess_out, double grad_scale,
                             object sample_weight, object sample_mask,
                             object logit_mask) except -1:
    """The fields every cross-entropy task shares, from checked arrays of the
    logits' dtype (``loss_out`` one per position, the others the logits' size)."""
    cdef int typenum = float_typenum(logits)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(logits)
    cdef Py_ssize_t n_rows = size // n_classes if n_classes > 0 else 0
    task.is_double = typenum == cnp.NPY_FLOAT64
    task.logits = array_data(logits, typenum, n_rows * n_classes, False)
    task.class_weight = array_data(class_weight, typenum, n_classes, False)
    task.n_classes = n_classes
    task.inner = 1
    task.block_rows = rows_per_block(n_classes)
    task.smoothing = smoothing
    task.loss = array_data(loss_out, typenum, n_rows, True)
    task.grad = array_data(grad_out, typenum, size, True)
    task.hess = array_data(hess_out, typenum, size, True)
    task.grad_scale = grad_scale
    task.target = NULL
    task.target_probs = NULL
    task.kl_mode = False
    task.log_target = False
    task.has_ignore = False
    task.ignore_index = 0
    task.class_weight_total = 0.0
    sample_options(&task.samples, sample_weight, sample_mask, logit_mask, n_rows, size)
    return 0


# The float64 scalar type the public functions return (read once, at import).
_float64 = cnp.PyArray_TypeObjectFromType(cnp.NPY_FLOAT64)
_INT64_MAX = 9223372036854775807


def plain_labels_loss(logits, target, ignore_index, label_smoothing, reduction, axis,
                      n_threads):
    """The common call of ``cross_entropy``, checked here in C: aligned,
    C-contiguous, native-order float32/float64 (N, C) logits, int64 (N,) labels,
    ``axis`` -1 or 1, no smoothing, reduction "mean" or "sum", rows that are not
    split across threads. Returns the loss (a float64), or None for any other call
    and for any bad label, which the full path then checks and explains. The same
    kernel and block order as the full path: the same value, bit for bit."""
    cdef cnp.ndarray x, y
    cdef int typenum
    cdef Py_ssize_t n_rows, n_classes
    cdef CrossEntropyTask task
    cdef bint mean = reduction == "mean"
    if not (type(logits) is np_ndarray and type(target) is np_ndarray
            and type(axis) is int and (axis == -1 or axis == 1)
            and type(label_smoothing) is float and label_smoothing == 0.0
            and (mean or reduction == "sum")
            and type(ignore_index) is int and -_INT64_MAX <= ignore_index <= _INT64_MAX):
        return None
    x = <cnp.ndarray>logits
    y = <cnp.ndarray>target
    if cnp.PyArray_NDIM(x) != 2 or cnp.PyArray_NDIM(y) != 1:
        return None
    typenum = cnp.PyArray_TYPE(x)
    if not ((typenum == cnp.NPY_FLOAT32 or typenum == cnp.NPY_FLOAT64)
            and cnp.PyArray_EquivTypenums(cnp.PyArray_TYPE(y), cnp.NPY_INT64)
            and cnp.PyArray_ISCARRAY_RO(x) and cnp.PyArray_ISCARRAY_RO(y)):
        return None
    n_rows = cnp.PyArray_DIM(x, 0)
    n_classes = cnp.PyArray_DIM(x, 1)
    if (cnp.PyArray_DIM(y, 0) != n_rows or n_classes == 0 or n_rows == 0
            or _long_rows(n_rows, n_classes)):
        return None
    _cross_entropy_task(&task, x, None, n_classes, 0.0, None, None, None, 1.0, None, None,
                        None)
    task.target = <const int64_t*>cnp.PyArray_DATA(y)
    task.class_weight_total = <double>n_classes
    task.ignore_index = ignore_index
    task.has_ignore = True
    cdef double total = 0.0, weight = 0.0
    cdef BlockResult result
    cdef BlockTotals totals
    cdef Py_ssize_t start
    cdef int threads
    if n_rows * n_classes >= PARALLEL_MIN_ELEMENTS:
        threads = resolve_threads(n_threads)
        with nogil:
            run_blocks(_rows_body, &task, n_rows, task.block_rows, n_rows * n_classes, threads,
                       0, &totals)
        if totals.bad >= 0:
            return None
        total, weight = totals.loss, totals.weight
    else:
        # Serial: run_blocks's loop without its allocations, the blocks in order and
        # their losses and weights added in that order (the same bits as above).
        for start in range(0, n_rows, task.block_rows):
            result.bad = -1
            result.weight = 0.0
            total += _rows_body(&task, start, min(start + task.block_rows, n_rows), NULL,
                                &result)
            weight += result.weight
            if result.bad >= 0:
                return None
    if not mean:
        return _float64(total)
    return _float64(total / weight if weight != 0.0 else 0.0)


def cross_entropy_labels(logits, target, class_weight, double class_weight_total,
                         Py_ssize_t n_classes, int64_t ignore_index, bint has_ignore,
                         double smoothing, loss_out, grad_out, double grad_scale, int n_threads,
                         hess_out=None, Py_ssize_t inner=1, sample_weight=None,
                         sample_mask=None, logit_mask=None):
    """Cross-entropy with class indices over C-contiguous logits, viewed as
    (outer, n_classes, inner): rows of classes when ``inner`` is 1, torch's
    (N, C, d1, ...) layout otherwise (read in place, no transposed copy).

    ``target`` is int64 with one label per position (outer * inner);
    ``class_weight`` (C,), ``loss_out`` (one per position) and ``grad_out`` /
    ``hess_out`` (logits' size, same layout) share the logits' dtype, or are None.
    ``sample_weight`` (float64), ``sample_mask`` (uint8, one per position) and
    ``logit_mask`` (uint8, the logits' size; rows only, ``inner`` 1) are
    optional. Returns ``(loss_sum, label_weight_sum, first_bad_position)``:
    the sum of sw * w_y, and the first position whose label or sample weight
    is invalid.
    """
    cdef Py_ssize_t size = cnp.PyArray_SIZE(logits)
    cdef Py_ssize_t n_rows = size // n_classes if n_classes > 0 else 0
    cdef CrossEntropyTask task
    cdef BlockTotals totals
    cdef size_t item_size
    _cross_entropy_task(&task, logits, class_weight, n_classes, smoothing, loss_out, grad_out,
                        hess_out, grad_scale, sample_weight, sample_mask, logit_mask)
    task.target = <const int64_t*>array_data(target, cnp.NPY_INT64, n_rows, False)
    task.class_weight_total = class_weight_total
    task.ignore_index = ignore_index
    task.has_ignore = has_ignore
    task.inner = inner
    if task.hess != NULL and task.grad == NULL:
        raise ValueError("fastce internal error: the Hessian needs the gradient")
    if n_rows == 0:
        return 0.0, 0.0, -1
    if inner < 1 or n_rows % inner:
        raise ValueError("fastce internal error: inner does not divide the positions")
    if task.samples.logit_keep != NULL and inner > 1:
        raise ValueError("fastce internal error: a per-logit mask needs rows of classes")
    if inner > 1:
        with nogil:
            run_blocks(_label_tiles_body, &task,
                       (n_rows // inner) * n_blocks_for(inner, FASTCE_COLS_TILE), 1, size,
                       n_threads, 0, &totals)
        return totals.loss, totals.weight, totals.bad
    if _long_rows(n_rows, n_classes) and task.samples.logit_keep == NULL:
        if task.is_double:
            return _run_ce_labels_long(<const double*>task.logits, &task, n_rows, n_threads)
        return _run_ce_labels_long(<const float*>task.logits, &task, n_rows, n_threads)
    item_size = sizeof(double) if task.is_double else sizeof(float)
    with nogil:
        run_blocks(_rows_body, &task, n_rows, task.block_rows, size, n_threads,
                   _masked_block_bytes(&task, item_size), &totals)
    return totals.loss, totals.weight, totals.bad


cdef inline bint _any_kept(const unsigned char* keep__c, Py_ssize_t n_classes) noexcept nogil:
    cdef Py_ssize_t c
    for c in range(n_classes):
        if keep__c[c]:
            return True
    return False


cdef double _label_weight_rows(
    const int64_t* target__n, const double* class_weight__c, Py_ssize_t n_classes,
    int64_t ignore_index, bint has_ignore, const SampleOptions* samples,
    Py_ssize_t row_start, Py_ssize_t row_stop, Py_ssize_t* bad_row,
) noexcept nogil:
    cdef Py_ssize_t row
    cdef int64_t label
    cdef double total = 0.0, sample_weight
    bad_row[0] = -1
    if samples.weight == NULL and samples.keep == NULL and samples.logit_keep == NULL:
        # The common case, as a tight loop over the labels alone.
        for row in range(row_start, row_stop):
            label = target__n[row] if target__n != NULL else 0
            if target__n == NULL:
                total += 1.0
            elif has_ignore and label == ignore_index:
                continue
            elif label < 0 or label >= n_classes:
                if bad_row[0] < 0:
                    bad_row[0] = row
            else:
                total += class_weight__c[label] if class_weight__c != NULL else 1.0
        return total
    for row in range(row_start, row_stop):
        if not _sample_kept(samples, row):
            continue
        if samples.logit_keep != NULL and not _any_kept(samples.logit_keep + row * n_classes,
                                                        n_classes):
            continue
        sample_weight = _sample_weight(samples, row, bad_row)
        if target__n == NULL:
            total += sample_weight
            continue
        label = target__n[row]
        if has_ignore and label == ignore_index:
            continue
        if label < 0 or label >= n_classes:
            if bad_row[0] < 0:
                bad_row[0] = row
            continue
        total += sample_weight * (class_weight__c[label] if class_weight__c != NULL else 1.0)
    return total


def label_weight_total(target, class_weight, Py_ssize_t n_classes, int64_t ignore_index,
                       bint has_ignore, int n_threads, sample_weight=None, sample_mask=None,
                       logit_mask=None, Py_ssize_t n_rows=-1):
    """sum of sw * w[target] over the samples that count, and the first bad row.

    ``target`` is int64, or None for probability targets (then w_y is 1 and
    ``n_rows`` gives the number of samples); ``class_weight`` float64 (C,) or
    None; the sample arrays as in ``cross_entropy_labels``. The "mean"
    gradient is scaled by 1 / this sum, which must be known before the fused
    pass writes the gradient; it reads the N labels (1/C of the logits'
    bytes) and the optional per-sample arrays, and its checks are the ones the
    fused pass makes anyway. A per-logit mask is read too (bytes, to find the
    rows it empties).
    """
    if target is not None:
        n_rows = cnp.PyArray_SIZE(<cnp.ndarray?>target)
    cdef const int64_t* target_ptr = <const int64_t*>array_data(target, cnp.NPY_INT64,
                                                                 n_rows, False)
    cdef const double* weight_ptr = <const double*>array_data(class_weight, cnp.NPY_FLOAT64,
                                                              n_classes, False)
    cdef CrossEntropyTask task
    cdef BlockTotals totals
    if n_rows <= 0:
        return 0.0, -1
    task.target = target_ptr
    task.class_weight = weight_ptr
    task.n_classes = n_classes
    task.ignore_index = ignore_index
    task.has_ignore = has_ignore
    sample_options(&task.samples, sample_weight, sample_mask, logit_mask, n_rows,
                   n_rows * n_classes)
    with nogil:
        run_blocks(_label_weight_body, &task, n_rows, LABEL_BLOCK_ROWS, n_rows, n_threads, 0,
                   &totals)
    return totals.loss, totals.bad


cdef double _label_weight_body(const void* task, Py_ssize_t start, Py_ssize_t stop,
                               void* thread_scratch, BlockResult* result) noexcept nogil:
    cdef const CrossEntropyTask* ce = <const CrossEntropyTask*>task
    return _label_weight_rows(ce.target, <const double*>ce.class_weight, ce.n_classes,
                              ce.ignore_index, ce.has_ignore, &ce.samples, start, stop,
                              &result.bad)


# ----------------------------------------- cross-entropy, probability targets

cdef double _ce_soft_rows(const floating* block_logits__nc, const CrossEntropyTask* task,
                          Py_ssize_t row_start, Py_ssize_t row_stop,
                          const unsigned char* block_row_kept,
                          BlockResult* result) noexcept nogil:
    """With f_c = w_c ((1-eps) y_c + eps/C) and F = sum f_c:

        l = sw [sum_c f_c (lse - z_c)] = sw [sum_c f_c (row_max - z_c) + F log1p(rest)]
        g_c = s sw (F p_c - f_c)

    ``block_logits__nc`` and the sample options as in _ce_label_rows; adds the
    sum of sw over the rows that count to ``result.weight``. A row that is not
    kept is skipped without checking its targets.
    """
    cdef const floating* target__nc = <const floating*>task.target_probs
    cdef const floating* class_weight__c = <const floating*>task.class_weight
    cdef Py_ssize_t n_classes = task.n_classes
    cdef double smoothing = task.smoothing, grad_scale = task.grad_scale
    cdef bint kl_mode = task.kl_mode, log_target = task.log_target
    cdef floating* loss__n = <floating*>task.loss
    cdef floating* grad__nc = <floating*>task.grad
    cdef Py_ssize_t row, c, bad_class
    cdef const floating* z__c
    cdef const floating* y__c
    cdef floating* g__c = NULL
    cdef double block_loss = 0.0, block_weight = 0.0, uniform = smoothing / <double>n_classes
    cdef double best, rest, mass, gap, loss, prob_scale, factor, target, sample_weight
    cdef double row_grad_scale
    for row in range(row_start, row_stop):
        z__c = block_logits__nc + (row - row_start) * n_classes
        y__c = target__nc + row * n_classes
        if grad__nc != NULL:
            g__c = grad__nc + row * n_classes
        if not (_sample_kept(&task.samples, row)
                and (block_row_kept == NULL or block_row_kept[row - row_start])):
            if g__c != NULL:
                zero_row(g__c, n_classes)
            if loss__n != NULL:
                loss__n[row] = 0
            continue
        best = row_max(z__c, n_classes)
        bad_class = row_soft_target_sums(z__c, y__c, class_weight__c, n_classes, best,
                                         smoothing, kl_mode, log_target, &mass, &gap)
        sample_weight = 0.0
        if bad_class >= 0:
            if result.bad < 0:
                result.bad = row * n_classes + bad_class
        elif task.samples.weight == NULL:
            sample_weight = 1.0
        else:
            sample_weight = task.samples.weight[row]
            if not fastce_is_valid_weight(sample_weight):
                # reported at the row's first logit, whose target is valid
                if result.bad < 0:
                    result.bad = row * n_classes
                sample_weight = 0.0
        if sample_weight == 0.0:
            # An invalid row, or a zero sample weight: exactly 0 whatever the
            # logits hold.
            if g__c != NULL:
                zero_row(g__c, n_classes)
            if loss__n != NULL:
                loss__n[row] = 0
            continue
        if mass == 0.0:
            # Every factor is 0 (an all-zero target row): nothing to learn, and
            # the zero factors remove their terms exactly, also where the
            # softmax is undefined (an all -inf row) or NaN.
            if g__c != NULL:
                zero_row(g__c, n_classes)
            loss = gap
        else:
            rest = row_exp_rest(z__c, g__c, n_classes, best)
            loss = gap + mass * log1p(rest)
        loss = sample_weight * loss
        if g__c != NULL and mass != 0.0:
            row_grad_scale = grad_scale * sample_weight
            prob_scale = row_grad_scale * mass / (1.0 + rest)
            for c in range(n_classes):
                target = exp(y__c[c]) if log_target else y__c[c]
                factor = (1.0 - smoothing) * target + uniform
                if class_weight__c != NULL:
                    factor = factor * class_weight__c[c]
                g__c[c] = <floating>(prob_scale * g__c[c] - row_grad_scale * factor)
        block_loss += loss
        block_weight += sample_weight
        if loss__n != NULL:
            loss__n[row] = <floating>loss
    result.weight = block_weight
    return block_loss


def cross_entropy_probs(logits, target, class_weight, Py_ssize_t n_classes, double smoothing,
                        loss_out, grad_out, double grad_scale, int n_threads,
                        bint kl_mode=False, bint log_target=False, sample_weight=None,
                        sample_mask=None, logit_mask=None):
    """Cross-entropy with probability targets; every array C-contiguous of the
    logits' dtype (``target`` of the logits' size). With ``kl_mode`` (no
    weights, no smoothing) it is KL(target || softmax(logits)), same gradient;
    ``log_target`` (with ``kl_mode``) reads log-probability targets. The sample
    arrays are those of ``cross_entropy_labels``.

    Returns ``(loss_sum, sample_weight_sum, first_bad)``. ``first_bad`` is a
    flat logits position: a bad target there, or, when the targets of that
    row are valid, a bad sample weight of the row (the caller tells which).
    """
    cdef int typenum = float_typenum(logits)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(logits)
    cdef Py_ssize_t n_rows = size // n_classes if n_classes > 0 else 0
    cdef CrossEntropyTask task
    cdef BlockTotals totals
    _cross_entropy_task(&task, logits, class_weight, n_classes, smoothing, loss_out, grad_out,
                        None, grad_scale, sample_weight, sample_mask, logit_mask)
    task.target_probs = array_data(target, typenum, size, False)
    task.kl_mode = kl_mode
    task.log_target = log_target
    if n_rows == 0:
        return 0.0, 0.0, -1
    with nogil:
        run_blocks(_rows_body, &task, n_rows, task.block_rows, size, n_threads,
                   _masked_block_bytes(&task, sizeof(double) if task.is_double
                                       else sizeof(float)), &totals)
    return totals.loss, totals.weight, totals.bad


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
    cdef double best, rest, log_sum
    cdef ShortRun run
    cdef bint short_rows = n_classes < SHORT_ROW_CLASSES
    cdef Py_ssize_t run_start = row_start, run_stop
    while run_start < row_stop:
        run_stop = _start_run(&run, short_rows, x__nc + run_start * n_classes, run_start,
                              row_stop, n_classes, mode == MODE_SOFTMAX)
        for row in range(run_start, run_stop):
            z__c = x__nc + row * n_classes
            out__c = out + row * n_classes
            best = _run_row_max(&run, short_rows, row - run_start, z__c, n_classes)
            # softmax stores its exps straight into out; the others only sum.
            exp__c = _run_row_sums(&run, short_rows, row - run_start, z__c,
                                   out__c if mode == MODE_SOFTMAX else <floating*>NULL,
                                   n_classes, best, &rest, &log_sum)
            if mode == MODE_LOGSUMEXP:
                # An all -inf row sums to 0: log 0 = -inf, not the NaN of -inf - -inf
                # (an all-NaN row also has best = -inf, but its rest is NaN).
                if best == -INFINITY and rest == rest:
                    out[row] = <floating>best
                else:
                    out[row] = <floating>(best + log_sum)
            elif mode == MODE_LOG_SOFTMAX:
                row_log_softmax(z__c, out__c, n_classes, best, log_sum)
            else:
                row_scale(out__c, exp__c, n_classes, 1.0 / (1.0 + rest), <floating*>NULL, 0.0)
        run_start = run_stop


cdef void _normalize_tile(int mode, const floating* x, floating* out, Py_ssize_t n_classes,
                          Py_ssize_t inner, Py_ssize_t outer_index, Py_ssize_t tile_start,
                          Py_ssize_t width) noexcept nogil:
    """_normalize_rows for a class axis that is not last (see _ce_label_tile)."""
    cdef Py_ssize_t base = outer_index * n_classes * inner + tile_start
    cdef Py_ssize_t first = outer_index * inner + tile_start
    cdef const floating* z = x + base
    cdef double col_max[FASTCE_COLS_TILE]
    cdef double col_rest[FASTCE_COLS_TILE]
    cdef double per_position[FASTCE_COLS_TILE]
    cdef double zeros[FASTCE_COLS_TILE]
    cdef Py_ssize_t w
    cols_max(z, inner, n_classes, width, col_max)
    if mode == MODE_LOGSUMEXP:
        cols_exp_rest(z, <floating*>NULL, inner, n_classes, width, col_max, col_rest)
        for w in range(width):
            out[first + w] = <floating>(col_max[w] if col_max[w] == -INFINITY
                                        and col_rest[w] == col_rest[w]
                                        else col_max[w] + log1p(col_rest[w]))
    elif mode == MODE_LOG_SOFTMAX:
        cols_exp_rest(z, <floating*>NULL, inner, n_classes, width, col_max, col_rest)
        for w in range(width):
            per_position[w] = log1p(col_rest[w])
        cols_log_softmax(z, out + base, inner, n_classes, width, col_max, per_position)
    else:
        cols_exp_rest(z, out + base, inner, n_classes, width, col_max, col_rest)
        for w in range(width):
            per_position[w] = 1.0 / (1.0 + col_rest[w])
            zeros[w] = 0.0
        cols_scale(out + base, out + base, inner, n_classes, width, per_position,
                   <floating*>NULL, zeros)


cdef void _normalize_long_rows(int mode, const floating* x, floating* out, Py_ssize_t n_rows,
                               Py_ssize_t n_classes, int threads,
                               RowSegments* parts) noexcept nogil:
    """_normalize_rows for few, very long rows, each split across threads."""
    cdef Py_ssize_t row, segment, start, length
    cdef const floating* z__c
    cdef floating* out__c
    cdef double best, rest, gap, log_sum, inv_sum
    for row in range(n_rows):
        z__c = x + row * n_classes
        out__c = out + row * n_classes
        best = _split_row_max(z__c, n_classes, parts, threads)
        rest = _split_row_exp_rest(z__c, out__c if mode == MODE_SOFTMAX else <floating*>NULL,
                                   <floating*>NULL, False, n_classes, best, parts, threads,
                                   &gap)
        if mode == MODE_LOGSUMEXP:
            out[row] = <floating>(best if best == -INFINITY and rest == rest
                                  else best + log1p(rest))
            continue
        log_sum = log1p(rest)
        inv_sum = 1.0 / (1.0 + rest)
        for segment in prange(parts.n_segments, num_threads=threads, schedule="static",
                            use_threads_if=threads > 1):
            start = segment * BLOCK_ELEMENTS
            length = min(<Py_ssize_t>BLOCK_ELEMENTS, n_classes - start)
            if mode == MODE_LOG_SOFTMAX:
                row_log_softmax(z__c + start, out__c + start, length, best, log_sum)
            else:
                row_scale(out__c + start, out__c + start, length, inv_sum, <floating*>NULL,
                          0.0)


cdef struct NormalizeTask:
    # One log_softmax / softmax / logsumexp call over (outer, C, inner), or one
    # weighted logsumexp over rows (``b`` and ``sign`` set).
    int mode
    bint is_double
    const void* x
    const void* b
    void* out
    void* sign
    Py_ssize_t n_classes
    Py_ssize_t inner


cdef void _normalize_typed(const floating* x, const NormalizeTask* task, Py_ssize_t start,
                           Py_ssize_t stop) noexcept nogil:
    # Items are rows when inner is 1, (outer index, tile) units otherwise.
    cdef Py_ssize_t tiles_per_outer = n_blocks_for(task.inner, FASTCE_COLS_TILE)
    cdef Py_ssize_t unit, outer_index, tile_start
    if task.inner == 1:
        _normalize_rows(task.mode, x, <floating*>task.out, task.n_classes, start, stop)
        return
    for unit in range(start, stop):
        outer_index = unit // tiles_per_outer
        tile_start = (unit - outer_index * tiles_per_outer) * FASTCE_COLS_TILE
        _normalize_tile(task.mode, x, <floating*>task.out, task.n_classes, task.inner,
                        outer_index, tile_start,
                        min(<Py_ssize_t>FASTCE_COLS_TILE, task.inner - tile_start))


cdef double _normalize_body(const void* task, Py_ssize_t start, Py_ssize_t stop,
                            void* thread_scratch, BlockResult* result) noexcept nogil:
    cdef const NormalizeTask* normalize = <const NormalizeTask*>task
    if normalize.is_double:
        _normalize_typed(<const double*>normalize.x, normalize, start, stop)
    else:
        _normalize_typed(<const float*>normalize.x, normalize, start, stop)
    return 0.0


cdef int _normalize_long(const floating* x, const NormalizeTask* task, Py_ssize_t n_rows,
                         int n_threads) except -1 nogil:
    cdef RowSegments parts
    if not segments_alloc(&parts, task.n_classes):
        segments_free(&parts)
        with gil:
            raise MemoryError()
    _normalize_long_rows(task.mode, x, <floating*>task.out, n_rows, task.n_classes,
                         threads_for(n_rows * task.n_classes, n_threads), &parts)
    segments_free(&parts)
    return 0


def normalize(int mode, x, out, Py_ssize_t n_classes, int n_threads, Py_ssize_t inner=1):
    """log_softmax / softmax (``out`` of x's size and layout) or logsumexp
    (``out``: one value per position) of C-contiguous ``x`` viewed as
    (outer, n_classes, inner); ``inner`` 1 is rows of classes."""
    cdef int typenum = float_typenum(x)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(x)
    cdef Py_ssize_t n_rows = size // n_classes if n_classes > 0 else 0
    cdef NormalizeTask task
    cdef BlockTotals totals
    task.mode = mode
    task.is_double = typenum == cnp.NPY_FLOAT64
    task.x = array_data(x, typenum, size, False)
    task.out = array_data(out, typenum, n_rows if mode == MODE_LOGSUMEXP else size, True)
    task.n_classes = n_classes
    task.inner = inner
    if n_rows == 0:
        return
    if inner < 1 or n_rows % inner:
        raise ValueError("fastce internal error: inner does not divide the positions")
    with nogil:
        if inner > 1:
            run_blocks(_normalize_body, &task,
                       (n_rows // inner) * n_blocks_for(inner, FASTCE_COLS_TILE), 1, size,
                       n_threads, 0, &totals)
        elif _long_rows(n_rows, n_classes) and task.is_double:
            _normalize_long(<const double*>task.x, &task, n_rows, n_threads)
        elif _long_rows(n_rows, n_classes):
            _normalize_long(<const float*>task.x, &task, n_rows, n_threads)
        else:
            run_blocks(_normalize_body, &task, n_rows, rows_per_block(n_classes), size,
                       n_threads, 0, &totals)


# ----------------------------------------------------- nll_loss (log-probs)

cdef double _nll_unit(const floating* log_probs, const CrossEntropyTask* task,
                     Py_ssize_t outer_start, Py_ssize_t outer_stop,
                     BlockResult* result) noexcept nogil:
    """Outer indices [outer_start, outer_stop) of log-probabilities viewed as
    (outer, C, inner): l = -w_y log_probs[y] per position; the gradient is
    -s w_y at the target entry and 0 elsewhere. The losses are read before
    the unit's gradient is zeroed, so the gradient may alias ``log_probs``."""
    cdef Py_ssize_t n_classes = task.n_classes, inner = task.inner
    cdef const floating* class_weight__c = <const floating*>task.class_weight
    cdef floating* loss__n = <floating*>task.loss
    cdef floating* grad = <floating*>task.grad
    cdef Py_ssize_t position, outer_index, base, first = outer_start * inner
    cdef Py_ssize_t last = outer_stop * inner, element
    cdef int64_t label
    cdef bint usable
    cdef double label_weight, loss, total = 0.0, weights = 0.0
    for position in range(first, last):
        label = task.target[position]
        usable = _usable_label(label, task.ignore_index, True, n_classes, position,
                               &result.bad)
        label_weight = _label_weight(label, usable, class_weight__c)
        loss = 0.0
        if label_weight != 0.0:
            outer_index = position // inner
            base = outer_index * n_classes * inner + (position - outer_index * inner)
            loss = -label_weight * log_probs[base + label * inner]
            total += loss
            weights += label_weight
        if loss__n != NULL:
            loss__n[position] = <floating>loss
    if grad != NULL:
        for element in range(outer_start * n_classes * inner, outer_stop * n_classes * inner):
            grad[element] = 0
        for position in range(first, last):
            label = task.target[position]
            if (label == task.ignore_index or label < 0 or label >= n_classes):
                continue
            label_weight = class_weight__c[label] if class_weight__c != NULL else 1.0
            if label_weight == 0.0:
                continue
            outer_index = position // inner
            base = outer_index * n_classes * inner + (position - outer_index * inner)
            grad[base + label * inner] = <floating>(-task.grad_scale * label_weight)
    result.weight = weights
    return total


cdef double _nll_body(const void* task, Py_ssize_t start, Py_ssize_t stop,
                      void* thread_scratch, BlockResult* result) noexcept nogil:
    cdef const CrossEntropyTask* nll = <const CrossEntropyTask*>task
    if nll.is_double:
        return _nll_unit(<const double*>nll.logits, nll, start, stop, result)
    return _nll_unit(<const float*>nll.logits, nll, start, stop, result)


def nll_labels(log_probs, target, class_weight, Py_ssize_t n_classes, int64_t ignore_index,
               loss_out, grad_out, double grad_scale, int n_threads, Py_ssize_t inner=1):
    """torch's nll_loss over C-contiguous log-probabilities viewed as (outer,
    n_classes, inner), int64 ``target`` one per position. Reads one value per
    position (and writes the whole gradient), in units of whole outer indices.
    Returns ``(loss_sum, label_weight_sum, first_bad_position)``."""
    cdef Py_ssize_t size = cnp.PyArray_SIZE(log_probs)
    cdef Py_ssize_t n_positions = size // n_classes if n_classes > 0 else 0
    cdef CrossEntropyTask task
    cdef BlockTotals totals
    _cross_entropy_task(&task, log_probs, class_weight, n_classes, 0.0, loss_out, grad_out,
                        None, grad_scale, None, None, None)
    task.target = <const int64_t*>array_data(target, cnp.NPY_INT64, n_positions, False)
    task.ignore_index = ignore_index
    task.inner = inner
    if n_positions == 0:
        return 0.0, 0.0, -1
    if inner < 1 or n_positions % inner:
        raise ValueError("fastce internal error: inner does not divide the positions")
    with nogil:
        run_blocks(_nll_body, &task, n_positions // inner, rows_per_block(n_classes * inner),
                   size, n_threads, 0, &totals)
    return totals.loss, totals.weight, totals.bad


# ------------------------------------------ logsumexp with scale factors b

cdef void _weighted_lse_row(const floating* x__c, const floating* b__c, Py_ssize_t n_classes,
                            double* result, double* sign) noexcept nogil:
    """log |sum_c b_c exp(x_c)| and its sign (scipy's logsumexp with ``b``).

    Terms with b_c = 0 are left out, whatever x_c holds. With the largest
    kept x_k = m factored out, the sum is 1 + rest, rest = (b_k - 1) +
    sum_{c != k} b_c exp(x_c - m), so a sum near 1 keeps its digits through
    log1p. +inf terms decide alone: their b's sign, NaN if the signs mix.
    """
    cdef Py_ssize_t c, top = -1
    cdef double best = -INFINITY, value, weight, rest, total, inf_sign = 0.0
    for c in range(n_classes):
        weight = b__c[c]
        if weight == 0.0:
            continue
        value = x__c[c]
        if value != value or weight != weight:
            result[0] = value + weight  # NaN
            sign[0] = result[0]
            return
        if value > best or top < 0:
            best, top = value, c
    if top < 0 or best == -INFINITY:
        result[0], sign[0] = -INFINITY, 0.0  # an empty sum
        return
    if best == INFINITY:
        for c in range(n_classes):
            if b__c[c] != 0.0 and x__c[c] == INFINITY:
                weight = 1.0 if b__c[c] > 0.0 else -1.0
                if inf_sign != 0.0 and inf_sign != weight:
                    result[0] = INFINITY - INFINITY
                    sign[0] = result[0]
                    return
                inf_sign = weight
        result[0], sign[0] = INFINITY, inf_sign
        return
    rest = b__c[top] - 1.0
    for c in range(n_classes):
        if c != top and b__c[c] != 0.0:
            rest += b__c[c] * exp(x__c[c] - best)
    total = 1.0 + rest
    if total > 0.0:
        result[0], sign[0] = best + log1p(rest), 1.0
    elif total < 0.0:
        result[0], sign[0] = best + log(-total), -1.0
    else:
        result[0], sign[0] = -INFINITY, 0.0


cdef void _weighted_lse_rows(const floating* x, const NormalizeTask* task,
                             Py_ssize_t row_start, Py_ssize_t row_stop) noexcept nogil:
    cdef const floating* b = <const floating*>task.b
    cdef floating* out = <floating*>task.out
    cdef floating* sign_out = <floating*>task.sign
    cdef Py_ssize_t row, n_classes = task.n_classes
    cdef double result, sign
    for row in range(row_start, row_stop):
        _weighted_lse_row(x + row * n_classes, b + row * n_classes, n_classes, &result, &sign)
        out[row] = <floating>result
        sign_out[row] = <floating>sign


cdef double _weighted_lse_body(const void* task, Py_ssize_t start, Py_ssize_t stop,
                               void* thread_scratch, BlockResult* result) noexcept nogil:
    cdef const NormalizeTask* lse = <const NormalizeTask*>task
    if lse.is_double:
        _weighted_lse_rows(<const double*>lse.x, lse, start, stop)
    else:
        _weighted_lse_rows(<const float*>lse.x, lse, start, stop)
    return 0.0


def weighted_logsumexp(x, b, out, sign_out, Py_ssize_t n_classes, int n_threads):
    """scipy's logsumexp with ``b`` over rows of C-contiguous ``x`` (rows,
    n_classes); ``b`` of x's size and dtype; ``out`` and ``sign_out`` one per row."""
    cdef int typenum = float_typenum(x)
    cdef Py_ssize_t size = cnp.PyArray_SIZE(x)
    cdef Py_ssize_t n_rows = size // n_classes if n_classes > 0 else 0
    cdef NormalizeTask task
    cdef BlockTotals totals
    task.is_double = typenum == cnp.NPY_FLOAT64
    task.x = array_data(x, typenum, size, False)
    task.b = array_data(b, typenum, size, False)
    task.out = array_data(out, typenum, n_rows, True)
    task.sign = array_data(sign_out, typenum, n_rows, True)
    task.n_classes = n_classes
    if n_rows == 0:
        return
    with nogil:
        run_blocks(_weighted_lse_body, &task, n_rows, rows_per_block(n_classes), size,
                   n_threads, 0, &totals)
