"""Presentation of a dataset profile: plain text, figures and one HTML page.

Every function here takes the dict that ``ProfileReport.to_dict()`` returns
(JSON-ready, missing values already ``None``) and never recomputes a metric:
the numbers shown are exactly the numbers stored in ``report.json``.

matplotlib is optional (``pip install fastce[profile]``). It is imported inside
the figure code only, so ``import fastce`` and the text/HTML output work
without it.
"""
import base64
import html
import json
import math
import os
import warnings

import numpy as np

# File names of the figures, in the order the HTML page shows them.
LOSS_HISTOGRAM_PNG = "loss_histogram.png"
RELIABILITY_PNG = "reliability.png"
PER_CLASS_PNG = "per_class.png"
CONFUSION_PNG = "confusion.png"
REPORT_JSON = "report.json"
REPORT_HTML = "report.html"

FIGURE_DPI = 110
# Past this many classes the per-class figure and the confusion heatmap stop
# being legible: the bar chart keeps the worst classes, the heatmap is skipped.
MAX_FIGURE_CLASSES = 50
# The HTML page lists every class up to this count, else the worst ones by loss.
MAX_HTML_CLASSES = 200
MAX_HTML_LABEL_ISSUES = 100
# The text summary is for a terminal: short lists only.
MAX_TEXT_SAMPLES = 10
# Small confusion matrices are also written out as an HTML table, which is
# readable without matplotlib; larger ones only as the heatmap.
MAX_HTML_CONFUSION_TABLE = 20
MAX_NAME_CHARS = 32

OVERALL_METRICS = (
    ("loss_mean", "mean loss"),
    ("accuracy", "accuracy"),
    ("top5_accuracy", "top-5 accuracy"),
    ("brier_mean", "mean Brier score"),
    ("entropy_mean", "mean predictive entropy"),
    ("margin_mean", "mean top-1 margin"),
    ("confidence_mean", "mean confidence"),
)
CALIBRATION_METRICS = (
    ("ece", "ECE (expected calibration error)"),
    ("mce", "MCE (maximum calibration error)"),
)
HEADER_FIELDS = ("task", "kind", "n_samples", "n_classes", "weight_sum")
# Fields (top level and per class / per bin) that hold sums of sample weights.
AMOUNT_FIELDS = ("weight_sum", "weight")

PROFILE_EXTRA_HINT = "pip install fastce[profile]"


# --------------------------------------------------------------------------
# Formatting shared by the text and the HTML output
# --------------------------------------------------------------------------

def _format_value(value):
    """One metric: "n/a" for None, ints as they are, floats to 4 decimals.

    Very large or very small floats switch to scientific notation so that a
    loss of 3e-7 does not print as 0.0000. Every float gets the same number of
    decimals, so that a column of accuracies lines up (1.0 prints as 1.0000).
    """
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        magnitude = abs(value)
        if magnitude >= 1e5 or 0.0 < magnitude < 1e-3:
            return f"{value:.3e}"
        return f"{value:.4f}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_format_value(item) for item in value) + "]"
    return str(value)


def _format_amount(value):
    """A sample weight (a count when unweighted): no decimals when it is whole."""
    if isinstance(value, (float, np.floating)) and math.isfinite(value):
        value = float(value)
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        return f"{value:.6g}"
    return _format_value(value)


def _format_field(field, value):
    return _format_amount(value) if field in AMOUNT_FIELDS else _format_value(value)


def _quantile_label(key):
    """"0.99" -> "p99", "0.999" -> "p99.9"."""
    try:
        return f"p{float(key) * 100:g}"
    except (TypeError, ValueError):
        return str(key)


def _sorted_quantiles(report):
    quantiles = report.get("loss_quantiles") or {}

    def order(key):
        try:
            return (0, float(key))
        except (TypeError, ValueError):
            return (1, 0.0)

    return [(key, quantiles[key]) for key in sorted(quantiles, key=order)]


def _clean_name(name):
    """A class name on one line, cut to a readable length."""
    text = " ".join(str(name).split())
    if len(text) > MAX_NAME_CHARS:
        text = text[:MAX_NAME_CHARS - 1] + "\u2026"
    return text


