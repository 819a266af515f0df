"""Tests for fastce._report: the text summary, the figures, the HTML page and
save_report, on profile dicts built here by hand (the profiling computation is
not involved), plus a headless-browser check that the page renders.
"""
import base64
import json
import math
import os
import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pytest

from fastce import _report

SCALAR_FIELDS = ["n_samples", "n_classes", "task", "kind", "weight_sum", "loss_mean",
                 "accuracy", "top5_accuracy", "brier_mean", "entropy_mean", "margin_mean",
                 "confidence_mean", "ece", "mce"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BROWSERS = ["chromium", "chromium-browser", "google-chrome", "chromium-headless-shell"]
TRICKY_NAME = "<cat & dog>"


def _none_if_nan(value):
    value = float(value)
    return None if math.isnan(value) else value


def _list(values):
    return [_none_if_nan(value) for value in values]


def _loss_histogram(losses):
    # Log-spaced edges from 1e-4 to 128 behind a first edge at 0, as the
    # profiler writes them.
    edges = np.concatenate([[0.0], np.geomspace(1e-4, 128.0, 32)])
    counts, _ = np.histogram(np.clip(losses, 0, 128.0), bins=edges)
    return {"edges": edges.tolist(), "counts": [int(count) for count in counts]}


def _calibration(confidence, correct, n_bins=15):
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1]), 0, n_bins - 1)
    weight, mean_confidence, accuracy = [], [], []
    for b in range(n_bins):
        members = bins == b
        weight.append(float(members.sum()))
        mean_confidence.append(float(confidence[members].mean()) if members.any() else None)
        accuracy.append(float(correct[members].mean()) if members.any() else None)
    gaps = [abs(c - a) for c, a in zip(mean_confidence, accuracy) if c is not None]
    ece = sum(w * abs(c - a) for w, c, a in zip(weight, mean_confidence, accuracy)
              if c is not None) / max(sum(weight), 1.0)
    return ({"bin_edges": edges.tolist(), "weight": weight,
             "mean_confidence": mean_confidence, "accuracy": accuracy},
            float(ece), float(max(gaps)) if gaps else None)


def _quantiles(losses):
    return {key: float(np.quantile(losses, float(key))) for key in ("0.5", "0.9", "0.99", "0.999")}


def make_multiclass_report(n_samples=1000, n_classes=4, class_names=None, seed=0,
                           with_confusion=True, empty_class=None, binary=False):
    """A profile of simulated softmax predictions, consistent with itself."""
    rng = np.random.default_rng(seed)
    usable = [c for c in range(n_classes) if c != empty_class]
    labels = rng.choice(usable, size=n_samples)
    logits = rng.normal(0.0, 1.0, (n_samples, n_classes))
    logits[np.arange(n_samples), labels] += rng.gamma(2.0, 1.2, n_samples)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    losses = -np.log(probs[np.arange(n_samples), labels])
    predicted = probs.argmax(axis=1)
    confidence = probs.max(axis=1)
    correct = predicted == labels
    calibration, ece, mce = _calibration(confidence, correct)
    sorted_probs = np.sort(probs, axis=1)
    self_confidence = probs[np.arange(n_samples), labels]
    one_hot = np.eye(n_classes)[labels]

    per_class = {key: [] for key in ("support", "weight", "loss_mean", "accuracy", "precision",
                                     "mean_self_confidence", "predicted_count")}
    for c in range(n_classes):
        members = labels == c
        predicted_c = predicted == c
        per_class["support"].append(int(members.sum()))
        per_class["weight"].append(float(members.sum()))
        per_class["loss_mean"].append(float(losses[members].mean()) if members.any() else None)
        per_class["accuracy"].append(float(correct[members].mean()) if members.any() else None)
        per_class["precision"].append(float((labels[predicted_c] == c).mean())
                                      if predicted_c.any() else None)
        per_class["mean_self_confidence"].append(
            float(self_confidence[members].mean()) if members.any() else None)
        per_class["predicted_count"].append(int(predicted_c.sum()))

    confusion = None
    if with_confusion:
        confusion = np.zeros((n_classes, n_classes), dtype=int)
        np.add.at(confusion, (labels, predicted), 1)
        confusion = confusion.tolist()

    hardest = np.argsort(-losses)[:25]
    suspects = np.flatnonzero(self_confidence < 0.05)
    suspects = suspects[np.argsort(self_confidence[suspects])]
    top5 = None
    if n_classes > 5:
        top5 = float((np.argsort(-probs, axis=1)[:, :5] == labels[:, None]).any(axis=1).mean())
    return {
        "n_samples": n_samples, "n_classes": n_classes,
        "task": "binary" if binary else "multiclass", "kind": "logits",
        "weight_sum": float(n_samples),
        "loss_mean": float(losses.mean()), "accuracy": float(correct.mean()),
        "top5_accuracy": top5,
        "brier_mean": float(((probs - one_hot) ** 2).sum(axis=1).mean()),
        "entropy_mean": float(-(probs * np.log(probs)).sum(axis=1).mean()),
        "margin_mean": float((sorted_probs[:, -1] - sorted_probs[:, -2]).mean()),
        "confidence_mean": float(confidence.mean()),
        "ece": ece, "mce": mce, "calibration": calibration,
        "loss_quantiles": _quantiles(losses),
        "loss_histogram": _loss_histogram(losses),
        "per_class": per_class, "per_label": None, "confusion": confusion,
        "hardest": {"index": hardest.tolist(), "loss": losses[hardest].tolist(),
                    "label": labels[hardest].tolist(), "predicted": predicted[hardest].tolist()},
        "label_issues": {"index": suspects.tolist(),
                         "self_confidence": self_confidence[suspects].tolist()},
        "class_names": class_names,
    }


