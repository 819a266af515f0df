# Type stub for the compiled module fastce._kernels._config (build-time facts).
import numpy as np
from numpy.typing import NDArray

HAVE_OPENMP: bool
OPENMP_VERSION: int
PARALLEL_THRESHOLD: int
BLOCK_SIZE: int
IS_X86: bool

def max_threads() -> int: ...
def cpu_features() -> dict[str, bool]: ...
def read_sum(data: NDArray[np.float32], n_threads: int) -> float: ...
