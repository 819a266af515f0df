"""Dataset profiling: where a model fails, and which labels are probably wrong.

``profile(predictions, labels)`` reads a model's outputs over a dataset in
chunks of rows (NumPy arrays, memmaps, ``.npy`` paths, h5py and zarr arrays;
never loaded whole) and returns a :class:`ProfileReport`: loss, accuracy,
calibration, per-class tables, the confusion matrix, the hardest samples, and
the label issues of cleanlab's confident learning.

Everything is built on :class:`ProfileAccumulator`, the streaming form: one
fused kernel pass per chunk gives each sample's statistics, and exact sums
(see ``_profile.h``) collect them, so a report is bitwise identical for every
chunk size, thread count and order of merges.
"""
import json
import math
import os
import sys

import numpy as np

from fastce._kernels.dispatch import kernels
from fastce._api.validation import check_int, compute_dtype, resolve_threads

_profile = kernels("_profile")

__all__ = ["profile", "ProfileAccumulator", "ProfileReport", "rank_label_issues"]

TASKS = ("multiclass", "binary", "multilabel")
KINDS = ("logits", "probs")
QUANTILES = (0.5, 0.9, 0.99, 0.999)
# The default chunk: about this many bytes of predictions a read.
DEFAULT_CHUNK_BYTES = 64 << 20
# Fine histogram bins per display bin of the report's loss histogram (4 a octave).
_DISPLAY_GROUP = 16


def _histogram_lower_edges():
    """Lower edge of each fine histogram bin (bin 0 starts at 0)."""
    exponents = np.arange(_profile.HIST_MIN_EXPONENT, _profile.HIST_MAX_EXPONENT)
    sub = np.arange(1 << _profile.HIST_SUBBINS_LOG2) / (1 << _profile.HIST_SUBBINS_LOG2)
    edges = (np.ldexp(1.0, exponents)[:, None] * (1.0 + sub)[None, :]).reshape(-1)
    return np.concatenate([[0.0], edges])


_FINE_LOWER = _histogram_lower_edges()
_FINE_UPPER = np.concatenate([_FINE_LOWER[1:], [2.0 ** _profile.HIST_MAX_EXPONENT]])


def _labels_array(labels, name, task):
    array = np.asarray(labels)
    if isinstance(labels, np.ma.MaskedArray):
        raise TypeError(f"{name} is a numpy masked array; pass plain labels")
    if array.dtype.kind == "b":
        if task == "multiclass":
            raise TypeError(f"{name} of dtype bool is ambiguous for task='multiclass'; "
                            "pass integer class indices")
        return array.astype(np.int64)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer labels, got dtype {array.dtype}")
    if array.dtype == np.uint64 and array.size and array.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} holds a label above 2**63 - 1")
    return np.ascontiguousarray(array, dtype=np.int64)


def _predictions_array(predictions, name):
    array = np.asarray(predictions)
    if isinstance(predictions, np.ma.MaskedArray):
        raise TypeError(f"{name} is a numpy masked array; pass plain predictions")
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{name} has unsupported dtype {array.dtype}; expected real numbers")
    return np.ascontiguousarray(array, dtype=compute_dtype(array.dtype))


