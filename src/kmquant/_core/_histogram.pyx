"""The colour histogram: distinct colours of an image, their counts, and the per-pixel look-up.

Every pixel's colour, C ≤ 4 channels of 8 bits, is read on the fly as one uint32 key (its bytes
in memory order, one load). The keys are counted in an open-addressing hash table (Fibonacci
hashing, linear probing) of 8-byte slots that starts at 4096 slots and grows fourfold whenever it
is half full (twofold from 2²⁰ slots, and only when 3/4 full from 2²² slots), so it holds 2 to 8
slots per distinct colour (fewer in a large table), whatever the number of pixels; a run of one
colour costs one comparison a pixel. Only the distinct keys are then sorted (as colours, channels
big-endian), and every slot is given the row of its colour, so that :meth:`ColorTable.lookup`
spreads one value per colour over the pixels by hashing each pixel again. No array of one entry
per pixel is made: the memory grows with the distinct colours only.

Arrays, for an image of H × W pixels with C channels and n distinct colours:

``pixels``  (H, W, C) uint8, 1 ≤ C ≤ 4, the channels of a pixel adjacent (rows and pixels may be
            strided, even backwards: a view of part of a larger image, or of its first channels,
            is read where it lies).
``colors``  (n, C) uint8, C-contiguous: the distinct colours, sorted.
``counts``  (n,) int64: pixels of each colour.
``values``  (n,) uint8: one value per colour (e.g. its palette index).
``out``     (H, W) uint8, C-contiguous: the value of every pixel's colour.

With ``clear_transparent`` (C = 4 only) every pixel whose alpha is 0 counts as (0, 0, 0, 0), in
the count and in the look-up alike.

Every ``def`` checks its arguments and raises ``ValueError`` before any loop runs. Tables are
allocated with ``PyMem_RawCalloc`` (so ``tracemalloc`` sees them). With ``n_threads`` > 1 and
enough pixels, each thread counts a band of rows into a table of its own, merged afterwards, and
looks up a band of rows; the result is a set, so it is the same whatever the threads.
"""

