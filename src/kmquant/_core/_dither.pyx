"""Dithering kernels: exact nearest palette colour, ordered (Bayer) and Floyd–Steinberg.

The algorithms and their float64 arithmetic, operation by operation, are those described in
``kmquant.dither`` (which calls these functions and prepares their tables); this module only runs
them. Every function validates its arrays and raises ``ValueError`` before any loop runs, and
releases the GIL while it works. Everything runs in one thread in a fixed order.

Arrays, for an image of H × W pixels with C channels and a palette of K entries:

``pixels``  (H, W, C) uint8, C-contiguous; C = 1, 3 or 4 (the fourth channel is alpha).
``palette`` (K, C) float64, C-contiguous; 1 ≤ K ≤ 256.
``order``   (K, K) int64: row h lists every entry by distance from entry h, nearest first.
``gap``     (K, K) float64: those distances, ``gap[h, m] = ‖palette[h] − palette[order[h, m]]‖``.
``clear``   (n,) int64: the fully transparent (alpha 0) entries, each in 0..K-1.
``out``     (H, W) uint8, C-contiguous: receives the palette indices.
"""

from libc.math cimport INFINITY, sqrt
from libc.stdint cimport int64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset

# Relative slack on the triangle-inequality bound, far above float64 rounding (about 1e-16):
# a pruned entry is farther for certain; a larger slack would only visit more entries.
cdef double _SLACK = 1e-9
cdef double _GROW = 1.0 + _SLACK
# Floyd–Steinberg weights: ahead in the row, and behind, under, ahead in the next row.
cdef double _W_AHEAD = 7.0 / 16.0
cdef double _W_BEHIND = 3.0 / 16.0
cdef double _W_UNDER = 5.0 / 16.0
cdef double _W_DIAG = 1.0 / 16.0


# --------------------------------------------------------------------------------------------
# Nearest-colour search


cdef inline Py_ssize_t _nearest(
    const double* v, const double* pal, const int64_t* order, const double* gap,
    Py_ssize_t k, Py_ssize_t nc, Py_ssize_t hint,
) noexcept nogil:
    """Exact nearest entry of colour ``v`` (nc,), searched outward from entry ``hint``.

    ``order[h]`` lists all entries by distance from entry h (``gap[h]`` those distances). An entry
    j with ``d(h, j) > d(v, h) + d(v, best)`` is strictly farther from v than the best one, so the
    walk stops there. Ties go to the lower index.
    """
    cdef const double* row = pal + hint * nc
    cdef const int64_t* walk = order + hint * k
    cdef const double* dist = gap + hint * k
    cdef double best_d = 0.0
    cdef double t, d, r_hint, limit
    cdef Py_ssize_t best = hint
    cdef Py_ssize_t c, m, j
    for c in range(nc):
        t = v[c] - row[c]
        best_d += t * t
    r_hint = sqrt(best_d)
    limit = (r_hint + r_hint) * _GROW + _SLACK
    for m in range(k):
        if dist[m] > limit:
            break
        j = walk[m]
        if j == hint:
            continue
        row = pal + j * nc
        d = 0.0
        for c in range(nc):
            t = v[c] - row[c]
            d += t * t
        if d < best_d or (d == best_d and j < best):
            best_d = d
            best = j
            limit = (r_hint + sqrt(d)) * _GROW + _SLACK
    return best


cdef inline Py_ssize_t _transparent_entry(
    const unsigned char* px, const double* pal, const int64_t* clear, Py_ssize_t n_clear,
    Py_ssize_t nc,
) noexcept nogil:
    """Nearest of the ``n_clear`` alpha-0 entries ``clear`` to pixel ``px``; ties to the lower
    index (the first listed)."""
    cdef Py_ssize_t best = clear[0]
    cdef double best_d = INFINITY
    cdef double t, d
    cdef Py_ssize_t i, j, c
    for i in range(n_clear):
        j = clear[i]
        d = 0.0
        for c in range(nc):
            t = <double>px[c] - pal[j * nc + c]
            d += t * t
        if d < best_d:
            best_d = d
            best = j
    return best


