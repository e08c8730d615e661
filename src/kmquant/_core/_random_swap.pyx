"""Fränti's random swap with exact local repartition: the search behind the benchmark's ceiling.

The algorithm and its float64 arithmetic, operation by operation, are those of the numba kernels
this module replaces (``bench/bench_search.py`` before the port): given the same random draws the
centres come out bit for bit the same. :func:`random_swap` validates its arrays and raises
``ValueError`` before any loop runs, and releases the GIL while it works. It has no random
generator of its own: the caller draws every random number (``kmquant.swaps``).

Arrays, for n colours with C channels, K centres and T trials:

``X``         (n, C) float64, C-contiguous: the colours, finite.
``w``         (n,) float64: their weights, finite and ≥ 0.
``centers``   (K, C) float64, C-contiguous: the start, finite; overwritten with the result.
``uniforms``  (T,) float64 in [0, 1): trial t moves a centre onto the colour where the running
              sum of w × squared distance to its centre reaches ``uniforms[t]`` × the error.
``picks``     (T,) int64 in [0, K): the centre trial t moves.

State (workspace): ``labels`` (n,) each colour's centre and ``dist`` (n,) its squared distance to
it; ``sums`` (K, C) and ``mass`` (K,) the weighted sums and weights of the clusters; ``moved`` (K,)
the centres that moved in the last update (``n_moved`` of them), flagged in ``is_moved`` (K,);
``changed`` (K,) the clusters that gained or lost a colour in the current iteration. Before a
trial the centres, sums, masses, labels and distances are saved (``saved_*``) and restored when
the trial does not lower the error.

Invariant between iterations: ``dist[i]`` is the exact squared distance of colour i to
``centers[labels[i]]`` for every colour whose centre is not flagged in ``is_moved`` (the distance
is the same sum, channel by channel from 0.0, wherever it is computed), so the final pass after
an update recomputes the distances of the moved centres' colours only; its error is the same sum
over every colour, in order, as a full pass.

Pruning (what makes it faster than the kernel it replaces, with the same results): ``gap`` (K, K)
holds |C_a - C_b|² / 4 for the current centres (kept up to date row by row as centres move; the
rows of the centres a rejected trial moved, listed in ``dirty``, are recomputed when it is undone).
By the triangle inequality a centre j with ``gap[a, j] > d(x, C_a)`` is farther from x than C_a,
so it can neither win nor tie against C_a: a colour whose centre moved searches the other centres
in order of their gap to its centre (``near``, one sorted row per moved centre) up to the first
that is farther, and a colour whose centre did not move checks the moved centres in order of their
gap to its centre (``near_moved``, one sorted row per centre) the same way. Where the searched
centres tie, the lower index wins, as in the kernel's full search. On the sample's 72 079 colours
(200 trials from a converged k-means++ start) this computes 2.6, 1.7 and 1.2 distances per colour
and trial at K = 16, 64 and 256, where the kernel it replaces computed 14, 23 and 28.
Memory: 40 K² bytes besides the (n,) arrays.
"""

from libc.math cimport isfinite
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport free, malloc, qsort
from libc.string cimport memcpy, memset

from ._distance cimport sqdist as _sqdist

# Lloyd iterations after each swap before the trial is judged (the numba kernel's constant).
cdef int _ITERATIONS = 2
# gap[a, b] is |C_a - C_b|² / 4 shrunk by 1e-9 relative: when gap[a, j] > d(x, C_a), C_j is
# farther from x than C_a by more than the few ulps (1e-15 relative) of rounding in the computed
# squared distances (1e-9: the native engine's slack), so its computed distance is larger too.
cdef double _GAP_SCALE = 0.25 * (1.0 - 1e-9)


cdef struct Near:
    double gap  # gap[own, j]
    int32_t j


cdef struct State:
    Py_ssize_t n
    Py_ssize_t nc
    Py_ssize_t k
    const double* X
    const double* w
    double* C
    int32_t* labels
    double* dist
    double* sums
    double* mass
    int32_t* moved
    char* is_moved
    char* changed
    double* saved_C
    int32_t* saved_labels
    double* saved_dist
    double* saved_sums
    double* saved_mass
    double* gap
    Near* near
    Near* near_moved
    char* dirty
    int32_t* dirty_list
    Py_ssize_t n_dirty




