"""fastce's own elementary functions (fastce/_kernels/_math_scalar.h), under every SIMD build.

The kernels do not call libm's exp/log1p: they use fastce_exp / fastce_expf
(range reduction plus a polynomial) and fastce_log1p_unit / fastce_log1pf_unit
(an atanh series on [0, 1]), which GCC vectorises. The performance notes ("exp is the
bottleneck") and the accuracy contract make them part of the accuracy contract,
so they are checked here directly, through the test hook
``fastce._kernels._binary_<variant>.elementary(name, x, out)``, over the whole input
range: subnormal results, underflow to 0, overflow to inf, +-inf and NaN.

Every test runs once per SIMD build (baseline, avx2, avx512) that the CPU
supports and that was built here; the others are skipped. The builds differ
in more than vector width: avx2/avx512 are compiled with -mfma, so GCC
contracts a*b + c into FMAs and the rounding differs.

Error measures (the oracle is always more precise than the result):
- exp, in ulps of the exact result: |got - exact| / spacing(round(exact)),
  where round() is to the result's dtype; for a subnormal result the ulp is
  the subnormal spacing (2^-1074, 2^-149), so an underflowing exp is judged
  on the absolute scale it is representable on.
- log1p_unit, as a relative error in ulps: |got - exact| / (|exact| * eps),
  eps = 2^-52 (2^-23 for float32), floored at the smallest subnormal for
  subnormal results (log1p(u) = u there).

Oracles: mpmath at 40 digits on a subsample for float64 (the brief); on the
whole float64 sweep, numpy's long double exp/log1p when it has at least a
64-bit mantissa (x87 on x86-64 Linux: 2^-11 of a double ulp), else float64
libm with its own (< 1 ulp) error added to the bound; float64 libm for
float32 (2^-29 of a float ulp).

The last tests run fastce in subprocesses with FASTCE_SIMD forcing each
build, and check that the builds agree on real losses (not bitwise: vector
widths change summation order) and that a bad FASTCE_SIMD is an ImportError.

Run with ``-s`` (or ``-rP``) to see the measured maximum errors.
"""
import functools
import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from mpmath import mp

import fastce
from fastce._kernels import dispatch as _dispatch

from conftest import FLOAT_DTYPES


# Accuracy bounds. Measured on the development machine (GCC, x86-64), worst
# over the sweeps below (float32: exhaustively over every float in range):
#   exp float64:   baseline 1.13 ulp, avx2/avx512 0.87 ulp
#   exp float32:   baseline 1.22 ulp, avx2/avx512 0.94 ulp
#   log1p float64: 1.87 (relative, in eps) in every build
#   log1p float32: 1.91 (relative, in eps) in every build
# The bounds are the contract ("under 2 ulp"), not the measurement,
# so a different compiler or polynomial that stays within it still passes.
EXP_MAX_ULP = {np.float64: 2.0, np.float32: 2.0}
LOG1P_MAX_REL_ULP = {np.float64: 2.0, np.float32: 2.0}

# Where exp's result leaves the finite, nonzero range (brief / IEEE limits).
# float64: exp(x) < 2^-1075 (rounds to 0) for x < -745.1332; subnormal for
# x < ln(2^-1022) = -708.3964; > DBL_MAX for x > ln(DBL_MAX) = 709.7827.
UNDERFLOW_BELOW = {np.float64: -745.2, np.float32: -104.0}
OVERFLOW_ABOVE = {np.float64: 709.79, np.float32: 88.73}
SUBNORMAL_RANGE = {np.float64: (-745.1, -708.4), np.float32: (-103.9, -87.4)}
SWEEP_RANGE = {np.float64: (-760.0, 720.0), np.float32: (-110.0, 95.0)}

MP_DPS = 40
SEED = 20240611

HAVE_EXTENDED = np.finfo(np.longdouble).nmant >= 63


# ----------------------------------------------------------------------------- variants

# The builds, baseline first (the reference the others are compared to); which of them
# can run here is fastce._kernels.dispatch's own decision, not a copy of it.
VARIANTS = tuple(reversed(_dispatch.VARIANTS))


