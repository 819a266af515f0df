"""The profile's exact sums (_profile.h's superaccumulator) against math.fsum.

math.fsum returns the correctly rounded sum of its inputs, whatever their order.
The superaccumulator keeps the sum exactly and rounds it once, so it must give
the same float64, and the same integer state for every order and every split
into merged parts: that is what makes a profile bitwise reproducible.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastce._dispatch import kernels

_profile = kernels("_profile")


def exact(values):
    return _profile.exact_sum(np.asarray(values, dtype=np.float64))


def value(state):
    return float(_profile.exact_values(state[None])[0])


finite_doubles = st.floats(allow_nan=False, allow_infinity=False, width=64)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(finite_doubles, max_size=60))
def test_equals_fsum_for_any_finite_doubles(values):
    try:
        expected = math.fsum(values)
    except OverflowError:  # the exact sum is finite, but fsum's intermediates overflow
        return
    assert value(exact(values)) == expected


@pytest.mark.parametrize("case", ["cancellation", "magnitudes", "subnormal", "many"])
def test_equals_fsum_on_hard_cases(case):
    rng = np.random.default_rng(3)
    if case == "cancellation":
        x = rng.standard_normal(1000) * 1e16
        values = np.concatenate([x, -x, [1.0, 2.0**-60]])
    elif case == "magnitudes":
        values = rng.standard_normal(2000) * 10.0 ** rng.integers(-300, 300, 2000)
    elif case == "subnormal":
        values = rng.standard_normal(500) * 1e-310
    else:
        values = rng.random(1_000_000)
    rng.shuffle(values)
    assert value(exact(values)) == math.fsum(values)


def test_state_is_the_same_for_every_order_and_split():
    rng = np.random.default_rng(4)
    values = rng.standard_normal(10_000) * 10.0 ** rng.integers(-20, 20, 10_000)
    whole = exact(values)
    assert np.array_equal(exact(values[::-1]), whole)
    for cut in (1, 777, 5000, 9999):
        merged = _profile.normalize(exact(values[:cut]) + exact(values[cut:]))
        assert np.array_equal(merged, whole)


def test_special_values():
    assert math.isnan(value(exact([1.0, np.nan])))
    assert value(exact([np.inf, 1.0])) == np.inf
    assert value(exact([-np.inf, 1.0])) == -np.inf
    assert math.isnan(value(exact([np.inf, -np.inf])))
    assert value(exact([])) == 0.0
    # The exact sum of huge terms can be finite where a running sum overflows.
    assert value(exact([1.7e308, 1.7e308, -1.7e308])) == 1.7e308
