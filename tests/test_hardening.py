"""Regression tests for bad input: each class of problem that once crashed,
corrupted memory, returned a wrong value or modified an argument.

The oracles are independent of fastce's own code where there is one (SciPy's
rel_entr and log_expit, dense NumPy results for sparse input); otherwise the
expected behaviour is the contract: a ValueError or TypeError that names the
argument, and inputs left as they were.
"""
import json
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import fastce
from fastce import reference
from fastce.linear import (
    fused_linear_cross_entropy, logistic_regression_loss, softmax_regression_loss,
)

scipy = pytest.importorskip("scipy")
import scipy.sparse  # noqa: E402
import scipy.special  # noqa: E402


def _run_child(code, timeout=120):
    """Run ``code`` in a fresh interpreter outside the source tree; returns
    the JSON it prints last. A crash (segfault, abort) fails the test."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, timeout=timeout, cwd=tempfile.gettempdir())
    assert result.returncode == 0, (
        f"child exited with {result.returncode}\nstdout: {result.stdout[-2000:]}\n"
        f"stderr: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------- sparse input

MALFORMED_CSR_CHILD = """
    import json
    import numpy as np
    import scipy.sparse as sp
    from fastce.linear import logistic_regression_loss, softmax_regression_loss

    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5))
    X[X < 0.3] = 0.0
    y01 = (rng.random(40) > 0.5).astype(float)
    labels = rng.integers(0, 3, 40)

    def broken(kind):
        A = sp.csr_matrix(X)
        if kind == "column_too_large":
            A.indices[3] = 5
        elif kind == "column_huge":
            A.indices[0] = 10**9
        elif kind == "column_negative":
            A.indices[2] = -1
        elif kind == "indptr_decreasing":
            A.indptr[10] = A.indptr[9] - 1 if A.indptr[9] > 0 else A.indptr[11] + 1
        elif kind == "indptr_past_nnz":
            A.indptr[-1] = A.nnz + 50
        elif kind == "indptr_start":
            A.indptr[0] = 1
        return A

    results = {}
    for kind in ["column_too_large", "column_huge", "column_negative", "indptr_decreasing",
                 "indptr_past_nnz", "indptr_start"]:
        for name, call in [
            ("logistic", lambda A: logistic_regression_loss(A, y01, np.ones(5), return_grad=True)),
            ("softmax", lambda A: softmax_regression_loss(A, labels, np.ones((3, 5)),
                                                          np.zeros(3), return_grad=True)),
        ]:
            try:
                call(broken(kind))
                results[f"{kind}/{name}"] = "no error"
            except Exception as error:
                results[f"{kind}/{name}"] = f"{type(error).__name__}: {error}"
    print(json.dumps(results))