def _skip_reason(variant):
    if not _dispatch._supported(variant):
        return f"this CPU does not support the {variant} build"
    if not _dispatch._built(variant):
        return f"the {variant} build is not present here"
    return None


RUNNABLE = [v for v in VARIANTS if _skip_reason(v) is None]


@pytest.fixture(params=VARIANTS)
def variant(request):
    reason = _skip_reason(request.param)
    if reason is not None:
        pytest.skip(reason)
    return request.param


def _elementary(variant, name, x):
    module = importlib.import_module(f"fastce._kernels._binary_{variant}")
    x = np.ascontiguousarray(x)
    out = np.full_like(x, 12345.0)  # poison: every element must be written
    result = module.elementary(name, x, out)
    assert result is out
    return out


def _report(what, value, where=None):
    suffix = "" if where is None else f" at x={where!r}"
    print(f"\n[vecmath] {what}: {value:.4g}{suffix}")


# ----------------------------------------------------------------------------- inputs

def _neighbours(points, dtype, steps=2):
    """points and their `steps` nearest neighbours on each side, in dtype."""
    points = np.asarray(points, dtype=dtype)
    out = [points]
    up = down = points
    for _ in range(steps):
        up = np.nextafter(up, dtype(np.inf))
        down = np.nextafter(down, dtype(-np.inf))
        out += [up, down]
    return np.concatenate(out)


def _exp_edges(dtype):
    """Range-reduction edges and range limits of exp, in dtype.

    n = round(x / ln 2) switches at (k + 1/2) ln 2, where |r| is largest and
    the polynomial is at its worst; k ln 2 gives exact powers of two.
    """
    lo, hi = SWEEP_RANGE[dtype]
    k = np.arange(np.floor(lo / np.log(2.0)) - 1, np.ceil(hi / np.log(2.0)) + 1)
    ln2 = np.log(2.0)
    finfo = np.finfo(dtype)
    limits = [
        0.0, 1.0, -1.0, 1e-8, -1e-8, 1e-17, -1e-17,
        np.log(float(finfo.max)), np.log(float(finfo.tiny)),  # overflow, subnormal edges
        np.log(float(finfo.smallest_subnormal)),               # exp = smallest subnormal
        np.log(float(finfo.smallest_subnormal)) - np.log(2.0),  # exp = half of it: rounds to 0
        UNDERFLOW_BELOW[dtype], OVERFLOW_ABOVE[dtype],
        *SUBNORMAL_RANGE[dtype],
        # the implementation's clamps (-746/710 and -104/89) and around them
        -746.0, -745.5, 710.0, 709.9, -104.0, -103.95, 89.0, 88.9,
    ]
    points = np.concatenate([(k + 0.5) * ln2, k * ln2, limits])
    points = _neighbours(points, dtype)
    tiny = np.array([finfo.smallest_subnormal, -finfo.smallest_subnormal,
                     finfo.tiny, -finfo.tiny, 0.0, -0.0], dtype=dtype)
    points = np.concatenate([points, tiny])
    return points[(points >= lo) & (points <= hi)]


@functools.lru_cache(maxsize=None)
def _exp_sweep(dtype):
    """A dense sweep of exp's whole input range (sorted, read-only)."""
    rng = np.random.default_rng(SEED)
    lo, hi = SWEEP_RANGE[dtype]
    sub_lo, sub_hi = SUBNORMAL_RANGE[dtype]
    n_dense = 200_001 if dtype is np.float64 else 400_001
    parts = [
        np.linspace(lo, hi, n_dense),
        rng.uniform(lo, hi, 50_000),
        rng.uniform(sub_lo - 0.2, sub_hi + 0.1, 20_000),  # subnormal results
        rng.uniform(-1.0, 1.0, 5_000),                    # near exp = 1
    ]
    x = np.concatenate([p.astype(dtype) for p in parts] + [_exp_edges(dtype)])
    x = np.unique(x)
    x.setflags(write=False)
    return x


