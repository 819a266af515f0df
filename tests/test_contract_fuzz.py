"""Property/fuzz test of the "Bad input" contract over every public function.

Hypothesis draws a plain, JSON-able *spec* (function, dtype, shape, layout,
keywords, seed); ``build(spec)`` turns it into a call deterministically, so
every falsifying example can be replayed with ``build(spec).invoke(fastce)``.

The contract checked (README "Bad input", and the maintainer's decisions):
- valid calls equal ``fastce.reference`` (NaN in the same places) and modify no input;
- unsupported dtypes and numpy masked arrays give a TypeError naming the argument;
- shape mismatches, bad values (with their position), bad grad_out/out, bad
  keywords give a ValueError (TypeError for wrong types) naming the argument;
- grad_out/out sharing memory with any argument but the data argument itself,
  or partly overlapping it, is a ValueError naming both; in place, results are
  those of the out-of-place call and bad values are still reported correctly;
- malformed scipy.sparse CSR X gives a ValueError naming X; a caller's CSR is
  never modified; NaN in X/coef/intercept gives NaN loss and gradients.

The risky cases (aliasing, malformed CSR) run in batches in ONE child process
per batch (restarted after the case it died on), so a segfault is a failure
naming its case instead of a dead test run.
"""
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import scipy.sparse
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import fastce
import fastce.linear
from fastce import reference, reference_linear