def _class_names(report, count):
    """Names for ``count`` classes (or labels): the report's, else "0", "1", ..."""
    names = report.get("class_names")
    if names is None:
        return [str(index) for index in range(count)]
    names = [str(name) for name in names]
    # A short list must not make a class disappear from the tables.
    return names[:count] + [str(index) for index in range(len(names), count)]


def _per_class_section(report):
    """(kind, stats) where kind is "class" or "label"; (None, None) if neither."""
    if report.get("task") == "multilabel" or report.get("per_class") is None:
        if report.get("per_label") is not None:
            return "label", report["per_label"]
    if report.get("per_class") is not None:
        return "class", report["per_class"]
    return None, None


def _stat_count(stats):
    return max((len(values) for values in stats.values() if values is not None), default=0)


def _stat(stats, key, index):
    values = stats.get(key)
    if values is None or index >= len(values):
        return None
    return values[index]


def _worst_by_loss(stats, limit):
    """Indices of the ``limit`` classes with the largest mean loss, worst first.

    Classes without a loss (no samples) go last: they are not "bad", only empty.
    """
    count = _stat_count(stats)

    def order(index):
        loss = _stat(stats, "loss_mean", index)
        return (loss is None, -(loss if loss is not None else 0.0), index)

    return sorted(range(count), key=order)[:limit]