"""


def test_malformed_csr_raises_value_error_naming_X():
    results = _run_child(MALFORMED_CSR_CHILD)
    for case, outcome in results.items():
        assert outcome.startswith("ValueError") and "X" in outcome.split(":", 1)[1], \
            f"{case}: {outcome}"


def test_malformed_csc_and_coo_are_checked_before_conversion():
    results = _run_child("""
        import json
        import numpy as np
        import scipy.sparse as sp
        from fastce.linear import logistic_regression_loss
        X = np.eye(6, 4)
        y = np.array([0., 1, 0, 1, 1, 0])
        out = {}
        A = sp.csc_matrix(X); A.indices[1] = 99
        B = sp.coo_matrix(X); B.col[0] = 99
        C = sp.coo_matrix(X); C.row[0] = -3
        for name, M in [("csc", A), ("coo_col", B), ("coo_row", C)]:
            try:
                logistic_regression_loss(M, y, np.ones(4))
                out[name] = "no error"
            except Exception as error:
                out[name] = f"{type(error).__name__}: {error}"
        print(json.dumps(out))
    """)
    for case, outcome in results.items():
        assert outcome.startswith("ValueError: X"), f"{case}: {outcome}"


def _unsorted_csr_with_duplicates(read_only):
    # Row 0 holds column 2, then column 0 twice (unsorted, duplicated); row 2
    # holds column 1 twice.
    data = np.array([1.5, 2.0, -0.5, 0.25, 0.75])
    indices = np.array([2, 0, 0, 1, 1], dtype=np.int32)
    indptr = np.array([0, 3, 3, 5, 5], dtype=np.int32)
    matrix = scipy.sparse.csr_matrix((data, indices, indptr), shape=(4, 3))
    if read_only:
        for array in (matrix.data, matrix.indices, matrix.indptr):
            array.flags.writeable = False
    return matrix


@pytest.mark.parametrize("read_only", [False, True])
@pytest.mark.parametrize("function", ["logistic", "softmax"])
def test_caller_csr_is_not_modified_and_duplicates_are_summed(read_only, function):
    matrix = _unsorted_csr_with_duplicates(read_only)
    before = [array.copy() for array in (matrix.data, matrix.indices, matrix.indptr)]
    dense = np.zeros((4, 3))
    np.add.at(dense, (np.repeat(np.arange(4), np.diff(before[2])), before[1]), before[0])
    if function == "logistic":
        y, coef = np.array([1.0, 0.0, 1.0, 0.0]), np.array([0.3, -0.2, 0.5])
        got = logistic_regression_loss(matrix, y, coef, 0.1, return_grad=True)
        expected = logistic_regression_loss(dense, y, coef, 0.1, return_grad=True)
    else:
        y, coef = np.array([0, 2, 1, 0]), np.arange(6.0).reshape(2, 3) / 10
        y = y % 2
        got = softmax_regression_loss(matrix, y, coef, np.zeros(2), return_grad=True)
        expected = softmax_regression_loss(dense, y, coef, np.zeros(2), return_grad=True)
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-13)
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-12, atol=1e-15)
    after = (matrix.data, matrix.indices, matrix.indptr)
    for old, new in zip(before, after):
        assert old.dtype == new.dtype and np.array_equal(old, new)
    assert matrix.nnz == 5


# ------------------------------------------------------------------- aliasing

def test_grad_out_aliasing_target_is_refused():
    rng = np.random.default_rng(1)
    z, t = rng.standard_normal(100), rng.random(100)
    t[7] = 1.5  # invalid: must not be hidden by the gradient written over it
    with pytest.raises(ValueError, match="grad_out.*target"):
        fastce.binary_cross_entropy_with_logits(z, t, return_grad=True, grad_out=t)


def test_grad_out_aliasing_weight_is_refused():
    rng = np.random.default_rng(2)
    z, t, w = rng.standard_normal(50), rng.random(50), rng.random(50)
    w[3] = -1.0
    with pytest.raises(ValueError, match="grad_out.*weight"):
        fastce.binary_cross_entropy_with_logits(z, t, weight=w, return_grad=True, grad_out=w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_bce_probs_still_checks_its_inputs(dtype):
    rng = np.random.default_rng(3)
    n = 3000  # several chunks and a bad value late in one
    p, t = rng.random(n).astype(dtype), rng.random(n).astype(dtype)
    bad_p = p.copy()
    bad_p[1234] = 1.5
    with pytest.raises(ValueError, match=r"probs must be in \[0, 1\].*got 1.5 at position \(1234,\)"):
        fastce.binary_cross_entropy(bad_p, t, return_grad=True, grad_out=bad_p)
    bad_t = t.copy()
    bad_t[2071] = 2.0
    in_place = p.copy()
    with pytest.raises(ValueError, match=r"target .* at position \(2071,\)"):
        fastce.binary_cross_entropy(in_place, bad_t, return_grad=True, grad_out=in_place)
    # And valid in-place calls equal out-of-place ones.
    in_place = p.copy()
    loss, grad = fastce.binary_cross_entropy(in_place, t, return_grad=True, grad_out=in_place)
    expected_loss, expected_grad = fastce.binary_cross_entropy(p, t, return_grad=True)
    assert grad is in_place
    assert loss == expected_loss
    np.testing.assert_array_equal(grad, expected_grad)


@pytest.mark.parametrize("kind", ["bce", "logistic", "focal"])
def test_in_place_logits_kinds_report_the_bad_target(kind):
    rng = np.random.default_rng(4)
    z = rng.standard_normal(1000)
    t = rng.random(1000) if kind != "logistic" else np.where(rng.random(1000) > 0.5, 1.0, -1.0)
    t[613] = 3.0
    function = {"bce": fastce.binary_cross_entropy_with_logits, "logistic": fastce.logistic_loss,
                "focal": fastce.sigmoid_focal_loss}[kind]
    with pytest.raises(ValueError, match=r"target .*\(613,\)"):
        function(z, t, return_grad=True, grad_out=z)


def test_soft_target_grad_out_aliasing_is_refused():
    rng = np.random.default_rng(5)
    z = rng.standard_normal((8, 5))
    p = scipy.special.softmax(rng.standard_normal((8, 5)), axis=1)
    with pytest.raises(ValueError, match="grad_out.*target"):
        fastce.cross_entropy(z, p, return_grad=True, grad_out=p)
    with pytest.raises(ValueError, match="grad_out.*p"):
        fastce.kl_divergence_with_logits(p, z, return_grad=True, grad_out=p)


PARTIAL_OVERLAP_CALLS = {
    "sigmoid": lambda buf: fastce.sigmoid(buf[:1000], out=buf[3:1003]),
    "log_sigmoid": lambda buf: fastce.log_sigmoid(buf[:1000], out=buf[3:1003]),
    "softmax": lambda buf: fastce.softmax(buf[:1000].reshape(100, 10),
                                          out=buf[5:1005].reshape(100, 10)),
    "log_softmax": lambda buf: fastce.log_softmax(buf[:1000].reshape(100, 10),
                                                  out=buf[5:1005].reshape(100, 10)),
    "bce_logits": lambda buf: fastce.binary_cross_entropy_with_logits(
        buf[:1000], np.full(1000, 0.5), return_grad=True, grad_out=buf[3:1003]),
    "bce_probs": lambda buf: fastce.binary_cross_entropy(
        buf[:1000], np.full(1000, 0.5), return_grad=True, grad_out=buf[3:1003]),
    "logistic": lambda buf: fastce.logistic_loss(buf[:1000], np.ones(1000), return_grad=True,
                                                 grad_out=buf[3:1003]),
    "focal": lambda buf: fastce.sigmoid_focal_loss(buf[:1000], np.full(1000, 0.5),
                                                   return_grad=True, grad_out=buf[3:1003]),
    "cross_entropy": lambda buf: fastce.cross_entropy(
        buf[:1000].reshape(100, 10), np.zeros(100, dtype=np.int64), return_grad=True,
        grad_out=buf[10:1010].reshape(100, 10)),
    "kl_with_logits": lambda buf: fastce.kl_divergence_with_logits(
        np.full((100, 10), 0.1), buf[:1000].reshape(100, 10), return_grad=True,
        grad_out=buf[10:1010].reshape(100, 10)),
}


@pytest.mark.parametrize("name", sorted(PARTIAL_OVERLAP_CALLS))
def test_partial_overlap_of_output_and_input_is_refused(name):
    buf = np.random.default_rng(6).standard_normal(2000)
    before = buf.copy()
    with pytest.raises(ValueError, match="(out|grad_out) shares memory with"):
        PARTIAL_OVERLAP_CALLS[name](buf)
    np.testing.assert_array_equal(buf, before)


def test_identical_view_counts_as_in_place():
    z = np.random.default_rng(7).standard_normal((64, 10))
    expected = fastce.softmax(z)
    view = z[...]
    assert view is not z
    fastce.softmax(z, out=view)
    np.testing.assert_array_equal(z, expected)


# --------------------------------------------------- NaN in the linear models

def _nan_designs(X):
    return {"C": X, "F": np.asfortranarray(X), "CSR": scipy.sparse.csr_matrix(X)}


@pytest.mark.parametrize("layout", ["C", "F", "CSR"])
@pytest.mark.parametrize("where", ["X", "coef", "intercept"])
def test_nan_propagates_in_logistic_regression(layout, where):
    rng = np.random.default_rng(8)
    X = rng.standard_normal((300, 4))
    y = (rng.random(300) > 0.5).astype(float)
    coef, intercept = rng.standard_normal(4), 0.2
    if where == "X":
        X[123, 2] = np.nan
    elif where == "coef":
        coef[1] = np.nan
    else:
        intercept = np.nan
    loss, grad_coef, grad_intercept = logistic_regression_loss(
        _nan_designs(X)[layout], y, coef, intercept, return_grad=True)
    assert np.isnan(loss)
    assert np.all(np.isnan(grad_coef))
    assert np.isnan(grad_intercept)


@pytest.mark.parametrize("layout", ["C", "F", "CSR"])
def test_nan_propagates_in_softmax_regression(layout):
    rng = np.random.default_rng(9)
    X = rng.standard_normal((200, 3))
    X[50, 0] = np.nan
    y = rng.integers(0, 4, 200)
    loss, grad_coef, grad_intercept = softmax_regression_loss(
        _nan_designs(X)[layout], y, rng.standard_normal((4, 3)), np.zeros(4), return_grad=True)
    assert np.isnan(loss) and np.all(np.isnan(grad_coef)) and np.all(np.isnan(grad_intercept))


def test_nan_propagates_in_fused_linear_cross_entropy():
    rng = np.random.default_rng(10)
    hidden = rng.standard_normal((64, 8))
    hidden[5, 3] = np.nan
    loss, grad_hidden, grad_weight = fused_linear_cross_entropy(
        hidden, rng.standard_normal((6, 8)), rng.integers(0, 6, 64), return_grad=True)
    assert np.isnan(loss) and np.all(np.isnan(grad_weight)) and np.all(np.isnan(grad_hidden[5]))
    assert np.all(np.isfinite(np.delete(grad_hidden, 5, axis=0)))


# ------------------------------------------------- labels, keywords, messages

def test_softmax_regression_has_no_ignored_label():
    rng = np.random.default_rng(11)
    X = rng.standard_normal((20, 3))
    y = rng.integers(0, 4, 20)
    y[3] = np.iinfo(np.int64).min
    with pytest.raises(ValueError, match=r"y must be a class index .* -9223372036854775808 at "
                                         r"position \(3,\)"):
        softmax_regression_loss(X, y, np.zeros((4, 3)))


INTEGER_KEYWORD_CALLS = {
    "cross_entropy": lambda value: fastce.cross_entropy(
        np.zeros((4, 3)), np.array([0, 1, 2, 1]), ignore_index=value),
    "fused": lambda value: fused_linear_cross_entropy(
        np.zeros((4, 2)), np.zeros((3, 2)), np.array([0, 1, 2, 1]), ignore_index=value),
}


@pytest.mark.parametrize("call", sorted(INTEGER_KEYWORD_CALLS))
@pytest.mark.parametrize("value", [1.5, "1", True, np.bool_(True), np.inf, np.nan, None, 1j])
def test_ignore_index_rejects_non_integers(call, value):
    with pytest.raises(TypeError, match="ignore_index"):
        INTEGER_KEYWORD_CALLS[call](value)


@pytest.mark.parametrize("call", sorted(INTEGER_KEYWORD_CALLS))
@pytest.mark.parametrize("value", [2**63, -2**63 - 1, np.uint64(2**64 - 1), 10**30])
def test_ignore_index_out_of_range_is_a_value_error(call, value):
    with pytest.raises(ValueError, match="ignore_index"):
        INTEGER_KEYWORD_CALLS[call](value)


def test_integral_ignore_index_values_are_accepted():
    logits = np.random.default_rng(12).standard_normal((4, 3))
    target = np.array([0, 1, 2, 1])
    expected = fastce.cross_entropy(logits, target, ignore_index=1)
    for value in (np.int32(1), np.uint8(1), 1.0, np.array(1)):
        assert fastce.cross_entropy(logits, target, ignore_index=value) == expected


NUMBER_KEYWORD_CALLS = {
    "label_smoothing": lambda v: fastce.cross_entropy(np.zeros((2, 3)), np.array([0, 1]),
                                                      label_smoothing=v),
    "alpha": lambda v: fastce.sigmoid_focal_loss(np.zeros(3), np.ones(3), alpha=v),
    "gamma": lambda v: fastce.sigmoid_focal_loss(np.zeros(3), np.ones(3), gamma=v),
    "l2": lambda v: logistic_regression_loss(np.zeros((2, 2)), np.array([0.0, 1.0]),
                                             np.zeros(2), l2=v),
    "intercept": lambda v: logistic_regression_loss(np.zeros((2, 2)), np.array([0.0, 1.0]),
                                                    np.zeros(2), v),
    "base": lambda v: fastce.entropy(np.full((2, 2), 0.5), base=v),
    "n_threads": lambda v: fastce.sigmoid(np.zeros(3), n_threads=v),
    "chunk_size": lambda v: fused_linear_cross_entropy(np.zeros((4, 2)), np.zeros((3, 2)),
                                                       np.array([0, 1, 2, 1]), chunk_size=v),
    "axis": lambda v: fastce.softmax(np.zeros((2, 3)), axis=v),
}


@pytest.mark.parametrize("keyword", sorted(NUMBER_KEYWORD_CALLS))
@pytest.mark.parametrize("value", ["0.1", b"1", True, [0.1]])
def test_number_keywords_reject_strings_bools_and_lists(keyword, value):
    with pytest.raises(TypeError, match=keyword):
        NUMBER_KEYWORD_CALLS[keyword](value)


def test_zero_classes_give_a_clear_message():
    X = np.zeros((5, 3))
    with pytest.raises(ValueError, match=r"coef has shape \(0, 3\): 0 classes"):
        softmax_regression_loss(X, np.zeros(5, dtype=np.int64), np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"target holds class index 0 .* outside \[0, 0\)"):
        fused_linear_cross_entropy(X, np.zeros((0, 3)), np.zeros(5, dtype=np.int64))
    # Nothing to compute: every sample ignored, or no samples.
    loss, grad_hidden, grad_weight = fused_linear_cross_entropy(
        X, np.zeros((0, 3)), np.full(5, -100), return_grad=True)
    assert loss == 0.0 and not grad_hidden.any() and grad_weight.shape == (0, 3)
    assert softmax_regression_loss(np.zeros((0, 3)), np.zeros(0, dtype=int),
                                   np.zeros((0, 3))) == 0.0


MASKED_CALLS = {
    "logits": lambda m: fastce.cross_entropy(m, np.array([0, 1, 1])),
    "target": lambda m: fastce.binary_cross_entropy_with_logits(np.zeros((3, 2)), m),
    "x": lambda m: fastce.softmax(m),
    "p": lambda m: fastce.entropy(m),
    "weight": lambda m: fastce.binary_cross_entropy_with_logits(np.zeros((3, 2)),
                                                                np.zeros((3, 2)), weight=m),
    "X": lambda m: logistic_regression_loss(m, np.zeros(3), np.zeros(2)),
    "hidden": lambda m: fused_linear_cross_entropy(m, np.zeros((2, 2)), np.zeros(3, dtype=int)),
}


@pytest.mark.parametrize("name", sorted(MASKED_CALLS))
def test_masked_arrays_are_refused(name):
    masked = np.ma.masked_array(np.full((3, 2), 0.25), mask=[[0, 1], [0, 0], [1, 0]])
    with pytest.raises(TypeError, match=f"{name} is a numpy masked array"):
        MASKED_CALLS[name](masked)


# ----------------------------------------------------- ported peer test cases

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_masked_row_with_zero_target_has_zero_loss_and_gradient(dtype):
    logits = np.array([[-np.inf, -np.inf, -np.inf], [1.0, 2.0, 3.0]], dtype=dtype)
    target = np.array([[0.0, 0.0, 0.0], [0.2, 0.3, 0.5]], dtype=dtype)
    for function in (lambda: fastce.cross_entropy(logits, target, reduction="none",
                                                  return_grad=True),
                     lambda: fastce.kl_divergence_with_logits(target, logits, reduction="none",
                                                              return_grad=True)):
        loss, grad = function()
        assert loss[0] == 0.0
        np.testing.assert_array_equal(grad[0], 0.0)
        assert np.all(np.isfinite(grad[1])) and np.isfinite(loss[1])
    # The reference (torch's kl_div on log-probabilities) agrees on the live row.
    loss_ref, grad_ref = reference.kl_divergence_with_logits(target, logits, reduction="none",
                                                             return_grad=True)
    np.testing.assert_allclose(grad[1], grad_ref[1], rtol=1e-5)


def test_kl_divergence_near_equal_one_element_rows_matches_rel_entr():
    # scipy gh-20710: p (log p - log q) cancels; rel_entr keeps the digits.
    p = np.array([[0.9456657713430001], [0.5], [1e-300]])
    q = np.array([[0.9456657713430094], [0.5000000000000001], [1e-300 * (1 + 2**-50)]])
    expected = scipy.special.rel_entr(p, q)[:, 0]
    got = fastce.kl_divergence(p, q, reduction="none")
    np.testing.assert_allclose(got, expected, rtol=1e-13)
    # Far from p = q the plain form is used, also where p / q would overflow.
    p, q = np.array([[1.0]]), np.array([[1e-320]])
    np.testing.assert_allclose(fastce.kl_divergence(p, q, reduction="none"),
                               np.log(1.0) - np.log(1e-320), rtol=1e-13)


@pytest.mark.parametrize("dtype, points", [
    (np.float64, [725.0, 730.0, 744.0, 709.5, 745.0]),
    (np.float32, [88.0, 95.0, 100.0, 103.0]),
])
def test_log_sigmoid_subnormal_results_are_exact(dtype, points):
    x = np.array(points, dtype=dtype)
    got = fastce.log_sigmoid(x)
    expected = scipy.special.log_expit(x)
    assert got.dtype == expected.dtype == dtype
    np.testing.assert_array_equal(got, expected)