def make_multilabel_report(n_samples=800, n_labels=6, seed=1):
    rng = np.random.default_rng(seed)
    targets = rng.random((n_samples, n_labels)) < 0.3
    logits = rng.normal(0.0, 1.5, (n_samples, n_labels)) + np.where(targets, 1.5, -1.5)
    probs = 1.0 / (1.0 + np.exp(-logits))
    element_loss = -np.where(targets, np.log(probs), np.log1p(-probs))
    losses = element_loss.mean(axis=1)
    correct = (probs > 0.5) == targets
    calibration, ece, mce = _calibration(probs.ravel(), targets.ravel().astype(float))
    per_label = {"support": targets.sum(axis=0).astype(int).tolist(),
                 "loss_mean": element_loss.mean(axis=0).tolist(),
                 "accuracy": correct.mean(axis=0).tolist(),
                 "ece": [_calibration(probs[:, j], targets[:, j].astype(float))[1]
                         for j in range(n_labels)]}
    hardest = np.argsort(-losses)[:10]
    return {
        "n_samples": n_samples, "n_classes": n_labels, "task": "multilabel", "kind": "probs",
        "weight_sum": 812.25,
        "loss_mean": float(losses.mean()), "accuracy": float(correct.mean()),
        "top5_accuracy": None,
        "brier_mean": float(((probs - targets) ** 2).mean()),
        "entropy_mean": None, "margin_mean": None,
        "confidence_mean": float(np.maximum(probs, 1 - probs).mean()),
        "ece": ece, "mce": mce, "calibration": calibration,
        "loss_quantiles": _quantiles(losses),
        "loss_histogram": _loss_histogram(losses),
        "per_class": None, "per_label": per_label, "confusion": None,
        "hardest": {"index": hardest.tolist(), "loss": losses[hardest].tolist(),
                    "label": targets[hardest].astype(int).tolist(),
                    "predicted": (probs[hardest] > 0.5).astype(int).tolist()},
        "label_issues": None,
        "class_names": [f"tag_{j}" for j in range(n_labels)],
    }


def four_class_report():
    return make_multiclass_report(class_names=[TRICKY_NAME, "bird", "fish", "horse"])


def sixty_class_report(with_confusion=False):
    names = [f"class_{c:02d}" for c in range(60)]
    return make_multiclass_report(n_samples=3000, n_classes=60, class_names=names, seed=2,
                                  with_confusion=with_confusion, empty_class=7)


def binary_report():
    return make_multiclass_report(n_samples=500, n_classes=2, binary=True, seed=3)


VARIANTS = {
    "four_classes": four_class_report,
    "sixty_classes": sixty_class_report,
    "sixty_classes_with_confusion": lambda: sixty_class_report(with_confusion=True),
    "binary": binary_report,
    "multilabel": make_multilabel_report,
}


@pytest.fixture(params=sorted(VARIANTS))
def report(request):
    built = VARIANTS[request.param]()
    # JSON-ready means plain JSON: the round trip must not change anything.
    assert json.loads(json.dumps(built, allow_nan=False)) == built
    return built


