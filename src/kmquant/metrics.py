"""Image quality and size figures, computed over tiles of rows so that memory stays bounded.

The formulas are scikit-image's: PSNR as :func:`skimage.metrics.peak_signal_noise_ratio`, SSIM as
:func:`skimage.metrics.structural_similarity` (7×7 uniform windows, ``data_range=255``, channels
averaged) and ΔE as :func:`skimage.color.deltaE_ciede2000` of :func:`skimage.color.rgb2lab`. What
differs is the order of the work: the images are read a tile of rows at a time -- the quantized one
made from ``palette[indices]`` tile by tile, RGBA premultiplied tile by tile -- and one pass over the
tiles computes every metric asked for. Extra memory is a few tens of MB whatever the image size,
where whole-image float64 arrays took 2 GB on 12.6 MP and 11 GB on 81 MP.

scikit-image is imported inside the functions: it pulls in SciPy's statistics (half a second),
which a command that measures nothing should not pay for.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ssimulacra2",
    "Ssimulacra2",
    "Quality",
    "measure",
    "measure_arrays",
    "mse",
    "psnr",
    "ssim",
    "delta_e",
    "bits_per_pixel",
    "visible",
    "SAMPLE_ABOVE",
]

#: Values (pixels × channels) per tile of rows, halo excluded. SSIM keeps about 115 bytes per value
#: of work arrays (five int32 terms and three stages of window sums, three float64 factors): about
#: 15 MB (tracemalloc). SSIM of a 4096×3072 Kodak mosaic (2 shared cores, best of 5) took 1.6 s
#: with 2^15 values a tile, 1.4 s with 2^16, 1.2 s with 2^17, 1.5 s with 2^18, 2.0 s with 2^20:
#: larger tiles fall out of cache, smaller ones pay more for the 6 halo rows.
_TILE_VALUES = 1 << 17
#: Pixels whose (original, quantized) colour keys are pooled before ΔE sorts them and converts the
#: distinct pairs (4 or 8 bytes each). Larger pools repeat fewer pairs: on the 4096×3072 mosaic a
#: pool of 2^20 pixels holds 0.08 distinct pairs per pixel, 2^22 holds 0.045 and runs 1.3-1.5x
#: faster (mosaic and an upscaled noisy photo) for 16 MB of keys (uint32) or 32 MB (uint64).
_DELTA_E_CHUNK = 1 << 22
#: Sorted keys whose runs are counted at once (about 30 bytes per key in flight: 8 MB).
_SEGMENT = 1 << 18
#: Distinct colour pairs converted to CIELAB and compared per call. skimage's
#: CIEDE2000 keeps about 30 float64 temporaries per pair (2^14 pairs: 4 MB), and rgb2lab's matrix
#: product goes to OpenBLAS, which takes two threads above ~30000 colours and spins on busy cores:
#: ΔE of the mosaic took 2.8 s with batches of 2^16, 1.9 s with 2^14, 2.1 s with 2^12.
_CIEDE_BATCH = 1 << 14
#: Bins per unit of ΔE in the histogram behind ``delta_e(..., percentile=q)``.
_DELTA_E_BINS = 1000
#: Above this many pixels, SSIM and ΔE2000 are measured on a seeded sample of tiles of rows
#: holding about this many pixels (PSNR stays exact over every pixel: it is cheap). On the
#: 4096×3072 mosaic at K = 256 the whole SSIM and ΔE took 1.9 s, more than its quantization
#: (0.6 s); with 4 MP sampled, the report's metrics (PSNR included) took 0.61 s, still a little
#: more; with 3 MP, less (see README). The report states the share measured.
SAMPLE_ABOVE = 3_000_000
#: SSIM window side (scikit-image's default for uniform windows) and constants K1, K2 at range 255.
_SSIM_WIN = 7
_SSIM_C1 = (0.01 * 255) ** 2
_SSIM_C2 = (0.03 * 255) ** 2


@dataclass(frozen=True)
class Quality:
    """The metrics of one quantized image; None where not asked (or, for SSIM, undefined).

    Attributes
    ----------
    psnr : float or None
        Peak signal-to-noise ratio in dB, ``inf`` for an exact copy.
    ssim : float or None
        Mean structural similarity, 1.0 for an exact copy; None also for images under 3 pixels on
        a side that differ.
    delta_e : float or None
        Mean CIEDE2000 difference per pixel, 0.0 for an exact copy.
    sample : float or None
        The share of the rows SSIM and ΔE were measured on, when the image was sampled (above
        :data:`SAMPLE_ABOVE` pixels); None when every pixel was.
    """

    psnr: float | None = None
    ssim: float | None = None
    delta_e: float | None = None
    sample: float | None = None


def visible(pixels: NDArray[np.uint8]) -> NDArray[np.uint8]:
    """What a viewer sees: RGBA premultiplied by alpha; other images unchanged.

    The colour under a fully transparent pixel is invisible and arbitrary (kmquant stores it as
    black), so quality is measured on premultiplied values, where it counts in proportion to its
    opacity.

    Parameters
    ----------
    pixels : (H, W, C) uint8 ndarray

    Returns
    -------
    (H, W, C) uint8 ndarray
    """
    if pixels.shape[2] != 4:
        return pixels
    # round(colour * alpha / 255) in uint16: t = c a + 128, (t + t // 256) // 256 rounds exactly
    # (c a / 255 is never within 1/510 of a half, so no ties), 4x faster than float64
    product = pixels[:, :, :3] * pixels[:, :, 3:].astype(np.uint16)
    product += 128
    product += product >> 8
    product >>= 8
    out = np.empty_like(pixels)
    out[:, :, :3] = product
    out[:, :, 3] = pixels[:, :, 3]
    return out


# --- public entry points


def measure(
    original: NDArray[np.uint8],
    palette: NDArray[np.uint8],
    indices: NDArray[np.uint8],
    *,
    psnr: bool = True,
    ssim: bool = True,
    delta_e: bool = True,
    lossless: bool = False,
    sample_above: int | None = SAMPLE_ABOVE,
) -> Quality:
    """PSNR, SSIM and ΔE of an indexed image against its original, as a viewer sees them.

    The quantized image ``palette[indices]`` is never built whole: each tile of rows is made from
    its indices, RGBA is premultiplied (:func:`visible`) per tile, and one pass over the tiles
    computes every metric asked for. A tile that equals the original exactly is only compared, so
    an exact copy costs one comparison pass.

    Parameters
    ----------
    original : (H, W, C) uint8 ndarray
        C = 1 (grey), 3 (RGB) or 4 (RGBA).
    palette : (K, C) uint8 ndarray
        K from 1 to 256.
    indices : (H, W) uint8 ndarray
        Every value below K.
    psnr, ssim, delta_e : bool, optional
        Which metrics to compute (the others are None).
    lossless : bool, optional
        The caller knows the quantized image equals the original (it had at most K colours):
        return the exact-copy values without reading the pixels.
    sample_above : int or None, optional
        Above this many pixels, SSIM and ΔE are measured on a seeded sample of tiles of rows
        holding about this many pixels (``Quality.sample`` says which share); PSNR is always
        exact. None measures every pixel.

    Returns
    -------
    Quality

    Raises
    ------
    ValueError
        Shapes or dtypes are wrong, the image has no pixels, or an index is not below K.

    Examples
    --------
    >>> import numpy as np
    >>> palette = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)
    >>> indices = np.array([[0, 1], [1, 0]], np.uint8)
    >>> measure(palette[indices], palette, indices)
    Quality(psnr=inf, ssim=1.0, delta_e=0.0)
    """
    _check_image(original, "original")
    _check_indexed(original, palette, indices)
    if lossless or not (psnr or ssim or delta_e):
        return _exact_copy(psnr, ssim, delta_e)
    shown = visible(palette[None])[0]

    def rows(start: int, stop: int) -> NDArray[np.uint8]:
        return shown.take(indices[start:stop], axis=0)  # 3x faster than shown[indices[...]]

    de = _DeltaE(_palette_lab(shown), None, indices.size) if delta_e else None
    tally = _tally(original, rows, premultiply=True, psnr=psnr, ssim=ssim, de=de, indices=indices,
                   sample_above=sample_above)
    return _quality(tally, original.shape)


def measure_arrays(
    original: NDArray[np.uint8],
    quantized: NDArray[np.uint8],
    *,
    psnr: bool = True,
    ssim: bool = True,
    delta_e: bool = True,
    lossless: bool = False,
    sample_above: int | None = SAMPLE_ABOVE,
) -> Quality:
    """:func:`measure` for a quantized image given whole, e.g. a decoded JPEG or WebP output.

    Parameters
    ----------
    original, quantized : (H, W, C) uint8 ndarray
        C = 1, 3 or 4; both premultiplied per tile when RGBA.
    psnr, ssim, delta_e, lossless, sample_above : optional
        As in :func:`measure`.

    Returns
    -------
    Quality

    Raises
    ------
    ValueError
        Shapes or dtypes are wrong or the images have no pixels.
    """
    _check_pair(original, quantized)
    if lossless or not (psnr or ssim or delta_e):
        return _exact_copy(psnr, ssim, delta_e)

    def rows(start: int, stop: int) -> NDArray[np.uint8]:
        return visible(quantized[start:stop])

    de = _DeltaE(None, None, original.shape[0] * original.shape[1]) if delta_e else None
    tally = _tally(original, rows, premultiply=True, psnr=psnr, ssim=ssim, de=de,
                   sample_above=sample_above)
    return _quality(tally, original.shape)


def mse(original: NDArray[np.uint8], quantized: NDArray[np.uint8]) -> float:
    """Mean squared error over all pixels and channels.

    Parameters
    ----------
    original, quantized : (H, W, C) uint8 ndarray
    """
    _check_pair(original, quantized)
    return _tally(original, _slicer(quantized), psnr=True).sse / original.size


def psnr(original: NDArray[np.uint8], quantized: NDArray[np.uint8]) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` for identical images).

    Parameters
    ----------
    original, quantized : (H, W, C) uint8 ndarray
    """
    _check_pair(original, quantized)
    value = _quality(_tally(original, _slicer(quantized), psnr=True), original.shape).psnr
    assert value is not None  # asked for, so computed
    return value


