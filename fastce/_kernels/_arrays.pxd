# Raw data pointers of arrays the Python layer has already validated.
#
# The kernels take pointers, not typed memoryviews: acquiring a memoryview
# costs a few hundred nanoseconds an argument, which a 64 x 10 call cannot
# afford. The Python wrappers check dtypes, shapes and layouts once; these
# helpers re-check dtype, C order, size and writability (a few C field reads)
# so that a wrong internal call raises instead of touching memory out of bounds.
cimport numpy as cnp

# Each module that cimports this calls cnp.import_array() at import.


cdef inline void* array_data(object array, int typenum, Py_ssize_t size,
                             bint writable) except? NULL:
    """Data pointer of ``array`` (NULL for None), after the cheap re-checks."""
    cdef cnp.ndarray checked
    if array is None:
        return NULL
    checked = <cnp.ndarray?>array
    if (cnp.PyArray_TYPE(checked) != typenum
            or not cnp.PyArray_IS_C_CONTIGUOUS(checked)
            or cnp.PyArray_SIZE(checked) != size
            or (writable and not cnp.PyArray_ISWRITEABLE(checked))):
        raise ValueError("fastce internal error: a kernel argument has the wrong "
                         "dtype, layout, size or is read-only")
    if size == 0:
        return NULL
    return cnp.PyArray_DATA(checked)


cdef inline int float_typenum(object array) except -1:
    """NPY_FLOAT32 or NPY_FLOAT64, the two compute dtypes; anything else raises."""
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray?>array)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise ValueError("fastce internal error: kernels take float32 or float64 only")
    return typenum