cdef inline double _clamp_ratio(
    const unsigned char* px, const double* s, double margin, Py_ssize_t n_color,
) noexcept nogil:
    """The largest share (at most 1) of the error ``s`` that keeps every colour channel of
    ``px + share × s`` within ``margin`` levels of 0..255 (the error is scaled as a vector)."""
    cdef double ratio = 1.0
    cdef double p, a, q
    cdef Py_ssize_t c
    for c in range(n_color):
        p = px[c]
        a = p + s[c]
        if a > 255.0 + margin:
            q = (255.0 + margin - p) / s[c]
            if q < ratio:
                ratio = q
        elif a < -margin:
            q = (-margin - p) / s[c]
            if q < ratio:
                ratio = q
    return ratio


cdef inline void _spread_error(
    const double* v, const double* chosen, double* cur, double* nxt, Py_ssize_t i,
    Py_ssize_t step, Py_ssize_t nc,
) noexcept nogil:
    """Floyd–Steinberg: the error ``v − chosen`` of work-row cell ``i`` to the cell ahead in
    ``cur`` and to the three cells behind, under and ahead in ``nxt``."""
    cdef double ec
    cdef Py_ssize_t c
    for c in range(nc):
        ec = v[c] - chosen[c]
        cur[(i + step) * nc + c] += ec * _W_AHEAD
        nxt[(i - step) * nc + c] += ec * _W_BEHIND
        nxt[i * nc + c] += ec * _W_UNDER
        nxt[(i + step) * nc + c] += ec * _W_DIAG


# --------------------------------------------------------------------------------------------
# Kernels
#
# The kernels are inlined into each entry point three times, with the channel count a constant
# (1, 3 or 4): the compiler then unrolls the distance loops. On the 768×512 sample this made the
# kernels 1.1 to 1.8 times faster than one copy with C read at run time (K = 16, 64, 256, all
# three methods, RGB, RGBA and grey).


cdef inline void _map_kernel(
    const unsigned char[:, :, ::1] pixels, const double[:, ::1] pal, const int64_t[:, ::1] order,
    const double[:, ::1] gap, const int64_t[::1] clear, const double* matrix, Py_ssize_t n,
    double scale, unsigned char[:, ::1] out, const Py_ssize_t nc,
) noexcept nogil:
    """Nearest entry of every pixel, its colour channels offset by ``scale × matrix[y mod n,
    x mod n]`` when ``matrix`` (n × n, row-major) is not NULL; fully transparent pixels (C = 4,
    alpha 0) are not offset and go to an alpha-0 entry when there is one."""
    cdef Py_ssize_t height = pixels.shape[0], width = pixels.shape[1]
    cdef Py_ssize_t k = pal.shape[0], n_clear = clear.shape[0]
    cdef Py_ssize_t n_color = 3 if nc == 4 else nc
    cdef double v[4]
    cdef double shift
    cdef const unsigned char* px
    cdef const double* pattern = NULL
    cdef Py_ssize_t y, x, c, col, hint = 0
    for y in range(height):
        if matrix != NULL:
            pattern = matrix + (y % n) * n
        col = -1  # x mod n, counted (a division per pixel costs more than the offset itself)
        for x in range(width):
            col += 1
            if col == n:
                col = 0
            px = &pixels[y, x, 0]
            if nc == 4 and px[3] == 0:  # no offset: its own colour, or an alpha-0 entry
                if n_clear > 0:
                    out[y, x] = <unsigned char>_transparent_entry(px, &pal[0, 0], &clear[0],
                                                                  n_clear, nc)
                    continue
                for c in range(nc):
                    v[c] = px[c]
            elif pattern != NULL:
                # HEAD built the offset as the tiled matrix times (strength × spread) and added it
                # to the float64 pixels: the same two roundings, per pixel.
                shift = pattern[col] * scale
                for c in range(n_color):
                    v[c] = <double>px[c] + shift
                for c in range(n_color, nc):
                    v[c] = px[c]
            else:
                for c in range(nc):
                    v[c] = px[c]
            hint = _nearest(v, &pal[0, 0], &order[0, 0], &gap[0, 0], k, nc, hint)
            out[y, x] = <unsigned char>hint


