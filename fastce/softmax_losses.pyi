# Type stubs for fastce.softmax_losses (PEP 561); the runtime signatures are checked against
# these by tests/test_typing.py (mypy.stubtest).
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

_FloatArray = NDArray[np.floating[Any]]
_Reduce = Literal["mean", "sum"]
_Axes = int | tuple[int, ...] | None

__all__ = ["cross_entropy", "nll_loss", "log_softmax", "softmax", "logsumexp"]

@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    label_smoothing: float = ...,
    reduction: _Reduce = ...,
    axis: int = ...,
    return_grad: Literal[False] = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: Literal[False] = ...,
    sample_weight: ArrayLike | None = ...,
    where: ArrayLike | None = ...,
) -> np.float64: ...
@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    label_smoothing: float = ...,
    reduction: Literal["none"],
    axis: int = ...,
    return_grad: Literal[False] = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: Literal[False] = ...,
    sample_weight: ArrayLike | None = ...,
    where: ArrayLike | None = ...,
) -> _FloatArray: ...
@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    label_smoothing: float = ...,
    reduction: _Reduce = ...,
    axis: int = ...,
    return_grad: Literal[True],
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: Literal[False] = ...,
    sample_weight: ArrayLike | None = ...,
    where: ArrayLike | None = ...,
) -> tuple[np.float64, _FloatArray]: ...
@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    label_smoothing: float = ...,
    reduction: Literal["none"],
    axis: int = ...,
    return_grad: Literal[True],
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: Literal[False] = ...,
    sample_weight: ArrayLike | None = ...,
    where: ArrayLike | None = ...,
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    label_smoothing: float = ...,
    reduction: _Reduce = ...,
    axis: int = ...,
    return_grad: bool = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: Literal[True],
    sample_weight: ArrayLike | None = ...,
    where: ArrayLike | None = ...,
) -> tuple[np.float64, _FloatArray, _FloatArray]: ...
@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    label_smoothing: float = ...,
    reduction: Literal["none"],
    axis: int = ...,
    return_grad: bool = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: Literal[True],
    sample_weight: ArrayLike | None = ...,
    where: ArrayLike | None = ...,
) -> tuple[_FloatArray, _FloatArray, _FloatArray]: ...
@overload
def cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    label_smoothing: float = ...,
    reduction: str = ...,
    axis: int = ...,
    return_grad: bool = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: bool = ...,
    sample_weight: ArrayLike | None = ...,
    where: ArrayLike | None = ...,
) -> Any: ...

@overload
def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: _Reduce = ...,
    axis: int = ...,
    return_grad: Literal[False] = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
) -> np.float64: ...
@overload
def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["none"],
    axis: int = ...,
    return_grad: Literal[False] = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
) -> _FloatArray: ...
@overload
def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: _Reduce = ...,
    axis: int = ...,
    return_grad: Literal[True],
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
) -> tuple[np.float64, _FloatArray]: ...
@overload
def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: Literal["none"],
    axis: int = ...,
    return_grad: Literal[True],
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def nll_loss(
    log_probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    reduction: str = ...,
    axis: int = ...,
    return_grad: bool = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
) -> Any: ...

def log_softmax(
    x: ArrayLike,
    *,
    axis: _Axes = -1,
    out: NDArray[Any] | None = None,
    n_threads: int | None = None,
) -> _FloatArray: ...
def softmax(
    x: ArrayLike,
    *,
    axis: _Axes = -1,
    out: NDArray[Any] | None = None,
    n_threads: int | None = None,
) -> _FloatArray: ...

# An array, or a NumPy scalar when no axis is left; with return_sign=True, the
# pair (result, sign) of such values.
@overload
def logsumexp(
    x: ArrayLike,
    *,
    axis: _Axes = ...,
    b: ArrayLike | None = ...,
    keepdims: bool = ...,
    return_sign: Literal[False] = ...,
    n_threads: int | None = ...,
) -> Any: ...
@overload
def logsumexp(
    x: ArrayLike,
    *,
    axis: _Axes = ...,
    b: ArrayLike | None = ...,
    keepdims: bool = ...,
    return_sign: Literal[True],
    n_threads: int | None = ...,
) -> tuple[Any, Any]: ...
@overload
def logsumexp(
    x: ArrayLike,
    *,
    axis: _Axes = ...,
    b: ArrayLike | None = ...,
    keepdims: bool = ...,
    return_sign: bool = ...,
    n_threads: int | None = ...,
) -> Any: ...
