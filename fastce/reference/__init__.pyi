# Type stubs for fastce.reference (PEP 561). Every function has the
# signature of its compiled counterpart, so the stubs are the same ones.
from fastce.binary_losses import (
    binary_cross_entropy_with_logits as binary_cross_entropy_with_logits,
    binary_cross_entropy as binary_cross_entropy,
    logistic_loss as logistic_loss,
    sigmoid_focal_loss as sigmoid_focal_loss,
    sigmoid as sigmoid,
    log_sigmoid as log_sigmoid,
)
from fastce.softmax_losses import (
    cross_entropy as cross_entropy,
    log_softmax as log_softmax,
    softmax as softmax,
    logsumexp as logsumexp,
    nll_loss as nll_loss,
)
from fastce.information import (
    entropy as entropy,
    kl_divergence as kl_divergence,
    kl_divergence_with_logits as kl_divergence_with_logits,
    js_divergence as js_divergence,
    categorical_cross_entropy as categorical_cross_entropy,
    kl_div as kl_div,
)

__all__ = [
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy",
    "logistic_loss",
    "sigmoid_focal_loss",
    "sigmoid",
    "log_sigmoid",
    "cross_entropy",
    "log_softmax",
    "softmax",
    "logsumexp",
    "entropy",
    "kl_divergence",
    "kl_divergence_with_logits",
    "js_divergence",
    "categorical_cross_entropy",
    "nll_loss",
    "kl_div",
]