cdef inline void _fs_kernel(
    const unsigned char[:, :, ::1] pixels, const double[:, ::1] pal, const int64_t[:, ::1] order,
    const double[:, ::1] gap, const int64_t[::1] clear, double strength, double margin,
    double* cur, double* nxt, unsigned char[:, ::1] out, const Py_ssize_t nc,
) noexcept nogil:
    """Serpentine Floyd–Steinberg; ``cur`` and ``nxt`` are zeroed (W + 2) × C work rows.

    ``margin < 0`` means no clamp. The colour channels take part in the clamp; alpha (C = 4) is
    clipped to 0..255.
    """
    cdef Py_ssize_t height = pixels.shape[0], width = pixels.shape[1]
    cdef Py_ssize_t k = pal.shape[0], n_clear = clear.shape[0]
    cdef Py_ssize_t n_color = 3 if nc == 4 else nc
    cdef bint has_alpha = nc > n_color
    cdef double v[4]
    cdef double s[4]
    cdef double ratio, a
    cdef double* swap
    cdef const unsigned char* px
    cdef Py_ssize_t y, x, i, c, count, step, hint = 0
    for y in range(height):
        step = 1 if y % 2 == 0 else -1
        x = 0 if step == 1 else width - 1
        for count in range(width):
            i = x + 1
            px = &pixels[y, x, 0]
            if has_alpha and px[nc - 1] == 0:
                # Fully transparent: no error in, none out.
                if n_clear > 0:
                    out[y, x] = <unsigned char>_transparent_entry(px, &pal[0, 0], &clear[0],
                                                                  n_clear, nc)
                else:
                    for c in range(nc):
                        v[c] = px[c]
                    hint = _nearest(v, &pal[0, 0], &order[0, 0], &gap[0, 0], k, nc, hint)
                    out[y, x] = <unsigned char>hint
                x += step
                continue
            for c in range(nc):
                s[c] = strength * cur[i * nc + c]
            ratio = _clamp_ratio(px, s, margin, n_color) if margin >= 0.0 else 1.0
            for c in range(n_color):
                v[c] = px[c] + ratio * s[c]
            if has_alpha:
                c = nc - 1
                # min(255, max(0, a)) as Python and numba evaluate it (max keeps 0.0 unless a > 0).
                a = px[c] + s[c]
                if not a > 0.0:
                    a = 0.0
                if not a < 255.0:
                    a = 255.0
                v[c] = a
            hint = _nearest(v, &pal[0, 0], &order[0, 0], &gap[0, 0], k, nc, hint)
            out[y, x] = <unsigned char>hint
            _spread_error(v, &pal[hint, 0], cur, nxt, i, step, nc)
            x += step
        swap = cur
        cur = nxt
        nxt = swap
        memset(nxt, 0, (width + 2) * nc * sizeof(double))


cdef inline double _distance2(const double* v, const double* row, Py_ssize_t nc) noexcept nogil:
    """Squared distance of colour ``v`` to palette row ``row`` over ``nc`` channels."""
    cdef double d = 0.0, t
    cdef Py_ssize_t c
    for c in range(nc):
        t = v[c] - row[c]
        d += t * t
    return d