def ssimulacra2(original: NDArray[np.uint8], quantized: NDArray[np.uint8]) -> float:
    """SSIMULACRA2 score of the ``ssimulacra2`` package (Cloudinary's perceptual metric).

    100 is identical, about 90 visually lossless, 70 high quality, 50 medium; it can go below
    0. The colour channels are scored (the package reads pictures as RGB); a grey picture counts
    as RGB with three equal channels. The same value as the package's ``compute_ssimulacra2`` on
    PNG files of the two pictures; :class:`Ssimulacra2` scores many pictures against one
    original faster.

    Parameters
    ----------
    original, quantized : (H, W, C) uint8 ndarray
        C = 1, 3 or 4; at least 8 × 8 pixels for a meaningful score.

    Raises
    ------
    EngineUnavailableError
        The ``ssimulacra2`` package is not installed (``pip install 'kmquant[perceptual]'``).
    """
    _check_pair(original, quantized)
    return Ssimulacra2(original).score(quantized)


class Ssimulacra2:
    """SSIMULACRA2 against one original: its half of the work (colour conversion, blurs at
    every scale) is done once, so that each further picture costs about 60 % of a full score.

    The arithmetic is the ``ssimulacra2`` package's, step by step, with its functions.

    Parameters
    ----------
    original : (H, W, C) uint8 ndarray

    Raises
    ------
    EngineUnavailableError
        The ``ssimulacra2`` package is not installed.
    """

    def __init__(self, original: NDArray[np.uint8]) -> None:
        _check_image(original, "original")
        try:
            from ssimulacra2 import ssimulacra2 as package
        except ImportError:
            from .errors import EngineUnavailableError

            raise EngineUnavailableError(
                "the SSIMULACRA2 target needs the ssimulacra2 package; install it with "
                "pip install 'kmquant[perceptual]'") from None
        self._s2 = package
        self._shape = original.shape
        linear = package.srgb_to_linear(_rgb(original))
        self._scales: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for scale in range(package.kNumScales):
            xyb = package.make_positive_xyb(package.linear_rgb_to_xyb(linear))
            if xyb.shape[0] < 8 or xyb.shape[1] < 8:
                break
            self._scales.append((xyb, package.blur_image(xyb), package.blur_image(xyb * xyb)))
            if scale < package.kNumScales - 1:
                linear = package.downsample(linear, 2, 2)

    def score(self, picture: NDArray[np.uint8]) -> float:
        """The SSIMULACRA2 of ``picture`` (same shape as the original) against the original."""
        if picture.shape != self._shape:
            raise ValueError(f"picture must have the original's shape {self._shape}, got "
                             f"{picture.shape}")
        s2 = self._s2
        msssim = s2.Msssim()
        linear = s2.srgb_to_linear(_rgb(picture))
        for i, (img1, mu1, sigma1_sq) in enumerate(self._scales):
            if i:
                linear = s2.downsample(linear, 2, 2)
            img2 = s2.make_positive_xyb(s2.linear_rgb_to_xyb(linear))
            sigma2_sq = s2.blur_image(img2 * img2)
            sigma12 = s2.blur_image(img1 * img2)
            mu2 = s2.blur_image(img2)
            scale = s2.MsssimScale()
            scale.avg_ssim = s2.ssim_map(mu1, mu2, sigma1_sq, sigma2_sq, sigma12)
            scale.avg_edgediff = s2.edge_diff_map(img1, mu1, img2, mu2)
            msssim.scales.append(scale)
        return float(msssim.score())