cdef inline int32_t _nearest(const double* x, const double* C, Py_ssize_t k, Py_ssize_t nc,
                             double* best_d) noexcept nogil:
    """The nearest centre to x (ties to the lower index) and, in ``best_d``, its squared
    distance. Starts from centre 0, not from an infinite distance: the same answer for finite
    distances, and a valid index whatever they are."""
    cdef int32_t best = 0
    cdef double bd = _sqdist(x, C, nc), d
    cdef Py_ssize_t j
    for j in range(1, k):
        d = _sqdist(x, C + j * nc, nc)
        if d < bd:
            best = <int32_t>j
            bd = d
    best_d[0] = bd
    return best


cdef inline int32_t _nearest_from(const double* x, const double* C, Py_ssize_t nc, int32_t own,
                                  const Near* near, Py_ssize_t count,
                                  double* best_d) noexcept nogil:
    """:func:`_nearest` (the same index and distance) for a colour of centre ``own``, searching
    the other centres in order of their gap to ``own`` (``near``, ``count`` of them) up to the
    first with ``gap > d(x, own)``: it, and every centre after it, is farther than ``own``."""
    cdef int32_t best = own, j
    cdef double own_d = _sqdist(x, C + own * nc, nc)
    cdef double bd = own_d, d
    cdef Py_ssize_t p
    for p in range(count):
        if near[p].gap > own_d:
            break
        j = near[p].j
        d = _sqdist(x, C + j * nc, nc)
        if d < bd or (d == bd and j < best):
            best = j
            bd = d
    best_d[0] = bd
    return best


cdef int _by_gap(const void* a, const void* b) noexcept nogil:
    """qsort's comparison of two :c:type:`Near` by gap."""
    cdef double ga = (<const Near*>a).gap, gb = (<const Near*>b).gap
    return (ga > gb) - (ga < gb)


cdef void _sort_rows(Near* row, Py_ssize_t count) noexcept nogil:
    """Sort ``count`` entries by gap: insertion sort for the few of most calls, else qsort."""
    cdef Py_ssize_t p, r
    cdef Near item
    if count > 16:
        qsort(row, count, sizeof(Near), _by_gap)
        return
    for p in range(1, count):
        item = row[p]
        r = p
        while r > 0 and row[r - 1].gap > item.gap:
            row[r] = row[r - 1]
            r -= 1
        row[r] = item


cdef void _sort_near(State* s, Py_ssize_t n_moved) noexcept nogil:
    """For each moved centre m, the other centres in order of ``gap[m, ·]`` into its row of
    ``near`` (K - 1 entries)."""
    cdef Py_ssize_t k = s.k
    cdef Py_ssize_t q, j, p
    cdef int32_t m
    cdef Near* row
    for q in range(n_moved):
        m = s.moved[q]
        row = s.near + m * (k - 1)
        p = 0
        for j in range(k):
            if j != m:
                row[p].gap = s.gap[m * k + j]
                row[p].j = <int32_t>j
                p += 1
        _sort_rows(row, k - 1)


cdef void _sort_moved(State* s, Py_ssize_t n_moved) noexcept nogil:
    """For each centre o that did not move, the moved centres in order of ``gap[o, ·]`` into its
    row of ``near_moved`` (``n_moved`` entries)."""
    cdef Py_ssize_t k = s.k
    cdef Py_ssize_t o, q
    cdef int32_t m
    cdef Near* row
    for o in range(k):
        if s.is_moved[o]:  # its colours search every centre (near)
            continue
        row = s.near_moved + o * n_moved
        for q in range(n_moved):
            m = s.moved[q]
            row[q].gap = s.gap[o * k + m]
            row[q].j = m
        _sort_rows(row, n_moved)


cdef void _update_gaps(State* s, const int32_t* centres, Py_ssize_t count) noexcept nogil:
    """Recompute the rows and columns of ``gap`` of ``centres[:count]`` from their positions and,
    unless they are marked already, mark them dirty."""
    cdef Py_ssize_t k = s.k, nc = s.nc
    cdef Py_ssize_t q, j
    cdef int32_t m
    cdef double g
    for q in range(count):
        m = centres[q]
        for j in range(k):
            g = _sqdist(s.C + m * nc, s.C + j * nc, nc) * _GAP_SCALE
            s.gap[m * k + j] = g
            s.gap[j * k + m] = g
        if not s.dirty[m]:
            s.dirty[m] = 1
            s.dirty_list[s.n_dirty] = m
            s.n_dirty += 1


