"""Greedy weighted k-means++ seeding: one linked list of colours per centre.

The algorithm, its draws and its float64 arithmetic, operation by operation, are those described
in ``kmquant.seeding`` (which calls :func:`greedy_plusplus` and draws its uniforms); this module
only runs them. :func:`greedy_plusplus` validates its arrays and raises ``ValueError`` before any
loop runs, and releases the GIL while it works. Everything runs in one thread in a fixed order.

Arrays, for n colours with C channels, K0 given centres and ``n_new`` centres to add:

``X``         (n, C) float64, C-contiguous: the colours, finite.
``w``         (n,) float64: their weights, finite and ≥ 0.
``centers``   (K0, C) float64, C-contiguous: the centres so far, finite.
``uniforms``  (≥ 1 + n_new × trials,) float64 in [0, 1): the random draws, used in order.
``rows``      (≥ n_new,) int64: receives the rows of X chosen, in the order chosen.

State (workspace, K = K0 + n_new): ``closest`` (n,) the squared distance of each colour to its
nearest centre and ``label`` (n,) that centre; ``head`` (K,) the first colour of each centre's
list, ``after``/``before`` (n,) the next/previous colour in the same list (-1: none);
``potential`` (K,) Σ w × closest over a list; ``reach2`` (K,) ≥ max closest over a list;
``chosen`` (K, C) the centres; ``gap2`` (K,) scratch: squared distances of a candidate to them.
"""

from libc.math cimport INFINITY, isfinite
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

from ._distance cimport sqdist as _sqdist

# Relative slack on the triangle-inequality bound against rounding: a list is skipped when the
# candidate is farther than 2 R (1 + 1e-12) from its centre (kmquant.seeding at HEAD).
cdef double _GROW = 1.0 + 1e-12


cdef struct State:
    Py_ssize_t n
    Py_ssize_t nc
    const double* X
    const double* w
    double* closest
    Py_ssize_t* label
    Py_ssize_t* head
    Py_ssize_t* after
    Py_ssize_t* before
    double* potential
    double* reach2
    double* chosen
    double* gap2




cdef inline void _push(State* s, Py_ssize_t i, Py_ssize_t j) noexcept nogil:
    """Put colour i at the front of list j."""
    s.after[i] = s.head[j]
    s.before[i] = -1
    if s.head[j] >= 0:
        s.before[s.head[j]] = i
    s.head[j] = i


cdef Py_ssize_t _draw(const State* s, double draw, Py_ssize_t n_centers) noexcept nogil:
    """The colour where the running sum of weight × squared distance passes ``draw``, summed list
    by list; the last colour with some potential if rounding runs past the end; -1 if no colour
    has any (every colour is a centre already, the lists' potentials mere rounding residue)."""
    cdef Py_ssize_t fallback = -1
    cdef Py_ssize_t i, j
    cdef double share
    for j in range(n_centers):
        if s.potential[j] <= 0.0:
            continue
        if draw >= s.potential[j]:
            draw -= s.potential[j]
            continue
        i = s.head[j]
        while i >= 0:
            share = s.w[i] * s.closest[i]
            if share > 0.0:
                fallback = i
                if draw < share:
                    return i
                draw -= share
            i = s.after[i]
    if fallback < 0:  # rounding ran past every list: take the last colour with potential
        for j in range(n_centers - 1, -1, -1):
            i = s.head[j]
            while i >= 0:
                if s.w[i] * s.closest[i] > 0.0:
                    return i
                i = s.after[i]
    return fallback


cdef inline double _take(State* s, Py_ssize_t n_centers, Py_ssize_t row, bint apply) noexcept nogil:
    """Potential removed by a new centre at X[row]: the sum of w × (closest - d) over the
    colours it would take. With ``apply`` it takes them: lists, potentials and bounds follow
    (the new centre must be in ``chosen[n_centers]`` already)."""
    cdef Py_ssize_t nc = s.nc
    cdef const double* x = s.X + row * nc
    cdef double d, kept
    cdef double gain = 0.0
    cdef Py_ssize_t new = n_centers
    cdef Py_ssize_t i, j, following
    for j in range(n_centers):
        s.gap2[j] = _sqdist(x, s.chosen + j * nc, nc)
    for j in range(n_centers):
        if s.gap2[j] >= 4.0 * s.reach2[j] * _GROW:  # no colour of list j is nearer
            continue
        i = s.head[j]
        kept = 0.0
        while i >= 0:
            following = s.after[i]
            d = _sqdist(s.X + i * nc, x, nc)
            if d < s.closest[i]:
                gain += s.w[i] * (s.closest[i] - d)
                if apply:  # move colour i from list j to the new list
                    if s.before[i] >= 0:
                        s.after[s.before[i]] = following
                    else:
                        s.head[j] = following
                    if following >= 0:
                        s.before[following] = s.before[i]
                    s.potential[j] -= s.w[i] * s.closest[i]
                    s.closest[i] = d
                    s.label[i] = new
                    s.potential[new] += s.w[i] * d
                    if d > s.reach2[new]:
                        s.reach2[new] = d
                    _push(s, i, new)
            elif apply:
                if s.closest[i] > kept:
                    kept = s.closest[i]
            i = following
        if apply:
            s.reach2[j] = kept  # every colour list j still holds is walked: the bound is exact
            if s.head[j] < 0:
                s.potential[j] = 0.0
    return gain