class ProfileAccumulator:
    """The streaming form of :func:`profile`, with mergeable, picklable state.

    ``update(predictions_chunk, labels_chunk, start=None, sample_weight=None)``
    adds a chunk of rows (``start`` is the global index of its first row; None
    continues after the last row seen), ``merge(other)`` adds another
    accumulator over disjoint rows (in place; returns self), and ``report()``
    gives a :class:`ProfileReport`. Accumulators over disjoint row ranges,
    merged in any order or tree, give bitwise the same report as one over all
    rows: every sum is exact and every count an int64.

    Label issues need a second pass over the data (see :func:`profile`), so
    ``report()`` of an accumulator has ``label_issues`` None, unless the
    caller gives them.

    Parameters
    ----------
    kind : "logits" (softmax / sigmoid applied here) or "probs".
    task : "multiclass" ((N, C) predictions, (N,) class labels), "binary"
        ((N,) predictions, (N,) labels in {0, 1}) or "multilabel" ((N, L)
        predictions and {0, 1} labels).
    n_classes : taken from the first chunk when None.
    n_bins : equal-width confidence bins of the calibration table.
    top_k : how many of the hardest samples (largest losses) to keep.
    confusion_max_classes : the confusion matrix is kept up to this many classes.
    """

    def __init__(self, *, kind="logits", task="multiclass", n_classes=None, n_bins=15,
                 top_k=100, confusion_max_classes=1000):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        self.kind, self.task = kind, task
        self.n_bins = check_int(n_bins, "n_bins", "a positive int", lowest=1, highest=1 << 20)
        self.top_k = check_int(top_k, "top_k", "an int >= 0", lowest=0, highest=1 << 40)
        self.confusion_max_classes = check_int(confusion_max_classes, "confusion_max_classes",
                                               "an int >= 0", lowest=0)
        if task == "binary":
            if n_classes not in (None, 2):
                raise ValueError(f"task='binary' has 2 classes, got n_classes={n_classes!r}")
            n_classes = 2
        self.n_classes = None
        self.weighted = None
        self.next_start = 0
        if n_classes is not None:
            self._allocate(check_int(n_classes, "n_classes", "a positive int", lowest=1))

    # ---------------------------------------------------------------- state
    def _allocate(self, n_classes):
        size = _profile.EXACT_SIZE
        self.n_classes = n_classes
        self.bin_edges = np.linspace(0.0, 1.0, self.n_bins + 1)
        self.exact_global = np.zeros((len(_profile.GLOBAL_FIELDS), size), dtype=np.int64)
        self.exact_bins = np.zeros((self.n_bins, len(_profile.BIN_FIELDS), size), dtype=np.int64)
        self.exact_class = np.zeros((n_classes, len(_profile.CLASS_FIELDS), size),
                                    dtype=np.int64)
        self.exact_label_bins = (
            np.zeros((n_classes, self.n_bins, len(_profile.BIN_FIELDS), size), dtype=np.int64)
            if self.task == "multilabel" else None)
        self.counts_global = np.zeros(4, dtype=np.int64)
        self.counts_class = np.zeros((n_classes, 3), dtype=np.int64)
        self.confusion = (np.zeros((n_classes, n_classes), dtype=np.int64)
                          if self.task != "multilabel" and n_classes <= self.confusion_max_classes
                          else None)
        self.histogram = np.zeros(_profile.HIST_BINS, dtype=np.int64)
        self.n_rows = 0
        self.hardest_index = np.zeros(0, dtype=np.int64)
        self.hardest_loss = np.zeros(0, dtype=np.float64)
        self.hardest_label = np.zeros((0,) if self.task != "multilabel" else (0, n_classes),
                                      dtype=np.int64)
        self.hardest_predicted = np.zeros_like(self.hardest_label)

    def _shape_checks(self, predictions, labels, pred_name, label_name, start):
        task = self.task
        if task == "multiclass":
            if predictions.ndim != 2:
                raise ValueError(f"{pred_name} must be 2-D (n_samples, n_classes) for "
                                 f"task='multiclass', got shape {predictions.shape}")
            n_classes = predictions.shape[1]
            if n_classes < 1:
                raise ValueError(f"{pred_name} has 0 classes")
            expected_labels = predictions.shape[:1]
        elif task == "binary":
            if predictions.ndim != 1:
                raise ValueError(f"{pred_name} must be 1-D (n_samples,) for task='binary', got "
                                 f"shape {predictions.shape}")
            n_classes, expected_labels = 2, predictions.shape
        else:
            if predictions.ndim != 2:
                raise ValueError(f"{pred_name} must be 2-D (n_samples, n_labels) for "
                                 f"task='multilabel', got shape {predictions.shape}")
            n_classes, expected_labels = predictions.shape[1], predictions.shape
        if labels.shape != expected_labels:
            raise ValueError(f"{label_name} has shape {labels.shape}, but {pred_name} needs "
                             f"{expected_labels} (rows from {start})")
        if self.n_classes is None:
            self._allocate(n_classes)
        elif n_classes != self.n_classes:
            raise ValueError(f"{pred_name} has {n_classes} classes, but this profile has "
                             f"{self.n_classes}")

    def update(self, predictions_chunk, labels_chunk, *, start=None, sample_weight=None,
               n_threads=None, _names=("predictions", "labels")):
        """Add a chunk of rows. Returns self."""
        pred_name, label_name = _names
        predictions = _predictions_array(predictions_chunk, pred_name)
        labels = _labels_array(labels_chunk, label_name, self.task)
        start = self.next_start if start is None else check_int(start, "start", "an int >= 0",
                                                                lowest=0)
        self._shape_checks(predictions, labels, pred_name, label_name, start)
        n_rows = predictions.shape[0]
        weight = None
        if sample_weight is not None:
            weight = np.asarray(sample_weight)
            if weight.dtype.kind not in "fiub":
                raise TypeError(f"sample_weight has unsupported dtype {weight.dtype}")
            weight = np.ascontiguousarray(weight, dtype=np.float64)
            if weight.shape != (n_rows,):
                raise ValueError(f"sample_weight must have shape ({n_rows},), got {weight.shape}")
        if self.weighted is None:
            self.weighted = weight is not None
        elif self.weighted != (weight is not None):
            raise ValueError("sample_weight must be given for every chunk or for none")
        threads = resolve_threads(n_threads)
        # Every check happens in the statistics pass, before anything is added:
        # a refused chunk leaves the accumulator as it was.
        stats, predicted, n_above = self._sample_stats(predictions, labels, weight, start,
                                                       pred_name, label_name, threads)
        per_row = self.n_classes if self.task == "multilabel" else 1
        _profile.accumulate(
            stats, predicted, n_above, labels.reshape(-1), weight, self.bin_edges, per_row,
            self.exact_global, self.exact_bins, self.exact_class, self.counts_global,
            self.counts_class, self.confusion, self.histogram, self.exact_label_bins, threads)
        self._update_hardest(stats[0], predicted, labels, start)
        self.n_rows += n_rows
        self.next_start = start + n_rows
        return self

    def _kernel_kind(self):
        if self.task == "multiclass":
            return _profile.ROWS_LOGITS if self.kind == "logits" else _profile.ROWS_PROBS
        return _profile.ELEMENTS_LOGITS if self.kind == "logits" else _profile.ELEMENTS_PROBS

    def _sample_stats(self, predictions, labels, weight, start, pred_name, label_name,
                      threads):
        n_samples = labels.size
        stats, predicted, n_above = self._scratch_arrays(n_samples)
        per_row = self.n_classes if self.task == "multilabel" else 1
        bad_kind, bad = _profile.sample_stats(self._kernel_kind(), predictions,
                                              labels.reshape(-1), self.n_classes, stats,
                                              predicted, n_above, threads, weight, per_row)
        if bad_kind == _profile.BAD_WEIGHT:
            raise ValueError(f"sample_weight must be finite and >= 0; got "
                             f"{weight[bad].item()!r} at row {start + bad}")
        if bad_kind == _profile.BAD_LABEL:
            position = np.unravel_index(bad, labels.shape)
            allowed = (f"a class index in [0, {self.n_classes})" if self.task == "multiclass"
                       else "0 or 1")
            raise ValueError(f"{label_name} must be {allowed}; got {labels.flat[bad]} at row "
                             f"{start + int(position[0])}"
                             + (f", label {int(position[1])}" if len(position) > 1 else ""))
        if bad_kind == _profile.BAD_PREDICTION:
            position = np.unravel_index(bad, predictions.shape)
            where = f"row {start + int(position[0])}" + (
                f", column {int(position[1])}" if len(position) > 1 else "")
            raise ValueError(f"{pred_name} must be probabilities in [0, 1] (NaN is not one) "
                             f"with kind='probs'; got {predictions.flat[bad].item()!r} at {where}")
        return stats, predicted, n_above

    def _scratch_arrays(self, n_samples):
        """Per-sample outputs of the statistics pass, reused from chunk to chunk
        (fresh 10 MB arrays a chunk cost their page faults every time)."""
        n_stats = len(_profile.STAT_NAMES)
        scratch = getattr(self, "_scratch", None)
        if scratch is None or scratch[1].size < n_samples:
            scratch = (np.empty(n_stats * n_samples), np.empty(n_samples, dtype=np.int64),
                       np.empty(n_samples, dtype=np.int64))
            self._scratch = scratch
        stats = scratch[0][:n_stats * n_samples].reshape(n_stats, n_samples)
        return stats, scratch[1][:n_samples], scratch[2][:n_samples]

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_scratch", None)  # scratch space, not state
        return state

    def _update_hardest(self, losses, predicted, labels, start):
        if self.top_k == 0:
            return
        if self.task == "multilabel":
            n_labels = self.n_classes
            row_losses = losses.reshape(-1, n_labels).mean(axis=1)
            row_labels = labels.reshape(-1, n_labels)
            row_predicted = predicted.reshape(-1, n_labels)
        else:
            row_losses, row_labels, row_predicted = losses, labels, predicted
        index = start + np.arange(row_losses.shape[0], dtype=np.int64)
        if self.hardest_loss.size == self.top_k:
            # Only losses at or above the k-th kept one can enter: one compare
            # per row instead of a partition of the chunk.
            floor = self.hardest_loss[-1]
            floor = np.inf if np.isnan(floor) else floor
            rising = np.flatnonzero((row_losses >= floor) | np.isnan(row_losses))
            row_losses, index = row_losses[rising], index[rising]
            row_labels, row_predicted = row_labels[rising], row_predicted[rising]
        if row_losses.shape[0] > self.top_k:
            keep = _top_k_order(row_losses, index, self.top_k)
            row_losses, index = row_losses[keep], index[keep]
            row_labels, row_predicted = row_labels[keep], row_predicted[keep]
        self._merge_hardest(row_losses, index, row_labels, row_predicted)

    def _merge_hardest(self, losses, index, labels, predicted):
        losses = np.concatenate([self.hardest_loss, losses])
        index = np.concatenate([self.hardest_index, index])
        labels = np.concatenate([self.hardest_label, labels])
        predicted = np.concatenate([self.hardest_predicted, predicted])
        order = _top_k_order(losses, index, self.top_k)
        self.hardest_loss, self.hardest_index = losses[order], index[order]
        self.hardest_label, self.hardest_predicted = labels[order], predicted[order]

    def merge(self, other):
        """Add ``other`` (an accumulator over other rows) into this one; returns self."""
        if not isinstance(other, ProfileAccumulator):
            raise TypeError(f"can only merge a ProfileAccumulator, got {type(other).__name__}")
        settings = ("kind", "task", "n_bins", "top_k", "confusion_max_classes")
        for name in settings:
            if getattr(self, name) != getattr(other, name):
                raise ValueError(f"cannot merge accumulators with different {name}: "
                                 f"{getattr(self, name)!r} and {getattr(other, name)!r}")
        if other.n_classes is None:
            return self
        if self.n_classes is None:
            self._allocate(other.n_classes)
        elif self.n_classes != other.n_classes:
            raise ValueError(f"cannot merge {self.n_classes} classes with {other.n_classes}")
        if self.weighted is not None and other.weighted is not None \
                and self.weighted != other.weighted:
            raise ValueError("cannot merge a weighted accumulator with an unweighted one")
        if self.weighted is None:
            self.weighted = other.weighted
        for name in ("exact_global", "exact_bins", "exact_class", "exact_label_bins"):
            mine = getattr(self, name)
            if mine is not None:
                mine += getattr(other, name)
                _profile.normalize(mine)
        for name in ("counts_global", "counts_class", "confusion", "histogram"):
            mine = getattr(self, name)
            if mine is not None:
                mine += getattr(other, name)
        self.n_rows += other.n_rows
        self.next_start = max(self.next_start, other.next_start)
        self._merge_hardest(other.hardest_loss, other.hardest_index, other.hardest_label,
                            other.hardest_predicted)
        return self

    # --------------------------------------------------------------- results
    def confident_thresholds(self):
        """cleanlab's per-class thresholds t_k: the mean self-confidence of the
        samples labelled k (unweighted, as cleanlab), 2 for a class with no
        sample (no probability reaches it), clipped below at 2e-6."""
        field = (_profile.CLASS_FIELDS.index("self_confidence_unweighted") if self.weighted
                 else _profile.CLASS_FIELDS.index("self_confidence"))
        sums = _profile.exact_values(self.exact_class[:, field])
        support = self.counts_class[:, 0]
        with np.errstate(invalid="ignore", divide="ignore"):
            thresholds = np.where(support > 0, sums / np.maximum(support, 1), 2.0)
        return np.maximum(thresholds, 2e-6)

    def label_issue_thresholds(self):
        """What the second pass compares with: t_k - 1e-6 for probabilities,
        log(t_k - 1e-6) for logits (p_k >= t <=> z_k >= lse + log t: no exp per
        element). From the first pass over all rows (merge accumulators first)."""
        thresholds = self.confident_thresholds() - 1e-6
        return np.log(thresholds) if self.kind == "logits" else thresholds

    def find_label_issues(self, predictions_chunk, labels_chunk, *, start=0, thresholds=None,
                          n_threads=None, _names=("predictions", "labels")):
        """Confident learning's second pass over one chunk of rows: the global
        indices of its label issues and their self-confidences, unranked.
        ``thresholds`` defaults to :meth:`label_issue_thresholds` (pass them to
        workers that hold only a block). Multiclass and binary tasks."""
        if self.task == "multilabel":
            raise ValueError("label issues are found for multiclass and binary tasks only")
        if self.n_classes is None:
            raise ValueError("the accumulator has seen no data: run the first pass first")
        pred_name, label_name = _names
        thresholds = self.label_issue_thresholds() if thresholds is None else \
            np.ascontiguousarray(thresholds, dtype=np.float64)
        chunk = _predictions_array(predictions_chunk, pred_name)
        labels = _labels_array(labels_chunk, label_name, self.task)
        is_logit = self.kind == "logits"
        if self.task == "binary":
            # The two classes [1 - p, p]: softmax([0, z]) for a logit z.
            chunk = (np.stack([np.zeros_like(chunk), chunk], axis=1) if is_logit
                     else np.stack([1.0 - chunk, chunk], axis=1))
        if chunk.ndim != 2 or chunk.shape[1] != self.n_classes or labels.shape != chunk.shape[:1]:
            raise ValueError(f"{pred_name} and {label_name} do not match the first pass "
                             f"({self.n_classes} classes)")
        flags = np.empty(chunk.shape[0], dtype=np.uint8)
        confidence = np.empty(chunk.shape[0], dtype=np.float64)
        _profile.label_issues(_profile.ROWS_LOGITS if is_logit else _profile.ROWS_PROBS,
                              np.ascontiguousarray(chunk), labels, self.n_classes, thresholds,
                              flags, confidence, resolve_threads(n_threads))
        rows = np.flatnonzero(flags)
        return check_int(start, "start", "an int >= 0", lowest=0) + rows, confidence[rows]

    def report(self, *, label_issues=None, class_names=None):
        """The :class:`ProfileReport` of everything added so far."""
        if self.n_classes is None:
            raise ValueError("the accumulator has seen no data, so it knows no classes")
        return ProfileReport(_report_dict(self, label_issues, class_names))