SETTINGS = dict(deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
# No shrink phase: on today's code many properties fail, and shrinking them all
# would take minutes; the drawn specs are small already (dims <= 4, <= 7 rows).
PHASES = [Phase.explicit, Phase.generate]
FAST = settings(max_examples=20, phases=PHASES, **SETTINGS)
FEW = settings(max_examples=4, phases=PHASES, **SETTINGS)
BATCH = settings(max_examples=2, phases=PHASES, **SETTINGS)

BINARY = ["binary_cross_entropy_with_logits", "binary_cross_entropy", "logistic_loss",
          "sigmoid_focal_loss"]
ELEMENTWISE = ["sigmoid", "log_sigmoid"]
SOFTMAX = ["cross_entropy", "log_softmax", "softmax", "logsumexp"]
INFORMATION = ["entropy", "kl_divergence", "js_divergence", "categorical_cross_entropy",
               "kl_divergence_with_logits"]
LINEAR = ["logistic_regression_loss", "softmax_regression_loss", "fused_linear_cross_entropy"]
ALL = BINARY + ELEMENTWISE + SOFTMAX + INFORMATION + LINEAR

DATA_NAME = {"binary_cross_entropy_with_logits": "logits", "binary_cross_entropy": "probs",
             "logistic_loss": "scores", "sigmoid_focal_loss": "logits", "sigmoid": "x",
             "log_sigmoid": "x", "cross_entropy": "logits", "log_softmax": "x", "softmax": "x",
             "logsumexp": "x", "entropy": "p", "kl_divergence": "p", "js_divergence": "p",
             "categorical_cross_entropy": "p", "kl_divergence_with_logits": "logits",
             "logistic_regression_loss": "X", "softmax_regression_loss": "X",
             "fused_linear_cross_entropy": "hidden"}
OUT_KW = {**{f: "grad_out" for f in BINARY}, "cross_entropy": "grad_out",
          "kl_divergence_with_logits": "grad_out", "sigmoid": "out", "log_sigmoid": "out",
          "log_softmax": "out", "softmax": "out"}
HAS_REDUCTION = BINARY + ["cross_entropy"] + INFORMATION + ["fused_linear_cross_entropy"]
HAS_GRAD = BINARY + ["cross_entropy", "kl_divergence_with_logits"] + LINEAR
HAS_AXIS = SOFTMAX + INFORMATION
NAN, INF = float("nan"), float("inf")
PROB_BAD = [NAN, -0.5, 1.5]
WEIGHT_BAD = [-1.0, NAN, INF]
DATA_DTYPES = ["float16", "float32", "float64", "int32", "int64", "uint8", "bool"]
LAYOUTS = ["C", "F", "strided", "readonly", "reversed"]


def compute_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype in (np.float16, np.float32):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


# --------------------------------------------------------------------------
# Calls, built deterministically from a spec
# --------------------------------------------------------------------------
class Call:
    """fn(*positional, **kwargs); `checks` maps a value-checked argument to its bad values."""

    def __init__(self, fn, positional, kwargs, checks, cdtype):
        self.fn, self.positional, self.kwargs = fn, list(positional), dict(kwargs)
        self.checks, self.cdtype = checks, cdtype
        self.data = DATA_NAME[fn]
        self.out_kw = OUT_KW.get(fn)
        self.bad_position = None

    def get(self, name):
        for key, value in self.positional:
            if key == name:
                return value
        return self.kwargs[name]

    def replace(self, name, value):
        if any(key == name for key, _ in self.positional):
            self.positional = [(k, value if k == name else v) for k, v in self.positional]
        else:
            self.kwargs[name] = value
        return self

    def arrays(self):
        """Every array argument (positional or keyword), except grad_out/out."""
        items = self.positional + [(k, v) for k, v in self.kwargs.items()
                                   if k not in ("grad_out", "out")]
        return [(k, v) for k, v in items
                if isinstance(v, np.ndarray) or scipy.sparse.issparse(v)]

    def invoke(self, module=None):
        if module is None:
            module = fastce.linear if self.fn in LINEAR else fastce
        elif module is reference and self.fn in LINEAR:
            module = reference_linear
        return getattr(module, self.fn)(*[v for _, v in self.positional], **self.kwargs)

    def __repr__(self):
        return f"Call({self.fn}, {self.positional!r}, {self.kwargs!r})"


def _values(rng, shape, dtype, kind):
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return np.asarray(rng.integers(0, 2, shape)).astype(bool)
    if dtype.kind in "iu":
        low = 0 if kind == "probs" or dtype.kind == "u" else -4
        high = 2 if kind == "probs" else 5
        return np.asarray(rng.integers(low, high, shape)).astype(dtype)
    if kind == "probs":
        return np.asarray(rng.uniform(0.0, 1.0, shape)).astype(dtype)
    return np.asarray(3.0 * rng.standard_normal(shape)).astype(dtype)


def _specials(rng, array, kind):
    """Put one special value (inf, NaN, 0/1 probabilities) into a float array."""
    if array.dtype.kind != "f" or array.size == 0:
        return array
    choices = [NAN, INF, -INF, 1e4, -1e4] if kind == "logits" else [0.0, 1.0]
    array.flat[int(rng.integers(array.size))] = choices[int(rng.integers(len(choices)))]
    return array


def _labels(rng, shape, n_classes, dtype, ignore=True):
    labels = np.asarray(rng.integers(0, max(n_classes, 1), shape)).astype(dtype)
    if ignore and labels.size and np.dtype(dtype).kind == "i":
        labels.flat[int(rng.integers(labels.size))] = -100
    return labels


def apply_layout(array, layout):
    """The same values in another memory layout."""
    if not isinstance(array, np.ndarray) or array.ndim == 0 or layout == "C":
        return array
    if layout == "F":
        return np.asfortranarray(array)
    if layout == "strided":
        base = np.zeros(array.shape[:-1] + (2 * array.shape[-1],), dtype=array.dtype)
        base[..., ::2] = array
        return base[..., ::2]
    if layout == "readonly":
        copy = array.copy()
        copy.flags.writeable = False
        return copy
    if layout == "reversed":
        return np.ascontiguousarray(array[::-1])[::-1]
    raise AssertionError(layout)


def build(spec, bad=None):
    """A valid call from `spec`; `bad=(name, u, value)` puts `value` at flat index
    int(u * size) of argument `name` first (its position is call.bad_position)."""
    fn = spec["fn"]
    rng = np.random.default_rng(spec["seed"])
    dtype = np.dtype(spec["dtype"])
    cdtype = compute_dtype(dtype)
    shape = tuple(spec["shape"])
    kwargs, checks = {}, {}
    specials = spec.get("specials", False)
    if fn in HAS_REDUCTION and "reduction" in spec:
        kwargs["reduction"] = spec["reduction"]
    if fn in HAS_GRAD and spec.get("return_grad"):
        kwargs["return_grad"] = True
    if spec.get("n_threads") is not None:
        kwargs["n_threads"] = spec["n_threads"]
    if fn in HAS_AXIS:
        kwargs["axis"] = spec["axis"]

    if fn in BINARY:
        kind = "probs" if fn == "binary_cross_entropy" else "logits"
        x = _values(rng, shape, dtype, kind)
        if specials and fn != "binary_cross_entropy":
            _specials(rng, x, "logits")
        if fn == "logistic_loss":
            target = np.asarray(np.where(rng.random(shape) < 0.5, -1.0, 1.0))
            checks["target"] = [0.0, 0.5, 2.0, NAN]
        else:
            target = np.asarray(rng.uniform(0.0, 1.0, shape))
            if spec.get("hard_target"):
                target = np.asarray(np.round(target))
            checks["target"] = PROB_BAD
        if fn == "binary_cross_entropy":
            checks["probs"] = PROB_BAD
        positional = [(DATA_NAME[fn], x), ("target", target)]
        weight = spec.get("weight")
        if fn != "sigmoid_focal_loss" and weight:
            last = shape[-1:] if shape else ()
            wshape = {"full": shape, "col": last, "scalar": (),
                      "row": shape[:-1] + (1,) if shape else ()}[weight]
            kwargs["weight"] = np.asarray(rng.uniform(0.0, 2.0, wshape))
            checks["weight"] = WEIGHT_BAD
        if fn == "binary_cross_entropy_with_logits" and spec.get("pos_weight") and shape:
            kwargs["pos_weight"] = rng.uniform(0.0, 3.0, shape[-1:])
            checks["pos_weight"] = WEIGHT_BAD
        if fn == "sigmoid_focal_loss":
            kwargs["alpha"], kwargs["gamma"] = spec.get("alpha", 0.25), spec.get("gamma", 2.0)
    elif fn in ELEMENTWISE:
        x = _values(rng, shape, dtype, "logits")
        if specials:
            _specials(rng, x, "logits")
        positional = [("x", x)]
    elif fn == "cross_entropy":
        axis = spec["axis"] % len(shape)
        n_classes = shape[axis]
        x = _values(rng, shape, dtype, "logits")
        if specials:
            _specials(rng, x, "logits")
        if spec.get("target_kind", "labels") == "labels":
            label_dtype = np.dtype(spec.get("label_dtype", "int64"))
            target = _labels(rng, shape[:axis] + shape[axis + 1:], n_classes, label_dtype,
                             ignore=not spec.get("no_ignored_labels"))
            bad_labels = [n_classes, -1, -7, 2 ** 40, 2 ** 62]
            info = np.iinfo(label_dtype)
            checks["target"] = [v for v in bad_labels if info.min <= v <= info.max]
        else:
            target = np.asarray(rng.uniform(0.0, 1.0, shape))
            checks["target"] = [-0.5, NAN, INF]
        positional = [("logits", x), ("target", target)]
        if spec.get("weight"):
            kwargs["weight"] = rng.uniform(0.0, 2.0, n_classes)
            checks["weight"] = WEIGHT_BAD
        if spec.get("smoothing"):
            kwargs["label_smoothing"] = spec["smoothing"]
    elif fn in ("log_softmax", "softmax", "logsumexp"):
        x = _values(rng, shape, dtype, "logits")
        if specials:
            _specials(rng, x, "logits")
        positional = [("x", x)]
    elif fn == "kl_divergence_with_logits":
        x = _values(rng, shape, dtype, "logits")
        if specials:
            _specials(rng, x, "logits")
        p = np.asarray(rng.uniform(0.0, 1.0, shape))
        positional = [("p", p), ("logits", x)]
        checks["p"] = PROB_BAD
    elif fn in INFORMATION:
        p = _values(rng, shape, dtype, "probs")
        if specials:
            _specials(rng, p, "probs")
        positional = [("p", p)]
        checks["p"] = PROB_BAD
        if fn != "entropy":
            q = np.asarray(rng.uniform(0.0, 1.0, shape)).astype(
                spec.get("q_dtype", "float64"))
            positional.append(("q", q))
            checks["q"] = PROB_BAD
        if fn != "categorical_cross_entropy" and spec.get("base") is not None:
            kwargs["base"] = spec["base"]
    elif fn in ("logistic_regression_loss", "softmax_regression_loss"):
        n, f, k = shape
        X = _values(rng, (n, f), dtype, "logits")
        if fn == "logistic_regression_loss":
            y = np.asarray(rng.integers(0, 2, n)).astype(float)
            coef = rng.standard_normal(f)
            checks["y"] = [0.5, 2.0, -1.0, NAN]
            intercept = float(rng.standard_normal()) if spec.get("intercept") else 0.0
        else:
            y = _labels(rng, (n,), k, np.int64, ignore=False)
            coef = rng.standard_normal((k, f))
            checks["y"] = [-1, k, -2 ** 63, -100]
            intercept = rng.standard_normal(k) if spec.get("intercept") else None
        positional = [("X", X), ("y", y), ("coef", coef), ("intercept", intercept)]
        if spec.get("sample_weight"):
            kwargs["sample_weight"] = rng.uniform(0.0, 2.0, n)
            checks["sample_weight"] = WEIGHT_BAD
        if spec.get("l2"):
            kwargs["l2"] = spec["l2"]
    elif fn == "fused_linear_cross_entropy":
        n, h, v = shape
        hidden = _values(rng, (n, h), dtype, "logits")
        weight = np.asarray(rng.standard_normal((v, h))).astype(cdtype)
        target = _labels(rng, (n,), v, np.int64, ignore=not spec.get("no_ignored_labels"))
        positional = [("hidden", hidden), ("weight", weight), ("target", target)]
        checks["target"] = [-1, v, -2 ** 63, 2 ** 40]
        if spec.get("bias"):
            kwargs["bias"] = np.asarray(rng.standard_normal(v)).astype(cdtype)
        if spec.get("smoothing"):
            kwargs["label_smoothing"] = spec["smoothing"]
        if spec.get("chunk_size") is not None:
            kwargs["chunk_size"] = spec["chunk_size"]
    else:
        raise AssertionError(fn)
    call = Call(fn, positional, kwargs, checks, cdtype)
    if bad is not None:
        name, u, value = bad
        array = np.array(call.get(name))
        index = min(int(u * array.size), array.size - 1)
        if array.dtype.kind in "iu" and isinstance(value, float):
            array = array.astype(np.float64)
        array.flat[index] = value
        call.replace(name, array)
        call.bad_position = tuple(int(i) for i in np.unravel_index(index, array.shape))
    mask = spec.get("layout_mask", 0)
    for i, (name, value) in enumerate(call.arrays()):
        if mask >> i & 1:
            call.replace(name, apply_layout(value, spec.get("layout", "C")))
    if spec.get("sparse") and fn in ("logistic_regression_loss", "softmax_regression_loss"):
        call.replace("X", scipy.sparse.csr_matrix(call.get("X")))
    return call


# --------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------
@st.composite
def specs(draw, fn, dtypes=None, min_size=0, min_ndim=None, max_ndim=3):
    spec = {"fn": fn, "seed": draw(st.integers(0, 2 ** 31 - 1))}
    if fn in LINEAR:
        n = draw(st.integers(max(min_size, 0), 7))
        f = draw(st.integers(1, 4))
        k = draw(st.integers(1, 4))
        spec["shape"] = [n, f, k]
        spec["dtype"] = draw(st.sampled_from(dtypes or ["float32", "float64"]))
    else:
        lo = 0 if fn in BINARY + ELEMENTWISE else 1
        ndim = draw(st.integers(max(lo, min_ndim or 0), max_ndim))
        shape = [draw(st.integers(1 if min_size else 0, 4)) for _ in range(ndim)]
        if fn in HAS_AXIS:
            spec["axis"] = draw(st.integers(-ndim, ndim - 1))
            if fn == "cross_entropy":
                shape[spec["axis"] % ndim] = max(shape[spec["axis"] % ndim], 1)
        spec["shape"] = shape
        spec["dtype"] = draw(st.sampled_from(dtypes or DATA_DTYPES))
    if fn in HAS_REDUCTION:
        spec["reduction"] = draw(st.sampled_from(["mean", "sum", "none"]))
    if fn in HAS_GRAD:
        spec["return_grad"] = draw(st.booleans())
    spec["n_threads"] = draw(st.sampled_from([None, 1, 2]))
    spec["layout"] = draw(st.sampled_from(LAYOUTS))
    spec["layout_mask"] = draw(st.integers(0, 15))
    spec["specials"] = draw(st.booleans())
    if fn in BINARY:
        spec["weight"] = draw(st.sampled_from([None, "full", "col", "scalar", "row"]))
        spec["pos_weight"] = draw(st.booleans())
        spec["hard_target"] = draw(st.booleans())
        spec["alpha"] = draw(st.sampled_from([0.25, -1.0, 1.0]))
        spec["gamma"] = draw(st.sampled_from([0.0, 0.5, 2.0]))
    if fn == "cross_entropy":
        spec["target_kind"] = draw(st.sampled_from(["labels", "probs"]))
        spec["label_dtype"] = draw(st.sampled_from(["int64", "int32", "int16"]))
        spec["weight"] = draw(st.booleans())
    if fn in ("cross_entropy", "fused_linear_cross_entropy"):
        spec["smoothing"] = draw(st.sampled_from([0.0, 0.1, 1.0]))
    if fn in ("entropy", "kl_divergence", "js_divergence"):
        spec["base"] = draw(st.sampled_from([None, 2.0]))
    if fn in ("kl_divergence", "js_divergence", "categorical_cross_entropy"):
        spec["q_dtype"] = draw(st.sampled_from(["float64", "float32"]))
    if fn in ("logistic_regression_loss", "softmax_regression_loss"):
        spec["intercept"] = draw(st.booleans())
        spec["sample_weight"] = draw(st.booleans())
        spec["l2"] = draw(st.sampled_from([0.0, 0.5]))
        spec["sparse"] = draw(st.booleans())
    if fn == "fused_linear_cross_entropy":
        spec["bias"] = draw(st.booleans())
        spec["chunk_size"] = draw(st.sampled_from([None, 1, 2, 3]))
    return spec


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------
def fingerprint(value):
    """A hash of everything an argument holds (values, dtype, shape, mask, CSR arrays)."""
    digest = hashlib.sha256()
    if scipy.sparse.issparse(value):
        for part in (value.data, value.indices, value.indptr):
            digest.update(np.ascontiguousarray(part).tobytes())
        digest.update(repr((value.shape, value.data.dtype)).encode())
    elif isinstance(value, np.ndarray):
        digest.update(repr((type(value), value.dtype, value.shape)).encode())
        if value.dtype.kind == "O":
            digest.update(repr(value.tolist()).encode())
        else:
            digest.update(np.ascontiguousarray(value).tobytes())
        if isinstance(value, np.ma.MaskedArray):
            digest.update(np.ma.getmaskarray(value).tobytes())
    return digest.hexdigest()


def snapshot(call):
    return {name: fingerprint(value) for name, value in call.arrays()}


def changed_inputs(call, before):
    return [name for name, value in call.arrays() if fingerprint(value) != before[name]]


def names_in(message, *names):
    return all(re.search(rf"(?<![A-Za-z_]){re.escape(n)}(?![A-Za-z_])", message)
               for n in names)


def error_problem(func, exc_types, names, position=None):
    """None when func() raises one of exc_types naming every name (and the position);
    otherwise a description of what happened instead."""
    try:
        result = func()
    except exc_types as exc:
        message = str(exc)
        if not names_in(message, *names):
            return f"{type(exc).__name__} does not name {names}: {message!r}"
        if position is not None and str(tuple(position)) not in message:
            return f"{type(exc).__name__} lacks position {tuple(position)}: {message!r}"
        return None
    except Exception as exc:  # noqa: BLE001 - any other exception is the finding
        return f"{type(exc).__name__} instead of {[e.__name__ for e in exc_types]}: {exc}"
    return f"no error; returned {_short(result)}"


def assert_rejected(call, exc_types, names, what, position=None):
    """call.invoke() raises one of exc_types naming every name (and the position), and
    leaves every input as it was; `what` describes the bad input for the failure message."""
    before = snapshot(call)
    problem = error_problem(call.invoke, exc_types, names, position)
    assert problem is None, f"{what}: {problem}"
    assert not changed_inputs(call, before), f"inputs modified: {changed_inputs(call, before)}"

def _short(result):
    text = repr(result)
    return text if len(text) < 200 else text[:200] + "..."


def tolerances(cdtype):
    return (1e-4, 1e-5) if np.dtype(cdtype) == np.float32 else (1e-10, 1e-13)


def assert_same(actual, expected, cdtype, where="result"):
    if isinstance(expected, tuple):
        assert isinstance(actual, tuple) and len(actual) == len(expected), \
            f"{where}: {_short(actual)} vs {_short(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, cdtype, f"{where}[{i}]")
        return
    if expected is None:
        assert actual is None, f"{where}: expected None, got {_short(actual)}"
        return
    rtol, atol = tolerances(cdtype)
    a, e = np.asarray(actual), np.asarray(expected)
    assert a.shape == e.shape, f"{where}: shape {a.shape} vs reference {e.shape}"
    assert a.dtype == e.dtype, f"{where}: dtype {a.dtype} vs reference {e.dtype}"
    np.testing.assert_allclose(a.astype(np.float64), e.astype(np.float64), rtol=rtol,
                               atol=atol, equal_nan=True, err_msg=where)


# --------------------------------------------------------------------------
# 1. Valid calls equal the reference and modify no input
# --------------------------------------------------------------------------
@pytest.mark.parametrize("fn", ALL)
@FAST
@given(data=st.data())
def test_valid_call_matches_reference_and_leaves_inputs(fn, data):
    spec = data.draw(specs(fn), label="spec")
    call = build(spec)
    before = snapshot(call)
    expected = build(spec).invoke(reference)
    actual = call.invoke()
    assert not changed_inputs(call, before), f"inputs modified: {changed_inputs(call, before)}"
    assert_same(actual, expected, call.cdtype)


# --------------------------------------------------------------------------
# 2. Unsupported dtypes and masked arrays: TypeError naming the argument
# --------------------------------------------------------------------------
BAD_DTYPES = {
    "complex": lambda a: np.asarray(a).astype(np.complex128),
    "object": lambda a: np.asarray(a).astype(object),
    "str": lambda a: np.asarray(a).astype(str),
    "datetime": lambda a: np.asarray(a).astype(np.int64).astype("datetime64[s]"),
    "timedelta": lambda a: np.asarray(a).astype(np.int64).astype("timedelta64[s]"),
}


def draw_dense_call_and_argument(fn, data):
    """(spec, call, name): a valid float32/float64 call of fn on dense arrays (the tests
    convert the argument with np.asarray), and one of its array arguments."""
    spec = data.draw(specs(fn, dtypes=["float32", "float64"]), label="spec")
    spec["sparse"] = False
    call = build(spec)
    name = data.draw(st.sampled_from([n for n, _ in call.arrays()]), label="argument")
    return spec, call, name

@pytest.mark.parametrize("fn", ALL)
@FAST
@given(data=st.data())
def test_unsupported_dtype_is_type_error_naming_argument(fn, data):
    _, call, name = draw_dense_call_and_argument(fn, data)
    bad = data.draw(st.sampled_from(sorted(BAD_DTYPES)), label="bad dtype")
    call.replace(name, BAD_DTYPES[bad](call.get(name)))
    assert_rejected(call, (TypeError,), [name], f"{name} as {bad}")


@pytest.mark.parametrize("fn", ALL)
@FAST
@given(data=st.data())
def test_masked_array_is_type_error_naming_argument(fn, data):
    spec, call, name = draw_dense_call_and_argument(fn, data)
    value = np.asarray(call.get(name))
    mask = np.asarray(np.random.default_rng(spec["seed"]).random(value.shape) < 0.3)
    call.replace(name, np.ma.masked_array(value, mask=mask))
    assert_rejected(call, (TypeError,), [name], f"{name} as a masked array")


# --------------------------------------------------------------------------
# 3. Shape mismatch: ValueError naming the argument
# --------------------------------------------------------------------------
BROADCASTING = {"weight", "pos_weight"}  # binary family: a mismatch must not broadcast


def wrong_shape(shape, name, fn, draw, data_shape):
    shape = tuple(shape)
    if fn in BINARY and name in BROADCASTING:
        # Relative to the data's shape: neither of these broadcasts to it.
        last = data_shape[-1] if data_shape else 0
        options = [(2,) + tuple(data_shape)] if name == "weight" else [(2, max(last, 1))]
        options.append(tuple(data_shape[:-1]) + (last + 2,))
    else:
        options = [(2,) + shape, shape + (3,)]
        if shape:
            i = draw(st.integers(0, len(shape) - 1), label="dim")
            options.append(shape[:i] + (shape[i] + 1,) + shape[i + 1:])
            options.append(shape[1:])
    return draw(st.sampled_from(options), label="wrong shape")


@pytest.mark.parametrize("fn", [f for f in ALL if f not in ELEMENTWISE + [
    "log_softmax", "softmax", "logsumexp", "entropy"]])  # these take one array
@FAST
@given(data=st.data())
def test_shape_mismatch_is_value_error_naming_argument(fn, data):
    spec = data.draw(specs(fn, dtypes=["float32", "float64"]), label="spec")
    call = build(spec)
    candidates = [n for n, _ in call.arrays() if n != call.data]
    if fn == "kl_divergence_with_logits":
        candidates = ["p"]
    name = data.draw(st.sampled_from(candidates), label="argument")
    value = np.asarray(call.get(name))
    new_shape = wrong_shape(value.shape, name, fn, data.draw, np.shape(call.get(call.data)))
    rng = np.random.default_rng(spec["seed"] + 1)
    if value.dtype.kind in "iu":
        replacement = np.zeros(new_shape, dtype=value.dtype)
    elif name in ("y",) and fn == "logistic_regression_loss":
        replacement = np.asarray(rng.integers(0, 2, new_shape)).astype(float)
    elif fn == "logistic_loss" and name == "target":
        replacement = np.ones(new_shape)
    else:
        replacement = np.asarray(rng.uniform(0.0, 1.0, new_shape)).astype(value.dtype)
    call.replace(name, replacement)
    before = snapshot(call)
    problem = error_problem(call.invoke, (ValueError,), [name])
    assert problem is None, f"{name} of shape {new_shape} (was {value.shape}): {problem}"
    assert not changed_inputs(call, before)


# --------------------------------------------------------------------------
# 4. A bad value at a random position: ValueError naming argument and position
# --------------------------------------------------------------------------
@pytest.mark.parametrize("fn", [f for f in ALL if f not in ELEMENTWISE
                                and f not in ("log_softmax", "softmax", "logsumexp")])
@FAST
@given(data=st.data())
def test_bad_value_is_value_error_with_argument_and_position(fn, data):
    spec = data.draw(specs(fn, dtypes=["float32", "float64"], min_size=1), label="spec")
    probe = build(spec)
    name = data.draw(st.sampled_from(sorted(probe.checks)), label="argument")
    value = data.draw(st.sampled_from(probe.checks[name]), label="bad value")
    u = data.draw(st.floats(0.0, 1.0, exclude_max=True), label="where")
    call = build(spec, bad=(name, u, value))
    # The position is only well defined where the argument is indexed like the data
    # (or is the per-class / per-label vector itself).
    position = call.bad_position
    if fn in BINARY and name == "weight" and np.shape(call.get("weight")) != \
            np.shape(call.get(call.data)):
        position = None  # a broadcast weight's position is reported in the data's shape
    assert_rejected(call, (ValueError,), [name], f"{name}={value!r} at {position}", position)


# --------------------------------------------------------------------------
# 5. Bad grad_out / out: ValueError naming it
# --------------------------------------------------------------------------
@pytest.mark.parametrize("fn", sorted(OUT_KW))
@FAST
@given(data=st.data())
def test_bad_out_is_value_error(fn, data):
    spec = data.draw(specs(fn, dtypes=["float32", "float64"], min_ndim=1), label="spec")
    spec["return_grad"] = True
    call = build(spec)
    shape = np.shape(call.get(call.data))
    kind = data.draw(st.sampled_from(["shape", "dtype", "int", "F", "strided", "readonly",
                                      "list"]), label="bad out")
    cdtype = call.cdtype
    if kind == "shape":
        out = np.zeros((2,) + shape, cdtype)
    elif kind == "dtype":
        out = np.zeros(shape, np.float32 if cdtype == np.float64 else np.float64)
    elif kind == "int":
        out = np.zeros(shape, np.int64)
    elif kind == "F":
        out = np.asfortranarray(np.zeros(shape, cdtype))
    elif kind == "strided":
        out = apply_layout(np.zeros(shape, cdtype), "strided")
    elif kind == "readonly":
        out = apply_layout(np.zeros(shape, cdtype), "readonly")
    else:
        out = np.zeros(shape, cdtype).tolist()
    if kind in ("F", "strided") and out.flags.c_contiguous:
        out = np.zeros((2,) + shape, cdtype)  # contiguous after all: use a wrong shape
    call.kwargs[call.out_kw] = out
    types = (ValueError, TypeError) if kind == "list" else (ValueError,)
    assert_rejected(call, types, [call.out_kw], f"{call.out_kw} {kind}")


# --------------------------------------------------------------------------
# 6. Keywords: wrong types and values
# --------------------------------------------------------------------------
TYPE = (TypeError,)
VALUE = (ValueError,)
EITHER = (TypeError, ValueError)
NUMBER_TYPE_BAD = [("1", TYPE), (True, TYPE), (False, TYPE)]
KEYWORD_BAD = {
    "label_smoothing": NUMBER_TYPE_BAD + [(1.5, VALUE), (-0.1, VALUE), (NAN, VALUE)],
    "alpha": NUMBER_TYPE_BAD + [(1.5, VALUE), (NAN, VALUE)],
    "gamma": NUMBER_TYPE_BAD + [(-1.0, VALUE), (INF, VALUE), (NAN, VALUE)],
    "l2": NUMBER_TYPE_BAD + [(-1.0, VALUE), (INF, VALUE), (NAN, VALUE)],
    "base": [("2", TYPE), (True, TYPE), (False, TYPE), (0.0, VALUE), (-2.0, VALUE), (1.0, VALUE), (INF, VALUE),
                               (NAN, VALUE)],
    "intercept": NUMBER_TYPE_BAD,
    "n_threads": NUMBER_TYPE_BAD + [(0, VALUE), (-1, VALUE), (1.5, TYPE)],
    "chunk_size": NUMBER_TYPE_BAD + [(0, VALUE), (-1, VALUE), (1.5, TYPE)],
    "ignore_index": NUMBER_TYPE_BAD + [(1.5, EITHER), (-0.5, EITHER), (2 ** 63, VALUE),
                                       (np.uint64(2 ** 64 - 1), VALUE), (-2 ** 63 - 1, VALUE)],
    "axis": NUMBER_TYPE_BAD + [(1.5, TYPE), ("ndim", VALUE), ("-ndim-1", VALUE), (100, VALUE)],
    "reduction": [("avg", VALUE), ("MEAN", VALUE), ("", VALUE), (None, EITHER), (1, EITHER)],
}
KEYWORDS = {fn: ["n_threads"] + (["reduction"] if fn in HAS_REDUCTION else [])
            + (["axis"] if fn in HAS_AXIS else []) for fn in ALL}
KEYWORDS["sigmoid_focal_loss"] += ["alpha", "gamma"]
KEYWORDS["cross_entropy"] += ["label_smoothing", "ignore_index"]
KEYWORDS["fused_linear_cross_entropy"] += ["label_smoothing", "ignore_index", "chunk_size"]
for _fn in ("entropy", "kl_divergence", "js_divergence"):
    KEYWORDS[_fn] += ["base"]
KEYWORDS["logistic_regression_loss"] += ["l2", "intercept"]
KEYWORDS["softmax_regression_loss"] += ["l2"]


KEYWORD_CASES = [(fn, keyword, i) for fn in ALL for keyword in KEYWORDS[fn]
                 for i in range(len(KEYWORD_BAD[keyword]))]


@pytest.mark.parametrize("fn,keyword,i", KEYWORD_CASES,
                         ids=[f"{f}-{k}={KEYWORD_BAD[k][i][0]!r}" for f, k, i in KEYWORD_CASES])
@FEW
@given(data=st.data())
def test_bad_keyword_raises_naming_it(fn, keyword, i, data):
    spec = data.draw(specs(fn, dtypes=["float32", "float64"]), label="spec")
    spec["target_kind"] = "labels"  # ignore_index is read for class indices
    spec["no_ignored_labels"] = True  # so that another ignore_index leaves the labels valid
    call = build(spec)
    value, types = KEYWORD_BAD[keyword][i]
    if keyword == "axis" and isinstance(value, str) and "ndim" in value:
        ndim = np.ndim(call.get(call.data))
        value = ndim if value == "ndim" else -ndim - 1
    call.replace(keyword, value)
    assert_rejected(call, types, [keyword], f"{keyword}={value!r}")


# --------------------------------------------------------------------------
# 7. Linear models: NaN in X, coef or intercept gives NaN loss and gradients
# --------------------------------------------------------------------------
@pytest.mark.parametrize("fn", ["logistic_regression_loss", "softmax_regression_loss"])
@FAST
@given(data=st.data())
def test_linear_nan_gives_nan_loss_and_gradients(fn, data):
    spec = data.draw(specs(fn, min_size=1), label="spec")
    spec.update(return_grad=True, sample_weight=False, specials=False)
    where = data.draw(st.sampled_from(["X", "coef", "intercept"]), label="NaN in")
    if where == "intercept":
        spec["intercept"] = True
    sparse = spec.pop("sparse")
    spec["sparse"] = False
    call = build(spec)
    if where == "intercept" and fn == "logistic_regression_loss":
        call.replace("intercept", NAN)
    else:
        array = np.array(call.get(where))
        u = data.draw(st.floats(0.0, 1.0, exclude_max=True), label="position")
        array.flat[min(int(u * array.size), array.size - 1)] = NAN
        call.replace(where, array)
    if sparse:
        call.replace("X", scipy.sparse.csr_matrix(call.get("X")))
    loss, grad_coef, grad_intercept = call.invoke()
    if sparse and where == "coef":
        # A NaN coefficient meets only the stored entries of its column: the loss is NaN
        # exactly when the reference's is.
        expected = call.invoke(reference)[0]
        assert np.isnan(loss) == np.isnan(expected), f"loss {loss!r}, reference {expected!r}"
        return
    assert np.isnan(loss), f"NaN in {where}: loss {loss!r} is not NaN"
    assert np.any(np.isnan(grad_coef)), f"NaN in {where}: grad_coef {grad_coef!r} has no NaN"
    if grad_intercept is not None:
        assert np.any(np.isnan(grad_intercept)), \
            f"NaN in {where}: grad_intercept {grad_intercept!r} has no NaN"


# --------------------------------------------------------------------------
# 8. A caller's CSR is never modified (unsorted indices, duplicates); read-only works
# --------------------------------------------------------------------------
def messy_csr(rng, n, f, dtype, read_only):
    """A valid CSR with unsorted column indices and duplicate entries in its rows."""
    data, indices, indptr = [], [], [0]
    for _ in range(n):
        cols = list(rng.integers(0, f, int(rng.integers(0, 2 * f + 1))))
        data += list(rng.standard_normal(len(cols)))
        indices += cols
        indptr.append(len(indices))
    X = scipy.sparse.csr_matrix((np.asarray(data, dtype), np.asarray(indices, np.int32),
                                 np.asarray(indptr, np.int32)), shape=(n, f))
    if read_only:
        for part in (X.data, X.indices, X.indptr):
            part.flags.writeable = False
    return X


@pytest.mark.parametrize("fn", ["logistic_regression_loss", "softmax_regression_loss"])
@FAST
@given(data=st.data())
def test_caller_csr_is_never_modified_and_read_only_works(fn, data):
    spec = data.draw(specs(fn), label="spec")
    spec["sparse"] = False
    read_only = data.draw(st.booleans(), label="read-only CSR")
    n, f, _ = spec["shape"]
    call = build(spec)
    X = messy_csr(np.random.default_rng(spec["seed"]), n, f, spec["dtype"], read_only)
    copies = [X.data.copy(), X.indices.copy(), X.indptr.copy()]
    call.replace("X", X)
    expected = call.invoke(reference)
    actual = call.invoke()
    for before, after, part in zip(copies, (X.data, X.indices, X.indptr),
                                   ("data", "indices", "indptr")):
        assert before.shape == after.shape and np.array_equal(before, after), \
            f"X.{part} was modified: {before} -> {after}"
    assert_same(actual, expected, call.cdtype)


# --------------------------------------------------------------------------
# Batches in a child process (segfaults, hangs, out-of-bounds access)
# --------------------------------------------------------------------------
CHILD = r"""
import importlib.util, json, sys
sys.path[:0] = json.loads(sys.argv[1])
spec = importlib.util.spec_from_file_location("_contract_fuzz_child", sys.argv[2])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.child_main()
"""


def child_main():
    request = json.loads(sys.stdin.read())
    runner = {"alias": alias_case, "csr": csr_case}[request["kind"]]
    for i, case in enumerate(request["cases"]):
        print(f"START {i}", flush=True)
        try:
            problem = runner(case)
        except Exception as exc:  # noqa: BLE001
            problem = f"check raised {type(exc).__name__}: {exc}"
        print(f"RESULT {i} {json.dumps(problem)}", flush=True)


def run_batch(kind, cases, timeout=60, max_restarts=12):
    """Run `cases` in a child; after a crash, restart after the case it died on.
    Returns [(case, problem)] for every case that did not meet the contract."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(fastce.__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in [env.get("PYTHONPATH")] if p])
    problems, start, restarts = [], 0, 0
    with tempfile.TemporaryDirectory() as cwd:
        while start < len(cases):
            payload = json.dumps({"kind": kind, "cases": cases[start:]})
            args = [sys.executable, "-c", CHILD, json.dumps([root]), os.path.abspath(__file__)]
            try:
                proc = subprocess.run(args, input=payload, capture_output=True, text=True,
                                      timeout=timeout, cwd=cwd, env=env)
                stdout, returncode, stderr = proc.stdout, proc.returncode, proc.stderr
            except subprocess.TimeoutExpired as exc:
                stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout
                stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr
                stdout, stderr, returncode = stdout or "", stderr or "", "timeout (hang)"
            started, finished = -1, set()
            for line in stdout.splitlines():
                if line.startswith("START "):
                    started = int(line.split()[1])
                elif line.startswith("RESULT "):
                    _, i, rest = line.split(" ", 2)
                    finished.add(int(i))
                    problem = json.loads(rest)
                    if problem is not None:
                        problems.append((cases[start + int(i)], problem))
            if returncode == 0 and len(finished) == len(cases) - start:
                break
            if started < 0 or started in finished:
                raise AssertionError(f"child failed outside a case ({returncode}): {stderr}")
            problems.append((cases[start + started],
                             f"child process died: returncode {returncode} "
                             f"(negative = signal); stderr tail {stderr[-300:]!r}"))
            start += started + 1
            restarts += 1
            if restarts > max_restarts:
                problems.append(({"remaining": len(cases) - start}, "not run: too many crashes"))
                break
    return problems


def report(problems):
    return "\n".join(f"{json.dumps(case, default=str)}: {problem}"
                     for case, problem in problems)


def assert_batches_meet_contract(kind, cases_strategy, combos, what):
    """BATCH examples of a batch holding one drawn case per combo (cases_strategy(*combo)),
    each batch run in a child (run_batch); fails with the cases that break the contract."""
    @BATCH
    @given(st.tuples(*[cases_strategy(*combo) for combo in combos]))
    def run(cases):
        problems = run_batch(kind, list(cases))
        assert not problems, f"{len(problems)} {what} case(s) break the contract:\n" \
            + report(problems)

    run()


# --------------------------------------------------------------------------
# 9. Aliasing of grad_out/out
# --------------------------------------------------------------------------
ALIAS_KINDS = ["out_is_other", "out_overlaps_other", "out_overlaps_data", "in_place",
               "in_place_bad_data", "in_place_bad_other"]
OTHER = {"binary_cross_entropy_with_logits": ["target", "weight", "pos_weight"],
         "binary_cross_entropy": ["target", "weight"], "logistic_loss": ["target", "weight"],
         "sigmoid_focal_loss": ["target"], "cross_entropy": ["target"],
         "kl_divergence_with_logits": ["p"]}


def alias_combinations():
    combos = []
    for fn in sorted(OUT_KW):
        for kind in ALIAS_KINDS:
            if kind in ("out_is_other", "out_overlaps_other", "in_place_bad_other"):
                combos += [(fn, kind, other) for other in OTHER.get(fn, [])]
            elif kind == "in_place_bad_data":
                if fn == "binary_cross_entropy":
                    combos.append((fn, kind, "probs"))
            else:
                combos.append((fn, kind, None))
    return combos


@st.composite
def alias_cases(draw, fn, kind, other):
    shape = [draw(st.integers(2, 5)) for _ in range(draw(st.integers(1, 3)))]
    if other == "pos_weight" and kind != "in_place_bad_other":
        shape = shape[-1:]  # grad_out has pos_weight's shape only for 1-D data
    return {"fn": fn, "kind": kind, "other": other, "shape": shape,
            "dtype": draw(st.sampled_from(["float32", "float64"])),
            "seed": draw(st.integers(0, 2 ** 31 - 1)),
            "reduction": draw(st.sampled_from(["mean", "sum", "none"])),
            "shift": draw(st.integers(1, 3)), "u": draw(st.floats(0, 0.999)),
            "smoothing": draw(st.sampled_from([0.0, 0.1]))}


def _alias_base(case, bad=None):
    fn = case["fn"]
    spec = {"fn": fn, "seed": case["seed"], "dtype": case["dtype"], "shape": case["shape"],
            "reduction": case["reduction"], "return_grad": True, "axis": -1,
            "target_kind": "labels" if case["seed"] % 2 else "probs",
            "weight": "full" if case["other"] == "weight" else None,
            "pos_weight": case["other"] == "pos_weight", "smoothing": case["smoothing"]}
    if fn == "cross_entropy" and case["other"] == "target" and case["kind"] != \
            "in_place_bad_other":
        spec["target_kind"] = "probs"  # grad_out can only be a target of the logits' shape
    call = build(spec, bad)
    return call


def _in_buffer(values, shift_into=None):
    """`values` copied into a flat buffer (room for a shifted overlapping view)."""
    size = values.size
    buf = np.zeros(size + 8, dtype=values.dtype)
    view = buf[:size].reshape(values.shape)
    view[...] = values
    return buf, view


def alias_case(case):
    fn, kind, other = case["fn"], case["kind"], case["other"]
    call = _alias_base(case)
    cdtype = call.cdtype
    data_name, out_kw = call.data, call.out_kw
    data = np.ascontiguousarray(call.get(data_name), dtype=cdtype)
    call.replace(data_name, data)
    shape, shift = data.shape, case["shift"]
    if kind in ("out_is_other", "out_overlaps_other"):
        target = np.ascontiguousarray(call.get(other), dtype=cdtype)
        if kind == "out_is_other":
            call.replace(other, target)
            out = target
        else:
            buf, view = _in_buffer(target)
            call.replace(other, view)
            out = buf[shift:shift + data.size].reshape(shape)
        call.kwargs[out_kw] = out
        return error_problem(call.invoke, (ValueError,), [out_kw, other])
    if kind == "out_overlaps_data":
        buf, view = _in_buffer(data)
        call.replace(data_name, view)
        call.kwargs[out_kw] = buf[shift:shift + data.size].reshape(shape)
        return error_problem(call.invoke, (ValueError,), [out_kw, data_name])
    if kind == "in_place":
        expected = call.invoke()
        call.kwargs[out_kw] = data
        try:
            actual = call.invoke()
        except Exception as exc:  # noqa: BLE001
            return f"in place raised {type(exc).__name__}: {exc}"
        grad = actual[1] if isinstance(actual, tuple) else actual
        if grad is not data:
            return f"in place: the returned {out_kw} is not the data array"
        try:
            assert_same(actual, expected, cdtype)
        except AssertionError as exc:
            return f"in place differs from out of place: {str(exc)[:300]}"
        return None
    # in place with a bad value in the data or in another argument
    name = data_name if kind == "in_place_bad_data" else other
    values = {"probs": 1.5, "target": NAN if fn != "logistic_loss" else 0.5,
              "weight": -1.0, "pos_weight": -1.0, "p": 1.5}[name]
    if fn == "cross_entropy" and name == "target":
        values = 99 if call.get("target").dtype.kind in "iu" else -0.5
    call = _alias_base(case, bad=(name, case["u"], values))
    data = np.ascontiguousarray(call.get(data_name), dtype=cdtype)
    call.replace(data_name, data)
    call.kwargs[out_kw] = data
    position = call.bad_position
    if name == "pos_weight":
        position = None  # reported by index along the labels
    return error_problem(call.invoke, (ValueError,), [name], position)


def test_grad_out_aliasing_in_a_child_process():
    assert_batches_meet_contract("alias", alias_cases, alias_combinations(), "aliasing")


# --------------------------------------------------------------------------
# 10. Malformed CSR X: ValueError naming X, never a crash
# --------------------------------------------------------------------------
CSR_MUTATIONS = ["index_too_large", "index_far_too_large", "index_negative",
                 "indptr_decreasing", "indptr_end_beyond_nnz", "indptr_too_short",
                 "indptr_too_long", "indptr_start_nonzero"]


def csr_case(case):
    rng = np.random.default_rng(case["seed"])
    n, f = case["n"], case["f"]
    dense = rng.standard_normal((n, f)) * (rng.random((n, f)) < 0.7)
    dense[:, 0] = 1.0  # every row holds an entry
    X = scipy.sparse.csr_matrix(dense.astype(case["dtype"]))
    nnz = X.nnz
    k = int(case["u"] * nnz)
    m = case["mutation"]
    if m == "index_too_large":
        X.indices[k] = f
    elif m == "index_far_too_large":
        X.indices[k] = 10 ** 8
    elif m == "index_negative":
        X.indices[k] = -1
    elif m == "indptr_decreasing":
        X.indptr[1] = X.indptr[2] + 1
    elif m == "indptr_end_beyond_nnz":
        X.indptr[-1] = nnz + 1000
    elif m == "indptr_too_short":
        X.indptr = X.indptr[:-1].copy()
    elif m == "indptr_too_long":
        X.indptr = np.append(X.indptr, X.indptr[-1])
    elif m == "indptr_start_nonzero":
        X.indptr[0] = 1
    y_labels = rng.integers(0, 2, n)
    if case["fn"] == "logistic_regression_loss":
        args = (X, y_labels.astype(float), rng.standard_normal(f))
        func = fastce.linear.logistic_regression_loss
    else:
        args = (X, y_labels, rng.standard_normal((2, f)))
        func = fastce.linear.softmax_regression_loss
    return error_problem(lambda: func(*args, return_grad=case["return_grad"]),
                         (ValueError,), ["X"])


@st.composite
def csr_cases(draw, fn, mutation, return_grad):
    return {"fn": fn, "mutation": mutation, "return_grad": return_grad,
            "n": draw(st.integers(3, 6)), "f": draw(st.integers(2, 5)),
            "dtype": draw(st.sampled_from(["float32", "float64"])),
            "seed": draw(st.integers(0, 2 ** 31 - 1)), "u": draw(st.floats(0, 0.999))}


def test_malformed_csr_in_a_child_process():
    combos = [(fn, m, g) for fn in ("logistic_regression_loss", "softmax_regression_loss")
              for m in CSR_MUTATIONS for g in (False, True)]
    assert_batches_meet_contract("csr", csr_cases, combos, "malformed-CSR")
