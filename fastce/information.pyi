# Type stubs for fastce.information (PEP 561); the runtime signatures are checked against
# these by tests/test_typing.py (mypy.stubtest).
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

_FloatArray = NDArray[np.floating[Any]]
_Reduce = Literal["mean", "sum"]
_KLDivReduce = Literal["mean", "batchmean", "sum"]

__all__ = [
    "entropy",
    "kl_divergence",
    "kl_divergence_with_logits",
    "js_divergence",
    "categorical_cross_entropy",
    "kl_div",
]

@overload
def entropy(
    p: ArrayLike,
    *,
    axis: int = ...,
    base: float | None = ...,
    reduction: _Reduce,
    n_threads: int | None = ...,
) -> np.float64: ...
@overload
def entropy(
    p: ArrayLike,
    *,
    axis: int = ...,
    base: float | None = ...,
    reduction: Literal["none"] = ...,
    n_threads: int | None = ...,
) -> _FloatArray: ...
@overload
def entropy(
    p: ArrayLike,
    *,
    axis: int = ...,
    base: float | None = ...,
    reduction: str = ...,
    n_threads: int | None = ...,
) -> Any: ...

@overload
def kl_divergence(
    p: ArrayLike,
    q: ArrayLike,
    *,
    axis: int = ...,
    base: float | None = ...,
    reduction: _Reduce = ...,
    n_threads: int | None = ...,
) -> np.float64: ...
@overload
def kl_divergence(
    p: ArrayLike,
    q: ArrayLike,
    *,
    axis: int = ...,
    base: float | None = ...,
    reduction: Literal["none"],
    n_threads: int | None = ...,
) -> _FloatArray: ...
@overload
def kl_divergence(
    p: ArrayLike,
    q: ArrayLike,
    *,
    axis: int = ...,
    base: float | None = ...,
    reduction: str = ...,
    n_threads: int | None = ...,
) -> Any: ...

@overload
def js_divergence(
    p: ArrayLike,
    q: ArrayLike,
    *,
    axis: int = ...,
    base: float | None = ...,
    reduction: _Reduce = ...,
    n_threads: int | None = ...,
) -> np.float64: ...
@overload
def js_divergence(
    p: ArrayLike,
    q: ArrayLike,
    *,
    axis: int = ...,
    base: float | None = ...,
    reduction: Literal["none"],
    n_threads: int | None = ...,
) -> _FloatArray: ...
@overload
def js_divergence(
    p: ArrayLike,
    q: ArrayLike,
    *,
    axis: int = ...,
    base: float | None = ...,
    reduction: str = ...,
    n_threads: int | None = ...,
) -> Any: ...

@overload
def categorical_cross_entropy(
    p: ArrayLike,
    q: ArrayLike,
    *,
    axis: int = ...,
    reduction: _Reduce = ...,
    n_threads: int | None = ...,
) -> np.float64: ...
@overload
def categorical_cross_entropy(
    p: ArrayLike,
    q: ArrayLike,
    *,
    axis: int = ...,
    reduction: Literal["none"],
    n_threads: int | None = ...,
) -> _FloatArray: ...
@overload
def categorical_cross_entropy(
    p: ArrayLike,
    q: ArrayLike,
    *,
    axis: int = ...,
    reduction: str = ...,
    n_threads: int | None = ...,
) -> Any: ...

@overload
def kl_divergence_with_logits(
    p: ArrayLike,
    logits: ArrayLike,
    *,
    axis: int = ...,
    reduction: _Reduce = ...,
    return_grad: Literal[False] = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    sample_weight: ArrayLike | None = ...,
    log_target: bool = ...,
) -> np.float64: ...
@overload
def kl_divergence_with_logits(
    p: ArrayLike,
    logits: ArrayLike,
    *,
    axis: int = ...,
    reduction: Literal["none"],
    return_grad: Literal[False] = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    sample_weight: ArrayLike | None = ...,
    log_target: bool = ...,
) -> _FloatArray: ...
@overload
def kl_divergence_with_logits(
    p: ArrayLike,
    logits: ArrayLike,
    *,
    axis: int = ...,
    reduction: _Reduce = ...,
    return_grad: Literal[True],
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    sample_weight: ArrayLike | None = ...,
    log_target: bool = ...,
) -> tuple[np.float64, _FloatArray]: ...
@overload
def kl_divergence_with_logits(
    p: ArrayLike,
    logits: ArrayLike,
    *,
    axis: int = ...,
    reduction: Literal["none"],
    return_grad: Literal[True],
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    sample_weight: ArrayLike | None = ...,
    log_target: bool = ...,
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def kl_divergence_with_logits(
    p: ArrayLike,
    logits: ArrayLike,
    *,
    axis: int = ...,
    reduction: str = ...,
    return_grad: bool = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
    sample_weight: ArrayLike | None = ...,
    log_target: bool = ...,
) -> Any: ...

@overload
def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    *,
    reduction: _KLDivReduce = ...,
    log_target: bool = ...,
    return_grad: Literal[False] = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
) -> np.float64: ...
@overload
def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    *,
    reduction: Literal["none"],
    log_target: bool = ...,
    return_grad: Literal[False] = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
) -> _FloatArray: ...
@overload
def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    *,
    reduction: _KLDivReduce = ...,
    log_target: bool = ...,
    return_grad: Literal[True],
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
) -> tuple[np.float64, _FloatArray]: ...
@overload
def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    *,
    reduction: Literal["none"],
    log_target: bool = ...,
    return_grad: Literal[True],
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
) -> tuple[_FloatArray, _FloatArray]: ...
@overload
def kl_div(
    input: ArrayLike,
    target: ArrayLike,
    *,
    reduction: str = ...,
    log_target: bool = ...,
    return_grad: bool = ...,
    grad_out: NDArray[Any] | None = ...,
    n_threads: int | None = ...,
) -> Any: ...