cdef Py_ssize_t _first_by_weight(const State* s, double u, double* cumulative) noexcept nogil:
    """The row where the running sum of the weights passes ``u`` × their total: NumPy's
    ``min(searchsorted(cumsum(w), u * total, side="right"), n - 1)``."""
    cdef Py_ssize_t n = s.n
    cdef Py_ssize_t i, lo = 0, hi = n, mid
    cdef double acc = 0.0, target
    for i in range(n):
        acc += s.w[i]
        cumulative[i] = acc
    target = u * cumulative[n - 1]
    while lo < hi:  # first i with cumulative[i] > target (the sums never decrease: w ≥ 0)
        mid = lo + ((hi - lo) >> 1)
        if cumulative[mid] <= target:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < n - 1 else n - 1


cdef Py_ssize_t _run(State* s, Py_ssize_t n_given, Py_ssize_t n_new, Py_ssize_t trials,
                     const double* uniforms, int64_t* rows) noexcept nogil:
    """The greedy k-means++ loop; returns how many rows it chose (< n_new when every colour
    became a centre). ``chosen[:n_given]`` holds the given centres."""
    cdef Py_ssize_t n = s.n
    cdef Py_ssize_t nc = s.nc
    cdef Py_ssize_t k_max = n_given + n_new
    cdef Py_ssize_t n_centers = n_given
    cdef Py_ssize_t done = 0
    cdef Py_ssize_t i, j, t, row, best_row, base
    cdef double d, total, gain, best_gain
    cdef const double* y
    if n_centers == 0:  # the first centre: drawn by weight
        rows[0] = _first_by_weight(s, uniforms[0], s.closest)
        memcpy(s.chosen, s.X + rows[0] * nc, nc * sizeof(double))
        n_centers = 1
        done = 1
    for i in range(n):
        s.closest[i] = INFINITY
        s.label[i] = 0
        s.after[i] = -1
        s.before[i] = -1
    for j in range(n_centers):
        y = s.chosen + j * nc
        for i in range(n):
            d = _sqdist(s.X + i * nc, y, nc)
            if d < s.closest[i]:
                s.closest[i] = d
                s.label[i] = j
    for j in range(k_max):
        s.head[j] = -1
        s.potential[j] = 0.0
        s.reach2[j] = 0.0
    for i in range(n - 1, -1, -1):
        j = s.label[i]
        _push(s, i, j)
        s.potential[j] += s.w[i] * s.closest[i]
        if s.closest[i] > s.reach2[j]:
            s.reach2[j] = s.closest[i]
    while done < n_new:
        total = 0.0
        for j in range(n_centers):
            total += s.potential[j]
        if total <= 0.0:  # every colour is a centre already
            break
        best_gain = -1.0
        best_row = -1
        base = 1 + (done - 1 + (1 if n_given > 0 else 0)) * trials
        for t in range(trials):
            row = _draw(s, uniforms[base + t] * total, n_centers)
            if row < 0:
                break
            gain = _take(s, n_centers, row, False)
            if gain > best_gain:
                best_gain = gain
                best_row = row
        if best_row < 0:  # no colour left with potential, or gains lost to overflow
            break
        rows[done] = best_row
        memcpy(s.chosen + n_centers * nc, s.X + best_row * nc, nc * sizeof(double))
        _take(s, n_centers, best_row, True)
        n_centers += 1
        done += 1
    return done


