# Type stubs for fastce.linear (PEP 561); the runtime signatures are checked against
# these by tests/test_typing.py (mypy.stubtest).
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

_FloatArray = NDArray[np.floating[Any]]
_Reduce = Literal["mean", "sum"]

# X may also be a scipy.sparse matrix (CSR; other formats are converted), which
# is not an ArrayLike: hence Any.
_DesignMatrix = Any

__all__ = ["logistic_regression_loss", "softmax_regression_loss", "fused_linear_cross_entropy"]

@overload
def logistic_regression_loss(
    X: _DesignMatrix,
    y: ArrayLike,
    coef: ArrayLike,
    intercept: float = ...,
    *,
    sample_weight: ArrayLike | None = ...,
    l2: float = ...,
    return_grad: Literal[False] = ...,
    n_threads: int | None = ...,
) -> np.float64: ...
@overload
def logistic_regression_loss(
    X: _DesignMatrix,
    y: ArrayLike,
    coef: ArrayLike,
    intercept: float = ...,
    *,
    sample_weight: ArrayLike | None = ...,
    l2: float = ...,
    return_grad: Literal[True],
    n_threads: int | None = ...,
) -> tuple[np.float64, _FloatArray, float]: ...
@overload
def logistic_regression_loss(
    X: _DesignMatrix,
    y: ArrayLike,
    coef: ArrayLike,
    intercept: float = ...,
    *,
    sample_weight: ArrayLike | None = ...,
    l2: float = ...,
    return_grad: bool = ...,
    n_threads: int | None = ...,
) -> Any: ...

@overload
def softmax_regression_loss(
    X: _DesignMatrix,
    y: ArrayLike,
    coef: ArrayLike,
    intercept: ArrayLike | None = ...,
    *,
    sample_weight: ArrayLike | None = ...,
    l2: float = ...,
    return_grad: Literal[False] = ...,
    n_threads: int | None = ...,
) -> np.float64: ...
@overload
def softmax_regression_loss(
    X: _DesignMatrix,
    y: ArrayLike,
    coef: ArrayLike,
    intercept: ArrayLike | None = ...,
    *,
    sample_weight: ArrayLike | None = ...,
    l2: float = ...,
    return_grad: Literal[True],
    n_threads: int | None = ...,
) -> tuple[np.float64, _FloatArray, _FloatArray | None]: ...
@overload
def softmax_regression_loss(
    X: _DesignMatrix,
    y: ArrayLike,
    coef: ArrayLike,
    intercept: ArrayLike | None = ...,
    *,
    sample_weight: ArrayLike | None = ...,
    l2: float = ...,
    return_grad: bool = ...,
    n_threads: int | None = ...,
) -> Any: ...

@overload
def fused_linear_cross_entropy(
    hidden: ArrayLike,
    weight: ArrayLike,
    target: ArrayLike,
    *,
    bias: ArrayLike | None = ...,
    ignore_index: int = ...,
    label_smoothing: float = ...,
    reduction: _Reduce = ...,
    chunk_size: int | None = ...,
    return_grad: Literal[False] = ...,
    n_threads: int | None = ...,
) -> np.float64: ...
@overload
def fused_linear_cross_entropy(
    hidden: ArrayLike,
    weight: ArrayLike,
    target: ArrayLike,
    *,
    bias: ArrayLike | None = ...,
    ignore_index: int = ...,
    label_smoothing: float = ...,
    reduction: Literal["none"],
    chunk_size: int | None = ...,
    return_grad: Literal[False] = ...,
    n_threads: int | None = ...,
) -> _FloatArray: ...
@overload
def fused_linear_cross_entropy(
    hidden: ArrayLike,
    weight: ArrayLike,
    target: ArrayLike,
    *,
    bias: None = ...,
    ignore_index: int = ...,
    label_smoothing: float = ...,
    reduction: _Reduce = ...,
    chunk_size: int | None = ...,
    return_grad: Literal[True],
    n_threads: int | None = ...,
) -> tuple[np.float64, _FloatArray, _FloatArray]: ...
@overload
def fused_linear_cross_entropy(
    hidden: ArrayLike,
    weight: ArrayLike,
    target: ArrayLike,
    *,
    bias: None = ...,
    ignore_index: int = ...,
    label_smoothing: float = ...,
    reduction: Literal["none"],
    chunk_size: int | None = ...,
    return_grad: Literal[True],
    n_threads: int | None = ...,
) -> tuple[_FloatArray, _FloatArray, _FloatArray]: ...
@overload
def fused_linear_cross_entropy(
    hidden: ArrayLike,
    weight: ArrayLike,
    target: ArrayLike,
    *,
    bias: ArrayLike,
    ignore_index: int = ...,
    label_smoothing: float = ...,
    reduction: _Reduce = ...,
    chunk_size: int | None = ...,
    return_grad: Literal[True],
    n_threads: int | None = ...,
) -> tuple[np.float64, _FloatArray, _FloatArray, _FloatArray]: ...
@overload
def fused_linear_cross_entropy(
    hidden: ArrayLike,
    weight: ArrayLike,
    target: ArrayLike,
    *,
    bias: ArrayLike,
    ignore_index: int = ...,
    label_smoothing: float = ...,
    reduction: Literal["none"],
    chunk_size: int | None = ...,
    return_grad: Literal[True],
    n_threads: int | None = ...,
) -> tuple[_FloatArray, _FloatArray, _FloatArray, _FloatArray]: ...
@overload
def fused_linear_cross_entropy(
    hidden: ArrayLike,
    weight: ArrayLike,
    target: ArrayLike,
    *,
    bias: ArrayLike | None = ...,
    ignore_index: int = ...,
    label_smoothing: float = ...,
    reduction: str = ...,
    chunk_size: int | None = ...,
    return_grad: bool = ...,
    n_threads: int | None = ...,
) -> Any: ...
