# Type stubs for fastce.dask (PEP 561); checked against the runtime signatures by
# tests/test_typing.py (mypy.stubtest).
import os
from typing import Any, Sequence

from dask.array import Array
from numpy.typing import ArrayLike

from fastce.profiling import ProfileReport, _Kind, _Task

# Dask arrays, NumPy arrays and array-likes, or paths (.npy, .h5:DATASET, .zarr).
_Input = Array | ArrayLike | str | os.PathLike[str] | Any
_Loss = Array | tuple[Array, Array] | tuple[Array, Array, Array]

__all__ = ["profile", "cross_entropy", "binary_cross_entropy_with_logits"]

def profile(
    predictions: _Input,
    labels: _Input,
    *,
    sample_weight: _Input | None = ...,
    kind: _Kind = ...,
    task: _Task = ...,
    n_bins: int = ...,
    top_k: int = ...,
    label_issues: bool = ...,
    confusion_max_classes: int = ...,
    class_names: Sequence[Any] | None = ...,
    n_threads: int | None = ...,
    split_every: int = ...,
    chunk_size: int | None = ...,
) -> ProfileReport: ...
def cross_entropy(
    logits: Array | ArrayLike,
    target: Array | ArrayLike,
    *,
    weight: ArrayLike | None = ...,
    ignore_index: int = ...,
    label_smoothing: float = ...,
    reduction: str = ...,
    axis: int = ...,
    return_grad: bool = ...,
    grad_out: None = ...,
    n_threads: int | None = ...,
    return_hessian: bool = ...,
    split_every: int = ...,
) -> _Loss: ...
def binary_cross_entropy_with_logits(
    logits: Array | ArrayLike,
    target: Array | ArrayLike,
    *,
    weight: Array | ArrayLike | None = ...,
    pos_weight: ArrayLike | None = ...,
    reduction: str = ...,
    return_grad: bool = ...,
    grad_out: None = ...,
    n_threads: int | None = ...,
    return_hessian: bool = ...,
    split_every: int = ...,
) -> _Loss: ...