from cpython.mem cimport PyMem_RawCalloc, PyMem_RawFree, PyMem_RawMalloc
cimport openmp
from cython.parallel cimport prange
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define KMQ_PREFETCH(p) __builtin_prefetch((p), 1, 3)
    #else
    #define KMQ_PREFETCH(p) ((void)0)
    #endif
    """
    void _prefetch "KMQ_PREFETCH"(const void* p) noexcept nogil


cdef struct Slot:
    uint32_t key
    uint32_t val  # 0: empty; while counting, the pixels of ``key``; once finished, its row + 1


cdef struct Table:
    Slot* slots
    Py_ssize_t size  # a power of two
    Py_ssize_t used  # occupied slots, at most limit
    Py_ssize_t limit  # the table grows when it holds more keys: size / 2, or 3/4 of a huge one
    int shift  # 64 - log2(size): the home slot is the top bits of the product


cdef struct Image:
    const uint8_t* data  # pixel (0, 0); NULL when there is no pixel
    Py_ssize_t height, width
    Py_ssize_t row_stride, pixel_stride  # bytes
    int channels
    bint clear  # alpha 0 → (0, 0, 0, 0)


# Compile-time constants (an enum, so that the C compiler sees them as such).
cdef enum:
    # The first table: 4096 slots (32 KB, in L1/L2 cache); most graphics never outgrow it.
    _FIRST_BITS = 12
    # From a table of 2**this slots (8 MB, well past the core's cache) on, it grows twofold, not
    # fourfold: 2 to 4 slots a colour instead of 2 to 8.
    _GROW_SLOWER_FROM = 20
    # From a table of 2**this slots (32 MB: millions of colours, as in noise, not photographs) on,
    # it grows when 3/4 full, not half: 4096 × 3072 RGB noise (8.85 M colours) then peaks at
    # 289 MiB above its pixels (histogram and indices) instead of 417 (one thread) or 512 (two),
    # as fast within noise (count + finish + look-up 2.5 s either way).
    _DENSE_FROM = 22
    # The largest table: 2³² slots (32 GB), so that a slot index fits the 32 bits beside its key
    # when the keys are sorted.
    _LAST_BITS = 32
    # Pixels ahead of the current one whose home slot is prefetched. Count of the 12.6 MP Kodak
    # mosaic (1 M-slot, 8 MB table), ns/pixel CPU: none 13.0-15.6, 4 ahead 11.7, 8 11.1,
    # 16 9.7-9.8, 32 7.5-7.8, 64 7.4, 128 7.9; the 1000-colour case (table in L1) is unchanged
    # within noise.
    _AHEAD = 32
    # Pixels a thread gets at least: an image counts (and looks up) in min(n_threads,
    # pixels / this) threads, each a band of rows. On 2 cores the 768×512 sample in two threads
    # took 17.7 ms instead of 9.5 (median of 15, the other core busy), so it stays in one; the
    # 12.6 MP mosaic in two: count 75 ms instead of 128 and look-up 70 instead of 116 (best of 9,
    # a core free), the same as one thread in the median while the other core was busy.
    _PIXELS_PER_THREAD = 1 << 18
    # At most this many threads.
    _MAX_THREADS = 64

cdef enum:
    _EMPTY = 0     # nothing counted yet
    _COUNTED = 1   # counts in the table, rows not yet assigned
    _FINISHED = 2  # colours sorted, every slot holds its row + 1
    _BUSY = 3      # count() or finish() running without the GIL, or failed: no other call


# --------------------------------------------------------------------------------------------
# The hash table


cdef inline Py_ssize_t _home(uint32_t key, int shift) noexcept nogil:
    """Home slot of ``key``: the top bits of key × 2⁶⁴/φ (Fibonacci hashing)."""
    return <Py_ssize_t>((<uint64_t>key * 0x9E3779B97F4A7C15ULL) >> shift)


cdef int _table_alloc(Table* t, int bits) noexcept nogil:
    """``t`` := an empty table of 2**bits slots; -1 (``t`` untouched) when out of memory."""
    cdef Slot* slots
    if bits > _LAST_BITS:
        return -1
    slots = <Slot*>PyMem_RawCalloc(<size_t>1 << bits, sizeof(Slot))
    if slots == NULL:
        return -1
    t.slots = slots
    t.size = <Py_ssize_t>1 << bits
    t.used = 0
    t.shift = 64 - bits
    t.limit = t.size // 2 if bits < _DENSE_FROM else t.size // 4 * 3
    return 0


cdef int _table_grow(Table* t) noexcept nogil:
    """Four times the slots (twice from ``_GROW_SLOWER_FROM`` on), every key moved to its new
    place; -1 (``t`` unchanged) when out of memory."""
    cdef Table bigger
    cdef Py_ssize_t q, s, mask
    cdef int bits = 64 - t.shift
    if _table_alloc(&bigger, bits + (1 if bits >= _GROW_SLOWER_FROM else 2)) != 0:
        return -1
    mask = bigger.size - 1
    for q in range(t.size):
        if t.slots[q].val != 0:
            s = _home(t.slots[q].key, bigger.shift)
            while bigger.slots[s].val != 0:
                s = (s + 1) & mask
            bigger.slots[s] = t.slots[q]
    bigger.used = t.used
    PyMem_RawFree(t.slots)
    t[0] = bigger
    return 0


cdef int _merge(Table* t, const Table* other) noexcept nogil:
    """Add every key and count of ``other`` to ``t``; -1 when out of memory.

    ``t`` first grows to hold both tables' keys: ``other``'s come in the order of their home
    slots, so inserting them into a table that had to grow midway would crowd them, then the
    whole run of slots after them, into one region (1536 × 4096 RGB noise, 5.2 M colours, in two
    bands: 48 s instead of 1.1 s)."""
    cdef Py_ssize_t q, s, mask
    while t.used + other.used > t.limit:
        if _table_grow(t) != 0:
            return -1
    mask = t.size - 1
    for q in range(other.size):
        if other.slots[q].val == 0:
            continue
        s = _home(other.slots[q].key, t.shift)
        while t.slots[s].val != 0 and t.slots[s].key != other.slots[q].key:
            s = (s + 1) & mask
        if t.slots[s].val == 0:
            t.slots[s].key = other.slots[q].key
            t.used += 1
        t.slots[s].val += other.slots[q].val
    return 0


# --------------------------------------------------------------------------------------------
# Pixels


cdef uint32_t _first_bytes(int n) noexcept nogil:
    """The uint32 whose first ``n`` bytes in memory are 0xFF, the others 0."""
    cdef uint8_t b[4]
    cdef uint32_t v
    cdef int i
    for i in range(4):
        b[i] = 0xFF if i < n else 0
    memcpy(&v, b, 4)
    return v


# The bytes of a key that hold the first three channels, and the one of the fourth (alpha).
cdef uint32_t _RGB = _first_bytes(3)
cdef uint32_t _ALPHA = ~_first_bytes(3)


cdef inline uint32_t _key(
    const uint8_t* p, int channels, bint clear, bint edge, uint32_t rgb, uint32_t alpha
) noexcept nogil:
    """The key of the pixel at ``p``: its C bytes as the first C bytes in memory of a uint32,
    the others 0 (so one load reads it, in either byte order); 0 for a cleared transparent pixel.

    For C = 3 the load reads a fourth byte, masked off with ``rgb``: the next pixel's first byte
    or the gap before it, except at an ``edge`` (the last pixel of a row, which may end the
    buffer, or pixels less than 3 bytes apart), read byte by byte. ``alpha`` masks the fourth
    byte. See :func:`_big_endian` for the colour of a key.
    """
    cdef uint32_t v = 0
    if channels == 4:
        memcpy(&v, p, 4)
        if clear and (v & alpha) == 0:
            return 0
        return v
    if channels == 3:
        if edge:
            memcpy(&v, p, 3)
            return v
        memcpy(&v, p, 4)
        return v & rgb
    memcpy(&v, p, channels)
    return v


cdef inline uint32_t _big_endian(uint32_t key, int channels) noexcept nogil:
    """The colour of ``key`` packed with its channels big-endian: sorted, they sort the colours
    channel by channel."""
    cdef uint8_t b[4]
    cdef uint32_t v = 0
    cdef int c
    memcpy(b, &key, 4)
    for c in range(channels):
        v = (v << 8) | b[c]
    return v


cdef inline Py_ssize_t _inner(const Image* im) noexcept nogil:
    """Pixels of a row, from the first, whose key :func:`_key` may read with one 4-byte load: all
    but the last when pixels lie 3 or more bytes apart forwards, none otherwise."""
    return im.width - 1 if im.pixel_stride >= 3 else 0


cdef inline int _count_rows(Table* t, const Image* im, int channels, bint clear) noexcept nogil:
    """Count every pixel of ``im`` into ``t``; -1 when out of memory.

    ``channels`` and ``clear`` repeat ``im``'s so that each call site, with constants, compiles
    to its own loop. The home slot of the pixel ``_AHEAD`` on is prefetched: that keeps several
    cache misses in flight, which the probe's branches would otherwise serialise.
    """
    cdef Py_ssize_t y, x, s
    cdef Py_ssize_t width = im.width, step = im.pixel_stride, ahead = _AHEAD * im.pixel_stride
    cdef Slot* slots = t.slots
    cdef Py_ssize_t mask = t.size - 1, used = t.used, limit = t.limit
    cdef int shift = t.shift
    cdef const uint8_t* p
    cdef Py_ssize_t inner = _inner(im)
    cdef uint32_t rgb = _RGB, alpha = _ALPHA
    cdef uint32_t key, previous = 0
    cdef Py_ssize_t slot = -1  # the slot of ``previous``; -1: none
    for y in range(im.height):
        p = im.data + y * im.row_stride
        for x in range(width):
            if x + _AHEAD < width:
                _prefetch(&slots[_home(_key(p + ahead, channels, clear, x + _AHEAD >= inner, rgb,
                                            alpha), shift)])
            key = _key(p, channels, clear, x >= inner, rgb, alpha)
            p += step
            if key == previous and slot >= 0:
                slots[slot].val += 1
                continue
            s = _home(key, shift)
            while slots[s].val != 0 and slots[s].key != key:
                s = (s + 1) & mask
            slot, previous = s, key
            if slots[s].val != 0:
                slots[s].val += 1
                continue
            slots[s].key = key
            slots[s].val = 1
            used += 1
            if used > limit:
                t.used = used
                if _table_grow(t) != 0:
                    return -1
                slots, mask, limit, shift, slot = t.slots, t.size - 1, t.limit, t.shift, -1
    t.used = used
    return 0


cdef int _count_image(Table* t, const Image* im) noexcept nogil:
    """:func:`_count_rows` with the channel count (and the alpha rule) as constants."""
    if im.channels == 4:
        if im.clear:
            return _count_rows(t, im, 4, True)
        return _count_rows(t, im, 4, False)
    if im.channels == 3:
        return _count_rows(t, im, 3, False)
    if im.channels == 2:
        return _count_rows(t, im, 2, False)
    return _count_rows(t, im, 1, False)


cdef inline void _band(const Image* im, Py_ssize_t i, Py_ssize_t n, Image* band) noexcept nogil:
    """``band`` := the rows i·H/n to (i+1)·H/n - 1 of ``im``."""
    cdef Py_ssize_t y0 = i * im.height // n, y1 = (i + 1) * im.height // n
    band[0] = im[0]
    band.height = y1 - y0
    band.data = im.data + y0 * im.row_stride


cdef int _count_bands(Table* t, const Image* im, int n) noexcept nogil:
    """:func:`_count_image` in ``n`` threads, a band of rows each, into tables of their own; the
    one with the most colours then takes in the others and becomes ``t``. -1 when out of memory
    (``t`` still a valid table)."""
    cdef Table* tables = <Table*>PyMem_RawCalloc(n, sizeof(Table))  # [0] is t
    cdef Image* bands = <Image*>PyMem_RawCalloc(n, sizeof(Image))
    cdef int* status = <int*>PyMem_RawCalloc(n, sizeof(int))
    cdef Py_ssize_t i, big = 0
    cdef int result = 0
    if tables == NULL or bands == NULL or status == NULL:
        result = -1
    else:
        tables[0] = t[0]
        for i in range(n):
            _band(im, i, n, &bands[i])
            if i > 0 and result == 0 and _table_alloc(&tables[i], _FIRST_BITS) != 0:
                result = -1
        if result == 0:
            for i in prange(n, schedule="static", num_threads=n):
                status[i] = _count_image(&tables[i], &bands[i])
            for i in range(n):
                if status[i] != 0:
                    result = -1
                if tables[i].used > tables[big].used:
                    big = i
            tables[0], tables[big] = tables[big], tables[0]
            for i in range(1, n):
                if result == 0:
                    result = _merge(&tables[0], &tables[i])
        t[0] = tables[0]
        for i in range(1, n):
            PyMem_RawFree(tables[i].slots)
    PyMem_RawFree(tables)
    PyMem_RawFree(bands)
    PyMem_RawFree(status)
    return result


cdef inline int _lookup_rows(
    const Table* t, const Image* im, const uint8_t* values, uint8_t* out, int channels, bint clear,
) noexcept nogil:
    """``out[y, x] = values[row of pixel (y, x)]`` (``out`` (H, W) C-contiguous); 0, or -1 at
    the first pixel whose colour is not in ``t`` (then the rest of ``out`` is left as it was)."""
    cdef Py_ssize_t y, x, s
    cdef Py_ssize_t width = im.width, step = im.pixel_stride, ahead = _AHEAD * im.pixel_stride
    cdef const Slot* slots = t.slots
    cdef Py_ssize_t mask = t.size - 1
    cdef int shift = t.shift
    cdef const uint8_t* p
    cdef uint8_t* o
    cdef Py_ssize_t inner = _inner(im)
    cdef uint32_t rgb = _RGB, alpha = _ALPHA
    cdef uint32_t key, previous = 0
    cdef uint8_t value = 0
    cdef bint have = False
    for y in range(im.height):
        p = im.data + y * im.row_stride
        o = out + y * width
        for x in range(width):
            if x + _AHEAD < width:
                _prefetch(&slots[_home(_key(p + ahead, channels, clear, x + _AHEAD >= inner, rgb,
                                            alpha), shift)])
            key = _key(p, channels, clear, x >= inner, rgb, alpha)
            p += step
            if key != previous or not have:
                s = _home(key, shift)
                while slots[s].key != key or slots[s].val == 0:
                    if slots[s].val == 0:
                        return -1  # an empty slot: the key is not in the table
                    s = (s + 1) & mask
                value = values[slots[s].val - 1]
                previous, have = key, True
            o[x] = value
    return 0


cdef int _lookup_image(
    const Table* t, const Image* im, const uint8_t* values, uint8_t* out
) noexcept nogil:
    """:func:`_lookup_rows` with the channel count (and the alpha rule) as constants."""
    if im.channels == 4:
        if im.clear:
            return _lookup_rows(t, im, values, out, 4, True)
        return _lookup_rows(t, im, values, out, 4, False)
    if im.channels == 3:
        return _lookup_rows(t, im, values, out, 3, False)
    if im.channels == 2:
        return _lookup_rows(t, im, values, out, 2, False)
    return _lookup_rows(t, im, values, out, 1, False)


cdef int _lookup_bands(
    const Table* t, const Image* im, const uint8_t* values, uint8_t* out, int n
) noexcept nogil:
    """:func:`_lookup_image` in ``n`` threads, a band of rows each; -1 at a colour not in ``t``,
    -2 when out of memory."""
    cdef Image* bands = <Image*>PyMem_RawCalloc(n, sizeof(Image))
    cdef int* status = <int*>PyMem_RawCalloc(n, sizeof(int))
    cdef Py_ssize_t i
    cdef int result = 0
    if bands == NULL or status == NULL:
        result = -2
    else:
        for i in range(n):
            _band(im, i, n, &bands[i])
        for i in prange(n, schedule="static", num_threads=n):
            status[i] = _lookup_image(t, &bands[i], values,
                                      out + (i * im.height // n) * im.width)
        for i in range(n):
            if status[i] != 0:
                result = -1
    PyMem_RawFree(bands)
    PyMem_RawFree(status)
    return result


cdef int _threads(const Image* im, int n_threads) noexcept nogil:
    """Threads for ``im``: at most ``n_threads``, at least ``_PIXELS_PER_THREAD`` pixels each."""
    cdef Py_ssize_t n = im.height * im.width // _PIXELS_PER_THREAD
    if n > n_threads:
        n = n_threads
    if n > im.height:
        n = im.height
    if n > _MAX_THREADS:
        n = _MAX_THREADS
    return <int>n if n > 1 else 1


cdef int _image(Image* im, const uint8_t[:, :, :] pixels, bint clear) except -1:
    """``im`` := a description of ``pixels``; ValueError unless 1 ≤ C ≤ 4."""
    cdef Py_ssize_t channels = pixels.shape[2]
    if not 1 <= channels <= 4:
        raise ValueError(f"pixels must be (H, W, C) with 1 ≤ C ≤ 4, got C = {channels}")
    if channels > 1 and pixels.strides[2] != 1:
        raise ValueError("the channels of a pixel must be adjacent (pixels.strides[2] == 1)")
    im.height, im.width, im.channels = pixels.shape[0], pixels.shape[1], <int>channels
    im.row_stride, im.pixel_stride = pixels.strides[0], pixels.strides[1]
    im.clear = clear and channels == 4
    im.data = &pixels[0, 0, 0] if im.height > 0 and im.width > 0 else NULL
    return 0


# --------------------------------------------------------------------------------------------
# Sorting the distinct keys


cdef void _radix_sort(uint64_t* items, uint64_t* spare, Py_ssize_t n, int n_bytes) noexcept nogil:
    """Sort ``items`` (n,) by their top 32 bits, each below 2**(8 × n_bytes), ascending (LSD
    radix, a byte a pass); ``spare`` (n,) is scratch."""
    cdef Py_ssize_t counts[256]
    cdef Py_ssize_t i, total, c
    cdef int b, shift
    cdef uint64_t* src = items
    cdef uint64_t* dst = spare
    for b in range(n_bytes):
        shift = 32 + 8 * b
        memset(counts, 0, sizeof(counts))
        for i in range(n):
            counts[(src[i] >> shift) & 0xFF] += 1
        if counts[(src[0] >> shift) & 0xFF] == n:
            continue  # one value of this byte: already in order
        total = 0
        for i in range(256):
            c = counts[i]
            counts[i] = total
            total += c
        for i in range(n):
            c = (src[i] >> shift) & 0xFF
            dst[counts[c]] = src[i]
            counts[c] += 1
        src, dst = dst, src
    if src != items:
        for i in range(n):
            items[i] = src[i]


# --------------------------------------------------------------------------------------------
# The Python face


cdef class ColorTable:
    """The hash table of an image's colours.

    Made empty; :meth:`count` fills it from the pixels (once), :meth:`finish` writes out the
    sorted colours and their counts and gives every slot its row, and :meth:`lookup` then maps
    pixels of those colours to one value per colour, as often as wanted (from several threads at
    once too: it only reads the table). Each method raises ``ValueError`` if called out of that
    order, while another thread counts or finishes, or with arrays that do not fit.
    """

    cdef Table table
    cdef int state
    cdef int n_channels
    cdef bint clear

    def __cinit__(self):
        self.table.slots = NULL
        self.table.size = 0
        self.table.used = 0
        self.state = _EMPTY
        self.n_channels = 0
        self.clear = False

    def __dealloc__(self):
        PyMem_RawFree(self.table.slots)

    @property
    def n_colors(self) -> int:
        """Distinct colours counted."""
        return self.table.used

    @property
    def nbytes(self) -> int:
        """Bytes held by the table (8 a slot)."""
        return self.table.size * sizeof(Slot)

    @property
    def channels(self) -> int:
        """C of the pixels counted (0 before :meth:`count`)."""
        return self.n_channels

    @property
    def clear_transparent(self) -> bool:
        """Whether alpha-0 pixels were counted as (0, 0, 0, 0) (only ever for C = 4)."""
        return bool(self.clear)

    def count(self, const uint8_t[:, :, :] pixels not None, bint clear_transparent=False,
              int n_threads=1):
        """Count the colours of ``pixels``.

        Parameters
        ----------
        pixels : (H, W, C) uint8 array
            1 ≤ C ≤ 4, the last axis contiguous, fewer than 2³² pixels.
        clear_transparent : bool
            For C = 4: count every pixel with alpha 0 as (0, 0, 0, 0). Ignored for C < 4.
        n_threads : int
            At most this many threads (≥ 1), each with a band of at least 2¹⁸ pixels.
        """
        cdef Image im
        cdef int status = 0, n
        if self.state != _EMPTY:
            raise ValueError("this table has already counted an image")
        _image(&im, pixels, clear_transparent)
        if n_threads < 1:
            raise ValueError(f"n_threads must be at least 1, got {n_threads}")
        if <uint64_t>im.height * <uint64_t>im.width >= (<uint64_t>1 << 32):
            raise ValueError(f"at most 2³² - 1 pixels, got {im.height} × {im.width}")
        if _table_alloc(&self.table, _FIRST_BITS) != 0:
            raise MemoryError()
        n = _threads(&im, n_threads)
        self.state = _BUSY
        with nogil:
            if im.data == NULL:
                pass
            elif n > 1:
                status = _count_bands(&self.table, &im, n)
            else:
                status = _count_image(&self.table, &im)
        if status != 0:
            raise MemoryError()
        self.n_channels, self.clear, self.state = im.channels, im.clear, _COUNTED

    def finish(self, uint8_t[:, ::1] colors not None, int64_t[::1] counts not None):
        """Write the distinct colours, sorted, and their counts; then every slot gets its row.

        Parameters
        ----------
        colors : (n, C) uint8 array, C-contiguous
            Receives the colours, sorted by their packed big-endian value.
        counts : (n,) int64 array
            Receives the pixels of each colour.
        """
        cdef Py_ssize_t n = self.table.used, i, q, s
        cdef int c, channels = self.n_channels
        cdef uint64_t* items
        cdef uint64_t* spare
        cdef uint64_t item
        cdef uint32_t key
        if self.state != _COUNTED:
            raise ValueError("finish() comes once, after count()")
        if colors.shape[0] != n or colors.shape[1] != channels or counts.shape[0] != n:
            raise ValueError(f"colors must be ({n}, {channels}) and counts ({n},), got "
                             f"({colors.shape[0]}, {colors.shape[1]}) and ({counts.shape[0]},)")
        if n == 0:
            self.state = _FINISHED
            return
        # (colour big-endian, slot) of every colour, sorted in ``counts``' memory (uint64 and
        # int64 may alias): the only scratch is the sort's second buffer, 8 bytes a colour.
        spare = <uint64_t*>PyMem_RawMalloc(n * sizeof(uint64_t))
        if spare == NULL:
            raise MemoryError()
        items = <uint64_t*>&counts[0]
        self.state = _BUSY
        with nogil:
            i = 0
            for q in range(self.table.size):
                if self.table.slots[q].val != 0:
                    key = _big_endian(self.table.slots[q].key, channels)
                    items[i] = (<uint64_t>key << 32) | <uint64_t>q
                    i += 1
            _radix_sort(items, spare, n, channels)
            for i in range(n):
                if i + _AHEAD < n:  # the slots are in random order: keep misses in flight
                    _prefetch(&self.table.slots[items[i + _AHEAD] & 0xFFFFFFFFULL])
                item = items[i]
                key = <uint32_t>(item >> 32)
                s = <Py_ssize_t>(item & 0xFFFFFFFFULL)
                counts[i] = self.table.slots[s].val  # over items[i], read
                self.table.slots[s].val = <uint32_t>(i + 1)
                for c in range(channels):
                    colors[i, c] = (key >> (8 * (channels - 1 - c))) & 0xFF
        PyMem_RawFree(spare)
        self.state = _FINISHED

    def lookup(self, const uint8_t[:, :, :] pixels not None, const uint8_t[::1] values not None,
               uint8_t[:, ::1] out not None, int n_threads=1):
        """``out[y, x] = values[row of the colour of pixels[y, x]]``.

        Parameters
        ----------
        pixels : (H, W, C) uint8 array
            C as counted, the last axis contiguous; every colour must be in the table (the
            image counted, or part of it).
        values : (n,) uint8 array
            One value per colour, in the order of :meth:`finish`'s ``colors``.
        out : (H, W) uint8 array, C-contiguous
            Receives the values.
        n_threads : int
            At most this many threads (≥ 1), each with a band of at least 2¹⁸ pixels.

        Raises
        ------
        ValueError
            Arrays that do not fit, or a pixel whose colour was not counted.
        """
        cdef Image im
        cdef int status = 0, n
        if self.state != _FINISHED:
            raise ValueError("lookup() needs count() and finish() first")
        _image(&im, pixels, self.clear)
        if im.channels != self.n_channels:
            raise ValueError(f"pixels must have C = {self.n_channels} as counted, got {im.channels}")
        if values.shape[0] != self.table.used:
            raise ValueError(f"values must be ({self.table.used},), one per colour, got "
                             f"({values.shape[0]},)")
        if out.shape[0] != im.height or out.shape[1] != im.width:
            raise ValueError(f"out must be ({im.height}, {im.width}), got ({out.shape[0]}, "
                             f"{out.shape[1]})")
        if n_threads < 1:
            raise ValueError(f"n_threads must be at least 1, got {n_threads}")
        if im.data == NULL:
            return
        if self.table.used == 0:  # nothing was counted, so no pixel can be found
            raise ValueError("a pixel's colour is not in the table (pixels other than counted?)")
        n = _threads(&im, n_threads)
        with nogil:
            if n > 1:
                status = _lookup_bands(&self.table, &im, &values[0], &out[0, 0], n)
            else:
                status = _lookup_image(&self.table, &im, &values[0], &out[0, 0])
        if status == -2:
            raise MemoryError()
        if status != 0:
            raise ValueError("a pixel's colour is not in the table (pixels other than counted?)")


def max_threads():
    """OpenMP's default number of threads (all cores unless OMP_NUM_THREADS says otherwise)."""
    return openmp.omp_get_max_threads()
