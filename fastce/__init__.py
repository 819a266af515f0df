"""fastce: fast, exact cross-entropy losses and fused gradients for NumPy batches.

The kernels are typed Cython loops that release the GIL and run on OpenMP
threads. ``fastce.reference`` holds a pure-NumPy version of every function.
"""
from fastce import _config, _dispatch
from fastce.binary_losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    log_sigmoid,
    logistic_loss,
    sigmoid,
    sigmoid_focal_loss,
)
from fastce.information import (
    categorical_cross_entropy,
    entropy,
    js_divergence,
    kl_divergence,
    kl_divergence_with_logits,
)
from fastce.softmax_losses import cross_entropy, log_softmax, logsumexp, softmax

__version__ = "0.1.0"

__all__ = [
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy",
    "logistic_loss",
    "sigmoid_focal_loss",
    "cross_entropy",
    "log_softmax",
    "softmax",
    "logsumexp",
    "sigmoid",
    "log_sigmoid",
    "entropy",
    "kl_divergence",
    "kl_divergence_with_logits",
    "js_divergence",
    "categorical_cross_entropy",
    "show_config",
]


def show_config(print_out=True):
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