def _top_k_order(losses, index, k):
    """Indices of the k largest losses, loss descending, ties by index; a NaN
    loss counts as the largest. Candidates are cut to those at or above the
    k-th largest loss first (argpartition), so a chunk costs O(n), and the
    ties at that value are all kept for the exact ordering."""
    key = np.where(np.isnan(losses), np.inf, losses)
    if k == 0:
        return np.zeros(0, dtype=np.intp)
    if key.size > 2 * k:
        kth = np.partition(key, key.size - k)[key.size - k]
        candidates = np.flatnonzero(key >= kth)
        order = candidates[np.lexsort((index[candidates], -key[candidates]))]
    else:
        order = np.lexsort((index, -key))
    return order[:k]


def _ratio(numerator, denominator):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1),
                        np.nan)


def _quantiles(histogram):
    """Unweighted loss quantiles from the fine histogram: numpy's linear rule
    on the order statistics, each taken as the middle of its bin (a bin is at
    most 1/64 wide relative to its edge, so within 1% relative)."""
    total = int(histogram.sum())
    if total == 0:
        return {str(q): None for q in QUANTILES}
    cumulative = np.cumsum(histogram)
    middles = np.where(np.arange(histogram.size) == 0, 0.0,
                       np.sqrt(_FINE_LOWER * _FINE_UPPER))
    result = {}
    for q in QUANTILES:
        rank = q * (total - 1)
        below, above = math.floor(rank), math.ceil(rank)
        low = middles[np.searchsorted(cumulative, below + 1)]
        high = middles[np.searchsorted(cumulative, above + 1)]
        result[str(q)] = float(low + (rank - below) * (high - low))
    return result