def _rgb(pixels: NDArray[np.uint8]) -> NDArray[np.float64]:
    """(H, W, 3) float64 colour as the package reads a picture (alpha dropped, grey spread)."""
    if pixels.shape[2] == 1:
        pixels = np.repeat(pixels, 3, axis=2)
    return np.array(pixels[:, :, :3], dtype=np.float64)


def ssim(original: NDArray[np.uint8], quantized: NDArray[np.uint8]) -> float | None:
    """Mean structural similarity (Wang et al. 2004), 7×7 windows, channels averaged.

    Parameters
    ----------
    original, quantized : (H, W, C) uint8 ndarray

    Returns
    -------
    float or None
        None for images under 3 pixels on a side, which have no SSIM window.
    """
    _check_pair(original, quantized)
    return _quality(_tally(original, _slicer(quantized), ssim=True), original.shape).ssim


def bits_per_pixel(n_bytes: int, width: int, height: int) -> float:
    """File size in bits divided by the number of pixels."""
    return 8.0 * n_bytes / (width * height)


def delta_e(
    original: NDArray[np.uint8], quantized: NDArray[np.uint8], *, percentile: float | None = None
) -> float:
    """Mean (or a percentile of) the CIEDE2000 colour difference per pixel.

    Colours go to CIELAB (D65) with :func:`skimage.color.rgb2lab` and are compared with
    :func:`skimage.color.deltaE_ciede2000`. The work runs over pools of rows, on each pool's
    distinct (original, quantized) colour pairs only -- a quantized image has few of them -- so
    memory stays bounded and large images are fast; the result is the same as per pixel.

    Parameters
    ----------
    original, quantized : (H, W, C) uint8 ndarray
        C = 3 (RGB), 4 (RGBA: alpha is ignored; pass :func:`visible` images to weigh colours by
        their opacity) or 1 (grey, compared as the RGB grey).
    percentile : float, optional
        From 0 to 100: return this percentile of the per-pixel differences instead of the mean
        (the smallest ΔE that at least ``percentile`` % of the pixels do not exceed, as
        ``numpy.percentile(..., method="inverted_cdf")``), to within 0.001.

    Returns
    -------
    float
        0.0 for identical colours; about 1 is a just-noticeable difference.

    Raises
    ------
    ValueError
        Shapes differ, C is not 1, 3 or 4, the images have no pixels, or ``percentile`` is out of
        range.

    Examples
    --------
    >>> import numpy as np
    >>> grey = np.full((2, 2, 3), 128, np.uint8)
    >>> delta_e(grey, grey)
    0.0
    """
    _check_pair(original, quantized)
    if percentile is not None and not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be from 0 to 100, got {percentile!r}")
    n_pixels = original.shape[0] * original.shape[1]
    de = _DeltaE(None, percentile, n_pixels)
    _tally(original, _slicer(quantized), de=de)
    return de.result(n_pixels)