cdef inline void _adaptive_kernel(
    const unsigned char[:, :, ::1] pixels, const double[:, ::1] pal, const int64_t[:, ::1] order,
    const double[:, ::1] gap, const int64_t[::1] clear, const float* levels,
    const short* activity, double floor, double ceil, double busy,
    const unsigned char* known, double margin, double skip, double literal, double match,
    double* cur, double* nxt, unsigned char[:, ::1] out, const Py_ssize_t nc,
) noexcept nogil:
    """Error diffusion scaled per pixel by ``levels`` (NULL: none, raster order) with a
    rate-aware choice of entry, its penalties scaled per pixel by a weight from ``activity``
    (NULL: 1); see :func:`adaptive_indices`."""
    cdef Py_ssize_t height = pixels.shape[0], width = pixels.shape[1]
    cdef Py_ssize_t k = pal.shape[0], n_clear = clear.shape[0]
    cdef Py_ssize_t n_color = 3 if nc == 4 else nc
    cdef bint diffuse = levels != NULL
    cdef bint rate_aware = literal > 0.0
    cdef double v[4]
    cdef double s[4]
    cdef double level, energy, ratio, a, d0, cost, best_cost, dist, weight
    cdef double* swap
    cdef const unsigned char* px
    cdef Py_ssize_t y, x, i, c, o, count, step, hint = 0, nearest, best, cand
    # Bit o of ``copying``: the previous pixel equals its source at offset o (1: above, 2: above
    # and behind, 3: above and ahead); a pixel that continues such a copy costs deflate nothing.
    cdef unsigned int copying
    for y in range(height):
        step = 1 if (not diffuse or y % 2 == 0) else -1
        x = 0 if step == 1 else width - 1
        copying = 0
        for count in range(width):
            i = x + 1
            px = &pixels[y, x, 0]
            if nc == 4 and px[3] == 0 and n_clear > 0:
                # Fully transparent: its alpha-0 entry, no error in or out.
                hint = _transparent_entry(px, &pal[0, 0], &clear[0], n_clear, nc)
                out[y, x] = <unsigned char>hint
                copying = 0
                x += step
                continue
            if diffuse and not (nc == 4 and px[3] == 0):
                level = levels[y * width + x]
                energy = 0.0
                for c in range(nc):
                    s[c] = level * cur[i * nc + c]
                    energy += s[c] * s[c]
                if energy < skip:
                    ratio = 0.0
                else:
                    ratio = _clamp_ratio(px, s, margin, n_color) if margin >= 0.0 else 1.0
                for c in range(n_color):
                    v[c] = px[c] + ratio * s[c]
                if nc == 4:
                    a = px[3] + ratio * s[3]
                    v[3] = 0.0 if not a > 0.0 else (255.0 if not a < 255.0 else a)
            else:
                for c in range(nc):
                    v[c] = px[c]
            if known != NULL:  # no error diffused: the pixel's own nearest entry, given
                nearest = known[y * width + x]
            else:
                nearest = _nearest(v, &pal[0, 0], &order[0, 0], &gap[0, 0], k, nc, hint)
            best = nearest
            if rate_aware:
                weight = 1.0
                if activity != NULL:
                    weight = activity[y * width + x] / busy
                    weight = floor + (ceil - floor) * (weight if weight < 1.0 else 1.0)
                d0 = _distance2(v, &pal[nearest, 0], nc)
                best_cost = d0 + literal * weight
                for o in range(4):
                    if o == 0:
                        if count == 0:
                            continue
                        cand = out[y, x - step]
                    elif y == 0 or (o == 2 and count == 0) or (o == 3 and count == width - 1):
                        continue
                    else:
                        cand = out[y - 1, x + (0 if o == 1 else (-step if o == 2 else step))]
                    dist = d0 if cand == nearest else _distance2(v, &pal[cand, 0], nc)
                    cost = dist if (o == 0 or (copying >> o) & 1) else dist + match * weight
                    if cost < best_cost:
                        best_cost = cost
                        best = cand
                copying = 0
                if y > 0:
                    if out[y - 1, x] == best:
                        copying |= 2
                    if count > 0 and out[y - 1, x - step] == best:
                        copying |= 4
                    if count < width - 1 and out[y - 1, x + step] == best:
                        copying |= 8
            out[y, x] = <unsigned char>best
            hint = best
            if diffuse and not (nc == 4 and px[3] == 0):
                _spread_error(v, &pal[best, 0], cur, nxt, i, step, nc)
            x += step
        swap = cur
        cur = nxt
        nxt = swap
        memset(nxt, 0, (width + 2) * nc * sizeof(double))