def _display_histogram(histogram):
    """The report's loss histogram: [0, 2^-64) and then 4 bins an octave up to 128."""
    zero_bin = histogram[:1]
    grouped = histogram[1:].reshape(-1, _DISPLAY_GROUP).sum(axis=1)
    edges = np.concatenate([[0.0], _FINE_LOWER[1::_DISPLAY_GROUP],
                            [2.0 ** _profile.HIST_MAX_EXPONENT]])
    return {"edges": edges.tolist(), "counts": np.concatenate([zero_bin, grouped]).tolist()}


def _calibration(exact_bins, n_bins):
    values = _profile.exact_values(exact_bins)
    weight, confidence, correct = values[:, 0], values[:, 1], values[:, 2]
    mean_confidence, accuracy = _ratio(confidence, weight), _ratio(correct, weight)
    total = weight.sum() if weight.size else 0.0
    filled = weight > 0
    gaps = np.abs(accuracy - mean_confidence)
    ece = float(np.sum(weight[filled] * gaps[filled]) / total) if total > 0 else np.nan
    mce = float(np.max(gaps[filled])) if filled.any() else np.nan
    table = {"bin_edges": np.linspace(0.0, 1.0, n_bins + 1).tolist(), "weight": weight.tolist(),
             "mean_confidence": mean_confidence.tolist(), "accuracy": accuracy.tolist()}
    return ece, mce, table


