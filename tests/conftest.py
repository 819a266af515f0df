"""Report which fastce the suite tests (the installed wheel, not the source folder).

Also the helpers and constants that several test modules share. pytest puts this
folder on sys.path (the default "prepend" import mode; tests/ has no __init__.py),
so a test module imports them with ``from conftest import ...``, however the suite
is run (from the repository or from elsewhere with the tests path given).
"""
import os

import numpy as np
import pytest

# ----------------------------------------------------------------------------- constants

FLOAT_DTYPES = (np.float32, np.float64)
LABEL_DTYPES = (np.int8, np.int16, np.int32, np.int64,
                np.uint8, np.uint16, np.uint32, np.uint64)
REDUCTIONS = ("none", "sum", "mean")

# The seed of the ``rng`` fixture, unless the test module sets its own RNG_SEED.
DEFAULT_RNG_SEED = 20240611


# ----------------------------------------------------------------------------- helpers

def word(name):
    """A regex that matches ``name`` as a whole word (for pytest.raises(match=...))."""
    return rf"\b{name}\b"


def tolerances(dtype):
    """assert_allclose's rtol/atol for one computation against an exact-ish oracle."""
    return dict(rtol=1e-12, atol=1e-300) if dtype == np.float64 else dict(rtol=2e-6, atol=2e-7)


def total(loss):
    """The quantity a gradient differentiates: the loss, or the sum of per-sample losses."""
    return float(np.sum(loss))


def numerical_gradient(function, x, step=1e-6, where=None):
    """Central differences of the scalar ``function`` at the float64 array (or float) ``x``.

    Each element is moved by +-step on a copy of x (the other elements are left exactly as
    they are). With ``where`` (a boolean array of x's shape) only the elements where it is
    True are differenced; the others are NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    grad = np.zeros_like(x) if where is None else np.full_like(x, np.nan)
    for index in np.ndindex(x.shape):
        if where is not None and not where[index]:
            continue
        plus = x.copy()
        plus[index] += step
        minus = x.copy()
        minus[index] -= step
        grad[index] = (function(plus) - function(minus)) / (2 * step)
    return grad


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture
def rng(request):
    """A fresh generator per test, seeded by the module's RNG_SEED (or DEFAULT_RNG_SEED)."""
    return np.random.default_rng(getattr(request.module, "RNG_SEED", DEFAULT_RNG_SEED))


# ----------------------------------------------------------------------------- report header

def pytest_report_header(config):
    import fastce

    variant = fastce.show_config(print_out=False)["simd"]
    return (f"fastce {fastce.__version__} from {os.path.dirname(fastce.__file__)} "
            f"(SIMD {variant})")
