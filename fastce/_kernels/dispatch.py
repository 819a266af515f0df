"""Pick the SIMD build of the kernel modules at import.

setup.py compiles each kernel module (``_binary``, ``_softmax``, ``_linear``,
``_profile``) from ONE
source in several variants: ``baseline`` (x86-64-v2 on x86, the compiler's
default elsewhere), ``avx2`` (AVX2 + FMA) and ``avx512`` (AVX-512 F/DQ/BW/VL,
512-bit vectors). The best one the CPU supports is imported;
``FASTCE_SIMD=baseline|avx2|avx512`` forces one.
"""
import importlib
import os

from fastce._kernels import _config

VARIANTS = ("avx512", "avx2", "baseline")
FAMILIES = ("_binary", "_softmax", "_linear", "_profile")


def _built(variant):
    try:
        for family in FAMILIES:
            importlib.import_module(f"fastce._kernels.{family}_{variant}")
    except ImportError:
        return False
    return True


def _supported(variant):
    if not _config.IS_X86:
        return variant == "baseline"
    features = _config.cpu_features()
    return {"baseline": features["x86-64-v2"], "avx2": features["avx2"],
            "avx512": features["avx512"]}[variant]


def select_variant():
    forced = os.environ.get("FASTCE_SIMD", "").strip().lower()
    if forced:
        if forced not in VARIANTS:
            raise ImportError(f"FASTCE_SIMD={forced!r} is not one of {VARIANTS}")
        if not _supported(forced):
            raise ImportError(f"FASTCE_SIMD={forced!r}: this CPU does not support it")
        if not _built(forced):
            raise ImportError(f"FASTCE_SIMD={forced!r}: that variant was not built here")
        return forced
    for variant in VARIANTS:
        if _supported(variant) and _built(variant):
            return variant
    raise ImportError(
        "fastce: no kernel build runs on this CPU (the baseline build needs x86-64-v2: "
        "SSE4.2 and POPCNT)"
    )


VARIANT = select_variant()


def kernels(family):
    """The kernel module of ``family`` (one of FAMILIES) for VARIANT."""
    return importlib.import_module(f"fastce._kernels.{family}_{VARIANT}")