def _report_dict(acc, label_issues, class_names):
    g = dict(zip(_profile.GLOBAL_FIELDS, _profile.exact_values(acc.exact_global)))
    k_values = _profile.exact_values(acc.exact_class)
    k = {name: k_values[:, i] for i, name in enumerate(_profile.CLASS_FIELDS)}
    n_elements, n_correct, n_top5, _ = (int(v) for v in acc.counts_global)
    support, class_correct, class_third = (acc.counts_class[:, i] for i in range(3))
    multilabel = acc.task == "multilabel"
    n_labels = acc.n_classes if multilabel else 1
    if acc.weighted:
        weight, correct, top5 = g["weight"], g["correct"], g["top5"]
        class_weight, class_tp = k["weight"], k["correct"]
        predicted_weight = k["predicted_weight"]
    else:
        weight, correct, top5 = float(n_elements), float(n_correct), float(n_top5)
        class_weight = (class_third if multilabel else support).astype(np.float64)
        class_tp = class_correct.astype(np.float64)
        predicted_weight = class_third.astype(np.float64)
    mean = (lambda total: total / weight if weight > 0 else np.nan)
    ece, mce, calibration = _calibration(acc.exact_bins, acc.n_bins)
    report = {
        "n_samples": n_elements // n_labels,
        "n_classes": acc.n_classes,
        "task": acc.task,
        "kind": acc.kind,
        "weight_sum": weight / n_labels,
        "loss_mean": mean(g["loss"]),
        "accuracy": mean(correct),
        "top5_accuracy": mean(top5) if acc.task == "multiclass" and acc.n_classes > 5 else None,
        "brier_mean": mean(g["brier"]),
        "entropy_mean": mean(g["entropy"]),
        "margin_mean": mean(g["margin"]),
        "confidence_mean": mean(g["confidence"]),
        "ece": ece,
        "mce": mce,
        "calibration": calibration,
        "loss_quantiles": _quantiles(acc.histogram),
        "loss_histogram": _display_histogram(acc.histogram),
        "per_class": None,
        "per_label": None,
        "confusion": None if acc.confusion is None else acc.confusion.tolist(),
        "hardest": {"index": acc.hardest_index.tolist(), "loss": acc.hardest_loss.tolist(),
                    "label": acc.hardest_label.tolist(),
                    "predicted": acc.hardest_predicted.tolist()},
        "label_issues": label_issues,
        "class_names": None if class_names is None else [str(name) for name in class_names],
    }
    if class_names is not None and len(report["class_names"]) != acc.n_classes:
        raise ValueError(f"class_names has {len(report['class_names'])} names for "
                         f"{acc.n_classes} classes")
    if multilabel:
        label_eces = [_calibration(acc.exact_label_bins[i], acc.n_bins)[0]
                      for i in range(acc.n_classes)]
        report["per_label"] = {
            "support": support.tolist(),
            "loss_mean": _ratio(k["loss"], class_weight).tolist(),
            "accuracy": _ratio(class_tp, class_weight).tolist(),
            "ece": label_eces,
        }
    else:
        report["per_class"] = {
            "support": support.tolist(),
            "weight": class_weight.tolist(),
            "loss_mean": _ratio(k["loss"], class_weight).tolist(),
            "accuracy": _ratio(class_tp, class_weight).tolist(),
            "precision": _ratio(class_tp, predicted_weight).tolist(),
            "mean_self_confidence": _ratio(k["self_confidence"], class_weight).tolist(),
            "predicted_count": class_third.tolist(),
        }
    return report