cdef void _clean(State* s, bint recompute) noexcept nogil:
    """Forget the dirty marks; with ``recompute``, first recompute the gaps of the dirty centres
    (after their positions were restored)."""
    cdef Py_ssize_t q
    cdef Py_ssize_t count = s.n_dirty
    if recompute:
        _update_gaps(s, s.dirty_list, count)
    for q in range(count):
        s.dirty[s.dirty_list[q]] = 0
    s.n_dirty = 0


cdef double _local_lloyd(State* s, Py_ssize_t n_moved, int iterations) noexcept nogil:
    """Exact Lloyd iterations after the centres ``moved[:n_moved]`` changed; returns the error
    after the last centroid update.

    Only a moved centre can take a colour from an unmoved one, and only a colour whose own centre
    moved can need a full search; the gaps between centres rule out most of even those (module
    docstring). Each colour ends where the numba kernel put it: a full search gives the first of
    the nearest centres, otherwise the colour stays unless a moved centre is strictly nearer (the
    nearest such, the first of equals).
    """
    cdef Py_ssize_t n = s.n, nc = s.nc, k = s.k
    cdef const double* X = s.X
    cdef const double* w = s.w
    cdef double* C = s.C
    cdef int32_t* labels = s.labels
    cdef double* dist = s.dist
    cdef double* sums = s.sums
    cdef double* mass = s.mass
    cdef const Near* row
    cdef int32_t* moved = s.moved
    cdef char* is_moved = s.is_moved
    cdef char* changed = s.changed
    cdef const double* x
    cdef Py_ssize_t i, j, q, c
    cdef int32_t own, best, m
    cdef double best_d, own_d, d, wi, error
    cdef int it
    for it in range(iterations):
        for j in range(k):
            is_moved[j] = 0
        for q in range(n_moved):
            is_moved[moved[q]] = 1
        _sort_near(s, n_moved)  # the gaps are those of the centres now
        _sort_moved(s, n_moved)
        for j in range(k):
            changed[j] = 0
        for i in range(n):
            x = X + i * nc
            own = labels[i]
            if is_moved[own]:
                best = _nearest_from(x, C, nc, own, s.near + own * (k - 1), k - 1, &best_d)
            else:
                # own wins a tie, then the first moved centre (the lowest index): only a nearer
                # one is taken. The moved centres in order of their gap to own, up to the first
                # farther than own itself.
                best = own
                best_d = dist[i]
                own_d = best_d
                row = s.near_moved + own * n_moved
                for q in range(n_moved):
                    if row[q].gap > own_d:
                        break
                    m = row[q].j
                    d = _sqdist(x, C + m * nc, nc)
                    if d < best_d or (d == best_d and best != own and m < best):
                        best = m
                        best_d = d
            dist[i] = best_d
            if best != own:
                wi = w[i]
                mass[own] -= wi
                mass[best] += wi
                for c in range(nc):
                    sums[own * nc + c] -= wi * x[c]
                    sums[best * nc + c] += wi * x[c]
                labels[i] = best
                changed[own] = 1
                changed[best] = 1
        n_moved = 0
        for j in range(k):
            if changed[j]:
                if mass[j] > 0:
                    for c in range(nc):
                        C[j * nc + c] = sums[j * nc + c] / mass[j]
                moved[n_moved] = <int32_t>j
                n_moved += 1
        if n_moved == 0:
            break
        _update_gaps(s, moved, n_moved)
    # the distances to the centres moved by the last update (the others are exact already)
    for j in range(k):
        is_moved[j] = 0
    for q in range(n_moved):
        is_moved[moved[q]] = 1
    error = 0.0
    for i in range(n):
        own = labels[i]
        if is_moved[own]:
            dist[i] = _sqdist(X + i * nc, C + own * nc, nc)
        error += w[i] * dist[i]
    return error


cdef Py_ssize_t _draw(const State* s, double target) noexcept nogil:
    """The first colour where the running sum of w × dist reaches ``target``; the last colour if
    rounding leaves it short (NumPy's ``min(searchsorted(cumsum, target), n - 1)``)."""
    cdef Py_ssize_t i
    cdef double total = 0.0
    for i in range(s.n):
        total += s.w[i] * s.dist[i]
        if total >= target:
            return i
    return s.n - 1


