"""Build the Cython kernels.

Compiler flags follow PERF.md: -O3 with -fno-math-errno and -fno-trapping-math
(lets GCC inline and vectorise libm-free arithmetic) but never -ffast-math,
which breaks NaN/inf semantics and can flip flush-to-zero for the whole
process, and never -march=native, which would make wheels unportable.
OpenMP is detected by compiling a tiny program; without it the kernels build
serially (Cython's prange degrades to a plain loop) and a warning is printed.
"""
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import warnings

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

SAFE_FLAGS = ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd"]

OPENMP_PROBE = r"""
#include <omp.h>
int main(void) {
    int total = 0;
    #pragma omp parallel reduction(+:total)
    total += 1;
    return total > 0 ? 0 : 1;
}
"""


def detect_openmp_flags():
    """Return (compile_args, link_args) for OpenMP, or None when unavailable."""
    if os.environ.get("FASTCE_DISABLE_OPENMP"):
        return None
    compiler = sysconfig.get_config_var("CC") or "cc"
    compiler = compiler.split()[0]
    if shutil.which(compiler) is None:
        compiler = "cc"
    candidates = [(["-fopenmp"], ["-fopenmp"])]
    if sys.platform == "darwin":
        candidates.append((["-Xpreprocessor", "-fopenmp"], ["-lomp"]))
    with tempfile.TemporaryDirectory() as tmp:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as handle:
            handle.write(OPENMP_PROBE)
        for compile_args, link_args in candidates:
            binary = os.path.join(tmp, "probe")
            command = [compiler, *compile_args, source, "-o", binary, *link_args]
            try:
                result = subprocess.run(command, capture_output=True, timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                continue
            if result.returncode == 0:
                return compile_args, link_args
    return None


openmp = detect_openmp_flags()
if openmp is None:
    warnings.warn(
        "fastce: OpenMP was not found; building the kernels without threads "
        "(they will run serially).",
        stacklevel=1,
    )
    print("*** fastce: OpenMP not available, building a serial version ***")
    omp_compile, omp_link = [], []
else:
    omp_compile, omp_link = openmp

is_msvc = sys.platform == "win32"
extra_compile = ["/O2", "/openmp"] if is_msvc else SAFE_FLAGS + omp_compile
extra_link = [] if is_msvc else omp_link

MODULES = ["_binary", "_softmax", "_config"]

extensions = [
    Extension(
        f"fastce.{name}",
        [f"fastce/{name}.pyx"],
        include_dirs=[np.get_include(), "fastce"],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=extra_compile,
        extra_link_args=extra_link,
    )
    for name in MODULES
]

setup(
    ext_modules=cythonize(
        extensions,
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
)