def _json_ready(value):
    """NaN and infinities become None; numpy scalars become Python numbers."""
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


class ProfileReport:
    """The result of :func:`profile`: every field is an attribute, and
    :meth:`to_dict` gives them all JSON-ready (NaN becomes None).

    Fields: n_samples, n_classes, task, kind, weight_sum; loss_mean, accuracy,
    top5_accuracy, brier_mean, entropy_mean, margin_mean, confidence_mean
    (weighted by sample_weight); ece, mce, calibration; loss_quantiles,
    loss_histogram (unweighted); per_class (or per_label), confusion, hardest,
    label_issues, class_names. README's "Profile a dataset" defines each.
    """

    def __init__(self, fields):
        self._fields = fields
        for key, value in fields.items():
            setattr(self, key, value)

    def to_dict(self):
        return _json_ready(self._fields)

    def to_json(self, path=None, **dump_keywords):
        """The report as JSON text; written to ``path`` too when given."""
        text = json.dumps(self.to_dict(), allow_nan=False, **dump_keywords)
        if path is not None:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
        return text

    def summary(self, max_rows=20):
        """A plain-text summary: the overall numbers, calibration, the worst classes,
        the hardest samples and the label issues."""
        from fastce import _report
        return _report.summary_text(self.to_dict(), max_rows=max_rows)

    def save(self, directory):
        """Write report.json, report.html and the figures (PNG, with matplotlib)
        into ``directory``; returns the files written."""
        from fastce import _report
        return _report.save_report(self.to_dict(), directory)

    def __repr__(self):
        return (f"ProfileReport(task={self.task!r}, kind={self.kind!r}, "
                f"n_samples={self.n_samples}, n_classes={self.n_classes}, "
                f"loss_mean={self.loss_mean!r}, accuracy={self.accuracy!r})")


# ------------------------------------------------------------------- inputs

class _Source:
    """A row-sliceable array-like and the name its errors use."""

    def __init__(self, data, name):
        self.data, self.name = data, name
        if not (hasattr(data, "shape") and hasattr(data, "dtype") and hasattr(data, "__getitem__")):
            raise TypeError(f"{name} must be an array, a .npy path, or an array-like with "
                            f"shape, dtype and row slicing (h5py, zarr); got "
                            f"{type(data).__name__}")
        self.shape = tuple(data.shape)
        if not self.shape:
            raise ValueError(f"{name} must have at least one dimension, got a scalar")

    def rows(self, start, stop):
        return np.asarray(self.data[start:stop])