def _label_text(value, names):
    """A true or predicted class: its name when it is a class index."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        if 0 <= value < len(names):
            return names[value]
    return _format_value(value)


def _hardest_rows(report, limit, names):
    hardest = report.get("hardest") or {}
    indices = hardest.get("index") or []
    multilabel = report.get("task") == "multilabel"
    rows = []
    for position, sample in enumerate(indices[:limit]):
        loss = _list_item(hardest.get("loss"), position)
        if multilabel:
            rows.append([_format_value(sample), _format_value(loss)])
        else:
            rows.append([
                _format_value(sample), _format_value(loss),
                _label_text(_list_item(hardest.get("label"), position), names),
                _label_text(_list_item(hardest.get("predicted"), position), names),
            ])
    header = ["sample", "loss"] if multilabel else ["sample", "loss", "label", "predicted"]
    return header, rows, len(indices)


def _hardest_text_columns(header):
    """The label and predicted columns hold class names: left-aligned."""
    return tuple(column for column, title in enumerate(header) if title in ("label", "predicted"))


def _list_item(values, position):
    if values is None or position >= len(values):
        return None
    return values[position]


def _label_issue_rows(report, limit):
    issues = report.get("label_issues")
    if issues is None:
        return None, 0
    indices = issues.get("index") or []
    rows = [[_format_value(sample),
             _format_value(_list_item(issues.get("self_confidence"), position))]
            for position, sample in enumerate(indices[:limit])]
    return rows, len(indices)


def _per_class_columns(kind):
    """Table columns: (header, key in the stats dict, right-aligned)."""
    if kind == "label":
        return [("support", "support"), ("loss", "loss_mean"),
                ("accuracy", "accuracy"), ("ECE", "ece")]
    return [("support", "support"), ("weight", "weight"), ("loss", "loss_mean"),
            ("recall", "accuracy"), ("precision", "precision"),
            ("self-conf", "mean_self_confidence"), ("predicted", "predicted_count")]


def _calibration_rows(report):
    calibration = report.get("calibration") or {}
    edges = calibration.get("bin_edges") or []
    rows = []
    for position in range(max(len(edges) - 1, 0)):
        rows.append([
            f"[{edges[position]:.2f}, {edges[position + 1]:.2f}"
            + ("]" if position == len(edges) - 2 else ")"),
            _format_amount(_list_item(calibration.get("weight"), position)),
            _format_value(_list_item(calibration.get("mean_confidence"), position)),
            _format_value(_list_item(calibration.get("accuracy"), position)),
        ])
    return ["confidence bin", "weight", "mean confidence", "accuracy"], rows


# --------------------------------------------------------------------------
# Plain text
# --------------------------------------------------------------------------

def _text_table(header, rows, text_columns=(0,)):
    """Columns padded to their widest cell; the columns in ``text_columns`` are
    left-aligned (names), the others right-aligned (numbers)."""
    widths = [len(title) for title in header]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row)]

    def line(cells):
        padded = [cell.ljust(width) if column in text_columns else cell.rjust(width)
                  for column, (cell, width) in enumerate(zip(cells, widths))]
        return "  ".join(padded).rstrip()

    separator = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), separator] + [line(row) for row in rows])


def _text_heading(title):
    return f"{title}\n{'=' * len(title)}"


def summary_text(report, max_rows=20):
    """A plain-text summary of a profile, for a terminal or a log file.

    Lists every scalar of the report ("n/a" where it is None), the loss
    quantiles, the calibration bins, the ``max_rows`` classes (or labels) with
    the largest mean loss, the hardest samples and the suspected label issues.
    """
    blocks = []
    title = "fastce dataset profile"
    blocks.append(f"{title}\n{'=' * len(title)}\n" + _text_table(
        ["field", "value"],
        [[field, _format_field(field, report.get(field))] for field in HEADER_FIELDS],
        text_columns=(0, 1)))

    blocks.append(_text_heading("Overall metrics") + "\n" + _text_table(
        ["metric", "value"],
        [[label, _format_value(report.get(key))] for key, label in OVERALL_METRICS]))

    quantiles = _sorted_quantiles(report)
    if quantiles:
        blocks.append(_text_heading("Per-sample loss quantiles") + "\n" + _text_table(
            ["quantile", "loss"],
            [[_quantile_label(key), _format_value(value)] for key, value in quantiles]))

    calibration_lines = _text_table(
        ["metric", "value"],
        [[label, _format_value(report.get(key))] for key, label in CALIBRATION_METRICS])
    bin_header, bin_rows = _calibration_rows(report)
    # Empty bins carry no information and, for many classes, are most of them.
    occupied = [row for row in bin_rows if row[2] != "n/a"]
    if occupied:
        calibration_lines += "\n\n" + _text_table(bin_header, occupied)
    blocks.append(_text_heading("Calibration (top label)"
                                if report.get("task") != "multilabel" else "Calibration")
                  + "\n" + calibration_lines)

    kind, stats = _per_class_section(report)
    if stats is not None:
        count = _stat_count(stats)
        names = _class_names(report, count)
        shown = _worst_by_loss(stats, max(int(max_rows), 0))
        # The weight column is left to the HTML page to keep lines short.
        columns = [column for column in _per_class_columns(kind) if column[1] != "weight"]
        rows = [[str(index), _clean_name(names[index])]
                + [_format_field(key, _stat(stats, key, index)) for _, key in columns]
                for index in shown]
        plural = "classes" if kind == "class" else "labels"
        title = (f"Per-{kind} metrics (all {count} {plural}, worst loss first)"
                 if len(shown) == count else
                 f"Per-{kind} metrics (worst {len(shown)} of {count} {plural} by loss)")
        blocks.append(_text_heading(title) + "\n" + _text_table(
            [kind, "name"] + [header for header, _ in columns], rows, text_columns=(0, 1)))

    names = _class_names(report, int(report.get("n_classes") or 0))
    header, rows, total = _hardest_rows(report, MAX_TEXT_SAMPLES, names)
    if total:
        blocks.append(_text_heading(f"Hardest samples (first {len(rows)} of {total})")
                      + "\n" + _text_table(header, rows, text_columns=_hardest_text_columns(header)))

    issue_rows, issue_count = _label_issue_rows(report, MAX_TEXT_SAMPLES)
    if issue_rows is None:
        blocks.append(_text_heading("Label issues") + "\nnot computed")
    elif issue_count == 0:
        blocks.append(_text_heading("Label issues") + "\n0 suspected label issues")
    else:
        blocks.append(
            _text_heading("Label issues")
            + f"\n{issue_count} suspected label issues"
            + (f" (first {len(issue_rows)} shown)" if issue_count > len(issue_rows) else "")
            + "\n\n" + _text_table(["sample", "self-confidence"], issue_rows, text_columns=()))

    return "\n\n".join(blocks) + "\n"


# --------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------

def _load_matplotlib():
    """The matplotlib pieces the figures need, or None when it is not installed.

    The figures are built as bare ``Figure`` objects on an Agg canvas instead of
    through pyplot, so that rendering a report neither switches the user's
    interactive backend nor leaves figures open in pyplot's global registry.
    """
    try:
        from matplotlib import colormaps, colors
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return {"Figure": Figure, "FigureCanvasAgg": FigureCanvasAgg,
            "colors": colors, "colormaps": colormaps}


def _new_figure(mpl, width, height):
    figure = mpl["Figure"](figsize=(width, height), dpi=FIGURE_DPI)
    mpl["FigureCanvasAgg"](figure)
    return figure


def _save_figure(figure, path):
    with warnings.catch_warnings():
        # tight_layout only warns when labels cannot all fit; the figure is still
        # written, slightly crowded, which is better than failing the report.
        warnings.simplefilter("ignore", UserWarning)
        figure.tight_layout()
    figure.savefig(path, dpi=FIGURE_DPI, format="png")


def _tick_name(name):
    # matplotlib reads text between two "$" as mathematics; a class named
    # "$5-$10" must print as written.
    return _clean_name(name).replace("$", r"\$")


def _spans_decades(values, decades=2):
    positive = [value for value in values if value is not None and value > 0]
    return bool(positive) and max(positive) >= 10 ** decades * min(positive)


def _plot_loss_histogram(mpl, report, path):
    histogram = report.get("loss_histogram") or {}
    edges = [float(edge) for edge in histogram.get("edges") or []]
    counts = [int(count) for count in histogram.get("counts") or []]
    figure = _new_figure(mpl, 7.5, 4.2)
    axes = figure.add_subplot()
    n_samples = report.get("n_samples")
    axes.set_title(f"Per-sample loss distribution (n = {_format_value(n_samples)})")
    axes.set_xlabel("per-sample loss (log scale)")
    axes.set_ylabel("number of samples")

    if len(edges) != len(counts) + 1 or sum(counts) == 0:
        axes.text(0.5, 0.5, "no samples", ha="center", va="center",
                  transform=axes.transAxes, fontsize=14, color="grey")
        axes.set_xticks([])
        axes.set_yticks([])
        _save_figure(figure, path)
        return

    # The first bin starts at loss 0, which a log axis cannot show; it is drawn
    # one bin-width (in log terms) to the left of its upper edge, in its own
    # colour, and the legend says what it holds.
    first_positive = 1 if edges[0] <= 0.0 else 0
    lefts = edges[first_positive:-1]
    widths = [right - left for left, right in zip(lefts, edges[first_positive + 1:])]
    axes.bar(lefts, counts[first_positive:], width=widths, align="edge",
             color="#4c72b0", edgecolor="white", linewidth=0.4, label="samples")
    lowest_shown = None
    if first_positive and len(edges) > 2 and counts[0] > 0:
        upper = edges[1]
        ratio = edges[2] / edges[1] if len(edges) > 2 and edges[1] > 0 else 10.0
        lower = upper / ratio
        axes.bar([lower], [counts[0]], width=[upper - lower], align="edge",
                 color="#dd8452", edgecolor="white", linewidth=0.4,
                 label=f"loss in [0, {upper:.2g})")
        lowest_shown = lower
    axes.set_xscale("log")
    # The edges span 0 to 128 whatever the data; zoom on the occupied bins,
    # with one empty bin either side.
    occupied = [b for b in range(first_positive, len(counts)) if counts[b] > 0]
    if occupied:
        left = edges[max(occupied[0] - 1, first_positive)]
        right = edges[min(occupied[-1] + 2, len(edges) - 1)]
        if lowest_shown is not None:
            left = min(left, lowest_shown / 1.5)
        axes.set_xlim(left, right)
    # Headroom above the tallest bar leaves the legend a place to go.
    if _spans_decades(counts):
        axes.set_yscale("log")
        axes.set_ylim(0.7, max(counts) * 6)
    else:
        axes.set_ylim(0, max(counts) * 1.3)

    quantile_styles = {"0.5": ":", "0.9": "--", "0.99": "-."}
    for key, value in _sorted_quantiles(report):
        if key in quantile_styles and value is not None and value > 0:
            axes.axvline(value, color="#333333", linestyle=quantile_styles[key],
                         linewidth=1.2, label=f"{_quantile_label(key)} = {value:.3g}")
    axes.legend(fontsize=8, loc="best", framealpha=0.9)
    axes.grid(True, which="major", alpha=0.3)
    _save_figure(figure, path)


def _plot_reliability(mpl, report, path):
    calibration = report.get("calibration") or {}
    edges = [float(edge) for edge in calibration.get("bin_edges") or []]
    n_bins = max(len(edges) - 1, 0)
    lefts = edges[:-1]
    widths = [right - left for left, right in zip(edges[:-1], edges[1:])]
    weight = [_list_item(calibration.get("weight"), b) or 0.0 for b in range(n_bins)]
    confidence = [_list_item(calibration.get("mean_confidence"), b) for b in range(n_bins)]
    accuracy = [_list_item(calibration.get("accuracy"), b) for b in range(n_bins)]
    occupied = [b for b in range(n_bins) if confidence[b] is not None and accuracy[b] is not None]

    figure = _new_figure(mpl, 6.4, 6.6)
    grid = figure.add_gridspec(2, 1, height_ratios=[3, 1])
    axes = figure.add_subplot(grid[0])
    weight_axes = figure.add_subplot(grid[1], sharex=axes)

    scope = "top label" if report.get("task") != "multilabel" else "all labels"
    figure.suptitle(f"Reliability diagram ({scope}): "
                    f"ECE = {_format_value(report.get('ece'))}, "
                    f"MCE = {_format_value(report.get('mce'))}")
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1,
              label="perfect calibration")
    if occupied:
        axes.bar([lefts[b] for b in occupied], [accuracy[b] for b in occupied],
                 width=[widths[b] for b in occupied], align="edge", color="#4c72b0",
                 edgecolor="black", linewidth=0.5, alpha=0.85, label="accuracy in bin")
        # The hatched part is the miscalibration: from accuracy up (or down) to
        # the mean confidence of the same bin. It is hatched, not filled, so that
        # where it overlaps the accuracy bar (accuracy above confidence) both
        # stay visible.
        axes.bar([lefts[b] for b in occupied],
                 [confidence[b] - accuracy[b] for b in occupied],
                 bottom=[accuracy[b] for b in occupied],
                 width=[widths[b] for b in occupied], align="edge",
                 facecolor="none", edgecolor="#c44e52", hatch="///",
                 linewidth=0.8, label="gap to mean confidence")
        axes.plot([confidence[b] for b in occupied], [accuracy[b] for b in occupied],
                  "o", color="black", markersize=3, label="(mean confidence, accuracy)")
    else:
        axes.text(0.5, 0.5, "no samples", ha="center", va="center",
                  transform=axes.transAxes, fontsize=14, color="grey")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_ylabel("accuracy")
    # Above the axes: inside, the legend would hide bars whichever way the
    # model is miscalibrated.
    axes.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.0, 1.01, 1.0, 0.1),
                mode="expand", ncol=2, frameon=False)
    axes.grid(True, alpha=0.3)
    axes.tick_params(labelbottom=False)

    weight_axes.bar(lefts, weight, width=widths, align="edge", color="#8c8c8c",
                    edgecolor="black", linewidth=0.4)
    weight_axes.set_xlim(0, 1)
    weight_axes.set_xlabel("confidence")
    weight_axes.set_ylabel("weight per bin")
    if _spans_decades(weight):
        weight_axes.set_yscale("log")
    weight_axes.grid(True, alpha=0.3)
    _save_figure(figure, path)


def _plot_per_class(mpl, report, path):
    kind, stats = _per_class_section(report)
    count = _stat_count(stats)
    names = _class_names(report, count)
    if count <= MAX_FIGURE_CLASSES:
        shown = list(range(count))
        subtitle = ""
    else:
        shown = _worst_by_loss(stats, MAX_FIGURE_CLASSES)
        subtitle = f" (worst {len(shown)} of {count} by loss)"

    def values(key):
        return [float("nan") if _stat(stats, key, index) is None else _stat(stats, key, index)
                for index in shown]

    height = max(3.0, 0.26 * len(shown) + 1.6)
    figure = _new_figure(mpl, 9.5, height)
    loss_axes, accuracy_axes = figure.subplots(1, 2, sharey=True)
    positions = np.arange(len(shown))
    loss_axes.barh(positions, values("loss_mean"), color="#c44e52", height=0.75)
    accuracy_axes.barh(positions, values("accuracy"), color="#4c72b0", height=0.75)
    loss_axes.set_yticks(positions, [_tick_name(names[index]) for index in shown],
                         fontsize=8 if len(shown) > 20 else 9)
    # First (or worst) class at the top, and no empty margin above or below.
    loss_axes.set_ylim(len(shown) - 0.5, -0.5)
    loss_axes.set_xlabel("mean loss")
    loss_axes.set_ylabel(kind)
    accuracy_axes.set_xlabel("recall (accuracy)" if kind == "class" else "accuracy")
    accuracy_axes.set_xlim(0, 1)
    for axes in (loss_axes, accuracy_axes):
        axes.grid(True, axis="x", alpha=0.3)
    figure.suptitle(f"Per-{kind} loss and {'recall' if kind == 'class' else 'accuracy'}"
                    + subtitle)
    _save_figure(figure, path)


def _plot_confusion(mpl, report, path):
    matrix = np.asarray(report["confusion"], dtype=float)
    count = matrix.shape[0]
    names = [_tick_name(name) for name in _class_names(report, count)]
    side = min(max(4.8, 0.3 * count + 3.0), 16.0)
    figure = _new_figure(mpl, side + 1.2, side)
    axes = figure.add_subplot()

    positive = matrix[matrix > 0]
    # Zero cells are drawn white so that "never happens" stands out from "rare".
    colormap = mpl["colormaps"]["Blues"].with_extremes(bad="white", under="white")
    use_log = positive.size > 0 and positive.max() >= 100 * positive.min()
    if use_log:
        norm = mpl["colors"].LogNorm(vmin=positive.min(), vmax=positive.max())
        image = axes.imshow(np.ma.masked_less_equal(matrix, 0), cmap=colormap, norm=norm,
                            interpolation="nearest")
    else:
        vmax = positive.max() if positive.size else 1.0
        norm = mpl["colors"].Normalize(vmin=0, vmax=vmax)
        image = axes.imshow(np.ma.masked_less_equal(matrix, 0), cmap=colormap, norm=norm,
                            interpolation="nearest")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04,
                    label="samples (log scale)" if use_log else "samples")

    if count <= 15:
        for row in range(count):
            for column in range(count):
                cell = matrix[row, column]
                dark = cell > 0 and norm(cell) > 0.6
                axes.text(column, row, f"{int(cell)}", ha="center", va="center",
                          fontsize=8 if count > 8 else 10,
                          color="white" if dark else "black")

    ticks = np.arange(count)
    fontsize = 7 if count > 25 else 9
    axes.set_xticks(ticks, names, rotation=90 if count > 6 else 30,
                    ha="center" if count > 6 else "right",
                    rotation_mode="default" if count > 6 else "anchor", fontsize=fontsize)
    axes.set_yticks(ticks, names, fontsize=fontsize)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("Confusion matrix (rows: true class)")
    _save_figure(figure, path)


def save_figures(report, directory):
    """Write the profile's figures as PNG files into ``directory``.

    Writes ``loss_histogram.png``, ``reliability.png``, ``per_class.png`` (for
    multilabel tasks, per label) and ``confusion.png`` (only when the report
    has a confusion matrix of at most 50 classes). Returns the names of the
    files written, relative to ``directory``; returns [] without writing
    anything when matplotlib is not installed.
    """
    mpl = _load_matplotlib()
    if mpl is None:
        return []
    os.makedirs(directory, exist_ok=True)
    written = []

    def write(name, plot):
        plot(mpl, report, os.path.join(directory, name))
        written.append(name)

    write(LOSS_HISTOGRAM_PNG, _plot_loss_histogram)
    write(RELIABILITY_PNG, _plot_reliability)
    stats = _per_class_section(report)[1]
    if stats is not None and _stat_count(stats):
        write(PER_CLASS_PNG, _plot_per_class)
    confusion = report.get("confusion")
    if confusion is not None and 0 < len(confusion) <= MAX_FIGURE_CLASSES:
        write(CONFUSION_PNG, _plot_confusion)
    return written


# --------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------

PAGE_STYLE = """
body { font-family: -apple-system, "Segoe UI", "DejaVu Sans", Helvetica, Arial, sans-serif;
       margin: 24px auto; max-width: 1100px; padding: 0 16px; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; border-bottom: 2px solid #4c72b0; padding-bottom: 4px; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ccc; padding-bottom: 2px; }
table { border-collapse: collapse; margin: 8px 0 16px 0; font-size: 0.9em; }
th, td { border: 1px solid #d0d0d0; padding: 3px 9px; }
th { background: #eef2f8; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #f8f8f8; }
.row { display: flex; flex-wrap: wrap; gap: 32px; align-items: flex-start; }
figure { margin: 8px 0 16px 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #e0e0e0; }
figcaption { font-size: 0.85em; color: #555; }
.note { color: #666; font-size: 0.9em; }
.scroll { max-height: 640px; overflow-y: auto; display: inline-block; }
"""

FIGURE_CAPTIONS = {
    LOSS_HISTOGRAM_PNG: "Per-sample loss distribution",
    RELIABILITY_PNG: "Reliability diagram",
    PER_CLASS_PNG: "Per-class loss and recall",
    CONFUSION_PNG: "Confusion matrix",
}


def _html_table(header, rows, text_columns=(0,)):
    """An HTML table; every cell is escaped, the columns in ``text_columns``
    hold text and the others numbers (right-aligned)."""
    def cell(tag, text, column):
        css = "" if column in text_columns else ' class="num"'
        return f"<{tag}{css}>{html.escape(str(text))}</{tag}>"

    head = "".join(cell("th", title, column) for column, title in enumerate(header))
    body = "\n".join("<tr>" + "".join(cell("td", text, column)
                                      for column, text in enumerate(row)) + "</tr>"
                     for row in rows)
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def _html_figure(name, png):
    encoded = base64.b64encode(png).decode("ascii")
    caption = html.escape(FIGURE_CAPTIONS.get(name, name))
    return (f'<figure><img src="data:image/png;base64,{encoded}" alt="{caption}">'
            f"<figcaption>{caption} ({html.escape(name)})</figcaption></figure>")


def render_html(report, figures):
    """One self-contained HTML page for a profile.

    ``figures`` maps a figure's file name to its PNG bytes (as written by
    ``save_figures``); each is embedded as a base64 ``data:`` URI, and the CSS
    is inline, so the page loads nothing from anywhere else and can be mailed
    or archived as a single file.
    """
    figures = dict(figures or {})
    has_figures = bool(figures)
    task = report.get("task")
    sections = []

    def figure_html(name):
        png = figures.pop(name, None)
        return _html_figure(name, png) if png is not None else ""

    title = (f"fastce dataset profile: {_format_value(task)}, "
             f"{_format_value(report.get('n_samples'))} samples, "
             f"{_format_value(report.get('n_classes'))} classes")
    sections.append(f"<h1>{html.escape(title)}</h1>")

    header_table = _html_table(["field", "value"],
                               [[field, _format_field(field, report.get(field))]
                                for field in HEADER_FIELDS], text_columns=(0, 1))
    metrics_table = _html_table(["metric", "value"],
                                [[label, _format_value(report.get(key))]
                                 for key, label in OVERALL_METRICS])
    quantile_table = _html_table(["quantile", "loss"],
                                 [[_quantile_label(key), _format_value(value)]
                                  for key, value in _sorted_quantiles(report)])
    sections.append("<h2>Overview</h2>\n<div class=\"row\">"
                    f"<div>{header_table}</div><div>{metrics_table}</div>"
                    f"<div>{quantile_table}</div></div>")

    sections.append("<h2>Loss distribution</h2>\n" + figure_html(LOSS_HISTOGRAM_PNG))

    calibration_table = _html_table(["metric", "value"],
                                    [[label, _format_value(report.get(key))]
                                     for key, label in CALIBRATION_METRICS])
    bin_header, bin_rows = _calibration_rows(report)
    scope = "top label" if task != "multilabel" else "all labels"
    sections.append(f"<h2>Calibration ({html.escape(scope)})</h2>\n"
                    f"{calibration_table}\n<div class=\"row\">"
                    f"<div>{figure_html(RELIABILITY_PNG)}</div>"
                    f"<div>{_html_table(bin_header, bin_rows)}</div></div>")

    sections.extend(_html_per_class(report, figure_html))

    sections.extend(_html_confusion(report, figure_html))

    names = _class_names(report, int(report.get("n_classes") or 0))
    every_hardest = len((report.get("hardest") or {}).get("index") or [])
    header, rows, total = _hardest_rows(report, every_hardest, names)
    if total:
        sections.append(f"<h2>Hardest samples ({total} largest losses)</h2>\n"
                        + _html_table(header, rows, text_columns=_hardest_text_columns(header)))

    sections.append(_html_label_issues(report))

    if figures:  # figures this page has no fixed place for
        sections.append("<h2>Other figures</h2>\n"
                        + "\n".join(_html_figure(name, png) for name, png in figures.items()))
    if not has_figures:
        sections.append(f'<p class="note">No figures: they need matplotlib '
                        f'({html.escape(PROFILE_EXTRA_HINT)}).</p>')

    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{PAGE_STYLE}</style>\n</head>\n"
            "<body>\n" + "\n".join(sections) + "\n</body>\n</html>\n")


def _html_per_class(report, figure_html):
    """The per-class (or per-label) section: a figure and the table, at most
    MAX_HTML_CLASSES rows (the worst by mean loss when there are more)."""
    sections = []
    kind, stats = _per_class_section(report)
    if stats is not None:
        count = _stat_count(stats)
        names = _class_names(report, count)
        plural = "classes" if kind == "class" else "labels"
        if count <= MAX_HTML_CLASSES:
            shown = list(range(count))
            note = f"All {count} {plural}."
        else:
            shown = _worst_by_loss(stats, MAX_HTML_CLASSES)
            note = f"The {len(shown)} of {count} {plural} with the largest mean loss, worst first."
        columns = _per_class_columns(kind)
        rows = [[str(index), names[index]]
                + [_format_field(key, _stat(stats, key, index)) for _, key in columns]
                for index in shown]
        sections.append(f"<h2>Per-{kind} metrics</h2>\n"
                        + figure_html(PER_CLASS_PNG)
                        + f'<p class="note">{html.escape(note)}</p>\n<div class="scroll">'
                        + _html_table([kind, "name"] + [header for header, _ in columns],
                                      rows, text_columns=(0, 1))
                        + "</div>")
    return sections


def _html_confusion(report, figure_html):
    """The confusion matrix: its figure, and a table when it is small."""
    sections = []
    confusion = report.get("confusion")
    confusion_figure = figure_html(CONFUSION_PNG)
    if confusion is not None and (confusion_figure or len(confusion) <= MAX_HTML_CONFUSION_TABLE):
        section = "<h2>Confusion matrix</h2>\n" + confusion_figure
        if len(confusion) <= MAX_HTML_CONFUSION_TABLE:
            names = _class_names(report, len(confusion))
            rows = [[f"true: {names[row]}"] + [_format_value(cell) for cell in cells]
                    for row, cells in enumerate(confusion)]
            section += _html_table(["true \\ predicted"] + names, rows)
        sections.append(section)
    return sections


def _html_label_issues(report):
    """The label-issue section (or a note that it was not computed)."""
    issue_rows, issue_count = _label_issue_rows(report, MAX_HTML_LABEL_ISSUES)
    if issue_rows is None:
        return '<h2>Label issues</h2>\n<p class="note">Not computed.</p>'
    note = f"{issue_count} suspected label issues"
    if issue_count > len(issue_rows):
        note += f" (first {len(issue_rows)} shown)"
    table = _html_table(["sample", "self-confidence"], issue_rows, text_columns=()) \
        if issue_rows else ""
    return f'<h2>Label issues</h2>\n<p>{html.escape(note)}.</p>\n{table}'


# --------------------------------------------------------------------------
# Everything at once
# --------------------------------------------------------------------------

def save_report(report, directory):
    """Write ``report.json``, the figures and ``report.html`` into ``directory``.

    The directory is created if needed. Returns the names of the files written,
    relative to ``directory``. Without matplotlib the JSON and the HTML (without
    figures) are still written, and a warning says how to get the figures.
    """
    os.makedirs(directory, exist_ok=True)
    written = []
    with open(os.path.join(directory, REPORT_JSON), "w", encoding="utf-8") as handle:
        # allow_nan=False: NaN is not JSON; the report must already hold None.
        json.dump(report, handle, indent=1, allow_nan=False)
    written.append(REPORT_JSON)

    figure_names = save_figures(report, directory)
    if not figure_names and _load_matplotlib() is None:
        warnings.warn("fastce: the profile figures need matplotlib "
                      f"({PROFILE_EXTRA_HINT}); wrote the JSON and HTML report without them",
                      stacklevel=2)
    figures = {}
    for name in figure_names:
        with open(os.path.join(directory, name), "rb") as handle:
            figures[name] = handle.read()
    written.extend(figure_names)

    with open(os.path.join(directory, REPORT_HTML), "w", encoding="utf-8") as handle:
        handle.write(render_html(report, figures))
    written.append(REPORT_HTML)
    return written
