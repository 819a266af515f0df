"""fastce: fast, exact cross-entropy losses and fused gradients for NumPy batches.

The kernels are typed Cython loops that release the GIL and run on OpenMP
threads. ``fastce.reference`` holds a pure-NumPy version of every function;
``fastce.linear`` the linear models. Both, and the other public submodules, are
imported on first access (PEP 562), so ``import fastce`` stays fast.
"""
import importlib as _importlib
import importlib.machinery as _machinery
import os as _os
from typing import TYPE_CHECKING, Any

from fastce._version import __version__ as __version__


def _unbuilt_source_tree():
    """True when this package is a source folder whose extensions were never built."""
    kernels = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "_kernels")
    if not _os.path.exists(_os.path.join(kernels, "_config.pyx")):
        return False
    return not any(_os.path.exists(_os.path.join(kernels, "_config" + suffix))
                   for suffix in _machinery.EXTENSION_SUFFIXES)


try:
    from fastce._kernels import _config
except ImportError as _error:
    if _unbuilt_source_tree():
        raise ImportError(
            "fastce is being imported from its source tree "
            f"({_os.path.dirname(_os.path.abspath(__file__))}), which has no compiled "
            "kernels. Install it with `pip install .` and run Python from another "
            "directory, or build in place with `python setup.py build_ext --inplace`."
        ) from _error
    raise

from fastce._kernels import dispatch as _dispatch  # noqa: E402
from fastce.binary_losses import (  # noqa: E402
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    log_sigmoid,
    logistic_loss,
    sigmoid,
    sigmoid_focal_loss,
)
from fastce.information import (  # noqa: E402
    categorical_cross_entropy,
    entropy,
    js_divergence,
    kl_div,
    kl_divergence,
    kl_divergence_with_logits,
)
from fastce.softmax_losses import (  # noqa: E402
    cross_entropy,
    log_softmax,
    logsumexp,
    nll_loss,
    softmax,
)

if TYPE_CHECKING:  # at run time, imported on first access (__getattr__ below)
    from fastce import (  # noqa: F401
        binary_losses, dask, information, linear, profiling, reference, reference_linear,
        softmax_losses)
    from fastce.profiling import ProfileAccumulator, ProfileReport, profile  # noqa: F401

# Grouped by the module that defines them (a literal list, which type checkers read).
__all__ = [
    "binary_cross_entropy_with_logits", "binary_cross_entropy", "logistic_loss",
    "sigmoid_focal_loss", "sigmoid", "log_sigmoid",  # binary_losses
    "cross_entropy", "nll_loss", "log_softmax", "softmax", "logsumexp",  # softmax_losses
    "entropy", "kl_divergence", "kl_divergence_with_logits", "js_divergence",
    "categorical_cross_entropy", "kl_div",  # information
    "profile", "ProfileAccumulator", "ProfileReport",  # profiling, imported on first use
    "show_config",
]


def _public_submodules():
    """The public submodules shipped with this copy of fastce (a file listing, no import)."""
    here = _os.path.dirname(_os.path.abspath(__file__))
    names = set()
    for entry in _os.listdir(here):
        stem, ext = _os.path.splitext(entry)
        if ext == ".py" and not stem.startswith("_"):
            names.add(stem)
        elif _os.path.isfile(_os.path.join(here, entry, "__init__.py")) and not entry.startswith("_"):
            names.add(entry)
    return names


# Public names defined in submodules that are imported on first access too.
_LAZY_NAMES = {
    "profile": "fastce.profiling",
    "ProfileAccumulator": "fastce.profiling",
    "ProfileReport": "fastce.profiling",
}


if not TYPE_CHECKING:  # (a type checker would take any name for a lazy one)
    def __getattr__(name):
        """Import public submodules (fastce.reference, fastce.linear, ...) and the
        profiling names (fastce.profile, ...) on first access."""
        if name in _LAZY_NAMES:
            return getattr(_importlib.import_module(_LAZY_NAMES[name]), name)
        if not name.startswith("_") and name in _public_submodules():
            return _importlib.import_module(f"fastce.{name}")
        raise AttributeError(f"module 'fastce' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | _public_submodules() | set(_LAZY_NAMES))


def show_config(print_out: bool = True) -> dict[str, Any]:
    """Report the version, OpenMP support and threads; print it and return a dict."""
    import numpy
    config = {
        "fastce": __version__,
        "numpy": numpy.__version__,
        "openmp": _config.HAVE_OPENMP,
        "openmp_version": _config.OPENMP_VERSION or None,
        "default_threads": _config.max_threads(),
        "parallel_threshold_elements": _config.PARALLEL_THRESHOLD,
        "block_elements": _config.BLOCK_SIZE,
        "simd": _dispatch.VARIANT,
        "simd_supported": [name for name, ok in _config.cpu_features().items() if ok]
        if _config.IS_X86 else [],
    }
    if print_out:
        for key, value in config.items():
            print(f"{key:>28}: {value}")
    return config