def _open_source(source, name):
    """An input as a :class:`_Source`: arrays as they are; a path to ``.npy``
    (memory-mapped), ``.npz:KEY``, ``.h5:DATASET`` / ``.hdf5:DATASET`` or a
    ``.zarr`` directory, opened lazily (never read whole)."""
    if isinstance(source, (str, os.PathLike)):
        return _Source(_open_path(os.fspath(source)), os.fspath(source))
    if isinstance(source, np.ma.MaskedArray):
        raise TypeError(f"{name} is a numpy masked array; pass plain values")
    if isinstance(source, (list, tuple)):
        source = np.asarray(source)
    return _Source(source, name)


def _split_key(path, suffixes):
    for suffix in suffixes:
        marker = suffix + ":"
        if marker in path:
            head, key = path.rsplit(marker, 1)
            return head + suffix, key
    return path, None


def _open_path(path):
    lowered = path.lower()
    file_path, key = _split_key(path, (".npz", ".h5", ".hdf5"))
    if not os.path.exists(file_path):
        raise FileNotFoundError(f"{file_path}: no such file or directory")
    lowered = file_path.lower()
    if lowered.endswith(".npy"):
        return np.load(file_path, mmap_mode="r")
    if lowered.endswith(".npz"):
        archive = np.load(file_path, mmap_mode="r")
        if key is None:
            if len(archive.files) != 1:
                raise ValueError(f"{file_path} holds {archive.files}; name one as {path}:KEY")
            key = archive.files[0]
        if key not in archive.files:
            raise KeyError(f"{file_path} has no array {key!r}; it holds {archive.files}")
        return archive[key]  # npz members are read whole: keep them small, or use .npy
    if lowered.endswith((".h5", ".hdf5")):
        try:
            import h5py
        except ImportError:
            raise ImportError(f"{file_path}: reading HDF5 needs h5py (pip install h5py)") from None
        handle = h5py.File(file_path, "r")
        return handle[_h5_dataset_name(handle, file_path, path, key)]
    if lowered.rstrip("/").endswith(".zarr"):
        try:
            import zarr
        except ImportError:
            raise ImportError(f"{file_path}: reading zarr needs zarr (pip install zarr)") from None
        return zarr.open(file_path, mode="r")
    raise ValueError(f"{path}: unknown input format; expected .npy, .npz[:KEY], .h5:DATASET "
                     "or .zarr")


def _h5_dataset_name(handle, file_path, path, key):
    """The dataset an ``.h5[:DATASET]`` path names: the only one when no key is given."""
    if key is None:
        names = list(handle.keys())
        if len(names) != 1:
            raise ValueError(f"{file_path} holds {names}; name one as {path}:DATASET")
        key = names[0]
    if key not in handle:
        raise KeyError(f"{file_path} has no dataset {key!r}; it holds {list(handle.keys())}")
    return key


