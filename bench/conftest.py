"""Benchmarks are measurements, never pass/fail tests.

``FASTCE_BENCH_SCALE`` (default 0.0625) scales the benchmark shapes; 1.0 runs them
at full size. Run: ``pytest bench/ --benchmark-only``.
"""
import os

import numpy as np
import pytest

SCALE = float(os.environ.get("FASTCE_BENCH_SCALE", "0.0625"))

# name: (rows, classes, dtype) (the benchmark shapes)
SOFTMAX_SHAPES = {
    "ce-1k": (65_536, 1_000, np.float32),
    "ce-10": (1_048_576, 10, np.float32),
    "ce-32k": (8_192, 32_000, np.float32),
    "ce-1k-f64": (65_536, 1_000, np.float64),
}
BCE_ELEMENTS = 33_554_432


def scaled_rows(rows):
    return max(64, int(rows * SCALE))


@pytest.fixture(scope="session")
def rng():
    return np.random.default_rng(0)