# --------------------------------------------------------------------------------------------
# Validation


cdef _check_common(
    const unsigned char[:, :, ::1] pixels, const double[:, ::1] palette,
    const int64_t[:, ::1] order, const double[:, ::1] gap, const int64_t[::1] clear,
    unsigned char[:, ::1] out,
):
    """Raise ValueError unless the arrays fit together (see the module docstring)."""
    cdef Py_ssize_t nc = pixels.shape[2], k = palette.shape[0]
    cdef Py_ssize_t i, j
    if nc not in (1, 3, 4):
        raise ValueError(f"pixels must be (H, W, C) with C = 1, 3 or 4, got C = {nc}")
    if palette.shape[1] != nc:
        raise ValueError(f"palette must be (K, {nc}) to match the pixels, got "
                         f"({k}, {palette.shape[1]})")
    if not 1 <= k <= 256:
        raise ValueError(f"palette must have 1 to 256 entries, got {k}")
    if order.shape[0] != k or order.shape[1] != k or gap.shape[0] != k or gap.shape[1] != k:
        raise ValueError(f"order and gap must be ({k}, {k}), got ({order.shape[0]}, "
                         f"{order.shape[1]}) and ({gap.shape[0]}, {gap.shape[1]})")
    for i in range(k):
        for j in range(k):
            if not 0 <= order[i, j] < k:
                raise ValueError(f"order[{i}, {j}] = {order[i, j]} is not an entry of the palette")
    for i in range(clear.shape[0]):
        if not 0 <= clear[i] < k:
            raise ValueError(f"clear[{i}] = {clear[i]} is not an entry of the palette")
    if out.shape[0] != pixels.shape[0] or out.shape[1] != pixels.shape[1]:
        raise ValueError(f"out must be ({pixels.shape[0]}, {pixels.shape[1]}), got "
                         f"({out.shape[0]}, {out.shape[1]})")


# --------------------------------------------------------------------------------------------
# Entry points


def nearest_indices(
    const unsigned char[:, :, ::1] pixels not None,
    const double[:, ::1] palette not None,
    const int64_t[:, ::1] order not None,
    const double[:, ::1] gap not None,
    const int64_t[::1] clear not None,
    unsigned char[:, ::1] out not None,
):
    """Exact nearest palette entry of every pixel (no dithering), into ``out``.

    Parameters
    ----------
    pixels : (H, W, C) uint8
    palette : (K, C) float64
    order : (K, K) int64
    gap : (K, K) float64
    clear : (n,) int64
        Alpha-0 entries; a fully transparent pixel (C = 4) maps to the nearest of them.
    out : (H, W) uint8
        Written with the indices.

    Raises
    ------
    ValueError
        Arrays of the wrong shape or dtype, or indices outside the palette.
    """
    _check_common(pixels, palette, order, gap, clear, out)
    with nogil:
        if pixels.shape[2] == 3:
            _map_kernel(pixels, palette, order, gap, clear, NULL, 1, 0.0, out, 3)
        elif pixels.shape[2] == 4:
            _map_kernel(pixels, palette, order, gap, clear, NULL, 1, 0.0, out, 4)
        else:
            _map_kernel(pixels, palette, order, gap, clear, NULL, 1, 0.0, out, 1)


