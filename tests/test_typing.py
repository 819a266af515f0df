"""The type information (py.typed, .pyi stubs) of the installed fastce.

mypy checks a small typed usage example against the stubs, and mypy.stubtest
checks the stubs against the run-time signatures, so the two cannot drift apart.
Both run in a subprocess from a temporary directory, on the installed package.
"""
import os
import site
import subprocess
import sys
import textwrap

import pytest

import fastce

pytest.importorskip("mypy")

USAGE = '''
from typing import Any, Optional

import numpy as np
from numpy.typing import NDArray
from typing_extensions import assert_type

import fastce
import fastce.linear
from fastce.linear import logistic_regression_loss

logits = np.zeros((8, 5), dtype=np.float32)
target = np.zeros(8, dtype=np.int64)

loss = fastce.cross_entropy(logits, target, label_smoothing=0.1)
assert_type(loss, np.float64)
per_sample = fastce.cross_entropy(logits, target, reduction="none")
assert_type(per_sample, NDArray[np.floating[Any]])
loss, grad = fastce.cross_entropy(logits, target, return_grad=True, grad_out=logits)
assert_type(grad, NDArray[np.floating[Any]])
loss, grad, hess = fastce.binary_cross_entropy_with_logits(
    logits, np.ones_like(logits), return_hessian=True)
focal: float = float(fastce.sigmoid_focal_loss(logits, np.ones_like(logits), gamma=2.0))
probabilities = fastce.softmax(logits, axis=-1, n_threads=2)
assert_type(probabilities, NDArray[np.floating[Any]])
kl = fastce.kl_divergence(probabilities, probabilities)
assert_type(kl, np.float64)
entropies = fastce.entropy(probabilities)
assert_type(entropies, NDArray[np.floating[Any]])
config: dict[str, Any] = fastce.show_config(print_out=False)
version: str = fastce.__version__

reference_loss = fastce.reference.cross_entropy(logits, target)
assert_type(reference_loss, np.float64)
X = np.zeros((8, 3))
value, grad_coef, grad_intercept = logistic_regression_loss(
    X, np.zeros(8), np.zeros(3), 0.0, l2=1e-3, return_grad=True)
assert_type(grad_intercept, float)
value2, grad_w, grad_b = fastce.linear.softmax_regression_loss(
    X, target, np.zeros((5, 3)), return_grad=True)
assert_type(grad_b, Optional[NDArray[np.floating[Any]]])
fused = fastce.linear.fused_linear_cross_entropy(X, np.zeros((5, 3)), target, chunk_size=4)
assert_type(fused, np.float64)
'''

# Mistakes the stubs must catch (so they are really used, not Any).
MISTAKES = '''
import numpy as np
import fastce

fastce.cross_entropy(np.zeros((2, 3)), np.zeros(2), reduction=3)
fastce.cross_entropy(np.zeros((2, 3)), np.zeros(2), 0.1)
fastce.no_such_function()
'''


def _env():
    env = dict(os.environ)
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(fastce.__file__)))
    if package_parent not in site.getsitepackages() + [site.getusersitepackages()]:
        # An in-place build: let mypy find the package where Python does.
        env["MYPYPATH"] = package_parent
    return env


def _mypy_files(tmp_path, source):
    path = tmp_path / "usage.py"
    path.write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--cache-dir", os.devnull, "usage.py"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)


def test_package_is_marked_typed():
    here = os.path.dirname(os.path.abspath(fastce.__file__))
    assert os.path.exists(os.path.join(here, "py.typed"))
    for module in ("__init__", "binary_losses", "softmax_losses", "information", "linear",
                   "reference/__init__", "reference/linear", "reference_linear",
                   "_kernels/_config"):
        assert os.path.exists(os.path.join(here, module + ".pyi")), module


def test_typed_usage_passes_mypy(tmp_path):
    result = _mypy_files(tmp_path, USAGE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found" in result.stdout


def test_mypy_rejects_wrong_calls(tmp_path):
    result = _mypy_files(tmp_path, MISTAKES)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "usage.py:5: error" in out  # reduction=3
    assert "usage.py:6: error" in out  # label_smoothing passed positionally
    assert 'usage.py:7: error: Module has no attribute "no_such_function"' in out


def test_stubs_match_runtime_signatures(tmp_path):
    allowlist = tmp_path / "allowlist.txt"
    allowlist.write_text("fastce._kernels._config.__test__\n")  # Cython's doctest dict
    config = tmp_path / "mypy.ini"
    # fastce's private modules import optional, untyped packages (sklearn, matplotlib).
    config.write_text("[mypy]\nignore_missing_imports = True\n")
    result = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "fastce", "--mypy-config-file", str(config),
         "--allowlist", str(allowlist)],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
