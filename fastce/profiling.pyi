# Type stubs for fastce.profiling (PEP 561); checked against the runtime by
# tests/test_typing.py (mypy.stubtest).
import os
from typing import Any, Literal, Sequence

from numpy.typing import ArrayLike

_Kind = Literal["logits", "probs"]
_Task = Literal["multiclass", "binary", "multilabel"]
# Arrays, np.memmap, paths (.npy, .npz:KEY, .h5:DATASET, .zarr), h5py and zarr arrays.
_Input = ArrayLike | str | os.PathLike[str] | Any

__all__ = ["profile", "ProfileAccumulator", "ProfileReport", "rank_label_issues"]

TASKS: tuple[str, ...]
KINDS: tuple[str, ...]
QUANTILES: tuple[float, ...]
DEFAULT_CHUNK_BYTES: int

class ProfileReport:
    n_samples: int
    n_classes: int
    task: str
    kind: str
    weight_sum: float
    loss_mean: float
    accuracy: float
    top5_accuracy: float | None
    brier_mean: float
    entropy_mean: float
    margin_mean: float
    confidence_mean: float
    ece: float
    mce: float
    calibration: dict[str, list[Any]]
    loss_quantiles: dict[str, float | None]
    loss_histogram: dict[str, list[Any]]
    per_class: dict[str, list[Any]] | None
    per_label: dict[str, list[Any]] | None
    confusion: list[list[int]] | None
    hardest: dict[str, list[Any]]
    label_issues: dict[str, list[Any]] | None
    class_names: list[str] | None
    def __init__(self, fields: dict[str, Any]) -> None: ...
    def to_dict(self) -> dict[str, Any]: ...
    def to_json(self, path: str | os.PathLike[str] | None = ..., **dump_keywords: Any) -> str: ...
    def summary(self, max_rows: int = ...) -> str: ...
    def save(self, directory: str | os.PathLike[str]) -> list[str]: ...

class ProfileAccumulator:
    kind: str
    task: str
    n_classes: int | None
    n_bins: int
    top_k: int
    confusion_max_classes: int
    weighted: bool | None
    next_start: int
    n_rows: int
    def __init__(
        self,
        *,
        kind: _Kind = ...,
        task: _Task = ...,
        n_classes: int | None = ...,
        n_bins: int = ...,
        top_k: int = ...,
        confusion_max_classes: int = ...,
    ) -> None: ...
    def update(
        self,
        predictions_chunk: ArrayLike,
        labels_chunk: ArrayLike,
        *,
        start: int | None = ...,
        sample_weight: ArrayLike | None = ...,
        n_threads: int | None = ...,
        _names: tuple[str, str] = ...,
    ) -> ProfileAccumulator: ...
    def merge(self, other: ProfileAccumulator) -> ProfileAccumulator: ...
    def confident_thresholds(self) -> Any: ...
    def label_issue_thresholds(self) -> Any: ...
    def find_label_issues(
        self,
        predictions_chunk: ArrayLike,
        labels_chunk: ArrayLike,
        *,
        start: int = ...,
        thresholds: ArrayLike | None = ...,
        n_threads: int | None = ...,
        _names: tuple[str, str] = ...,
    ) -> tuple[Any, Any]: ...
    def report(
        self,
        *,
        label_issues: dict[str, list[Any]] | None = ...,
        class_names: Sequence[Any] | None = ...,
    ) -> ProfileReport: ...

def profile(
    predictions: _Input,
    labels: _Input,
    *,
    kind: _Kind = ...,
    task: _Task = ...,
    sample_weight: _Input | None = ...,
    chunk_size: int | None = ...,
    n_bins: int = ...,
    top_k: int = ...,
    label_issues: bool = ...,
    confusion_max_classes: int = ...,
    class_names: Sequence[Any] | None = ...,
    progress: bool | None = ...,
    n_threads: int | None = ...,
) -> ProfileReport: ...

def rank_label_issues(found: Sequence[tuple[Any, Any]]) -> dict[str, list[Any]]: ...
