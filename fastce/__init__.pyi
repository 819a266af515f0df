# Type stubs for the fastce package (PEP 561). The submodules reference, linear
# and reference_linear are imported on first attribute access at run time.
from typing import Any

from fastce import binary_losses as binary_losses
from fastce import information as information
from fastce import linear as linear
from fastce import reference as reference
from fastce import reference_linear as reference_linear
from fastce import softmax_losses as softmax_losses
from fastce._version import __version__ as __version__
from fastce.binary_losses import (
    binary_cross_entropy as binary_cross_entropy,
    binary_cross_entropy_with_logits as binary_cross_entropy_with_logits,
    log_sigmoid as log_sigmoid,
    logistic_loss as logistic_loss,
    sigmoid as sigmoid,
    sigmoid_focal_loss as sigmoid_focal_loss,
)
from fastce.information import (
    categorical_cross_entropy as categorical_cross_entropy,
    entropy as entropy,
    js_divergence as js_divergence,
    kl_div as kl_div,
    kl_divergence as kl_divergence,
    kl_divergence_with_logits as kl_divergence_with_logits,
)
from fastce.profiling import (
    ProfileAccumulator as ProfileAccumulator,
    ProfileReport as ProfileReport,
    profile as profile,
)
from fastce.softmax_losses import (
    cross_entropy as cross_entropy,
    log_softmax as log_softmax,
    logsumexp as logsumexp,
    nll_loss as nll_loss,
    softmax as softmax,
)

__all__ = [
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy",
    "logistic_loss",
    "sigmoid_focal_loss",
    "cross_entropy",
    "nll_loss",
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
    "kl_div",
    "profile",
    "ProfileAccumulator",
    "ProfileReport",
    "show_config",
]

def show_config(print_out: bool = True) -> dict[str, Any]: ...
