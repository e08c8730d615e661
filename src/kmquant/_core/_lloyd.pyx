"""The bounded (Yinyang) Lloyd step of the native engine and its helpers.

See :mod:`kmquant.engines.native_engine` for the algorithm, the determinism and the memory rules;
that module owns the state (bounds, groups) and allocates every array handed to these functions.

Every ``def`` checks the shapes of its arrays and raises ``ValueError`` before any loop runs
(typed memoryviews already reject a wrong dtype or a non-contiguous array); the kernels then run
without the GIL. Arrays of indices are ``intp`` (``Py_ssize_t``).

The kernels copy what they read from :c:type:`Ctx` into local variables first: a store through a
``char`` or ``Py_ssize_t`` pointer could alias the struct, and the compiler would reload every
field after each one.
"""

from cython.parallel cimport prange
from libc.math cimport INFINITY, sqrt
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset

cimport openmp

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #include <math.h>
    /* bounds are shrunk by this relative amount against rounding (as the numba engine did) */
    #define KMQ_SLACK 1e-9
    /* fixed row blocks: the partial sums, and so the results, do not depend on the threads */
    #define KMQ_N_BLOCKS 64

    /* b as a float32 strictly below it: one float32 step toward -inf when the nearest float32
       is not below b. Without a branch (about half of all stores need the step, at random) or a
       call: the step is -1 on the bits of a positive float, +1 on a negative one, and +0 is first
       made -0 (whose step is the smallest negative subnormal; a +0 that needs no step comes back
       as -0). NaN stays NaN, -inf stays -inf, +inf becomes FLT_MAX. The shift of a negative int32
       is arithmetic on every compiler the package builds with (GCC, Clang, MSVC). */
    static inline float kmq_down(double b) {
        float f = (float)b;
        int32_t i, sign, need;
        memcpy(&i, &f, sizeof i);
        i |= (int32_t)((uint32_t)(i == 0) << 31);
        sign = i >> 31;                                  /* 0 or -1 */
        need = -(int32_t)(((double)f >= b) & (f != -INFINITY));  /* 0 or -1 */
        i = (int32_t)((uint32_t)i - (uint32_t)((1 | sign) & need));
        memcpy(&f, &i, sizeof f);
        return f;
    }
    """
    const double SLACK "KMQ_SLACK"
    const Py_ssize_t N_BLOCKS_C "KMQ_N_BLOCKS"
    float _down "kmq_down"(double b) noexcept nogil

#: Number of fixed row blocks (each with its own partial sums).
N_BLOCKS = N_BLOCKS_C


cdef struct Ctx:
    # data and centres
    const double* X             # (n, C)
    const double* w             # (n,)
    const double* centers       # (K, C)
    const double* grouped_t     # (C, K): centres in group order, transposed
    const Py_ssize_t* members   # (K,) centre at each position of the group order
    const Py_ssize_t* starts    # (G + 1,) first position of each group
    const Py_ssize_t* group_of  # (K,)
    const double* half_gap      # (K,)
    const double* g_mean_t      # (C, G) ball centres, transposed
    const double* g_radius      # (G,)
    const double* drift         # (G,)
    double drift_all
    # state and outputs
    Py_ssize_t* labels          # (n,)
    float* lower                # (n, G)
    double* bound               # (n,)
    double* sq_dist             # (n,)
    double* inertia             # (B,) or NULL: no accumulation (assign only)
    # per-block scratch: block b owns block_bytes (a multiple of 64) from blocks + b block_bytes,
    # so no two threads write into one cache line (see _block_bytes)
    char* blocks
    Py_ssize_t block_bytes
    Py_ssize_t* n_distances     # (B,) distances computed by each block
    Py_ssize_t n, nc, k, ng
    bint fresh


cdef struct Found:
    double m1           # smallest squared distance
    double m2           # second smallest
    Py_ssize_t a1       # centre at m1


cdef inline void _distances(const double* x, Py_ssize_t nc, const double* ct, Py_ssize_t ld,
                            double* dist, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """Squared distances of the row ``x`` (C,) to the columns lo…hi-1 of ``ct`` (C, ld)."""
    cdef Py_ssize_t p, c
    cdef double x0, x1, x2, t0, t1, t2, xc, t
    cdef const double* c0
    cdef const double* c1
    cdef const double* c2
    if nc == 3:  # RGB: one fused pass (same sums, in the same order)
        x0 = x[0]
        x1 = x[1]
        x2 = x[2]
        c0 = ct
        c1 = ct + ld
        c2 = ct + 2 * ld
        for p in range(lo, hi):
            t0 = x0 - c0[p]
            t1 = x1 - c1[p]
            t2 = x2 - c2[p]
            dist[p] = t0 * t0 + t1 * t1 + t2 * t2
        return
    for p in range(lo, hi):
        dist[p] = 0.0
    for c in range(nc):
        xc = x[c]
        c0 = ct + c * ld
        for p in range(lo, hi):  # contiguous over p: vectorises
            t = xc - c0[p]
            dist[p] += t * t


cdef inline Found _search_group(const double* x, Py_ssize_t nc, const double* grouped_t,
                                Py_ssize_t k, const Py_ssize_t* members, double* dist,
                                Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    """Exact search of the centres at positions lo…hi-1 (hi > lo) of the group order for the row
    ``x``; ties go to the lower centre index.

    Three short passes without data-dependent branches (the minimum, its first position, the
    minimum of the rest) instead of one pass whose comparisons the processor cannot predict.
    Within a group the centres are in increasing index order, so the first position holding the
    minimum is the lowest index.
    """
    cdef Py_ssize_t p, first = hi - 1
    cdef double v
    cdef Found r
    _distances(x, nc, grouped_t, k, dist, lo, hi)
    r.m1 = INFINITY
    for p in range(lo, hi):
        v = dist[p]
        r.m1 = v if v < r.m1 else r.m1
    for p in range(hi - 1, lo - 1, -1):
        first = p if dist[p] == r.m1 else first
    r.m2 = INFINITY
    for p in range(lo, hi):
        v = dist[p] if p != first else INFINITY
        r.m2 = v if v < r.m2 else r.m2
    r.a1 = members[first]
    return r


cdef inline double _smallest_bound(const float* lower, const double* drift,
                                   Py_ssize_t ng) noexcept nogil:
    """The smallest group bound of a row: min over g of lower[g] - drift[g]."""
    cdef Py_ssize_t g
    cdef double smallest = INFINITY, v
    for g in range(ng):
        v = <double>lower[g] - drift[g]
        smallest = v if v < smallest else smallest
    return smallest


cdef inline Found _search_fresh(
    const double* x, Py_ssize_t nc, const double* grouped_t, Py_ssize_t k,
    const Py_ssize_t* members, const Py_ssize_t* starts, const double* g_mean_t,
    const double* g_radius, const double* drift, Py_ssize_t ng, double* dist, double* g_min1,
    Py_ssize_t* g_arg1, double* g_min2, unsigned char* searched, float* lower,
    Py_ssize_t* n_distances,
) noexcept nogil:
    """Nearest centre of the row ``x`` with no bounds yet (``a1``, at squared distance ``m1``),
    and fresh group bounds in ``lower`` (G,); adds the distances it computed to ``n_distances``.

    Each group of centres lies in a ball (centre ``g_mean_t[:, g]``, radius ``g_radius[g]``), so
    no centre of group g is nearer than ``|x - g_mean[g]| - g_radius[g]``. The group with the
    nearest ball centre is searched first; another group is searched only if its ball could hold a
    centre at most as far as the best so far; the others keep that distance as their bound.
    """
    cdef Py_ssize_t g, q, first = 0, best = -1
    cdef double nearest = INFINITY, d_best = INFINITY, reach = INFINITY, other, v
    cdef Found f
    _distances(x, nc, g_mean_t, ng, g_min2, 0, ng)  # squared distances to the ball centres
    for g in range(ng):
        if g_min2[g] < nearest:
            first = g
            nearest = g_min2[g]
    for g in range(ng):  # conservative: rounding in either term only lowers the bound
        g_min1[g] = sqrt(g_min2[g]) * (1.0 - SLACK) - g_radius[g] * (1.0 + SLACK)
        g_arg1[g] = -1
        searched[g] = 0
    for q in range(ng + 1):
        g = first if q == 0 else q - 1
        if q > 0 and (g == first or g_min1[g] > reach):
            continue
        f = _search_group(x, nc, grouped_t, k, members, dist, starts[g], starts[g + 1])
        n_distances[0] += starts[g + 1] - starts[g]
        searched[g] = 1
        g_min1[g] = f.m1
        g_arg1[g] = f.a1
        g_min2[g] = f.m2
        # q == 0 takes the first group whatever its distances (inf or NaN): best stays an index
        if q == 0 or f.m1 < d_best or (f.m1 == d_best and f.a1 < best):
            d_best = f.m1
            best = f.a1
            reach = sqrt(d_best)
    for g in range(ng):  # selects, not branches: which groups were searched is random
        other = g_min2[g] if g_arg1[g] == best else g_min1[g]
        v = g_min1[g] if g_min1[g] > 0.0 else 0.0
        v = sqrt(other) * (1.0 - SLACK) if searched[g] else v
        lower[g] = _down(v + drift[g])
    f.m1 = d_best
    f.a1 = best
    return f


cdef void _step_block(const Ctx* s, Py_ssize_t b) noexcept nogil:
    """Rows of block b of one bounded Lloyd step, into block b's partial sums.

    ``lower[i, g] - drift[g]`` bounds the distance of row i to the centres of group g other than
    its own; ``bound[i] - drift_all`` bounds the smallest of those over all groups.
    """
    # everything the loop reads, in locals (see the module docstring)
    cdef const double* X = s.X
    cdef const double* w = s.w
    cdef const double* centers = s.centers
    cdef const double* grouped_t = s.grouped_t
    cdef const Py_ssize_t* members = s.members
    cdef const Py_ssize_t* starts = s.starts
    cdef const Py_ssize_t* group_of = s.group_of
    cdef const double* half_gap = s.half_gap
    cdef const double* g_mean_t = s.g_mean_t
    cdef const double* g_radius = s.g_radius
    cdef const double* drift = s.drift
    cdef double drift_all = s.drift_all
    cdef Py_ssize_t* labels = s.labels
    cdef float* lower_all = s.lower
    cdef double* bound = s.bound
    cdef double* sq_dist = s.sq_dist
    cdef Py_ssize_t nc = s.nc, k = s.k, ng = s.ng
    cdef bint fresh = s.fresh
    cdef Py_ssize_t size = (s.n + N_BLOCKS_C - 1) // N_BLOCKS_C
    cdef Py_ssize_t start = b * size, stop = min(s.n, (b + 1) * size)
    cdef double* dist = <double*>(s.blocks + b * s.block_bytes)
    cdef double* g_min1 = dist + k
    cdef double* g_min2 = g_min1 + ng
    cdef double* sums = g_min2 + ng
    cdef double* mass = sums + k * nc
    cdef Py_ssize_t* g_arg1 = <Py_ssize_t*>(mass + k)
    cdef unsigned char* searched = <unsigned char*>(g_arg1 + ng)
    cdef unsigned char* bad = <unsigned char*>(s.blocks + (b + 1) * s.block_bytes - 1)  # last byte
    cdef bint accumulate = s.inertia != NULL
    cdef Py_ssize_t g, c, i, own, best, n_searched
    cdef const double* x
    cdef const double* own_c
    cdef float* lower
    cdef double d_best, upper, t, other, wi, acc = 0.0
    cdef Py_ssize_t n_distances = (stop - start) * (ng + 1 if fresh else 1)  # balls or own centre
    cdef float shrunk
    cdef Found f
    bad[0] = 0
    if accumulate:  # summed in the block's own lines; _new_centers adds the blocks up
        memset(sums, 0, k * nc * sizeof(double))
        memset(mass, 0, k * sizeof(double))
    for i in range(start, stop):
        x = X + i * nc
        lower = lower_all + i * ng
        if fresh:
            f = _search_fresh(x, nc, grouped_t, k, members, starts, g_mean_t, g_radius, drift, ng,
                              dist, g_min1, g_arg1, g_min2, searched, lower, &n_distances)
            best = f.a1
            d_best = f.m1
            bound[i] = _smallest_bound(lower, drift, ng) + drift_all
            labels[i] = best
        else:
            own = labels[i]
            if <size_t>own >= <size_t>k:  # not a label of these centres: refuse, never read past
                bad[0] = 1
                return
            best = own
            own_c = centers + own * nc
            d_best = 0.0
            for c in range(nc):
                t = x[c] - own_c[c]
                d_best += t * t
            upper = sqrt(d_best)
            if upper >= half_gap[own] and upper >= bound[i] - drift_all:
                n_searched = 0
                for g in range(ng):
                    searched[g] = <double>lower[g] - drift[g] <= upper
                    if not searched[g]:
                        continue
                    n_searched += 1
                    n_distances += starts[g + 1] - starts[g]
                    f = _search_group(x, nc, grouped_t, k, members, dist, starts[g],
                                      starts[g + 1])
                    g_min1[g] = f.m1
                    g_arg1[g] = f.a1
                    g_min2[g] = f.m2
                    if f.m1 < d_best or (f.m1 == d_best and f.a1 < best):
                        d_best = f.m1
                        best = f.a1
                if n_searched:
                    for g in range(ng):
                        if searched[g]:
                            other = g_min2[g] if g_arg1[g] == best else g_min1[g]
                            lower[g] = _down(sqrt(other) * (1.0 - SLACK) + drift[g])
                    g = group_of[own]
                    if best != own and not searched[g]:  # the old centre: now an "other"
                        shrunk = _down(upper * (1.0 - SLACK) + drift[g])
                        lower[g] = shrunk if shrunk < lower[g] else lower[g]
                    labels[i] = best
                # even when no group needed a search, the group bounds give a tighter global
                # bound than the one that just failed: without it the row is checked group by
                # group again at every step
                bound[i] = _smallest_bound(lower, drift, ng) + drift_all
        sq_dist[i] = d_best
        if accumulate:
            wi = w[i]
            acc += wi * d_best
            mass[best] += wi
            for c in range(nc):
                sums[best * nc + c] += wi * x[c]
    s.n_distances[b] = n_distances
    if accumulate:
        s.inertia[b] = acc


cdef void _new_centers(const Ctx* s, double* new_centers, double* total) noexcept nogil:
    """Add the blocks' partial sums up in block order (0, 1, …, 63: NumPy's order for a sum over
    the first axis, so the same bits as the numba engine) and divide: the weighted mean of each
    cluster into ``new_centers`` (K, C); a cluster without weight keeps its centre. ``total``
    holds K (C + 1) doubles of scratch."""
    cdef Py_ssize_t k = s.k, nc = s.nc, size = k * (nc + 1), b, j, a, c
    cdef const double* part
    cdef double m
    # in each block's scratch, sums (K, C) then mass (K) follow dist (K), g_min1, g_min2 (G)
    memcpy(total, <const double*>s.blocks + k + 2 * s.ng, size * sizeof(double))
    for b in range(1, N_BLOCKS_C):
        part = <const double*>(s.blocks + b * s.block_bytes) + k + 2 * s.ng
        for j in range(size):
            total[j] += part[j]
    for a in range(k):
        m = total[k * nc + a]
        for c in range(nc):
            if m > 0:
                new_centers[a * nc + c] = total[a * nc + c] / m
            else:
                new_centers[a * nc + c] = s.centers[a * nc + c]


cdef inline Py_ssize_t _block_bytes(Py_ssize_t k, Py_ssize_t nc, Py_ssize_t ng) noexcept nogil:
    """Bytes of one block's scratch, rounded up to whole 64-byte cache lines: dist (K), g_min1,
    g_min2 (G), sums (K C), mass (K) as doubles, g_arg1 (G) indices, searched (G) and bad (1)
    flags. Threads take neighbouring blocks (bit-reversed order), so unpadded scratch would share
    lines between threads."""
    cdef Py_ssize_t size = (2 * k + 2 * ng + k * nc) * sizeof(double) \
        + ng * sizeof(Py_ssize_t) + ng + 1
    return (size + 63) // 64 * 64


cdef inline Py_ssize_t _bit_reversed(Py_ssize_t q) noexcept nogil:
    """q (0…63) with its six bits reversed: thread shares spread over the whole row range."""
    cdef Py_ssize_t r = 0, j
    for j in range(6):
        r = (r << 1) | ((q >> j) & 1)
    return r


cdef void _half_gaps(const double* centers_t, Py_ssize_t k, Py_ssize_t nc, double* out,
                     double* row) noexcept nogil:
    """Half the distance from each centre to its nearest other centre, shrunk by the slack; inf
    when K = 1. A row nearer its centre than this has no closer centre.

    ``centers_t`` (C, K) is the transposed centres, so that the distances of one centre to the
    following ones vectorise as a row's do; ``row`` holds K + C doubles of scratch.
    """
    cdef Py_ssize_t a, b, c
    cdef double m, v
    cdef double* x = row + k
    for a in range(k):
        out[a] = INFINITY
    for a in range(k - 1):
        for c in range(nc):
            x[c] = centers_t[c * k + a]
        _distances(x, nc, centers_t, k, row, a + 1, k)
        m = out[a]
        for b in range(a + 1, k):
            v = row[b]
            m = v if v < m else m
        out[a] = m
        for b in range(a + 1, k):
            v = row[b]
            out[b] = v if v < out[b] else out[b]
    for a in range(k):
        out[a] = 0.5 * sqrt(out[a]) * (1.0 - SLACK)


def scratch_bytes(Py_ssize_t k, Py_ssize_t n_channels, Py_ssize_t n_groups):
    """Bytes of working memory :func:`lloyd_step` needs for K centres of C channels in G groups
    (the session keeps one buffer rather than allocate it at every call)."""
    if k < 1 or n_channels < 1 or n_groups < 1:
        raise ValueError("K, C and G must be at least 1")
    return _scratch_bytes(k, n_channels, n_groups)


cdef inline Py_ssize_t _scratch_bytes(Py_ssize_t k, Py_ssize_t nc, Py_ssize_t ng) noexcept nogil:
    """64 (alignment) + the blocks' scratch + their distance counts + grouped_t, centers_t (C, K),
    half_gap (K), the half gaps' row (K + C) and the blocks' total (K (C + 1)) as doubles."""
    return (64 + N_BLOCKS_C * (_block_bytes(k, nc, ng) + sizeof(Py_ssize_t))
            + (3 * nc * k + 3 * k + nc) * sizeof(double))


cdef int _check_groups(const Py_ssize_t[::1] group_of, const Py_ssize_t[::1] members,
                       const Py_ssize_t[::1] starts, Py_ssize_t k, Py_ssize_t ng) except -1:
    """ValueError unless ``members`` lists the K centres group by group, in increasing index
    order within a group, ``starts`` (G + 1,) cuts it into G non-empty groups and ``group_of``
    agrees."""
    cdef Py_ssize_t g, p, a
    if group_of.shape[0] != k or members.shape[0] != k or starts.shape[0] != ng + 1:
        raise ValueError(f"group_of and members must have K = {k} entries and starts G + 1 = "
                         f"{ng + 1}; got {group_of.shape[0]}, {members.shape[0]}, "
                         f"{starts.shape[0]}")
    if starts[0] != 0 or starts[ng] != k:
        raise ValueError("starts must run from 0 to K")
    for g in range(ng):
        if starts[g + 1] <= starts[g]:
            raise ValueError("starts must increase strictly (no empty group)")
        for p in range(starts[g], starts[g + 1]):
            a = members[p]
            if a < 0 or a >= k or group_of[a] != g:
                raise ValueError("members and group_of disagree")
            if p > starts[g] and a <= members[p - 1]:
                raise ValueError("members must increase within a group")
    return 0


def lloyd_step(
    const double[:, ::1] X, const double[::1] w, const double[:, ::1] centers,
    Py_ssize_t[::1] labels, float[:, ::1] lower, double[::1] bound,
    const double[::1] drift, double drift_all,
    const Py_ssize_t[::1] group_of, const Py_ssize_t[::1] members, const Py_ssize_t[::1] starts,
    const double[:, ::1] g_mean_t, const double[::1] g_radius, bint fresh,
    double[::1] sq_dist, double[:, ::1] new_centers, double[::1] inertia,
    unsigned char[::1] scratch, int n_threads, bint parallel,
):
    """One bounded Lloyd step (or, with ``sums`` None, only the assignment), in place.

    Parameters
    ----------
    X : (n, C) float64
    w : (n,) float64
    centers : (K, C) float64
    labels : (n,) intp
        In: each row's centre at the previous call (ignored when ``fresh``); out: the nearest.
    lower : (n, G) float32
        Group bounds plus the drift at the time they were stored (updated).
    bound : (n,) float64
        Global bound plus ``drift_all`` at the time it was stored (updated).
    drift : (G,) float64
        Largest move of a centre of each group, summed over the calls since the bounds began.
    drift_all : float
        The same for all centres.
    group_of : (K,) intp
    members : (K,) intp
        The centres ordered by group, increasing within each group.
    starts : (G + 1,) intp
        Position in ``members`` where each group starts, and K.
    g_mean_t : (C, G) float64
        Transposed mean of each group's centres (at the time the groups were made).
    g_radius : (G,) float64
        Largest distance of a centre of the group to that mean.
    fresh : bool
        No bounds yet: search from the group balls.
    sq_dist : (n,) float64
        Out: squared distance of each row to its nearest centre.
    new_centers : (K, C) float64 or None
        Out: the weighted mean of each cluster (a cluster without weight keeps its centre);
        None skips the accumulation (assign only).
    inertia : (64,) float64 or None
        Out: per-block weighted sum of squared distances (add them up in a fixed order).
    scratch : (scratch_bytes(K, C, G),) uint8
        Working memory (any content; a longer buffer is fine).
    n_threads : int
        OpenMP threads when ``parallel`` (at least 1).
    parallel : bool
        Spread the 64 blocks over threads; otherwise run them in the calling thread.

    Returns
    -------
    int
        Squared distances computed (one per row for its own centre or, fresh, per group ball,
        plus those of the searched groups): the work of the call, which the engine uses to
        decide whether the next call is worth threads. The same whatever the threads.

    Raises
    ------
    ValueError
        Inconsistent shapes or groups, or (not ``fresh``) a label outside 0…K-1.
    """
    cdef Py_ssize_t n = X.shape[0], nc = X.shape[1], k = centers.shape[0], ng = lower.shape[1]
    cdef Py_ssize_t b, q, p, c
    cdef Ctx s
    cdef int nt = n_threads
    cdef bint failed = False
    cdef Py_ssize_t n_distances = 0
    if nc < 1 or k < 1 or ng < 1 or ng > k:
        raise ValueError(f"need C ≥ 1, K ≥ 1 and 1 ≤ G ≤ K; got C = {nc}, K = {k}, G = {ng}")
    if centers.shape[1] != nc:
        raise ValueError(f"centers must be (K, {nc}); got ({k}, {centers.shape[1]})")
    if (w.shape[0] != n or labels.shape[0] != n or lower.shape[0] != n or bound.shape[0] != n
            or sq_dist.shape[0] != n):
        raise ValueError(f"w, labels, lower, bound and sq_dist must have n = {n} rows")
    if drift.shape[0] != ng or g_radius.shape[0] != ng or g_mean_t.shape[0] != nc \
            or g_mean_t.shape[1] != ng:
        raise ValueError(f"drift, g_radius must be ({ng},) and g_mean_t ({nc}, {ng})")
    _check_groups(group_of, members, starts, k, ng)
    if (new_centers is None) != (inertia is None):
        raise ValueError("new_centers and inertia go together (both or neither)")
    if new_centers is not None:
        if (new_centers.shape[0] != k or new_centers.shape[1] != nc
                or inertia.shape[0] != N_BLOCKS_C):
            raise ValueError(f"new_centers, inertia must be ({k}, {nc}), ({N_BLOCKS_C},)")
    if nt < 1:
        raise ValueError(f"n_threads must be at least 1; got {nt}")

    s.X = &X[0, 0]
    s.w = &w[0]
    s.centers = &centers[0, 0]
    s.members = &members[0]
    s.starts = &starts[0]
    s.group_of = &group_of[0]
    s.g_mean_t = &g_mean_t[0, 0]
    s.g_radius = &g_radius[0]
    s.drift = &drift[0]
    s.drift_all = drift_all
    s.labels = &labels[0]
    s.lower = &lower[0, 0]
    s.bound = &bound[0]
    s.sq_dist = &sq_dist[0]
    s.inertia = NULL
    if inertia is not None:
        s.inertia = &inertia[0]
    s.n = n
    s.nc = nc
    s.k = k
    s.ng = ng
    s.fresh = fresh

    if scratch.shape[0] < _scratch_bytes(k, nc, ng):
        raise ValueError(f"scratch must hold scratch_bytes(K, C, G) = {_scratch_bytes(k, nc, ng)}"
                         f" bytes; got {scratch.shape[0]}")
    cdef Py_ssize_t block_bytes = _block_bytes(k, nc, ng)
    cdef char* base = <char*>&scratch[0]
    cdef double* work
    with nogil:
        s.blocks = base + (64 - <size_t>base % 64)  # aligned to a cache line
        s.block_bytes = block_bytes
        s.n_distances = <Py_ssize_t*>(s.blocks + N_BLOCKS_C * block_bytes)
        work = <double*>(s.n_distances + N_BLOCKS_C)
        s.grouped_t = work
        s.half_gap = work + nc * k
        for c in range(nc):  # grouped_t[c, p] = centers[members[p], c]; centers_t[c, p]
            for p in range(k):
                work[c * k + p] = centers[members[p], c]
                work[nc * k + k + c * k + p] = centers[p, c]
        _half_gaps(work + nc * k + k, k, nc, work + nc * k, work + 2 * nc * k + k)
        if parallel:
            for q in prange(N_BLOCKS_C, schedule="dynamic", num_threads=nt):
                _step_block(&s, _bit_reversed(q))
        else:
            for b in range(N_BLOCKS_C):
                _step_block(&s, b)
        for b in range(N_BLOCKS_C):
            if (s.blocks + b * block_bytes)[block_bytes - 1]:
                failed = True
            n_distances += s.n_distances[b]
        if s.inertia != NULL and not failed:
            _new_centers(&s, &new_centers[0, 0], work + 2 * nc * k + 2 * k + nc)
    if failed:
        raise ValueError(f"labels must lie in 0…{k - 1} (the bounds belong to other centres)")
    return n_distances


def group_lloyd(const double[:, ::1] centers, Py_ssize_t n_groups, Py_ssize_t[::1] group):
    """Split centres into nearby groups: five Lloyd steps on the centres themselves, from the
    first G of them (k-means++ order: spread out); a group left empty keeps its mean.

    Parameters
    ----------
    centers : (K, C) float64
    n_groups : int
        G, in 1…K.
    group : (K,) intp
        Out: the group of each centre, in 0…G-1 (not every one need be used).

    Raises
    ------
    ValueError
        Inconsistent shapes or G outside 1…K.
    """
    cdef Py_ssize_t k = centers.shape[0], nc = centers.shape[1]
    if group.shape[0] != k or k < 1 or nc < 1:
        raise ValueError(f"group must have K = {k} ≥ 1 entries; got {group.shape[0]}")
    cdef Py_ssize_t ng = n_groups
    if ng < 1 or ng > k:
        raise ValueError(f"the number of groups must lie in 1…{k}; got {ng}")
    cdef double* means = <double*>malloc(2 * ng * (nc + 1) * sizeof(double))
    if means == NULL:
        raise MemoryError()
    cdef Py_ssize_t it, a, g, c, best
    cdef double d, t, best_d
    try:
        with nogil:
            for g in range(ng):
                for c in range(nc):
                    means[g * nc + c] = centers[g, c]
            for it in range(5):
                for a in range(k):
                    best = 0
                    best_d = INFINITY
                    for g in range(ng):
                        d = 0.0
                        for c in range(nc):
                            t = centers[a, c] - means[g * nc + c]
                            d += t * t
                        if d < best_d:
                            best = g
                            best_d = d
                    group[a] = best
                _group_means(&centers[0, 0], k, nc, &group[0], ng, means,
                             means + ng * nc)
    finally:
        free(means)


cdef void _group_means(const double* centers, Py_ssize_t k, Py_ssize_t nc,
                       const Py_ssize_t* group, Py_ssize_t ng, double* means,
                       double* work) noexcept nogil:
    """Mean of each group's centres into means (G, C); an empty group keeps its row.
    ``work`` holds G (C + 1) doubles."""
    cdef Py_ssize_t a, g, c
    cdef double* sums = work
    cdef double* count = work + ng * nc
    memset(work, 0, ng * (nc + 1) * sizeof(double))
    for a in range(k):
        count[group[a]] += 1.0
        for c in range(nc):
            sums[group[a] * nc + c] += centers[a * nc + c]
    for g in range(ng):
        if count[g] > 0:
            for c in range(nc):
                means[g * nc + c] = sums[g * nc + c] / count[g]


def group_balls(const double[:, ::1] centers, const Py_ssize_t[::1] group_of,
                double[:, ::1] means, double[::1] radius):
    """Mean of each group's centres and the largest distance of one to it.

    Parameters
    ----------
    centers : (K, C) float64
    group_of : (K,) intp
        Group of each centre, in 0…G-1.
    means : (G, C) float64
        Out (must hold zeros on entry: an empty group keeps them).
    radius : (G,) float64
        Out.

    Raises
    ------
    ValueError
        Inconsistent shapes or a group outside 0…G-1.
    """
    cdef Py_ssize_t k = centers.shape[0], nc = centers.shape[1], ng = means.shape[0], a, c, g
    cdef double d, t
    if k < 1 or nc < 1 or ng < 1 or group_of.shape[0] != k or means.shape[1] != nc \
            or radius.shape[0] != ng:
        raise ValueError(f"need centers (K ≥ 1, C ≥ 1), group_of (K,), means (G ≥ 1, C), "
                         f"radius (G,); got K = {k}, C = {nc}, group_of {group_of.shape[0]}, "
                         f"means ({ng}, {means.shape[1]}), radius {radius.shape[0]}")
    for a in range(k):
        if group_of[a] < 0 or group_of[a] >= ng:
            raise ValueError(f"group_of must lie in 0…{ng - 1}")
    cdef double* work = <double*>malloc(ng * (nc + 1) * sizeof(double))
    if work == NULL:
        raise MemoryError()
    try:
        with nogil:
            _group_means(&centers[0, 0], k, nc, &group_of[0], ng, &means[0, 0], work)
            for g in range(ng):
                radius[g] = 0.0
            for a in range(k):
                g = group_of[a]
                d = 0.0
                for c in range(nc):
                    t = centers[a, c] - means[g, c]
                    d += t * t
                d = sqrt(d)
                radius[g] = d if d > radius[g] else radius[g]
    finally:
        free(work)


def update_drift(const double[:, ::1] centers, const double[:, ::1] previous,
                 const Py_ssize_t[::1] group_of, double[::1] drift):
    """Add to ``drift[g]`` (G,) the largest move of a centre of group g from ``previous`` to
    ``centers`` (K, C); return the largest move of all (for the global bound).

    Raises
    ------
    ValueError
        Inconsistent shapes or a group outside 0…G-1.
    """
    cdef Py_ssize_t k = centers.shape[0], nc = centers.shape[1], ng = drift.shape[0], a, c, g
    cdef double d, t, largest = 0.0
    if previous.shape[0] != k or previous.shape[1] != nc or group_of.shape[0] != k or ng < 1:
        raise ValueError(f"previous must be ({k}, {nc}), group_of ({k},) and drift non-empty")
    for a in range(k):
        if group_of[a] < 0 or group_of[a] >= ng:
            raise ValueError(f"group_of must lie in 0…{ng - 1}")
    cdef double* moves = <double*>malloc(ng * sizeof(double))
    if moves == NULL:
        raise MemoryError()
    try:
        with nogil:
            for g in range(ng):
                moves[g] = 0.0
            for a in range(k):
                d = 0.0
                for c in range(nc):
                    t = centers[a, c] - previous[a, c]
                    d += t * t
                d = sqrt(d)
                g = group_of[a]
                moves[g] = d if d > moves[g] else moves[g]
            for g in range(ng):
                drift[g] += moves[g]
                largest = moves[g] if moves[g] > largest else largest
    finally:
        free(moves)
    return largest


def max_threads():
    """OpenMP's default number of threads (all cores unless OMP_NUM_THREADS says otherwise)."""
    return openmp.omp_get_max_threads()


def round_down(const double[::1] values, float[::1] out):
    """The float32 stored for each bound in ``values`` (n,): the largest float32 strictly below it
    (NaN stays NaN, -inf stays -inf), into ``out`` (n,). For the tests of the bound storage.

    Raises
    ------
    ValueError
        ``out`` of another length.
    """
    cdef Py_ssize_t i, n = values.shape[0]
    if out.shape[0] != n:
        raise ValueError(f"out must have {n} entries; got {out.shape[0]}")
    with nogil:
        for i in range(n):
            out[i] = _down(values[i])
