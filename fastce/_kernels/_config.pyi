# Type stub for the compiled module fastce._kernels._config (build-time facts).
HAVE_OPENMP: bool
OPENMP_VERSION: int
PARALLEL_THRESHOLD: int
BLOCK_SIZE: int
IS_X86: bool

def max_threads() -> int: ...
def cpu_features() -> dict[str, bool]: ...