cdef double _run(State* s, Py_ssize_t trials, const double* uniforms,
                 const int64_t* picks) noexcept nogil:
    """Assign every colour, then run the trials; returns the error the search tracked (the
    numba kernel's return value)."""
    cdef Py_ssize_t n = s.n, nc = s.nc, k = s.k
    cdef Py_ssize_t i, c, t, row
    cdef int32_t j
    cdef double error = 0.0, trial, wi
    memset(s.sums, 0, k * nc * sizeof(double))
    memset(s.mass, 0, k * sizeof(double))
    for i in range(n):
        j = _nearest(s.X + i * nc, s.C, k, nc, &s.dist[i])
        s.labels[i] = j
        wi = s.w[i]
        s.mass[j] += wi
        for c in range(nc):
            s.sums[j * nc + c] += wi * s.X[i * nc + c]
        error += wi * s.dist[i]
    for j in range(k):  # every gap, from the start
        s.moved[j] = j
        s.dirty[j] = 0
    s.n_dirty = 0
    _update_gaps(s, s.moved, k)
    _clean(s, False)
    for t in range(trials):
        memcpy(s.saved_C, s.C, k * nc * sizeof(double))
        memcpy(s.saved_labels, s.labels, n * sizeof(int32_t))
        memcpy(s.saved_dist, s.dist, n * sizeof(double))
        memcpy(s.saved_sums, s.sums, k * nc * sizeof(double))
        memcpy(s.saved_mass, s.mass, k * sizeof(double))
        # the new place: a colour drawn by its share of the error (the running sum of w × dist
        # over every colour is the error itself, the same sum in the same order)
        row = _draw(s, uniforms[t] * error)
        j = <int32_t>picks[t]
        memcpy(s.C + j * nc, s.X + row * nc, nc * sizeof(double))
        s.moved[0] = j
        _update_gaps(s, s.moved, 1)  # marks it dirty: a rejected trial recomputes its gaps
        trial = _local_lloyd(s, 1, _ITERATIONS)
        if trial < error:
            error = trial
            _clean(s, False)
        else:
            memcpy(s.C, s.saved_C, k * nc * sizeof(double))
            memcpy(s.labels, s.saved_labels, n * sizeof(int32_t))
            memcpy(s.dist, s.saved_dist, n * sizeof(double))
            memcpy(s.sums, s.saved_sums, k * nc * sizeof(double))
            memcpy(s.mass, s.saved_mass, k * sizeof(double))
            _clean(s, True)
    return error


cdef double _nearest_error(const State* s) noexcept nogil:
    """Σ w × squared distance of every colour to its nearest centre, summed in order."""
    cdef Py_ssize_t i
    cdef double d, error = 0.0
    for i in range(s.n):
        _nearest(s.X + i * s.nc, s.C, s.k, s.nc, &d)
        error += s.w[i] * d
    return error


