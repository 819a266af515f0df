"""Array loops of dataset profiling (fastce.profiling).

``sample_stats`` reads each row of a chunk once (plus the cached max pass) and
writes one value per sample for every statistic the report needs: no N x C
temporary. ``accumulate`` adds a chunk's statistics to the exact sums and
counts of an accumulator's state. ``label_issues`` is confident learning's
second pass. The per-sample formulas and the exact sums are in _profile.h.
"""
import numpy as np

from cython.parallel cimport prange
cimport numpy as cnp
from libc.stdint cimport int64_t, uint64_t
from libc.math cimport INFINITY
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from fastce._kernels._blocks cimport BlockResult, BlockTotals, run_blocks
from fastce._kernels._arrays cimport array_data, float_typenum

cnp.import_array()

cdef extern from "_profile.h" nogil:
    ctypedef struct fastce_sample_stats:
        double loss, confidence, margin, entropy, self_confidence, brier
        int64_t prediction, n_above
    enum:
        FASTCE_EXACT_SIZE
        FASTCE_EXACT_NAN
    void fastce_row_stats(const void* row, int is_f32, int is_logit, Py_ssize_t n_classes,
                          int64_t label, fastce_sample_stats* out) noexcept
    Py_ssize_t fastce_probs_row_invalid(const void* row, int is_f32,
                                        Py_ssize_t n_classes) noexcept
    void fastce_binary_stats(double x, int is_logit, int64_t label,
                             fastce_sample_stats* out) noexcept
    int fastce_label_issue(const void* row, int is_f32, int is_logit, Py_ssize_t n_classes,
                           int64_t label, const double* threshold,
                           double* self_confidence) noexcept
    void fastce_exact_add(int64_t* acc, double value) noexcept
    void fastce_exact_normalize(int64_t* acc) noexcept
    double fastce_exact_value(const int64_t* acc) noexcept

EXACT_SIZE = FASTCE_EXACT_SIZE

# Statistics per sample, in the order of the rows of ``sample_stats``'s output.
STAT_NAMES = ("loss", "confidence", "margin", "entropy", "self_confidence", "brier")

# The loss histogram: bin 0 holds losses below 2^HIST_MIN_EXPONENT (0 among
# them); then 2^HIST_SUBBINS_LOG2 bins of equal width per octave up to 2^7 =
# 128 > the loss clamp of 100. From the float's own bits, so a loss lands in
# its bin exactly, and a bin's relative width is at most 1/64.
cdef enum:
    HIST_MIN_EXPONENT_ = -64
    HIST_MAX_EXPONENT_ = 7
    HIST_SUBBINS_LOG2_ = 6
    HIST_BINS_ = 1 + ((HIST_MAX_EXPONENT_ - HIST_MIN_EXPONENT_) << HIST_SUBBINS_LOG2_)

HIST_MIN_EXPONENT = HIST_MIN_EXPONENT_
HIST_MAX_EXPONENT = HIST_MAX_EXPONENT_
HIST_SUBBINS_LOG2 = HIST_SUBBINS_LOG2_
HIST_BINS = HIST_BINS_

cdef enum:
    ROWS_PER_BLOCK = 256
    # Fields of the exact sums (per row of the state arrays).
    G_WEIGHT = 0
    G_LOSS = 1
    G_CORRECT = 2
    G_TOP5 = 3
    G_BRIER = 4
    G_ENTROPY = 5
    G_MARGIN = 6
    G_CONFIDENCE = 7
    G_FIELDS = 8
    B_WEIGHT = 0
    B_CONFIDENCE = 1
    B_CORRECT = 2
    B_FIELDS = 3
    K_WEIGHT = 0
    K_LOSS = 1
    K_CORRECT = 2
    K_SELF_CONFIDENCE = 3
    K_SELF_CONFIDENCE_UNWEIGHTED = 4
    K_PREDICTED_WEIGHT = 5
    K_FIELDS = 6

GLOBAL_FIELDS = ("weight", "loss", "correct", "top5", "brier", "entropy", "margin", "confidence")
BIN_FIELDS = ("weight", "confidence", "correct")
CLASS_FIELDS = ("weight", "loss", "correct", "self_confidence", "self_confidence_unweighted",
                "predicted_weight")