# ---------------------------------------------------------------- text

def test_summary_shows_every_scalar(report):
    text = _report.summary_text(report)
    for field in SCALAR_FIELDS:
        assert _report._format_field(field, report[field]) in text, field
    for value in report["loss_quantiles"].values():
        assert _report._format_value(value) in text


def test_summary_formats_values_readably():
    report = four_class_report()
    report.update(loss_mean=0.731234, accuracy=0.5, brier_mean=3.2e-7, weight_sum=1234.5,
                  entropy_mean=None)
    text = _report.summary_text(report)
    assert "0.7312" in text
    assert "0.5000" in text
    assert "3.200e-07" in text
    assert re.search(r"weight_sum\s+1234.5\n", text)
    assert re.search(r"top-5 accuracy\s+n/a", text)
    assert re.search(r"mean predictive entropy\s+n/a", text)
    assert "multiclass" in text and "logits" in text


def test_summary_lists_class_names_and_worst_classes():
    report = four_class_report()
    text = _report.summary_text(report)
    for name in report["class_names"]:
        assert name in text

    report = sixty_class_report()
    text = _report.summary_text(report, max_rows=5)
    losses = report["per_class"]["loss_mean"]
    worst = sorted((loss, c) for c, loss in enumerate(losses) if loss is not None)[-5:]
    for _, c in worst:
        assert f"class_{c:02d}" in text
    best = min((loss, c) for c, loss in enumerate(losses) if loss is not None)[1]
    assert f"class_{best:02d}" not in text
    assert "worst 5 of 60 classes" in text


def test_summary_columns_are_aligned():
    text = _report.summary_text(four_class_report())
    block = text.split("Per-class metrics")[1].split("\n\n")[0].splitlines()[2:]
    header, separator, rows = block[0], block[1], block[2:]
    assert len(rows) == 4
    # Right-aligned numeric columns all end at the same character.
    assert {len(row) for row in rows} == {len(header)}
    assert len(separator) == len(header)


def test_summary_multilabel_and_missing_sections():
    report = make_multilabel_report()
    text = _report.summary_text(report)
    assert "Per-label metrics" in text
    assert "tag_0" in text
    assert "not computed" in text  # label issues
    hardest = text.split("Hardest samples")[1].split("\n\n")[0]
    assert "predicted" not in hardest

    report = four_class_report()
    report["label_issues"] = {"index": [], "self_confidence": []}
    assert "0 suspected label issues" in _report.summary_text(report)


def test_summary_label_issues():
    report = four_class_report()
    count = len(report["label_issues"]["index"])
    assert count > 10
    text = _report.summary_text(report)
    assert f"{count} suspected label issues (first 10 shown)" in text
    section = text.split("Label issues")[1]
    for sample in report["label_issues"]["index"][:10]:
        assert re.search(rf"^\s*{sample}\s", section, re.M)


# ---------------------------------------------------------------- files

def _expected_files(report):
    names = {"report.json", "report.html", "loss_histogram.png", "reliability.png",
             "per_class.png"}
    if report["confusion"] is not None and len(report["confusion"]) <= 50:
        names.add("confusion.png")
    return names