cdef bint _finite(const double* a, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(size):
        if not isfinite(a[i]):
            return False
    return True


cdef bint _valid(const double[:, ::1] X, const double[::1] w, const double[:, ::1] centers,
                 const double[::1] uniforms, const int64_t[::1] picks) noexcept nogil:
    """Every value finite, weights ≥ 0, uniforms in [0, 1), picks in [0, K)."""
    cdef Py_ssize_t n = X.shape[0], nc = X.shape[1], k = centers.shape[0]
    cdef Py_ssize_t i
    if not (_finite(&X[0, 0], n * nc) and _finite(&centers[0, 0], k * nc)):
        return False
    for i in range(n):
        if not (w[i] >= 0.0 and isfinite(w[i])):
            return False
    for i in range(uniforms.shape[0]):
        if not (uniforms[i] >= 0.0 and uniforms[i] < 1.0):
            return False
        if picks[i] < 0 or picks[i] >= k:
            return False
    return True


def random_swap(
    const double[:, ::1] X not None,
    const double[::1] w not None,
    double[:, ::1] centers not None,
    const double[::1] uniforms not None,
    const int64_t[::1] picks not None,
):
    """Random swap from ``centers``, in place: one swap per trial, kept when the error drops.

    Trial t moves centre ``picks[t]`` onto the colour drawn by ``uniforms[t]`` with probability
    proportional to its weight × squared distance to its centre, runs two exact Lloyd iterations
    (only the moved centres are searched), and keeps the result if the weighted error dropped;
    otherwise it restores the centres and assignment from before the trial. Memory: 24 n + 40 K²
    bytes of workspace.

    Parameters
    ----------
    X : (n, C) float64 ndarray, C-contiguous, finite, n ≥ 1, C ≥ 1
    w : (n,) float64 ndarray, finite, ≥ 0
    centers : (K, C) float64 ndarray, C-contiguous, finite, K ≥ 1
        The start; overwritten with the centres found.
    uniforms : (T,) float64 ndarray
        Uniform draws in [0, 1), one per trial.
    picks : (T,) int64 ndarray
        The centre each trial moves, in [0, K).

    Returns
    -------
    float
        The weighted error of ``centers`` on return, Σ w × squared distance of each colour to
        its nearest centre (one last pass: the error the search tracks assigns the colours as
        before the last centroid update, and can sit a little above it). Never above the
        start's.

    Raises
    ------
    ValueError
        For a wrong shape, inconsistent lengths, no colours, no centres, a non-finite value, a
        negative weight, a uniform outside [0, 1) or a pick outside [0, K); before anything runs.
    """
    cdef Py_ssize_t n = X.shape[0], nc = X.shape[1], k = centers.shape[0]
    cdef Py_ssize_t trials = uniforms.shape[0]
    cdef bint ok
    cdef double error
    cdef State s
    if n < 1 or nc < 1:
        raise ValueError(f"X must be (n, C) with n, C >= 1; got ({n}, {nc})")
    if w.shape[0] != n:
        raise ValueError(f"w has {w.shape[0]} weights for {n} colours")
    if centers.shape[1] != nc:
        raise ValueError(f"centers have {centers.shape[1]} channels, the colours {nc}")
    if k < 1 or k > 0x7FFFFFFF:
        raise ValueError(f"centers must hold 1 to 2**31 - 1 rows, not {k}")
    if picks.shape[0] != trials:
        raise ValueError(f"{trials} uniforms but {picks.shape[0]} picks: one of each per trial")
    with nogil:
        ok = _valid(X, w, centers, uniforms, picks)
    if not ok:
        raise ValueError("X, w and centers must be finite, w >= 0, uniforms in [0, 1) "
                         "and picks in [0, K)")
    s.n = n
    s.nc = nc
    s.k = k
    s.X = &X[0, 0]
    s.w = &w[0]
    s.C = &centers[0, 0]
    s.labels = <int32_t*>malloc(n * sizeof(int32_t))
    s.dist = <double*>malloc(n * sizeof(double))
    s.sums = <double*>malloc(k * nc * sizeof(double))
    s.mass = <double*>malloc(k * sizeof(double))
    s.moved = <int32_t*>malloc(k * sizeof(int32_t))
    s.is_moved = <char*>malloc(k)
    s.changed = <char*>malloc(k)
    s.saved_C = <double*>malloc(k * nc * sizeof(double))
    s.saved_labels = <int32_t*>malloc(n * sizeof(int32_t))
    s.saved_dist = <double*>malloc(n * sizeof(double))
    s.saved_sums = <double*>malloc(k * nc * sizeof(double))
    s.saved_mass = <double*>malloc(k * sizeof(double))
    s.gap = <double*>malloc(k * k * sizeof(double))
    s.near = <Near*>malloc((k * (k - 1) + 1) * sizeof(Near))
    s.near_moved = <Near*>malloc(k * k * sizeof(Near))
    s.dirty = <char*>malloc(k)
    s.dirty_list = <int32_t*>malloc(k * sizeof(int32_t))
    try:
        if (s.labels == NULL or s.dist == NULL or s.sums == NULL or s.mass == NULL
                or s.moved == NULL or s.is_moved == NULL or s.changed == NULL
                or s.saved_C == NULL or s.saved_labels == NULL or s.saved_dist == NULL
                or s.saved_sums == NULL or s.saved_mass == NULL or s.gap == NULL
                or s.near == NULL or s.near_moved == NULL or s.dirty == NULL
                or s.dirty_list == NULL):
            raise MemoryError()
        with nogil:
            _run(&s, trials, &uniforms[0] if trials else NULL, &picks[0] if trials else NULL)
            error = _nearest_error(&s)
    finally:
        free(s.labels)
        free(s.dist)
        free(s.sums)
        free(s.mass)
        free(s.moved)
        free(s.is_moved)
        free(s.changed)
        free(s.saved_C)
        free(s.saved_labels)
        free(s.saved_dist)
        free(s.saved_sums)
        free(s.saved_mass)
        free(s.gap)
        free(s.near)
        free(s.near_moved)
        free(s.dirty)
        free(s.dirty_list)
    return error