def ordered_indices(
    const unsigned char[:, :, ::1] pixels not None,
    const double[:, ::1] palette not None,
    const int64_t[:, ::1] order not None,
    const double[:, ::1] gap not None,
    const int64_t[::1] clear not None,
    const double[:, ::1] matrix not None,
    double scale,
    unsigned char[:, ::1] out not None,
):
    """Nearest palette entry of every pixel offset by a tiled threshold matrix, into ``out``.

    Colour channel c (not alpha) of pixel (y, x) becomes ``pixels[y, x, c] + matrix[y mod n,
    x mod n] × scale`` before the search; fully transparent pixels are not offset.

    Parameters
    ----------
    pixels, palette, order, gap, clear, out
        As in :func:`nearest_indices`.
    matrix : (n, n) float64
        The threshold pattern, n ≥ 1.
    scale : float
        Its multiplier (strength × spread).

    Raises
    ------
    ValueError
        As :func:`nearest_indices`, or a matrix that is not square.
    """
    _check_common(pixels, palette, order, gap, clear, out)
    if matrix.shape[0] < 1 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be (n, n) with n >= 1, got ({matrix.shape[0]}, "
                         f"{matrix.shape[1]})")
    cdef const double* mat = &matrix[0, 0]
    cdef Py_ssize_t n = matrix.shape[0]
    with nogil:
        if pixels.shape[2] == 3:
            _map_kernel(pixels, palette, order, gap, clear, mat, n, scale, out, 3)
        elif pixels.shape[2] == 4:
            _map_kernel(pixels, palette, order, gap, clear, mat, n, scale, out, 4)
        else:
            _map_kernel(pixels, palette, order, gap, clear, mat, n, scale, out, 1)


def fs_indices(
    const unsigned char[:, :, ::1] pixels not None,
    const double[:, ::1] palette not None,
    const int64_t[:, ::1] order not None,
    const double[:, ::1] gap not None,
    const int64_t[::1] clear not None,
    double strength,
    double margin,
    unsigned char[:, ::1] out not None,
):
    """Serpentine Floyd–Steinberg error diffusion onto the exact nearest entries, into ``out``.

    Parameters
    ----------
    pixels, palette, order, gap, clear, out
        As in :func:`nearest_indices`.
    strength : float
        Share of the error passed on.
    margin : float
        Levels by which an error-adjusted colour channel may leave 0..255 (the incoming error is
        scaled down as a vector to stay within); negative: no clamp.

    Raises
    ------
    ValueError
        As :func:`nearest_indices`.
    MemoryError
        No room for the two (W + 2) × C work rows.
    """
    _check_common(pixels, palette, order, gap, clear, out)
    cdef Py_ssize_t size = (pixels.shape[1] + 2) * pixels.shape[2]
    cdef double* cur = <double*>calloc(size, sizeof(double))
    cdef double* nxt = <double*>calloc(size, sizeof(double))
    try:
        if cur == NULL or nxt == NULL:
            raise MemoryError()
        with nogil:
            if pixels.shape[2] == 3:
                _fs_kernel(pixels, palette, order, gap, clear, strength, margin, cur, nxt, out, 3)
            elif pixels.shape[2] == 4:
                _fs_kernel(pixels, palette, order, gap, clear, strength, margin, cur, nxt, out, 4)
            else:
                _fs_kernel(pixels, palette, order, gap, clear, strength, margin, cur, nxt, out, 1)
    finally:
        free(cur)
        free(nxt)