def _default_chunk_rows(source):
    row_items = math.prod(source.shape[1:]) if len(source.shape) > 1 else 1
    itemsize = np.dtype(source.data.dtype).itemsize
    return max(1, DEFAULT_CHUNK_BYTES // max(1, row_items * itemsize))


def _chunks(sources, n_rows, chunk_rows):
    """Yield (start, [rows of each source]) with the next chunk read in a
    background thread while the caller computes on this one (NumPy copies,
    page faults and h5py reads release the GIL, as do the kernels)."""
    from concurrent.futures import ThreadPoolExecutor

    starts = list(range(0, n_rows, chunk_rows))
    if not starts:
        return

    def read(start):
        stop = min(start + chunk_rows, n_rows)
        return [None if source is None else source.rows(start, stop) for source in sources]

    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(read, starts[0])
        for i, start in enumerate(starts):
            current = pending.result()
            if i + 1 < len(starts):
                pending = reader.submit(read, starts[i + 1])
            yield start, current


def _progress_bar(progress, total, description, row_bytes):
    if progress is None:
        progress = hasattr(sys.stderr, "isatty") and sys.stderr.isatty() and total > 1_000_000
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    bar = tqdm(total=total, unit="rows", unit_scale=True, desc=description, file=sys.stderr,
               dynamic_ncols=True)
    bar.row_bytes = row_bytes
    return bar


def _advance(bar, rows):
    if bar is None:
        return
    bar.update(rows)
    elapsed = bar.format_dict.get("elapsed") or 0.0
    if elapsed > 0:
        bar.set_postfix_str(f"{bar.n * bar.row_bytes / elapsed / 1e9:.2f} GB/s", refresh=False)


def profile(predictions, labels, *, kind="logits", task="multiclass", sample_weight=None,
            chunk_size=None, n_bins=15, top_k=100, label_issues=True,
            confusion_max_classes=1000, class_names=None, progress=None, n_threads=None):
    """Profile a model's predictions over a dataset: a :class:`ProfileReport`.

    Parameters
    ----------
    predictions : (N, C) logits or probabilities (multiclass), (N,) (binary),
        (N, L) (multilabel): a NumPy array, an ``np.memmap``, a path (``.npy``,
        memory-mapped; ``.npz:KEY``, ``.h5:DATASET``, ``.zarr``) or an
        array-like with shape, dtype and row slicing (h5py, zarr). It is read
        in chunks of rows and never loaded whole.
    labels : (N,) class indices, (N,) {0, 1}, or (N, L) {0, 1}; same input kinds.
    kind : "logits" or "probs" (each in [0, 1]; NaN is an error; rows are not
        renormalised).
    sample_weight : optional (N,) finite, >= 0: the means, accuracy, calibration
        and per-class tables are weighted (quantiles and counts are not).
    chunk_size : rows a read; default about 64 MiB of predictions.
    label_issues : run cleanlab's confident learning (a second pass) for
        multiclass and binary tasks. The same rows as
        ``cleanlab.filter.find_label_issues(labels, pred_probs,
        filter_by="confident_learning")`` (its 1e-6 tolerances included),
        ranked by self-confidence ascending, ties by index. Unweighted, as in
        cleanlab. Not available for multilabel (None there).
    progress : a tqdm progress bar on stderr; None shows it for long runs on a
        terminal.

    Errors name the argument (or file) and the global row of the first bad
    value: a label out of range, a probability outside [0, 1], a bad weight.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not isinstance(label_issues, (bool, np.bool_)):
        raise TypeError(f"label_issues must be True or False, got {label_issues!r}")
    threads = resolve_threads(n_threads)
    pred_source = _open_source(predictions, "predictions")
    label_source = _open_source(labels, "labels")
    weight_source = None if sample_weight is None else _open_source(sample_weight,
                                                                    "sample_weight")
    n_rows = pred_source.shape[0]
    if label_source.shape[0] != n_rows:
        raise ValueError(f"{label_source.name} has {label_source.shape[0]} rows, but "
                         f"{pred_source.name} has {n_rows}")
    if weight_source is not None and weight_source.shape != (n_rows,):
        raise ValueError(f"{weight_source.name} must have shape ({n_rows},), got "
                         f"{weight_source.shape}")
    if task == "multiclass" and len(pred_source.shape) != 2:
        raise ValueError(f"{pred_source.name} must be 2-D (n_samples, n_classes) for "
                         f"task='multiclass', got shape {pred_source.shape}")
    chunk_rows = (_default_chunk_rows(pred_source) if chunk_size is None
                  else check_int(chunk_size, "chunk_size", "a positive int", lowest=1))
    accumulator = ProfileAccumulator(kind=kind, task=task, n_bins=n_bins, top_k=top_k,
                                     confusion_max_classes=confusion_max_classes)
    names = (pred_source.name, label_source.name)
    row_bytes = (math.prod(pred_source.shape[1:]) if len(pred_source.shape) > 1 else 1) \
        * np.dtype(pred_source.data.dtype).itemsize
    with_issues = label_issues and task != "multilabel"
    bar = _progress_bar(progress, n_rows * (2 if with_issues else 1), "profile", row_bytes)
    try:
        for start, (chunk, chunk_labels, chunk_weight) in _chunks(
                [pred_source, label_source, weight_source], n_rows, chunk_rows):
            accumulator.update(chunk, chunk_labels, start=start, sample_weight=chunk_weight,
                               n_threads=threads, _names=names)
            _advance(bar, chunk.shape[0])
        if n_rows == 0:
            n_classes = pred_source.shape[1] if task != "binary" else 2
            if n_classes < 1:
                raise ValueError(f"{pred_source.name} has 0 classes")
            accumulator._allocate(n_classes)
        issues = None
        if with_issues:
            issues = _find_label_issues(accumulator, pred_source, label_source, n_rows,
                                        chunk_rows, threads, bar)
    finally:
        if bar is not None:
            bar.close()
    return accumulator.report(label_issues=issues, class_names=class_names)


def _find_label_issues(accumulator, pred_source, label_source, n_rows, chunk_rows, threads,
                       bar):
    """Confident learning's second pass, with the thresholds of the first."""
    thresholds = accumulator.label_issue_thresholds()
    found = []
    for start, (chunk, chunk_labels) in _chunks([pred_source, label_source], n_rows,
                                                chunk_rows):
        found.append(accumulator.find_label_issues(
            chunk, chunk_labels, start=start, thresholds=thresholds, n_threads=threads,
            _names=(pred_source.name, label_source.name)))
        _advance(bar, chunk.shape[0])
    return rank_label_issues(found)


def rank_label_issues(found):
    """The report's ``label_issues`` from (index, self_confidence) pairs of
    arrays (one per chunk or block, any order): self-confidence ascending,
    ties by index."""
    index = np.concatenate([pair[0] for pair in found]) if found else np.zeros(0, np.int64)
    confidence = np.concatenate([pair[1] for pair in found]) if found else np.zeros(0)
    order = np.lexsort((index, confidence))
    return {"index": index[order].astype(np.int64).tolist(),
            "self_confidence": confidence[order].tolist()}
