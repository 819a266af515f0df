# Type stubs for fastce.binary_losses (PEP 561); the runtime signatures are checked against
# these by tests/test_typing.py (mypy.stubtest).
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

_FloatArray = NDArray[np.floating[Any]]
_Reduce = Literal["mean", "sum"]

__all__ = [
    "binary_cross_entropy_with_logits",
    "binary_cross_entropy",
    "logistic_loss",
    "sigmoid_focal_loss",
    "sigmoid",
    "log_sigmoid",
]

@overload
def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: _Reduce = ...,
    return_grad: Literal[False] = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: Literal[False] = ...,
    where: ArrayLike | None = ...,
) -> np.float64: ...
@overload
def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Literal["none"],
    return_grad: Literal[False] = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: Literal[False] = ...,
    where: ArrayLike | None = ...,
) -> _FloatArray: ...
@overload
def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: _Reduce = ...,
    return_grad: Literal[True],
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: Literal[False] = ...,
    where: ArrayLike | None = ...,
) -> tuple[np.float64, _FloatArray]: ...
@overload
def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Literal["none"],
    return_grad: Literal[True],
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: Literal[False] = ...,
    where: ArrayLike | None = ...,
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: _Reduce = ...,
    return_grad: bool = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: Literal[True],
    where: ArrayLike | None = ...,
) -> tuple[np.float64, _FloatArray, _FloatArray]: ...
@overload
def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: Literal["none"],
    return_grad: bool = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: Literal[True],
    where: ArrayLike | None = ...,
) -> tuple[_FloatArray, _FloatArray, _FloatArray]: ...
@overload
def binary_cross_entropy_with_logits(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: str = ...,
    return_grad: bool = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: bool = ...,
    where: ArrayLike | None = ...,
) -> Any: ...

@overload
def binary_cross_entropy(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: _Reduce = ...,
    return_grad: Literal[False] = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    where: ArrayLike | None = ...,
) -> np.float64: ...
@overload
def binary_cross_entropy(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["none"],
    return_grad: Literal[False] = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    where: ArrayLike | None = ...,
) -> _FloatArray: ...
@overload
def binary_cross_entropy(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: _Reduce = ...,
    return_grad: Literal[True],
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    where: ArrayLike | None = ...,
) -> tuple[np.float64, _FloatArray]: ...
@overload
def binary_cross_entropy(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["none"],
    return_grad: Literal[True],
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    where: ArrayLike | None = ...,
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def binary_cross_entropy(
    probs: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: str = ...,
    return_grad: bool = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    where: ArrayLike | None = ...,
) -> Any: ...

@overload
def logistic_loss(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: _Reduce = ...,
    return_grad: Literal[False] = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: Literal[False] = ...,
    where: ArrayLike | None = ...,
) -> np.float64: ...
@overload
def logistic_loss(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["none"],
    return_grad: Literal[False] = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: Literal[False] = ...,
    where: ArrayLike | None = ...,
) -> _FloatArray: ...
@overload
def logistic_loss(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: _Reduce = ...,
    return_grad: Literal[True],
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: Literal[False] = ...,
    where: ArrayLike | None = ...,
) -> tuple[np.float64, _FloatArray]: ...
@overload
def logistic_loss(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["none"],
    return_grad: Literal[True],
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: Literal[False] = ...,
    where: ArrayLike | None = ...,
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def logistic_loss(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: _Reduce = ...,
    return_grad: bool = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: Literal[True],
    where: ArrayLike | None = ...,
) -> tuple[np.float64, _FloatArray, _FloatArray]: ...
@overload
def logistic_loss(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: Literal["none"],
    return_grad: bool = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: Literal[True],
    where: ArrayLike | None = ...,
) -> tuple[_FloatArray, _FloatArray, _FloatArray]: ...
@overload
def logistic_loss(
    scores: ArrayLike,
    target: ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    reduction: str = ...,
    return_grad: bool = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    return_hessian: bool = ...,
    where: ArrayLike | None = ...,
) -> Any: ...

@overload
def sigmoid_focal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float = ...,
    gamma: float = ...,
    reduction: _Reduce = ...,
    return_grad: Literal[False] = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    where: ArrayLike | None = ...,
) -> np.float64: ...
@overload
def sigmoid_focal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float = ...,
    gamma: float = ...,
    reduction: Literal["none"],
    return_grad: Literal[False] = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    where: ArrayLike | None = ...,
) -> _FloatArray: ...
@overload
def sigmoid_focal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float = ...,
    gamma: float = ...,
    reduction: _Reduce = ...,
    return_grad: Literal[True],
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    where: ArrayLike | None = ...,
) -> tuple[np.float64, _FloatArray]: ...
@overload
def sigmoid_focal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float = ...,
    gamma: float = ...,
    reduction: Literal["none"],
    return_grad: Literal[True],
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    where: ArrayLike | None = ...,
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def sigmoid_focal_loss(
    logits: ArrayLike,
    target: ArrayLike,
    *,
    alpha: float = ...,
    gamma: float = ...,
    reduction: str = ...,
    return_grad: bool = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    where: ArrayLike | None = ...,
) -> Any: ...

def sigmoid(
    x: ArrayLike,
    *,
    out: NDArray[Any] | None = None,
    n_threads: int | None = None,
) -> _FloatArray: ...
def log_sigmoid(
    x: ArrayLike,
    *,
    out: NDArray[Any] | None = None,
    n_threads: int | None = None,
) -> _FloatArray: ...