@functools.lru_cache(maxsize=None)
def _log1p_sweep(dtype):
    """[0, 1] densely, tiny values log-uniformly down to the smallest subnormal,
    and exactly 0 and 1 (sorted, read-only)."""
    rng = np.random.default_rng(SEED + 1)
    finfo = np.finfo(dtype)
    min_exp = int(np.log2(float(finfo.smallest_subnormal)))  # -1074, -149
    n_dense = 200_001 if dtype is np.float64 else 400_001
    tiny = [finfo.smallest_subnormal, 2 * finfo.smallest_subnormal,
            3 * finfo.smallest_subnormal, finfo.tiny, finfo.eps, 0.5, 1.0, 0.0]
    parts = [
        np.linspace(0.0, 1.0, n_dense),
        rng.uniform(0.0, 1.0, 50_000),
        2.0 ** rng.uniform(min_exp, 0.0, 20_000),
        2.0 ** np.arange(min_exp, 1, dtype=np.float64),
    ]
    x = np.concatenate([p.astype(dtype) for p in parts]
                       + [_neighbours(tiny, dtype, steps=3)])
    x = np.unique(x[(x >= 0) & (x <= 1)])
    x.setflags(write=False)
    return x


def _subsample(x, n, seed):
    """n points of a sweep, at random, for the mpmath oracle."""
    rng = np.random.default_rng(seed)
    return np.unique(rng.choice(x, size=n, replace=False))


# ----------------------------------------------------------------------------- oracles

@functools.lru_cache(maxsize=None)
def _mp_exact(name, points):
    """mpmath values of exp, log1p or log at the float64 `points` (a tuple)."""
    fn = {"exp": mp.exp, "log1p_unit": mp.log1p, "log_normal": mp.log}[name]
    with mp.workdps(MP_DPS):
        return tuple(fn(mp.mpf(p)) for p in points)


def _mp_errors(name, points, got):
    """Errors of float64 `got` against mpmath, in this module's measures.

    Returns (errors, expected) with expected = the correctly rounded value.
    """
    exact = _mp_exact(name, tuple(points.tolist()))
    tiny = float(np.finfo(np.float64).smallest_subnormal)
    eps = float(np.finfo(np.float64).eps)
    errors = np.empty(len(points))
    expected = np.empty(len(points))
    with mp.workdps(MP_DPS):
        for i, (e, g) in enumerate(zip(exact, got.tolist())):
            rounded = float(e)  # inf past DBL_MAX, 0 below half the smallest subnormal
            expected[i] = rounded
            if np.isinf(rounded) or np.isinf(g):
                errors[i] = 0.0 if g == rounded else np.inf
                continue
            if np.isnan(g):
                errors[i] = np.inf
                continue
            if name == "exp":
                scale = float(np.spacing(rounded))
            else:
                scale = max(abs(rounded) * eps, tiny)
            errors[i] = float(abs(mp.mpf(g) - e) / scale)
    return errors, expected


