# Type stubs for fastce.softmax_losses (PEP 561); the runtime signatures are checked against
# these by tests/test_typing.py (mypy.stubtest).
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

_FloatArray = NDArray[np.floating[Any]]
_Reduce = Literal["mean", "sum"]

__all__ = ["cross_entropy", "log_softmax", "softmax", "logsumexp"]

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
) -> Any: ...

def log_softmax(
    x: ArrayLike,
    *,
    axis: int = -1,
    out: NDArray[Any] | None = None,
    n_threads: int | None = None,
) -> _FloatArray: ...
def softmax(
    x: ArrayLike,
    *,
    axis: int = -1,
    out: NDArray[Any] | None = None,
    n_threads: int | None = None,
) -> _FloatArray: ...
def logsumexp(x: ArrayLike, *, axis: int = -1, n_threads: int | None = None) -> Any: ...