cdef int _check_finite(const double* a, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(size):
        if not isfinite(a[i]):
            return 0
    return 1


def greedy_plusplus(
    const double[:, ::1] X not None,
    const double[::1] w not None,
    const double[:, ::1] centers not None,
    Py_ssize_t n_new,
    Py_ssize_t trials,
    const double[::1] uniforms not None,
    int64_t[::1] rows not None,
):
    """Rows of X chosen by greedy weighted k-means++ after ``centers``; see ``kmquant.seeding``.

    With no given centres the first row is drawn by weight alone (``uniforms[0]``); every further
    centre is the best, by potential removed, of ``trials`` rows drawn with probability
    proportional to weight × squared distance to the nearest centre so far, the draws walked list
    by list (``uniforms[1 + s × trials + t]`` for step s, counted from the first drawn by
    potential).

    Parameters
    ----------
    X : (n, C) float64 ndarray, C-contiguous, finite
    w : (n,) float64 ndarray, finite, ≥ 0
    centers : (K0, C) float64 ndarray, C-contiguous, finite
    n_new : int
        Rows to choose, ≥ 0.
    trials : int
        Candidates per step, ≥ 1.
    uniforms : (≥ 1 + n_new × trials,) float64 ndarray
        Uniform draws in [0, 1).
    rows : (≥ n_new,) int64 ndarray
        Receives the chosen rows in ``rows[:returned]``.

    Returns
    -------
    int
        How many rows were chosen: ``n_new``, or fewer when every colour is a centre already
        (none when X has no rows).

    Raises
    ------
    ValueError
        For a wrong shape, inconsistent lengths, ``n_new`` < 0, ``trials`` < 1, a non-finite
        value or a negative weight; before anything runs.
    """
    cdef Py_ssize_t n = X.shape[0]
    cdef Py_ssize_t nc = X.shape[1]
    cdef Py_ssize_t n_given = centers.shape[0]
    cdef Py_ssize_t i, k_max, done = 0
    cdef bint ok
    cdef State s
    if w.shape[0] != n:
        raise ValueError(f"w has {w.shape[0]} weights for {n} colours")
    if centers.shape[1] != nc:
        raise ValueError(f"centers have {centers.shape[1]} channels, the colours {nc}")
    if n_new < 0:
        raise ValueError(f"n_new must be >= 0, not {n_new}")
    if trials < 1:
        raise ValueError(f"trials must be >= 1, not {trials}")
    if uniforms.shape[0] < 1 or n_new > (uniforms.shape[0] - 1) // trials:
        raise ValueError(f"{uniforms.shape[0]} uniforms, {n_new} × {trials} + 1 needed")
    if rows.shape[0] < n_new:
        raise ValueError(f"rows has room for {rows.shape[0]} rows, {n_new} needed")
    if n_new == 0 or n == 0:
        return 0
    with nogil:
        ok = (_check_finite(&X[0, 0], n * nc) and _check_finite(&w[0], n)
              and (n_given == 0 or nc == 0 or _check_finite(&centers[0, 0], n_given * nc)))
        for i in range(n):
            if w[i] < 0.0:
                ok = False
                break
    if not ok:
        raise ValueError("X, w and centers must be finite and w >= 0")
    s.n = n
    s.nc = nc
    s.X = &X[0, 0]
    s.w = &w[0]
    n_new = min(n_new, n)  # each chosen row leaves the draws: at most n (keeps the sizes small)
    k_max = n_given + n_new
    s.closest = <double*>malloc(n * sizeof(double))
    s.label = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
    s.after = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
    s.before = <Py_ssize_t*>malloc(n * sizeof(Py_ssize_t))
    s.head = <Py_ssize_t*>malloc(k_max * sizeof(Py_ssize_t))
    s.potential = <double*>malloc(k_max * sizeof(double))
    s.reach2 = <double*>malloc(k_max * sizeof(double))
    s.gap2 = <double*>malloc(k_max * sizeof(double))
    s.chosen = <double*>malloc((k_max * nc + 1) * sizeof(double))
    try:
        if (s.closest == NULL or s.label == NULL or s.after == NULL or s.before == NULL
                or s.head == NULL or s.potential == NULL or s.reach2 == NULL or s.gap2 == NULL
                or s.chosen == NULL):
            raise MemoryError()
        if n_given > 0 and nc > 0:
            memcpy(s.chosen, &centers[0, 0], n_given * nc * sizeof(double))
        with nogil:
            done = _run(&s, n_given, n_new, trials, &uniforms[0], &rows[0])
    finally:
        free(s.closest)
        free(s.label)
        free(s.after)
        free(s.before)
        free(s.head)
        free(s.potential)
        free(s.reach2)
        free(s.gap2)
        free(s.chosen)
    return done