def adaptive_indices(
    const unsigned char[:, :, ::1] pixels not None,
    const double[:, ::1] palette not None,
    const int64_t[:, ::1] order not None,
    const double[:, ::1] gap not None,
    const int64_t[::1] clear not None,
    const float[:, ::1] levels not None,
    const short[:, ::1] activity not None,
    double floor,
    double ceil,
    double busy,
    const unsigned char[:, ::1] nearest not None,
    double margin,
    double skip,
    double literal,
    double match,
    unsigned char[:, ::1] out not None,
):
    """Adaptive error diffusion and rate-aware entries, into ``out``.

    With a (H, W) ``levels`` map, serpentine Floyd–Steinberg in which the error reaching pixel
    (y, x) is first multiplied by ``levels[y, x]``, dropped when its squared length is below
    ``skip`` and clamped as in :func:`fs_indices` by ``margin``. With an empty (0, 0) map, no
    error is diffused and rows go left to right.

    With ``literal > 0`` each pixel takes, instead of its nearest entry n (cost d(n) + literal),
    the entry of the previous pixel of the row (cost d), or of one of the three pixels above it
    (cost d, or d + ``match`` unless the previous pixel copied from the same offset) when that
    costs less: d is the squared distance to the (error-adjusted) colour. Deflate then finds
    longer repeats. With a (H, W) ``activity`` map both penalties of pixel (y, x) are multiplied
    by ``floor + (ceil − floor) × min(activity[y, x] / busy, 1)``.

    Parameters
    ----------
    pixels, palette, order, gap, clear, out
        As in :func:`nearest_indices`.
    levels : (H, W) or (0, 0) float32
        Share of the diffused error each pixel takes, 0 to 1.
    activity : (H, W) or (0, 0) int16
        :func:`local_activity` of the pixels; (0, 0): the penalties are not scaled.
    floor, ceil, busy : float
        The scaling of the penalties by the activity (``busy`` > 0).
    nearest : (H, W) or (0, 0) uint8
        Without a ``levels`` map: each pixel's nearest entry, when the caller has it (the search
        is skipped); (0, 0): searched.
    margin : float
        Clamp levels, as in :func:`fs_indices`; negative: no clamp.
    skip : float
        Squared error length below which no error is applied.
    literal, match : float
        Rate penalties in squared 8-bit levels; literal = 0 turns the rate-aware choice off.

    Raises
    ------
    ValueError
        As :func:`nearest_indices`, or a ``levels`` map of another shape.
    MemoryError
        No room for the two (W + 2) × C work rows.
    """
    _check_common(pixels, palette, order, gap, clear, out)
    cdef bint diffuse = levels.shape[0] > 0
    if diffuse and (levels.shape[0] != pixels.shape[0] or levels.shape[1] != pixels.shape[1]):
        raise ValueError(f"levels must be ({pixels.shape[0]}, {pixels.shape[1]}) or (0, 0), got "
                         f"({levels.shape[0]}, {levels.shape[1]})")
    if activity.shape[0] > 0 and (activity.shape[0] != pixels.shape[0]
                                  or activity.shape[1] != pixels.shape[1]):
        raise ValueError(f"activity must be ({pixels.shape[0]}, {pixels.shape[1]}) or (0, 0), "
                         f"got ({activity.shape[0]}, {activity.shape[1]})")
    if not busy > 0:
        raise ValueError(f"busy must be > 0, got {busy}")
    cdef const float* lv = &levels[0, 0] if diffuse else NULL
    cdef const short* rt = &activity[0, 0] if activity.shape[0] > 0 else NULL
    cdef Py_ssize_t i, j
    if nearest.shape[0] > 0:
        if diffuse or nearest.shape[0] != pixels.shape[0] or nearest.shape[1] != pixels.shape[1]:
            raise ValueError(f"nearest must be ({pixels.shape[0]}, {pixels.shape[1]}) or (0, 0), "
                             f"and (0, 0) with a levels map")
        for i in range(nearest.shape[0]):
            for j in range(nearest.shape[1]):
                if nearest[i, j] >= palette.shape[0]:
                    raise ValueError(f"nearest[{i}, {j}] = {nearest[i, j]} is not an entry of "
                                     f"the palette")
    cdef const unsigned char* kn = &nearest[0, 0] if nearest.shape[0] > 0 else NULL
    cdef Py_ssize_t size = (pixels.shape[1] + 2) * pixels.shape[2]
    cdef double* cur = <double*>calloc(size, sizeof(double))
    cdef double* nxt = <double*>calloc(size, sizeof(double))
    try:
        if cur == NULL or nxt == NULL:
            raise MemoryError()
        with nogil:
            if pixels.shape[2] == 3:
                _adaptive_kernel(pixels, palette, order, gap, clear, lv, rt, floor, ceil,
                                 busy, kn, margin, skip, literal, match, cur, nxt, out, 3)
            elif pixels.shape[2] == 4:
                _adaptive_kernel(pixels, palette, order, gap, clear, lv, rt, floor, ceil,
                                 busy, kn, margin, skip, literal, match, cur, nxt, out, 4)
            else:
                _adaptive_kernel(pixels, palette, order, gap, clear, lv, rt, floor, ceil,
                                 busy, kn, margin, skip, literal, match, cur, nxt, out, 1)
    finally:
        free(cur)
        free(nxt)


