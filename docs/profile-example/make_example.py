"""Regenerate the profile example in this folder (README, "Profile a dataset").

A synthetic 10-class model over 200,000 samples, with cats and dogs confused
and 4% of the labels replaced at random; then the CLI's report and a headless
Chromium screenshot of report.html (Debian's `chromium` package).
"""
import pathlib
import subprocess
import tempfile

import numpy as np

import fastce

here = pathlib.Path(__file__).parent
names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
         "truck"]
rng = np.random.default_rng(7)
n_samples, n_classes = 200_000, 10
truth = rng.integers(0, n_classes, n_samples)
skill = np.array([3.5, 4.0, 2.0, 1.2, 2.5, 1.5, 3.0, 3.0, 3.8, 3.6])
logits = rng.standard_normal((n_samples, n_classes)).astype(np.float32) * 1.3
logits[np.arange(n_samples), truth] += skill[truth]
cat_or_dog = (truth == 3) | (truth == 5)
other = np.where(truth == 3, 5, 3)
logits[cat_or_dog, other[cat_or_dog]] += 1.0
labels = truth.copy()
noisy = rng.random(n_samples) < 0.04
labels[noisy] = rng.integers(0, n_classes, int(noisy.sum()))

with tempfile.TemporaryDirectory() as directory:
    report = fastce.profile(logits, labels, class_names=names)
    print(report.summary())
    report.save(directory)
    for figure in ("per_class.png", "confusion.png"):
        (here / figure).write_bytes((pathlib.Path(directory) / figure).read_bytes())
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--screenshot={here / 'report_screenshot.png'}",
                    "--window-size=1200,2200", f"file://{directory}/report.html"],
                   check=True, timeout=120, capture_output=True)