# Kinds of sample_stats: a softmax row of logits or probabilities, or one
# binary element (binary task, and each label of a multi-label task); and
# what it found wrong first: nothing, a label, a prediction.
cdef enum:
    ROWS_LOGITS_ = 0
    ROWS_PROBS_ = 1
    ELEMENTS_LOGITS_ = 2
    ELEMENTS_PROBS_ = 3
    BAD_NONE_ = 0
    BAD_LABEL_ = 1
    BAD_PREDICTION_ = 2
    BAD_WEIGHT_ = 3

ROWS_LOGITS = ROWS_LOGITS_
ROWS_PROBS = ROWS_PROBS_
ELEMENTS_LOGITS = ELEMENTS_LOGITS_
ELEMENTS_PROBS = ELEMENTS_PROBS_
BAD_NONE = BAD_NONE_
BAD_LABEL = BAD_LABEL_
BAD_PREDICTION = BAD_PREDICTION_
BAD_WEIGHT = BAD_WEIGHT_


cdef inline bint _label_ok(int64_t label, Py_ssize_t n_classes) noexcept nogil:
    return 0 <= label < n_classes


cdef void _stats_block(int kind, const char* data, int is_f32, Py_ssize_t itemsize,
                       Py_ssize_t n_classes, const int64_t* labels, const double* weights,
                       Py_ssize_t samples_per_weight, double* stats, int64_t* predictions,
                       int64_t* n_above, Py_ssize_t n_samples, Py_ssize_t start,
                       Py_ssize_t stop, Py_ssize_t* bad, int* bad_kind) noexcept nogil:
    """Samples [start, stop): one row of n_classes (ROWS_*), or one element
    (ELEMENTS_*, labels in {0, 1}). ``stats`` is (6, n_samples). The sample
    weights (one per ``samples_per_weight`` samples, or NULL) are checked
    here too, so that a bad chunk is refused before anything is added."""
    cdef Py_ssize_t i, bad_class
    cdef int64_t label
    cdef fastce_sample_stats one
    cdef const char* row
    cdef double x
    bad[0] = -1
    bad_kind[0] = BAD_NONE_
    for i in range(start, stop):
        label = labels[i]
        if weights != NULL and not (0.0 <= weights[i // samples_per_weight] < INFINITY):
            if bad[0] < 0:
                bad[0], bad_kind[0] = i // samples_per_weight, BAD_WEIGHT_
        if kind == ROWS_LOGITS_ or kind == ROWS_PROBS_:
            row = data + i * n_classes * itemsize
            if not _label_ok(label, n_classes):
                if bad[0] < 0:
                    bad[0], bad_kind[0] = i, BAD_LABEL_
                label = 0  # still a valid read; the call raises
            if kind == ROWS_PROBS_:
                bad_class = fastce_probs_row_invalid(row, is_f32, n_classes)
                if bad_class >= 0:
                    if bad[0] < 0:
                        bad[0], bad_kind[0] = i * n_classes + bad_class, BAD_PREDICTION_
                    continue
            fastce_row_stats(row, is_f32, kind != ROWS_PROBS_, n_classes, label, &one)
        else:
            if not _label_ok(label, 2):
                if bad[0] < 0:
                    bad[0], bad_kind[0] = i, BAD_LABEL_
                label = 0
            x = (<const float*>data)[i] if is_f32 else (<const double*>data)[i]
            if kind == ELEMENTS_PROBS_ and not (0.0 <= x <= 1.0):
                if bad[0] < 0:
                    bad[0], bad_kind[0] = i, BAD_PREDICTION_
                continue
            fastce_binary_stats(x, kind == ELEMENTS_LOGITS_, label, &one)
        stats[i] = one.loss
        stats[n_samples + i] = one.confidence
        stats[2 * n_samples + i] = one.margin
        stats[3 * n_samples + i] = one.entropy
        stats[4 * n_samples + i] = one.self_confidence
        stats[5 * n_samples + i] = one.brier
        predictions[i] = one.prediction
        n_above[i] = one.n_above


cdef struct StatsTask:
    # One chunk's per-sample statistics (sample_stats) or label-issue pass.
    int kind
    const char* data
    int is_f32
    Py_ssize_t itemsize
    Py_ssize_t n_classes
    const int64_t* labels
    const double* weights
    Py_ssize_t samples_per_weight
    double* stats
    int64_t* predictions
    int64_t* n_above
    Py_ssize_t n_samples
    const double* thresholds
    unsigned char* flags
    double* self_confidence


cdef inline void _stats_task(StatsTask* task, int kind, const char* data, int is_f32,
                            Py_ssize_t n_classes, const int64_t* labels) noexcept:
    task.kind = kind
    task.data = data
    task.is_f32 = is_f32
    task.itemsize = 4 if is_f32 else 8
    task.n_classes = n_classes
    task.labels = labels


cdef double _stats_body(const void* task, Py_ssize_t start, Py_ssize_t stop,
                        void* thread_scratch, BlockResult* result) noexcept nogil:
    # The kind of the block's first bad value travels as its bad_value.
    cdef const StatsTask* chunk = <const StatsTask*>task
    cdef int bad_kind = BAD_NONE_
    _stats_block(chunk.kind, chunk.data, chunk.is_f32, chunk.itemsize, chunk.n_classes,
                 chunk.labels, chunk.weights, chunk.samples_per_weight, chunk.stats,
                 chunk.predictions, chunk.n_above, chunk.n_samples, start, stop, &result.bad,
                 &bad_kind)
    result.bad_value = bad_kind
    return 0.0


def sample_stats(int kind, predictions, labels, Py_ssize_t n_classes, stats, sample_predictions,
                 sample_n_above, int n_threads, sample_weight=None,
                 Py_ssize_t samples_per_weight=1):
    """Per-sample statistics of a chunk, in one pass over it.

    ``predictions``: C-contiguous float32/float64, (n, n_classes) for ROWS_*,
    n elements for ELEMENTS_*; ``labels``: int64, one per sample. Writes
    ``stats`` (6, n) float64 (STAT_NAMES), ``sample_predictions`` and
    ``sample_n_above`` (n,) int64. ``sample_weight`` (float64, one per
    ``samples_per_weight`` samples) is checked finite and >= 0. Returns
    ``(bad_kind, bad_position)``: the first bad label (its sample), prediction
    (its flat position) or weight (its row), or (BAD_NONE, -1).
    """
    cdef int typenum = float_typenum(predictions)
    cdef int is_f32 = typenum == cnp.NPY_FLOAT32
    cdef Py_ssize_t n_samples = cnp.PyArray_SIZE(<cnp.ndarray?>labels)
    cdef Py_ssize_t per_sample = n_classes if kind <= ROWS_PROBS_ else 1
    cdef const char* data = <const char*>array_data(predictions, typenum,
                                                    n_samples * per_sample, False)
    cdef const int64_t* label_ptr = <const int64_t*>array_data(labels, cnp.NPY_INT64,
                                                               n_samples, False)
    cdef double* stats_ptr = <double*>array_data(stats, cnp.NPY_FLOAT64, 6 * n_samples, True)
    cdef int64_t* prediction_ptr = <int64_t*>array_data(sample_predictions, cnp.NPY_INT64,
                                                        n_samples, True)
    cdef int64_t* above_ptr = <int64_t*>array_data(sample_n_above, cnp.NPY_INT64, n_samples,
                                                   True)
    cdef const double* weight_ptr = <const double*>array_data(
        sample_weight, cnp.NPY_FLOAT64, n_samples // max(samples_per_weight, 1), False)
    cdef StatsTask task
    cdef BlockTotals totals
    if n_samples == 0:
        return BAD_NONE_, -1
    if kind <= ROWS_PROBS_ and n_classes < 1:
        raise ValueError("fastce internal error: a profile row needs at least one class")
    _stats_task(&task, kind, data, is_f32, n_classes, label_ptr)
    task.weights = weight_ptr
    task.samples_per_weight = samples_per_weight
    task.stats = stats_ptr
    task.predictions = prediction_ptr
    task.n_above = above_ptr
    task.n_samples = n_samples
    with nogil:
        run_blocks(_stats_body, &task, n_samples, ROWS_PER_BLOCK, n_samples * per_sample,
                   n_threads, 0, &totals)
    if totals.bad < 0:
        return BAD_NONE_, -1
    first_kind, first_bad = <int>totals.bad_value, totals.bad
    return first_kind, first_bad


cdef inline Py_ssize_t _confidence_bin(double confidence, const double* edges,
                                       Py_ssize_t n_bins) noexcept nogil:
    """The bin b with edges[b] <= confidence < edges[b + 1] (the last bin
    closed), edges being the report's own bin_edges, so that every sample
    lies inside the edges shown for its bin. floor(confidence * n_bins) is
    the first guess; the rounded product can be off by one (0.6 * 10 is 6.0,
    while the double 0.6 lies below the edge 0.6000000000000001)."""
    cdef Py_ssize_t b
    if not (confidence > 0.0):  # also NaN
        return 0
    b = <Py_ssize_t>min(confidence * n_bins, <double>(n_bins - 1))
    while b > 0 and confidence < edges[b]:
        b -= 1
    while b < n_bins - 1 and confidence >= edges[b + 1]:
        b += 1
    return b


cdef inline Py_ssize_t _hist_bin(double loss) noexcept nogil:
    cdef uint64_t bits
    cdef int exponent
    memcpy(&bits, &loss, 8)
    exponent = <int>((bits >> 52) & 0x7ff) - 1023
    if exponent < HIST_MIN_EXPONENT_:
        return 0
    if exponent >= HIST_MAX_EXPONENT_:
        return HIST_BINS_ - 1
    return 1 + (((exponent - HIST_MIN_EXPONENT_) << HIST_SUBBINS_LOG2_)
                + <Py_ssize_t>((bits >> (52 - HIST_SUBBINS_LOG2_))
                               & ((1 << HIST_SUBBINS_LOG2_) - 1)))


cdef struct ProfileState:
    # One accumulator's arrays (see ``accumulate``), as pointers.
    int64_t* eg
    int64_t* eb
    int64_t* ek
    int64_t* cg
    int64_t* ck
    int64_t* cm
    int64_t* hist
    int64_t* elb


cdef void _accumulate_range(const double* st, const int64_t* pred, const int64_t* above,
                            const int64_t* lab, const double* sw, const double* edge_ptr,
                            Py_ssize_t n, Py_ssize_t n_bins, Py_ssize_t n_classes,
                            Py_ssize_t n_labels_per_row, ProfileState state,
                            Py_ssize_t start, Py_ssize_t stop) noexcept nogil:
    """Samples [start, stop) of a chunk of n into one state (no normalisation)."""
    cdef Py_ssize_t i, b, k, predicted
    cdef double weight, loss, confidence, correct, top5
    cdef int64_t* klass
    cdef int64_t* bins
    cdef bint weighted = sw != NULL
    cdef Py_ssize_t S = FASTCE_EXACT_SIZE
    cdef int64_t* eg = state.eg
    cdef int64_t* eb = state.eb
    cdef int64_t* ek = state.ek
    cdef int64_t* cg = state.cg
    cdef int64_t* ck = state.ck
    cdef int64_t* cm = state.cm
    cdef int64_t* hist = state.hist
    cdef int64_t* elb = state.elb
    for i in range(start, stop):
        weight = sw[i // n_labels_per_row] if weighted else 1.0
        loss = st[i]
        confidence = st[n + i]
        k = i % n_labels_per_row if n_labels_per_row > 1 else lab[i]
        predicted = pred[i]
        correct = 1.0 if predicted == lab[i] else 0.0
        top5 = 1.0 if above[i] < 5 else 0.0
        b = _confidence_bin(confidence, edge_ptr, n_bins)
        cg[0] += 1
        cg[1] += <int64_t>correct
        cg[2] += <int64_t>top5
        if loss != loss:
            cg[3] += 1
        else:
            hist[_hist_bin(loss)] += 1
        fastce_exact_add(eg + G_LOSS * S, weight * loss)
        fastce_exact_add(eg + G_BRIER * S, weight * st[5 * n + i])
        fastce_exact_add(eg + G_ENTROPY * S, weight * st[3 * n + i])
        fastce_exact_add(eg + G_MARGIN * S, weight * st[2 * n + i])
        fastce_exact_add(eg + G_CONFIDENCE * S, weight * confidence)
        # Calibration bins keep exact weight and correct sums in both modes.
        fastce_exact_add(eb + (b * B_FIELDS + B_CONFIDENCE) * S, weight * confidence)
        fastce_exact_add(eb + (b * B_FIELDS + B_WEIGHT) * S, weight)
        fastce_exact_add(eb + (b * B_FIELDS + B_CORRECT) * S, weight * correct)
        klass = ek + k * K_FIELDS * S
        fastce_exact_add(klass + K_LOSS * S, weight * loss)
        fastce_exact_add(klass + K_SELF_CONFIDENCE * S, weight * st[4 * n + i])
        if n_labels_per_row > 1:
            # Multi-label: class k is the label column; "support" counts
            # the positives, and each label has its own calibration bins.
            ck[3 * k] += lab[i]
            ck[3 * k + 1] += <int64_t>correct
            ck[3 * k + 2] += 1
            bins = elb + (k * n_bins + b) * B_FIELDS * S
            fastce_exact_add(bins + B_CONFIDENCE * S, weight * confidence)
            fastce_exact_add(bins + B_WEIGHT * S, weight)
            fastce_exact_add(bins + B_CORRECT * S, weight * correct)
        else:
            ck[3 * k] += 1
            ck[3 * k + 1] += <int64_t>correct
            ck[3 * predicted + 2] += 1
            if cm != NULL:
                cm[k * n_classes + predicted] += 1
        if weighted:
            fastce_exact_add(eg + G_WEIGHT * S, weight)
            fastce_exact_add(eg + G_CORRECT * S, weight * correct)
            fastce_exact_add(eg + G_TOP5 * S, weight * top5)
            fastce_exact_add(klass + K_WEIGHT * S, weight)
            fastce_exact_add(klass + K_CORRECT * S, weight * correct)
            fastce_exact_add(klass + K_SELF_CONFIDENCE_UNWEIGHTED * S, st[4 * n + i])
            if n_labels_per_row == 1:
                fastce_exact_add(ek + (predicted * K_FIELDS + K_PREDICTED_WEIGHT) * S,
                                 weight)


cdef ProfileState _state_of(tuple arrays, Py_ssize_t n_bins, Py_ssize_t n_classes) except *:
    """Pointers to the arrays of one state, in ``accumulate``'s order."""
    (exact_global, exact_bins, exact_class, counts_global, counts_class, confusion, histogram,
     exact_label_bins) = arrays
    cdef ProfileState state
    state.eg = <int64_t*>array_data(exact_global, cnp.NPY_INT64,
                                    G_FIELDS * FASTCE_EXACT_SIZE, True)
    state.eb = <int64_t*>array_data(exact_bins, cnp.NPY_INT64,
                                    n_bins * B_FIELDS * FASTCE_EXACT_SIZE, True)
    state.ek = <int64_t*>array_data(exact_class, cnp.NPY_INT64,
                                    n_classes * K_FIELDS * FASTCE_EXACT_SIZE, True)
    state.cg = <int64_t*>array_data(counts_global, cnp.NPY_INT64, 4, True)
    state.ck = <int64_t*>array_data(counts_class, cnp.NPY_INT64, n_classes * 3, True)
    state.cm = <int64_t*>array_data(confusion, cnp.NPY_INT64, n_classes * n_classes, True)
    state.hist = <int64_t*>array_data(histogram, cnp.NPY_INT64, HIST_BINS_, True)
    state.elb = <int64_t*>array_data(
        exact_label_bins, cnp.NPY_INT64,
        n_classes * n_bins * B_FIELDS * FASTCE_EXACT_SIZE if exact_label_bins is not None
        else 0, True)
    return state


# Below this many samples a chunk is accumulated on one thread: a private
# state per thread costs its allocation and merge (O(C) exact sums).
cdef enum:
    PARALLEL_MIN_SAMPLES = 1 << 16


def accumulate(stats, sample_predictions, sample_n_above, labels, sample_weight,
               bin_edges, Py_ssize_t n_labels_per_row, exact_global, exact_bins,
               exact_class, counts_global, counts_class, confusion, histogram,
               exact_label_bins, int n_threads=1):
    """Add a chunk's statistics (``sample_stats``'s output) to a state.

    ``bin_edges`` (n_bins + 1,) float64 are the calibration bins' edges.

    Exact sums: ``exact_global`` (G_FIELDS, EXACT_SIZE), ``exact_bins``
    (n_bins, B_FIELDS, EXACT_SIZE), ``exact_class`` (n_classes, K_FIELDS,
    EXACT_SIZE); counts (int64): ``counts_global`` [samples, correct, top-5,
    NaN losses], ``counts_class`` (n_classes, 3) [support, correct, predicted],
    ``confusion`` (n_classes, n_classes) or None, ``histogram`` (HIST_BINS,).

    ``n_labels_per_row`` is 1 for multiclass/binary samples; for a multi-label
    chunk (L labels a row) each element is a sample of class "its label
    column", ``sample_weight`` is per row, and ``exact_label_bins`` (L,
    n_bins, B_FIELDS, EXACT_SIZE) holds each label's calibration bins.

    Without ``sample_weight`` (None), the global and per-class weight, correct
    and predicted sums are not formed: the counts are those sums. The weights
    were checked by ``sample_stats``.

    With ``n_threads`` > 1 (and a large chunk), each thread adds its share of
    the samples into a private state, and the states are then added up: the
    sums are exact, so the result does not depend on the split.
    """
    cdef Py_ssize_t n = cnp.PyArray_SIZE(<cnp.ndarray?>labels)
    cdef Py_ssize_t n_classes = (<cnp.ndarray?>counts_class).shape[0]
    cdef Py_ssize_t n_bins = cnp.PyArray_SIZE(<cnp.ndarray?>bin_edges) - 1
    cdef const double* edge_ptr = <const double*>array_data(bin_edges, cnp.NPY_FLOAT64,
                                                            n_bins + 1, False)
    cdef const double* st = <const double*>array_data(stats, cnp.NPY_FLOAT64, 6 * n, False)
    cdef const int64_t* pred = <const int64_t*>array_data(sample_predictions, cnp.NPY_INT64,
                                                          n, False)
    cdef const int64_t* above = <const int64_t*>array_data(sample_n_above, cnp.NPY_INT64, n,
                                                           False)
    cdef const int64_t* lab = <const int64_t*>array_data(labels, cnp.NPY_INT64, n, False)
    cdef const double* sw = <const double*>array_data(
        sample_weight, cnp.NPY_FLOAT64, n // n_labels_per_row, False)
    main = (exact_global, exact_bins, exact_class, counts_global, counts_class, confusion,
            histogram, exact_label_bins)
    cdef int threads = n_threads if n >= PARALLEL_MIN_SAMPLES else 1
    cdef Py_ssize_t part, share
    cdef ProfileState* states
    cdef ProfileState state
    if n == 0:
        return
    if threads <= 1:
        state = _state_of(main, n_bins, n_classes)
        with nogil:
            _accumulate_range(st, pred, above, lab, sw, edge_ptr, n, n_bins, n_classes,
                              n_labels_per_row, state, 0, n)
    else:
        private = [main] + [tuple(None if a is None else np.zeros_like(a) for a in main)
                            for _ in range(threads - 1)]
        states = <ProfileState*>malloc(threads * sizeof(ProfileState))
        if states == NULL:
            raise MemoryError()
        try:
            for part in range(threads):
                states[part] = _state_of(private[part], n_bins, n_classes)
            # Parts split on whole rows (multi-label rows hold several samples).
            share = ((n // n_labels_per_row + threads - 1) // threads) * n_labels_per_row
            with nogil:
                for part in prange(threads, num_threads=threads, schedule="static"):
                    _accumulate_range(st, pred, above, lab, sw, edge_ptr, n, n_bins,
                                      n_classes, n_labels_per_row, states[part],
                                      min(part * share, n), min((part + 1) * share, n))
        finally:
            free(states)
        for extra in private[1:]:
            for target, source in zip(main, extra):
                if target is not None:
                    target += source
    for sums in (exact_global, exact_bins, exact_class, exact_label_bins):
        if sums is not None:
            normalize(sums)


cdef void _normalize_all(int64_t* sums, Py_ssize_t count) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(count):
        fastce_exact_normalize(sums + i * FASTCE_EXACT_SIZE)


def exact_values(sums):
    """The exact sums of ``sums`` (..., EXACT_SIZE) int64, rounded to float64."""
    cdef cnp.ndarray source = np.ascontiguousarray(sums, dtype=np.int64)
    cdef Py_ssize_t count = cnp.PyArray_SIZE(source) // FASTCE_EXACT_SIZE
    cdef cnp.ndarray result = np.empty(count, dtype=np.float64)
    cdef const int64_t* src = <const int64_t*>array_data(source, cnp.NPY_INT64,
                                                         count * FASTCE_EXACT_SIZE, False)
    cdef double* out = <double*>cnp.PyArray_DATA(result)
    cdef Py_ssize_t i
    with nogil:
        for i in range(count):
            out[i] = fastce_exact_value(src + i * FASTCE_EXACT_SIZE)
    shape = np.shape(sums)
    return result.reshape(shape[:len(shape) - 1])


def exact_sum(values):
    """One exact sum of every float64 in ``values`` (a test hook)."""
    cdef cnp.ndarray source = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    cdef cnp.ndarray result = np.zeros(FASTCE_EXACT_SIZE, dtype=np.int64)
    cdef const double* src = <const double*>cnp.PyArray_DATA(source)
    cdef int64_t* out = <int64_t*>cnp.PyArray_DATA(result)
    cdef Py_ssize_t i, n = cnp.PyArray_SIZE(source)
    with nogil:
        for i in range(n):
            fastce_exact_add(out, src[i])
            if (i & ((1 << 28) - 1)) == 0:
                fastce_exact_normalize(out)
        fastce_exact_normalize(out)
    return result


def normalize(sums):
    """Carry every exact sum of ``sums`` (..., EXACT_SIZE) into canonical form, in place."""
    cdef Py_ssize_t count = cnp.PyArray_SIZE(<cnp.ndarray?>sums) // FASTCE_EXACT_SIZE
    cdef int64_t* data = <int64_t*>array_data(sums, cnp.NPY_INT64, count * FASTCE_EXACT_SIZE,
                                              True)
    with nogil:
        _normalize_all(data, count)
    return sums


cdef double _label_issues_body(const void* task, Py_ssize_t start, Py_ssize_t stop,
                               void* thread_scratch, BlockResult* result) noexcept nogil:
    cdef const StatsTask* chunk = <const StatsTask*>task
    cdef Py_ssize_t i
    for i in range(start, stop):
        if not _label_ok(chunk.labels[i], chunk.n_classes):  # checked by the first pass
            chunk.flags[i] = 0
            chunk.self_confidence[i] = 0.0
            continue
        chunk.flags[i] = fastce_label_issue(chunk.data + i * chunk.n_classes * chunk.itemsize,
                                            chunk.is_f32, chunk.kind == ROWS_LOGITS_,
                                            chunk.n_classes, chunk.labels[i],
                                            chunk.thresholds, &chunk.self_confidence[i])
    return 0.0


def label_issues(int kind, predictions, labels, Py_ssize_t n_classes, thresholds, flags,
                 self_confidence, int n_threads):
    """Confident learning's second pass over a chunk (see _profile.h).

    ``kind`` is ROWS_LOGITS_ or ROWS_PROBS_; ``thresholds`` (n_classes,) float64
    holds t_k - 1e-6, or its log for logits. Writes ``flags`` (n,) uint8 (1 for
    an issue) and ``self_confidence`` (n,) float64.
    """
    cdef int typenum = float_typenum(predictions)
    cdef int is_f32 = typenum == cnp.NPY_FLOAT32
    cdef Py_ssize_t n_samples = cnp.PyArray_SIZE(<cnp.ndarray?>labels)
    cdef const char* data = <const char*>array_data(predictions, typenum,
                                                    n_samples * n_classes, False)
    cdef const int64_t* lab = <const int64_t*>array_data(labels, cnp.NPY_INT64, n_samples,
                                                         False)
    cdef const double* threshold = <const double*>array_data(thresholds, cnp.NPY_FLOAT64,
                                                             n_classes, False)
    cdef unsigned char* flag = <unsigned char*>array_data(flags, cnp.NPY_UINT8, n_samples,
                                                          True)
    cdef double* confidence = <double*>array_data(self_confidence, cnp.NPY_FLOAT64,
                                                  n_samples, True)
    cdef StatsTask task
    cdef BlockTotals totals
    if n_samples == 0:
        return
    _stats_task(&task, kind, data, is_f32, n_classes, lab)
    task.thresholds = threshold
    task.flags = flag
    task.self_confidence = confidence
    with nogil:
        run_blocks(_label_issues_body, &task, n_samples, ROWS_PER_BLOCK,
                   n_samples * n_classes, n_threads, 0, &totals)