def test_save_report_writes_everything(report, tmp_path):
    matplotlib_image = pytest.importorskip("matplotlib.image")
    directory = tmp_path / "nested" / "profile"
    written = _report.save_report(report, directory)
    assert set(written) == _expected_files(report)
    assert sorted(os.listdir(directory)) == sorted(written)

    with open(directory / "report.json", encoding="utf-8") as handle:
        assert json.load(handle) == report

    page = (directory / "report.html").read_text(encoding="utf-8")
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    pngs = sorted(name for name in written if name.endswith(".png"))
    assert len(embedded) == len(pngs)
    on_disk = {(directory / name).read_bytes() for name in pngs}
    assert {base64.b64decode(data) for data in embedded} == on_disk

    for name in pngs:
        data = (directory / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        image = matplotlib_image.imread(directory / name)
        height, width = image.shape[:2]
        assert 250 <= height <= 2500 and 250 <= width <= 2500, (name, image.shape)
        assert image[..., :3].std() > 0.01, name


def test_html_is_self_contained_and_escaped(tmp_path):
    report = four_class_report()
    _report.save_report(report, tmp_path)
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "http://" not in page and "https://" not in page
    assert "<link" not in page and "<script" not in page
    assert "&lt;cat &amp; dog&gt;" in page
    assert TRICKY_NAME not in page
    for name in report["class_names"][1:]:
        assert name in page


def test_html_tables_limit_rows():
    names = [f"c{c}" for c in range(250)]
    report = make_multiclass_report(n_samples=5000, n_classes=250, class_names=names,
                                    with_confusion=False, seed=4)
    page = _report.render_html(report, {})
    per_class = page.split("<h2>Per-class metrics</h2>")[1].split("<h2>")[0]
    assert per_class.count("<tr>") == 200 + 1  # header row
    assert "200 of 250 classes" in page
    issues = page.split("<h2>Label issues</h2>")[1]
    assert issues.count("<tr>") == min(100, len(report["label_issues"]["index"])) + 1
    assert "No figures: they need matplotlib" in page


def test_without_matplotlib_warns_and_writes_json_and_html(tmp_path, monkeypatch):
    # A None entry in sys.modules makes "import matplotlib" raise ImportError.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    report = four_class_report()
    assert _report.save_figures(report, tmp_path / "figures") == []
    with pytest.warns(UserWarning, match=r"pip install fastce\[profile\]"):
        written = _report.save_report(report, tmp_path)
    assert written == ["report.json", "report.html"]
    assert sorted(os.listdir(tmp_path)) == ["report.html", "report.json"]
    assert "data:image/png" not in (tmp_path / "report.html").read_text(encoding="utf-8")


def test_save_figures_handles_a_report_without_samples(tmp_path):
    pytest.importorskip("matplotlib")
    report = four_class_report()
    empty_calibration = {"bin_edges": report["calibration"]["bin_edges"],
                         "weight": [0.0] * 15, "mean_confidence": [None] * 15,
                         "accuracy": [None] * 15}
    report.update(n_samples=0, weight_sum=0.0, loss_mean=None, accuracy=None, ece=None,
                  mce=None, calibration=empty_calibration,
                  loss_quantiles={key: None for key in report["loss_quantiles"]},
                  loss_histogram={"edges": report["loss_histogram"]["edges"],
                                  "counts": [0] * 32},
                  confusion=[[0] * 4 for _ in range(4)],
                  hardest={"index": [], "loss": [], "label": [], "predicted": []},
                  label_issues={"index": [], "self_confidence": []})
    report["per_class"] = {key: [None if key not in ("support", "predicted_count") else 0] * 4
                           for key in report["per_class"]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        written = _report.save_report(report, tmp_path)
    assert "confusion.png" in written
    assert "n/a" in _report.summary_text(report)


# ---------------------------------------------------------------- browser

def _find_browser():
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def test_report_renders_in_headless_browser(tmp_path):
    matplotlib_image = pytest.importorskip("matplotlib.image")
    browser = _find_browser()
    if browser is None:
        pytest.skip(f"no headless browser found (tried {', '.join(BROWSERS)})")
    _report.save_report(four_class_report(), tmp_path)
    screenshot = tmp_path / "shot.png"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu",
         f"--screenshot={screenshot}", "--window-size=1200,3000",
         f"file://{tmp_path / 'report.html'}"],
        capture_output=True, text=True, timeout=60)
    assert screenshot.exists(), (result.returncode, result.stderr[-2000:])
    assert screenshot.read_bytes().startswith(PNG_MAGIC)
    image = matplotlib_image.imread(screenshot)
    assert image.shape[:2] == (3000, 1200)
    pixels = image[..., :3]
    assert pixels.std() > 0.02
    # Not a blank page: plenty of pixels are neither white nor nearly white.
    assert (pixels.min(axis=2) < 0.9).mean() > 0.02


def test_figures_take_any_class_name(tmp_path):
    pytest.importorskip("matplotlib")
    # "$...$" would be typeset as mathematics by matplotlib, and an unmatched
    # one is a parse error; long names are shortened for the tick labels.
    names = ["price $5-$10", "a lone $ sign", "x" * 200, "line\nbreak", "ünïcödé"]
    report = make_multiclass_report(n_classes=5, class_names=names, seed=5)
    written = _report.save_figures(report, tmp_path)
    assert "per_class.png" in written and "confusion.png" in written
    text = _report.summary_text(report)
    assert "price $5-$10" in text and "line break" in text