# --- checks


def _check_image(image: NDArray[np.uint8], name: str) -> None:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        shape = getattr(image, "shape", None)
        raise ValueError(f"{name} must be (H, W, C) with C = 1, 3 or 4, got shape {shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"{name} must be uint8, got {image.dtype}")
    if image.shape[0] * image.shape[1] == 0:
        raise ValueError(f"images have no pixels (shape {image.shape})")


def _check_pair(original: NDArray[np.uint8], quantized: NDArray[np.uint8]) -> None:
    shapes = getattr(original, "shape", None), getattr(quantized, "shape", None)
    if shapes[0] != shapes[1]:
        raise ValueError(f"images differ in shape: {shapes[0]} vs {shapes[1]}")
    _check_image(original, "original")
    _check_image(quantized, "quantized")


def _check_indexed(
    original: NDArray[np.uint8], palette: NDArray[np.uint8], indices: NDArray[np.uint8]
) -> None:
    channels = original.shape[2]
    if not isinstance(palette, np.ndarray) or palette.ndim != 2 or palette.shape[1] != channels:
        raise ValueError(f"palette must be (K, {channels}), got shape {getattr(palette, 'shape', None)}")
    if palette.dtype != np.uint8 or not 1 <= len(palette) <= 256:
        raise ValueError(f"palette must be uint8 with 1 to 256 rows, got {palette.dtype} {palette.shape}")
    if not isinstance(indices, np.ndarray) or indices.shape != original.shape[:2]:
        raise ValueError(
            f"indices must be (H, W) = {original.shape[:2]}, got shape {getattr(indices, 'shape', None)}"
        )
    if indices.dtype != np.uint8:
        raise ValueError(f"indices must be uint8, got {indices.dtype}")
    if int(indices.max()) >= len(palette):
        raise ValueError(f"index {int(indices.max())} is out of range for a palette of {len(palette)}")


def _exact_copy(psnr: bool, ssim: bool, delta_e: bool) -> Quality:
    return Quality(
        psnr=math.inf if psnr else None,
        ssim=1.0 if ssim else None,
        delta_e=0.0 if delta_e else None,
    )


# --- the pass over tiles

_Rows = Callable[[int, int], NDArray[np.uint8]]


def _slicer(image: NDArray[np.uint8]) -> _Rows:
    return lambda start, stop: image[start:stop]


@dataclass
class _Tally:
    """What one pass over the tiles added up: squared errors, the SSIM map, ΔE pairs."""

    psnr: bool
    ssim: bool
    de: _DeltaE | None
    ssim_win: int  # 0: SSIM not asked, or the image is under 3 pixels on a side
    sse: int = 0  # exact: a Python int
    ssim_sum: float = 0.0
    identical: bool = True
    ssim_rows: int = 0  # rows of the SSIM map added up
    de_pixels: int = 0  # pixels whose ΔE was counted
    sample: float | None = None  # share of the rows measured for SSIM and ΔE, when sampled


def _tally(
    original: NDArray[np.uint8],
    quantized: _Rows,
    *,
    premultiply: bool = False,
    psnr: bool = False,
    ssim: bool = False,
    de: _DeltaE | None = None,
    indices: NDArray[np.uint8] | None = None,
    sample_above: int | None = None,
) -> _Tally:
    """One pass over tiles of rows of ``original`` (H, W, C) and the quantized image.

    Parameters
    ----------
    original : (H, W, C) uint8 ndarray
    quantized : callable
        ``quantized(start, stop)`` gives rows ``start:stop`` of the quantized image, (h, W, C).
    premultiply : bool
        Pass the original's tiles through :func:`visible` (``quantized`` does its own).
    psnr, ssim : bool
        Add up squared errors, the SSIM map.
    de : _DeltaE, optional
        Pool the ΔE pairs there.
    indices : (H, W) uint8 ndarray, optional
        The palette indices behind ``quantized``: the ΔE keys use them.
    sample_above : int, optional
        Above this many pixels, SSIM and ΔE use a seeded sample of the tiles (PSNR every tile).
    """
    height, width, channels = original.shape
    tally = _Tally(psnr, ssim, de, _ssim_window(height, width) if ssim else 0)
    scratch = _Scratch()
    pad = (tally.ssim_win - 1) // 2 if tally.ssim_win else 0
    step = max(1, _TILE_VALUES // (width * channels))
    starts = range(0, height, step)
    chosen = _sampled_tiles(len(starts), height * width, sample_above)
    if chosen is not None:
        tally.sample = sum(min(step, height - starts[i]) for i in chosen) / height
    for index, start in enumerate(starts):
        stop = min(start + step, height)
        if chosen is not None and index not in chosen:  # PSNR only: exact over every pixel
            if psnr:
                a, b = original[start:stop], quantized(start, stop)
                a = visible(a) if premultiply else a
                if not np.array_equal(a, b):
                    tally.identical = False
                    tally.sse += _sse(a, b, scratch)
            continue
        first, last = max(start - pad, 0), min(stop + pad, height)  # with the SSIM halo
        a, b = original[first:last], quantized(first, last)
        a = visible(a) if premultiply else a
        own = slice(start - first, stop - first)
        # the SSIM map's rows [pad, height - pad) that fall in this tile
        map_start, map_stop = max(start, pad), min(stop, height - pad)
        if tally.ssim_win and map_stop > map_start:
            tally.ssim_rows += map_stop - map_start
        tally.de_pixels += (stop - start) * width
        if np.array_equal(a, b):  # exact: S is 1.0 where x == y, the error and ΔE are 0
            if tally.ssim_win and map_stop > map_start:
                tally.ssim_sum += (map_stop - map_start) * (width - 2 * pad) * channels
            if de is not None:
                de.add_zeros((stop - start) * width)
            continue
        tally.identical = False
        if psnr:
            tally.sse += _sse(a[own], b[own], scratch)
        if de is not None:
            de.add(a[own], b[own] if indices is None else indices[start:stop])
        if tally.ssim_win and map_stop > map_start:
            block = slice(map_start - pad - first, map_stop + pad - first)
            tally.ssim_sum += _ssim_sum(a[block], b[block], tally.ssim_win, scratch)
    return tally


def _quality(tally: _Tally, shape: tuple[int, ...]) -> Quality:
    """The figures asked for from a tally of images of ``shape`` (H, W, C)."""
    height, width, channels = shape
    psnr_value = ssim_value = None
    if tally.psnr:
        mse_value = tally.sse / (height * width * channels)
        psnr_value = 10 * math.log10(255.0**2 / mse_value) if tally.sse else math.inf
    if tally.ssim_win:
        side = tally.ssim_win - 1
        ssim_value = tally.ssim_sum / (tally.ssim_rows * (width - side) * channels)
    elif tally.ssim and tally.identical:
        ssim_value = 1.0
    return Quality(
        psnr=psnr_value,
        ssim=ssim_value,
        delta_e=tally.de.result(tally.de_pixels) if tally.de is not None else None,
        sample=tally.sample,
    )


def _sampled_tiles(n_tiles: int, n_pixels: int, sample_above: int | None) -> set[int] | None:
    """The tiles SSIM and ΔE read when the image has more than ``sample_above`` pixels: a seeded
    choice (the same for the same image size) holding about ``sample_above`` pixels; None below
    that (every tile)."""
    if sample_above is None or n_pixels <= sample_above or n_tiles < 2:
        return None
    wanted = max(1, math.ceil(n_tiles * sample_above / n_pixels))
    if wanted >= n_tiles:
        return None
    rng = np.random.default_rng(n_tiles)
    return {int(i) for i in rng.choice(n_tiles, wanted, replace=False)}


def _sse(a: NDArray[np.uint8], b: NDArray[np.uint8], scratch: _Scratch) -> int:
    """Sum of squared differences, exact (int32 squares, int64 sum).

    Not ``np.dot``: multithreaded OpenBLAS spins when the cores are busy (7x slower measured).
    """
    d = np.subtract(a, b, dtype=np.int32, out=scratch("difference", a.shape, np.int32))
    np.multiply(d, d, out=d)
    return int(d.sum(dtype=np.int64))


# --- SSIM


def _ssim_window(height: int, width: int) -> int:
    """SSIM window side for an image: 7, or the largest odd side that fits; 0 under 3 pixels."""
    side = min(height, width)
    if side < 3:
        return 0
    return min(_SSIM_WIN, side if side % 2 else side - 1)


def _ssim_sum(a: NDArray[np.uint8], b: NDArray[np.uint8], win: int, scratch: _Scratch) -> float:
    """Sum of the SSIM map over the rows and columns of a block whose window fits whole.

    The block's first and last ``(win - 1) // 2`` rows and columns are the halo. This is
    scikit-image's uniform-window formula with the means, variances and covariance written over
    exact integer window sums: with n = win², Sx = Σx etc.,

        S = (2 Sx Sy + C1 n²) (2 (n Sxy - Sx Sy) + C2 n (n-1))
            / ((Sx² + Sy² + C1 n²) (n (Sxx + Syy) - Sx² - Sy² + C2 n (n-1)))

    which is skimage's ``A1 A2 / (B1 B2)`` (sample covariance) multiplied through by n² n (n-1).
    Every integer stays below 2^31 for win ≤ 7; the result differs from skimage's running float
    sums by rounding only (about 1e-15). Where x == y the quotient is exactly 1.0.

    Parameters
    ----------
    a, b : (h + win - 1, w + win - 1, C) uint8 ndarray
    win : int
        Odd window side, 3 to 7.
    scratch : _Scratch
        Where the work arrays come from.

    Returns
    -------
    float
        Sum of the h × w × C map values.
    """
    rows, width, channels = a.shape
    h, w = rows - win + 1, width - win + 1
    terms = scratch("terms", (rows, 5, width, channels), np.int32)  # a row is contiguous
    terms[:, 0], terms[:, 1] = a, b
    np.multiply(a, a, out=terms[:, 2], dtype=np.int32)
    np.multiply(b, b, out=terms[:, 3], dtype=np.int32)
    np.multiply(a, b, out=terms[:, 4], dtype=np.int32)
    columns = _column_sums(terms, win, scratch("columns", (h, 5, width, channels), np.int32))
    sums = _row_sums(columns, win, scratch("pairs", (h, 5, width - 1, channels), np.int32),
                     scratch("sums", (h, 5, w, channels), np.int32))
    sx, sy, sxx, syy, sxy = (sums[:, i] for i in range(5))
    n = win * win
    c1, c2 = _SSIM_C1 * n * n, _SSIM_C2 * n * (n - 1)
    xy = np.multiply(sx, sy, out=scratch("xy", (h, w, channels), np.int32))
    sx *= sx
    sy *= sy
    sx += sy  # Sx² + Sy²
    sxy *= n
    sxy -= xy
    sxy *= 2  # 2 (n Sxy - Sx Sy)
    sxx += syy
    sxx *= n
    sxx -= sx  # n (Sxx + Syy) - Sx² - Sy²
    num = np.multiply(xy, 2.0, out=scratch("num", (h, w, channels), np.float64))
    num += c1
    den = np.add(sx, c1, out=scratch("den", (h, w, channels), np.float64))
    term = np.add(sxy, c2, out=scratch("term", (h, w, channels), np.float64))
    num *= term
    np.add(sxx, c2, out=term)
    den *= term
    num /= den
    return float(num.sum())


def _column_sums(rows: NDArray[np.int32], win: int, out: NDArray[np.int32]) -> NDArray[np.int32]:
    """Sums of ``win`` consecutive rows (axis 0) into ``out``, exact, as a running sum.

    One row in and one row out per step: two passes over cache-sized rows, 3x faster than adding
    shifted copies of the whole tile (0.8 ms vs 2.4 ms for a 27×4096×3 tile).
    """
    np.add(rows[0], rows[1], out=out[0])
    for k in range(2, win):
        out[0] += rows[k]
    for i in range(1, len(out)):
        np.add(out[i - 1], rows[i + win - 1], out=out[i])
        out[i] -= rows[i - 1]
    return out


def _row_sums(
    values: NDArray[np.int32], win: int, pairs: NDArray[np.int32], out: NDArray[np.int32]
) -> NDArray[np.int32]:
    """Sums of ``win`` (odd, 3 or more) consecutive entries along axis 2 into ``out``, exact.

    Adds neighbours into ``pairs`` once, then every other pair (win = 7: 4 passes instead of 6).
    """
    n = out.shape[2]
    if win == 3:
        np.add(values[:, :, :n], values[:, :, 1:n + 1], out=out)
    else:
        np.add(values[:, :, :-1], values[:, :, 1:], out=pairs)
        np.add(pairs[:, :, :n], pairs[:, :, 2:n + 2], out=out)
        for offset in range(4, win - 1, 2):
            out += pairs[:, :, offset:offset + n]
    out += values[:, :, win - 1:win - 1 + n]
    return out


class _Scratch:
    """Named work arrays kept from tile to tile, grown when a tile needs more.

    Allocating and freeing the SSIM arrays (~10 MB) per tile made glibc hand the memory back to
    the system and fault it in again: 836,000 page faults and 5x the time for SSIM of the mosaic
    (7.8 s against 1.4 s).
    """

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def __call__(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        size = math.prod(shape)
        array = self.arrays.get(name)
        if array is None or array.size < size or array.dtype != dtype:
            array = self.arrays[name] = np.empty(size, dtype)
        return array[:size].reshape(shape)


# --- ΔE


def _palette_lab(shown: NDArray[np.uint8]) -> NDArray[np.float64]:
    """CIELAB of each (premultiplied) palette colour, alpha ignored, grey as RGB grey: (K, 3)."""
    from skimage.color import rgb2lab

    rgb = np.repeat(shown, 3, axis=1) if shown.shape[1] == 1 else shown[:, :3]
    return rgb2lab(np.ascontiguousarray(rgb))


class _DeltaE:
    """CIEDE2000 over pools of pixels: each pool's distinct colour pairs are converted once.

    A pixel's pair is packed into one integer key: (original RGB, palette index) in 32 bits when
    the quantized image is indexed, (original RGB, quantized RGB) in 64 bits otherwise. A pool of
    keys is sorted in place and its runs counted.
    """

    def __init__(
        self, palette_lab: NDArray[np.float64] | None, percentile: float | None, n_pixels: int
    ):
        self.palette_lab, self.percentile = palette_lab, percentile
        self.pool = min(n_pixels, _DELTA_E_CHUNK)
        self.keys = np.zeros(0, "<u4" if palette_lab is not None else "<u8")
        self.filled = 0
        self.total = 0.0
        self.counts, self.sums = np.zeros(1), np.zeros(1)

    def add_zeros(self, n: int) -> None:
        """Count ``n`` pixels whose colours are equal (ΔE 0)."""
        self.counts[0] += n

    def add(self, a: NDArray[np.uint8], b: NDArray[np.uint8]) -> None:
        """Pool the pairs of an original tile ``a`` (h, W, C) and ``b``: quantized tile or indices."""
        n = a.shape[0] * a.shape[1]
        if self.filled + n > len(self.keys):
            self.flush()
            if n > len(self.keys):
                self.keys = np.zeros(max(n, self.pool), self.keys.dtype)
        view = self.keys[self.filled:self.filled + n].view(np.uint8).reshape(n, self.keys.itemsize)
        rgb = [0, 0, 0] if a.shape[2] == 1 else [0, 1, 2]
        if self.palette_lab is not None:  # bytes, little-endian: index, B, G, R
            view[:, 0] = b.reshape(n)
            high = 3
        else:  # B', G', R', B, G, R, 0, 0
            for byte, channel in zip((2, 1, 0), rgb):
                view[:, byte] = b[:, :, channel].reshape(n)
            high = 5
        for byte, channel in zip((high, high - 1, high - 2), rgb):
            view[:, byte] = a[:, :, channel].reshape(n)
        self.filled += n

    def flush(self) -> None:
        """Sort the pooled keys, convert their distinct pairs and add them up."""
        keys = self.keys[:self.filled]
        self.filled = 0
        if not len(keys):
            return
        keys.sort()
        # runs are counted a segment at a time (a run cut at a segment's end counts as two pairs
        # of the same ΔE), so that the run arrays stay small even when every key is distinct
        for first in range(0, len(keys), _SEGMENT):
            segment = keys[first:first + _SEGMENT]
            starts = np.flatnonzero(np.concatenate(([True], segment[1:] != segment[:-1])))
            runs = np.diff(np.append(starts, len(segment))).astype(np.float64)
            distinct = segment[starts]
            for batch in range(0, len(distinct), _CIEDE_BATCH):
                part = slice(batch, batch + _CIEDE_BATCH)
                self._count(self._ciede2000(distinct[part]), runs[part])

    def _ciede2000(self, keys: NDArray[np.unsignedinteger]) -> NDArray[np.float64]:
        from skimage.color import deltaE_ciede2000, rgb2lab

        view = keys.view(np.uint8).reshape(len(keys), keys.itemsize)
        if self.palette_lab is not None:
            return deltaE_ciede2000(rgb2lab(view[:, [3, 2, 1]]), self.palette_lab[view[:, 0]])
        return deltaE_ciede2000(rgb2lab(view[:, [5, 4, 3]]), rgb2lab(view[:, [2, 1, 0]]))

    def _count(self, de: NDArray[np.float64], n: NDArray[np.float64]) -> None:
        self.total += float(np.einsum("i,i->", de, n))  # not BLAS: see _sse
        if self.percentile is not None:
            bins = (de * _DELTA_E_BINS).astype(np.intp)
            self.counts = _add(self.counts, np.bincount(bins, weights=n).astype(np.float64))
            self.sums = _add(self.sums, np.bincount(bins, weights=de * n).astype(np.float64))

    def result(self, n_pixels: int) -> float:
        """Mean ΔE over ``n_pixels`` (pixels never added count as 0), or the percentile."""
        self.flush()
        if self.percentile is None:
            return self.total / n_pixels
        cumulative = np.cumsum(self.counts)
        i = int(np.searchsorted(cumulative, max(self.percentile / 100 * cumulative[-1], 0.5)))
        return float(self.sums[i] / self.counts[i])  # the mean of the bin: exact if all equal


def _add(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """Sum of two 1-D arrays of maybe different lengths, the shorter padded with zeros."""
    if x.size < y.size:
        x, y = y, x
    x = x.copy()
    x[: y.size] += y
    return x
