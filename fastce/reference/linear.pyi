# Type stubs for fastce.reference.linear (PEP 561). Same signatures as fastce.linear's.
from fastce.linear import (
    logistic_regression_loss as logistic_regression_loss,
    softmax_regression_loss as softmax_regression_loss,
    fused_linear_cross_entropy as fused_linear_cross_entropy,
)

__all__ = [
    "logistic_regression_loss",
    "softmax_regression_loss",
    "fused_linear_cross_entropy",
]
