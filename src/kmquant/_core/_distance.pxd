# The squared distance every kernel family shares (cimported; inline, so no call cost).


cdef inline double sqdist(const double* a, const double* b, Py_ssize_t nc) noexcept nogil:
    """Squared distance, summed channel by channel from 0.0 (unrolled for the usual C = 3)."""
    cdef double d = 0.0, t
    cdef Py_ssize_t c
    if nc == 3:
        t = a[0] - b[0]
        d += t * t
        t = a[1] - b[1]
        d += t * t
        t = a[2] - b[2]
        d += t * t
        return d
    for c in range(nc):
        t = a[c] - b[c]
        d += t * t
    return d
