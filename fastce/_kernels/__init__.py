"""The compiled layer: typed Cython loops and the C math they call.

``dispatch`` imports the SIMD build of each kernel module that the CPU runs
best; ``_config`` holds build-time facts (OpenMP, threads, CPU features).
Nothing here checks arguments: the Python layer (``fastce._api``) has done
that once, and the kernels re-check only what keeps memory access safe.
"""