def local_activity(
    const unsigned char[:, :, ::1] pixels not None,
    short[:, ::1] out not None,
):
    """Largest second difference around each pixel, into ``out`` (see
    :func:`kmquant.dither.local_activity`).

    For each pixel, the largest over the colour channels (all of C = 1 or 3; the first three of
    C = 4) of |2p − left − right| and |2p − up − down| (0 on the image's border rows and columns
    for that direction), then the largest of that over the pixel's 3 × 3 neighbourhood (the border
    repeated).

    Parameters
    ----------
    pixels : (H, W, C) uint8
    out : (H, W) int16

    Raises
    ------
    ValueError
        ``out`` of another shape.
    MemoryError
        No room for the (H, W) work array.
    """
    cdef Py_ssize_t height = pixels.shape[0], width = pixels.shape[1], nc = pixels.shape[2]
    if out.shape[0] != height or out.shape[1] != width:
        raise ValueError(f"out must be ({height}, {width}), got ({out.shape[0]}, {out.shape[1]})")
    if height == 0 or width == 0:
        return
    cdef Py_ssize_t n_color = 3 if nc == 4 else nc
    cdef short* raw = <short*>calloc(height * width, sizeof(short))
    if raw == NULL:
        raise MemoryError()
    cdef Py_ssize_t y, x, c, y0, y1, x0, x1, yy, xx
    cdef int p, d, best
    cdef short m
    with nogil:
        for y in range(height):
            for x in range(width):
                best = 0
                for c in range(n_color):
                    p = 2 * pixels[y, x, c]
                    if 0 < x < width - 1:
                        d = p - pixels[y, x - 1, c] - pixels[y, x + 1, c]
                        if d < 0:
                            d = -d
                        if d > best:
                            best = d
                    if 0 < y < height - 1:
                        d = p - pixels[y - 1, x, c] - pixels[y + 1, x, c]
                        if d < 0:
                            d = -d
                        if d > best:
                            best = d
                raw[y * width + x] = <short>best
        for y in range(height):
            y0 = y - 1 if y > 0 else 0
            y1 = y + 1 if y < height - 1 else height - 1
            for x in range(width):
                x0 = x - 1 if x > 0 else 0
                x1 = x + 1 if x < width - 1 else width - 1
                m = 0
                for yy in range(y0, y1 + 1):
                    for xx in range(x0, x1 + 1):
                        if raw[yy * width + xx] > m:
                            m = raw[yy * width + xx]
                out[y, x] = m
    free(raw)


def mean_distance(
    const unsigned char[:, :, ::1] pixels not None,
    const double[:, ::1] palette not None,
    const unsigned char[:, ::1] indices not None,
):
    """Mean over the pixels of the squared distance to their entry ``palette[indices]``.

    Parameters
    ----------
    pixels : (H, W, C) uint8
    palette : (K, C) float64
    indices : (H, W) uint8, each < K

    Returns
    -------
    float
        0 for an empty image.

    Raises
    ------
    ValueError
        Shapes that do not fit, or an index outside the palette.
    """
    cdef Py_ssize_t height = pixels.shape[0], width = pixels.shape[1], nc = pixels.shape[2]
    cdef Py_ssize_t k = palette.shape[0]
    if palette.shape[1] != nc or indices.shape[0] != height or indices.shape[1] != width:
        raise ValueError("pixels (H, W, C), palette (K, C) and indices (H, W) do not fit")
    cdef Py_ssize_t y, x, c
    cdef double total = 0.0, t
    cdef bint bad = False
    with nogil:
        for y in range(height):
            for x in range(width):
                if indices[y, x] >= k:
                    bad = True
                    break
                for c in range(nc):
                    t = pixels[y, x, c] - palette[indices[y, x], c]
                    total += t * t
            if bad:
                break
    if bad:
        raise ValueError("an index points outside the palette")
    return total / (height * width) if height * width else 0.0