def _extended_errors(name, x, got):
    """float64 errors against long double exp/log1p (or float64 libm plus 1).

    Returns (errors, expected, slack): expected is the rounded oracle, and
    slack what the oracle's own error may add to the bound.
    """
    if HAVE_EXTENDED:
        wide = np.longdouble
        slack = 0.0
    else:
        wide = np.float64
        slack = 1.0
    fn = {"exp": np.exp, "log1p_unit": np.log1p}[name]
    with np.errstate(over="ignore", under="ignore"):
        exact = fn(x.astype(wide))
        expected = exact.astype(np.float64)
    tiny = np.float64(np.finfo(np.float64).smallest_subnormal)
    if name == "exp":
        scale = np.spacing(expected)  # spacing(0) is the smallest subnormal
    else:
        scale = np.maximum(np.abs(expected) * np.finfo(np.float64).eps, tiny)
    finite = np.isfinite(expected)
    errors = np.zeros(len(x), dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        errors[finite] = (np.abs(got[finite].astype(wide) - exact[finite])
                          / scale[finite].astype(wide)).astype(np.float64)
    errors[~finite] = np.where(got[~finite] == expected[~finite], 0.0, np.inf)
    errors[np.isnan(got)] = np.inf
    return errors, expected, slack


def _float32_errors(name, x, got):
    """float32 errors against float64 libm (exact to 2^-29 of a float ulp)."""
    fn = {"exp": np.exp, "log1p_unit": np.log1p}[name]
    exact = fn(x.astype(np.float64))
    with np.errstate(over="ignore"):
        expected = exact.astype(np.float32)
    tiny = float(np.finfo(np.float32).smallest_subnormal)
    if name == "exp":
        scale = np.spacing(expected).astype(np.float64)
    else:
        scale = np.maximum(np.abs(exact) * float(np.finfo(np.float32).eps), tiny)
    finite = np.isfinite(expected)
    errors = np.zeros(len(x), dtype=np.float64)
    errors[finite] = np.abs(got[finite].astype(np.float64) - exact[finite]) / scale[finite]
    errors[~finite] = np.where(got[~finite] == expected[~finite], 0.0, np.inf)
    errors[np.isnan(got)] = np.inf
    return errors, expected


def _assert_within(errors, bound, x, got, expected, label):
    worst = int(np.argmax(errors))
    _report(label, errors[worst], x[worst])
    bad = np.flatnonzero(errors > bound)
    if bad.size:
        shown = ", ".join(
            f"x={x[i]!r}: got {got[i]!r}, expected {expected[i]!r} ({errors[i]:.3f})"
            for i in bad[np.argsort(-errors[bad])][:5])
        pytest.fail(f"{label}: {bad.size} points above {bound} ulp; worst: {shown}")


def _assert_dense_sweep(variant, name, dtype, x, max_ulp, unit):
    """The kernel `name` on every point of the sweep x, within max_ulp of the dtype's oracle
    (_extended_errors, whose slack widens the float64 bound, or _float32_errors).

    Returns (got, errors) for the callers' own checks on parts of the sweep.
    """
    got = _elementary(variant, name, x)
    if dtype == np.float64:
        errors, expected, slack = _extended_errors(name, x, got)
        bound = max_ulp + slack
    else:
        assert got.dtype == np.float32
        errors, expected = _float32_errors(name, x, got)
        bound = max_ulp
    _assert_within(errors, bound, x, got, expected,
                   f"{variant} {np.dtype(dtype).name} {name}, dense ({x.size} points), {unit}")
    return got, errors


# ----------------------------------------------------------------------------- exp

def _check_subnormal_exp(variant, dtype, x, got, errors):
    """The exp results of the sweep's subnormal range are positive and below tiny. Their
    errors are measured on the subnormal spacing, so they are reported apart."""
    lo, hi = SUBNORMAL_RANGE[dtype]
    sub = (x >= lo) & (x <= hi)
    assert np.all((got[sub] > 0) & (got[sub] < np.finfo(dtype).tiny))
    _report(f"{variant} {np.dtype(dtype).name} exp, subnormal results ({sub.sum()} points), "
            "max ulp", errors[sub].max())


def test_exp_float64_against_mpmath(variant):
    x = _exp_sweep(np.float64)
    points = np.unique(np.concatenate([_subsample(x, 4000, SEED + 2), _exp_edges(np.float64)]))
    got = _elementary(variant, "exp", points)
    errors, expected = _mp_errors("exp", points, got)
    _assert_within(errors, EXP_MAX_ULP[np.float64], points, got, expected,
                   f"{variant} float64 exp vs mpmath ({points.size} points), max ulp")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_exp_dense_sweep(variant, dtype):
    x = _exp_sweep(dtype)
    got, errors = _assert_dense_sweep(variant, "exp", dtype, x, EXP_MAX_ULP[dtype], "max ulp")
    _check_subnormal_exp(variant, dtype, x, got, errors)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_exp_underflow_and_overflow(variant, dtype):
    finfo = np.finfo(dtype)
    lo, hi = SWEEP_RANGE[dtype]
    below = np.concatenate([
        np.linspace(lo, UNDERFLOW_BELOW[dtype], 5001)[:-1],
        [-1e4, -1e30, float(finfo.min)],
        [np.nextafter(dtype(UNDERFLOW_BELOW[dtype]), dtype(-np.inf))],
    ]).astype(dtype)
    got = _elementary(variant, "exp", below)
    assert np.all(got == 0), below[got != 0][:5]
    assert not np.any(np.signbit(got))
    above = np.concatenate([
        np.linspace(OVERFLOW_ABOVE[dtype], hi, 5001)[1:],
        [1e4, 1e30, float(finfo.max)],
        [np.nextafter(dtype(OVERFLOW_ABOVE[dtype]), dtype(np.inf))],
    ]).astype(dtype)
    got = _elementary(variant, "exp", above)
    assert np.all(got == np.inf), above[got != np.inf][:5]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("length", [1, 7, 1001])  # scalar remainder and vector body
def test_exp_special_values(variant, dtype, length):
    finfo = np.finfo(dtype)
    cases = [  # (input, expected): exact
        (0.0, 1.0), (-0.0, 1.0),
        (-np.inf, 0.0), (np.inf, np.inf),
        (float(finfo.smallest_subnormal), 1.0), (-float(finfo.smallest_subnormal), 1.0),
        (float(finfo.max), np.inf), (float(finfo.min), 0.0),
    ]
    for value, expected in cases:
        x = np.full(length, value, dtype=dtype)
        got = _elementary(variant, "exp", x)
        assert got.dtype == dtype
        assert np.all(got == dtype(expected)), (value, got[:3])
    for nan in (np.nan, -np.nan):
        got = _elementary(variant, "exp", np.full(length, nan, dtype=dtype))
        assert np.all(np.isnan(got))
    # Specials mixed into ordinary data: each lane on its own, nothing leaks.
    x = np.tile(np.array([0.0, -np.inf, np.inf, np.nan, 1.0, -1.0, -800.0, 800.0], dtype=dtype),
                1 + length // 8)[:max(length, 8)]
    got = _elementary(variant, "exp", x)
    finite = np.isfinite(x) & (np.abs(x) < 700)
    with np.errstate(over="ignore"):
        reference = np.exp(x.astype(np.float64)).astype(dtype)
    is_nan = np.isnan(x)
    assert np.array_equal(np.isnan(got), is_nan)
    assert np.all(got[~is_nan & ~finite] == reference[~is_nan & ~finite])
    np.testing.assert_allclose(got[finite], reference[finite], rtol=4 * finfo.eps, atol=0)


# ----------------------------------------------------------------------------- log1p on [0, 1]

def test_log1p_unit_float64_against_mpmath(variant):
    u = _log1p_sweep(np.float64)
    edges = u[(u < 1e-300) | (u > 1 - 1e-12)]
    tiny = u[u < 1e-6]
    points = np.unique(np.concatenate([
        _subsample(u, 3000, SEED + 3), edges,
        np.random.default_rng(SEED + 4).choice(tiny, 1000, replace=False)]))
    got = _elementary(variant, "log1p_unit", points)
    errors, expected = _mp_errors("log1p_unit", points, got)
    _assert_within(errors, LOG1P_MAX_REL_ULP[np.float64], points, got, expected,
                   f"{variant} float64 log1p_unit vs mpmath ({points.size} points), "
                   "max relative ulp")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_log1p_unit_dense_sweep(variant, dtype):
    u = _log1p_sweep(dtype)
    _assert_dense_sweep(variant, "log1p_unit", dtype, u, LOG1P_MAX_REL_ULP[dtype],
                        "max relative ulp")


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
@pytest.mark.parametrize("length", [1, 7, 1001])
def test_log1p_unit_special_values(variant, dtype, length):
    finfo = np.finfo(dtype)
    got = _elementary(variant, "log1p_unit", np.zeros(length, dtype=dtype))
    assert np.all(got == 0) and not np.any(np.signbit(got))
    for nan in (np.nan, -np.nan):
        got = _elementary(variant, "log1p_unit", np.full(length, nan, dtype=dtype))
        assert np.all(np.isnan(got))
    # log1p(1) = ln 2, to the bound.
    got = _elementary(variant, "log1p_unit", np.ones(length, dtype=dtype))
    assert np.all(np.abs(got.astype(np.float64) - np.log(2.0))
                  <= LOG1P_MAX_REL_ULP[dtype] * finfo.eps * np.log(2.0))
    # The smallest subnormal: log1p(u) = u (0.5 ulp below it is half of it,
    # which the series' u / (2 + u) may round away: allow one subnormal ulp).
    got = _elementary(variant, "log1p_unit", np.full(length, finfo.smallest_subnormal, dtype))
    assert np.all(np.abs(got - finfo.smallest_subnormal) <= finfo.smallest_subnormal)
    # NaN mixed into ordinary data stays in its own lane.
    u = np.tile(np.array([0.0, np.nan, 0.25, 1.0], dtype=dtype), 1 + length // 4)[:max(length, 4)]
    got = _elementary(variant, "log1p_unit", u)
    assert np.array_equal(np.isnan(got), np.isnan(u))
    ok = ~np.isnan(u)
    np.testing.assert_allclose(got[ok], np.log1p(u[ok].astype(np.float64)).astype(dtype),
                               rtol=4 * finfo.eps, atol=0)


# ----------------------------------------------------------------------------- log of a normal

LOG_NORMAL_MAX_REL_ULP = 2.0


def _log_normal_points():
    """Every binade of the positive normal doubles (k = -1022..1023, the exponent the
    kernel extracts with logical shifts and reads back as a double), several mantissas
    in each, the ends of the range, and both sides of 1, sqrt(1/2) and sqrt(2), where
    the reduction moves to the next k."""
    rng = np.random.default_rng(SEED + 5)
    exponents = np.arange(-1022, 1024)
    mantissas = rng.uniform(1.0, 2.0, (exponents.size, 3))
    points = [np.ldexp(mantissas, exponents[:, None]).ravel(), np.ldexp(1.0, exponents)]
    finfo = np.finfo(np.float64)
    points.append(_neighbours([finfo.tiny, finfo.max, 1.0, np.sqrt(0.5), np.sqrt(2.0), 2.0,
                               0.5], np.float64, steps=3))
    points = np.concatenate(points)
    return np.unique(points[(points >= finfo.tiny) & (points <= finfo.max)])


def test_log_normal_float64_against_mpmath(variant):
    """fastce_log_normal (the short rows' log1p of their sum, the focal loss's soft
    targets): relative error against mpmath over every binade. Its exponent is formed
    without an int64 -> double conversion, so that AVX2 (which has none) vectorises
    it; an off-by-one in that step would be off by ln 2 in whole binades."""
    points = _log_normal_points()
    got = _elementary(variant, "log_normal", points)
    errors, expected = _mp_errors("log_normal", points, got)
    # log(1) = 0 exactly; elsewhere the relative measure, floored at the subnormal spacing.
    assert got[points == 1.0].tolist() == [0.0]
    _assert_within(errors, LOG_NORMAL_MAX_REL_ULP, points, got, expected,
                   f"{variant} float64 log_normal vs mpmath ({points.size} points), "
                   "max relative ulp")


def test_elementary_hook_rejects_unknown_name():
    module = importlib.import_module(f"fastce._kernels._binary_{RUNNABLE[0]}") if RUNNABLE else None
    if module is None:
        pytest.skip("no runnable SIMD build")
    x = np.zeros(4)
    with pytest.raises(ValueError, match="elementary"):
        module.elementary("log", x, np.empty_like(x))


# ----------------------------------------------------------------------------- forced builds

_PACKAGE_ROOT = Path(fastce.__file__).resolve().parent.parent

# Runs in a fresh interpreter with FASTCE_SIMD set: reports the build in use
# and saves float64 losses and gradients on fixed inputs. The inputs reach the
# exp's extremes: masked (-inf) logits, rows whose spread puts exp arguments
# below -708 (flushed to 0), short rows (the flat many-rows exp path) and long
# ones (the per-row vector loops), and binary logits far into both tails.
_CHILD = textwrap.dedent("""
    import json, sys
    import numpy as np
    import fastce

    rng = np.random.default_rng(%(seed)d)
    arrays = {}
    for n, c in [(4001, 3), (513, 37), (17, 1000)]:
        z = rng.standard_normal((n, c)) * 20.0
        z[rng.random((n, c)) < 0.05] = -np.inf          # masks
        z[: n // 8] *= 40.0                             # spreads past exp's underflow
        t = rng.integers(0, c, n)
        z[np.arange(n), t] = rng.standard_normal(n) * 20.0  # the target is never masked
        loss, grad = fastce.cross_entropy(z, t, reduction="none", return_grad=True)
        arrays[f"ce{c}_loss"], arrays[f"ce{c}_grad"] = loss, grad
        arrays[f"ce{c}_mean"] = np.array(fastce.cross_entropy(z, t))
    x = np.concatenate([rng.standard_normal(100_003) * 30.0,
                        rng.uniform(-800.0, 800.0, 4_001),
                        [0.0, np.inf, -np.inf, 745.5, -745.5, 709.9, -709.9]])
    y = rng.random(x.size)
    y[-7:] = [0.5, 1.0, 0.0, 0.25, 0.75, 0.1, 0.9]
    loss, grad = fastce.binary_cross_entropy_with_logits(x, y, reduction="none",
                                                          return_grad=True)
    arrays["bce_loss"], arrays["bce_grad"] = loss, grad
    arrays["bce_mean"] = np.array(fastce.binary_cross_entropy_with_logits(x, y))
    np.savez(sys.argv[1], **arrays)
    print(json.dumps({"simd": fastce.show_config(print_out=False)["simd"]}))
""") % {"seed": SEED}

_IMPORT_ONLY = textwrap.dedent("""
    import json
    try:
        import fastce
    except ImportError as error:
        print(json.dumps({"error": "ImportError", "message": str(error)}))
    except Exception as error:
        print(json.dumps({"error": type(error).__name__, "message": str(error)}))
    else:
        print(json.dumps({"error": None, "simd": fastce.show_config(print_out=False)["simd"]}))
""")


def _run_child(simd, script, *args):
    env = dict(os.environ)
    env["FASTCE_SIMD"] = simd
    env["PYTHONPATH"] = os.pathsep.join(
        [str(_PACKAGE_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    proc = subprocess.run([sys.executable, "-c", script, *map(str, args)],
                          env=env, cwd=str(_PACKAGE_ROOT), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def forced_results(tmp_path_factory):
    """{variant: (reported simd, arrays)} for every runnable build."""
    if not RUNNABLE:
        pytest.skip("no runnable SIMD build")
    directory = tmp_path_factory.mktemp("forced_simd")
    results = {}
    for name in RUNNABLE:
        path = directory / f"{name}.npz"
        report = _run_child(name, _CHILD, path)
        with np.load(path) as data:
            results[name] = (report["simd"], {key: data[key] for key in data.files})
    return results


def test_forced_simd_is_reported(forced_results, variant, monkeypatch):
    reported, _ = forced_results[variant]
    assert reported == variant
    # the same choice in this process, from fastce._kernels.dispatch itself
    monkeypatch.setenv("FASTCE_SIMD", variant)
    assert _dispatch.select_variant() == variant
    # unforced, the best runnable build (VARIANTS is in order of preference)
    monkeypatch.delenv("FASTCE_SIMD")
    assert _dispatch.select_variant() == next(v for v in _dispatch.VARIANTS if v in RUNNABLE)


def test_forced_simd_builds_agree(forced_results, variant):
    """Every build gives the same float64 losses and gradients to 1e-13 relative.

    Per-sample losses and the means are compared relatively. A gradient is a
    difference of terms of size <= 1 ((1-y) sigmoid(z) - y sigmoid(-z), or
    p_c - [c = y]) that can cancel to far below 1, so it is compared to 1e-13
    of that scale: rtol 1e-13 with atol 1e-13.
    """
    reference_name = RUNNABLE[0]
    _, expected = forced_results[reference_name]
    _, got = forced_results[variant]
    assert got.keys() == expected.keys()
    worst = {"loss": 0.0, "grad": 0.0}
    for key in sorted(expected):
        a, b = got[key], expected[key]
        kind = "grad" if key.endswith("_grad") else "loss"
        assert a.dtype == b.dtype == np.float64, key
        # inf and NaN in the same places, identical there
        assert np.array_equal(np.isnan(a), np.isnan(b)), key
        same = np.isfinite(a) & np.isfinite(b)
        assert np.array_equal(a[~same & ~np.isnan(a)], b[~same & ~np.isnan(b)]), key
        atol = 1e-13 if kind == "grad" else 0.0
        np.testing.assert_allclose(a[same], b[same], rtol=1e-13, atol=atol, err_msg=key)
        diff = np.abs(a[same] - b[same])
        scale = np.abs(b[same]) if kind == "loss" else np.maximum(np.abs(b[same]), 1.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = diff / scale
        rel = rel[np.isfinite(rel)]
        if rel.size:
            worst[kind] = max(worst[kind], float(rel.max()))
    _report(f"{variant} vs {reference_name}: max relative difference of losses",
            worst["loss"])
    _report(f"{variant} vs {reference_name}: max difference of gradients / max(|g|, 1)",
            worst["grad"])


def test_forced_simd_bogus_is_import_error(monkeypatch):
    report = _run_child("bogus", _IMPORT_ONLY)
    assert report["error"] == "ImportError", report
    assert "FASTCE_SIMD" in report["message"]
    monkeypatch.setenv("FASTCE_SIMD", "bogus")
    with pytest.raises(ImportError, match="FASTCE_SIMD"):
        _dispatch.select_variant()


@pytest.mark.parametrize("name", VARIANTS)
def test_forced_simd_unavailable_is_import_error(name, monkeypatch):
    if _skip_reason(name) is None:
        pytest.skip(f"{name} is available here")
    report = _run_child(name, _IMPORT_ONLY)
    assert report["error"] == "ImportError", report
    assert "FASTCE_SIMD" in report["message"]
    monkeypatch.setenv("FASTCE_SIMD", name)
    with pytest.raises(ImportError, match="FASTCE_SIMD"):
        _dispatch.select_variant()


# A kernel must leave the CPU's floating-point state as it found it. GCC 12 once
# built the baseline label rows with MMX moves and no emms; the x87 unit stayed in
# MMX state and glibc's fmodf (x87 fprem) returned NaN for the rest of the
# process: numpy's float32 `0 % 7` gave nan after one cross_entropy call.
_FP_STATE_SCRIPT = r"""
import numpy as np
import fastce
rng = np.random.default_rng(3)
for dtype in (np.float32, np.float64):
    logits = (3 * rng.standard_normal((4096, 300))).astype(dtype)
    labels = rng.integers(0, 300, 4096)
    weight = rng.uniform(0.1, 2.0, 300).astype(dtype)
    fastce.cross_entropy(logits, labels, weight=weight, label_smoothing=0.1, return_grad=True)
    fastce.cross_entropy(logits[:, :10], labels % 10, return_hessian=True)
    fastce.cross_entropy(np.moveaxis(logits.reshape(64, 64, 300), 2, 1), labels.reshape(64, 64),
                         axis=1)
    fastce.binary_cross_entropy_with_logits(logits, (logits > 0).astype(dtype),
                                            return_hessian=True)
    fastce.sigmoid_focal_loss(logits, (logits > 0).astype(dtype), return_grad=True)
    fastce.kl_divergence_with_logits(fastce.softmax(logits), logits, return_grad=True)
    fastce.logsumexp(logits, b=np.abs(logits))
    fastce.profile(logits, labels, progress=False)
    value = (np.arange(3, dtype=np.float32) % 7)[1]
    assert value == 1.0, f"the floating-point state was left changed: 1 % 7 = {value}"
print("ok")
"""


@pytest.mark.parametrize("variant", VARIANTS)
def test_kernels_leave_the_floating_point_state_clean(variant):
    if variant not in RUNNABLE:
        pytest.skip(_skip_reason(variant))
    env = dict(os.environ)
    env["FASTCE_SIMD"] = variant
    env["PYTHONPATH"] = os.pathsep.join(
        [str(_PACKAGE_ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    proc = subprocess.run([sys.executable, "-c", _FP_STATE_SCRIPT], env=env,
                          cwd=str(_PACKAGE_ROOT), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")
