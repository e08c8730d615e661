"""Conversion between 8-bit colours and the working space of the clustering.

k-means clusters ``to_working(colours)``, the fitted centres come back through ``from_working``,
and the remap measures nearest colours in the same space. The spaces (:data:`SPACE_NAMES`):

``rgb``
    The 8-bit sRGB values as floats, 0..255.
``linear``
    Linear-light sRGB (the IEC 61966-2-1 transfer function undone) × 255, 0..255.
``oklab``
    Björn Ottosson's Oklab (from linear sRGB) × 255: L 0..255, a −60..70, b −79..51 over
    the sRGB gamut. The same factor on all three axes keeps Oklab's distances perceptual
    (distance / 255 is Oklab's ΔE).
``lab``
    CIELAB, D65, 2° observer (scikit-image's ``rgb2lab``/``lab2rgb``) × 2.55: L* 0..255,
    a* −220..251, b* −275..241 over the sRGB gamut. Distance / 2.55 is ΔE*76.

Why those factors: each puts white at 255 on the lightness-like axis, so one 8-bit step of a mid
grey is about one unit in every space (1 in ``rgb``, 0.93 in ``linear``, 0.86 in ``oklab``,
1.0 in ``lab``, from 127 to 128). That keeps :data:`ALPHA_WEIGHT` meaning the same thing in
every space. The scale of the colour axes matters only against alpha: k-means, its tolerance
(relative to the variance) and the nearest-colour remap give the same answers for any uniform
factor.

Alpha, when present, is the last channel and is scaled by :data:`ALPHA_WEIGHT` in every space, so
that an error in opacity costs more than the same error in one colour channel: k-means then keeps
opaque and translucent pixels in separate clusters instead of giving opaque pixels a palette entry
that is slightly see-through.

Greyscale colours (C = 1, or 2 with alpha) have one working channel: the space's value of the
grey (g, g, g) on its first axis -- the value itself in ``rgb``, its linear-light value in
``linear``, L in ``oklab`` and ``lab``. Grey and RGB images thus share one lightness scale.

``from_working`` returns the nearest representable 8-bit colours: values outside the sRGB gamut
are clipped per channel in linear light (``lab`` clips L* to 0..100 first) and then rounded.
``to_working`` → ``from_working`` is exact (the identity) for every 8-bit colour in every space:
checked once on all 2²⁴ RGB colours; the tests check all 256 greys and a dense random sample.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np
from numpy.typing import NDArray

from .errors import InvalidOptionError
from .options import SPACE_NAMES

__all__ = [
    "to_working", "from_working", "SPACES", "SPACE_NAMES", "ALPHA_WEIGHT", "Space",
    "srgb_to_linear", "linear_to_srgb",
]


ALPHA_WEIGHT = 4.0

#: Lightness-like axis of ``oklab`` and ``lab`` runs 0..255 with these factors.
OKLAB_SCALE = 255.0
LAB_SCALE = 2.55


def srgb_to_linear(values: NDArray[np.floating]) -> NDArray[np.float64]:
    """Undo the sRGB transfer function (IEC 61966-2-1): encoded 0..1 → linear light 0..1.

    Parameters
    ----------
    values : (...) float ndarray

    Returns
    -------
    (...) float64 ndarray
    """
    v = np.asarray(values, dtype=np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((np.maximum(v, 0.04045) + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(values: NDArray[np.floating]) -> NDArray[np.float64]:
    """Apply the sRGB transfer function (IEC 61966-2-1): linear light 0..1 → encoded 0..1.

    Values outside 0..1 are clipped first.

    Parameters
    ----------
    values : (...) float ndarray

    Returns
    -------
    (...) float64 ndarray
    """
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    encoded = 1.055 * np.maximum(v, 0.0031308) ** (1 / 2.4) - 0.055
    return np.where(v <= 0.0031308, v * 12.92, encoded)


#: Linear-light value (0..1) of each 8-bit sRGB level: a lookup beats the power function on 10⁶
#: colours.
_LINEAR = srgb_to_linear(np.arange(256) / 255.0)


def _to_uint8(srgb01: NDArray[np.float64]) -> NDArray[np.uint8]:
    return np.clip(np.rint(srgb01 * 255.0), 0, 255).astype(np.uint8)


# --- rgb -----------------------------------------------------------------------------------------

def _rgb_to(colors: NDArray[np.uint8]) -> NDArray[np.float64]:
    return colors.astype(np.float64)


def _rgb_from(values: NDArray[np.float64]) -> NDArray[np.uint8]:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


# --- linear --------------------------------------------------------------------------------------

def _linear_to(colors: NDArray[np.uint8]) -> NDArray[np.float64]:
    return _LINEAR[colors] * 255.0


def _linear_from(values: NDArray[np.float64]) -> NDArray[np.uint8]:
    return _to_uint8(linear_to_srgb(values / 255.0))


# --- oklab ---------------------------------------------------------------------------------------
# Björn Ottosson, "A perceptual color space for image processing" (2020),
# https://bottosson.github.io/posts/oklab/ -- the matrices of linear_srgb_to_oklab() there.
# linear sRGB → LMS:
_OK_M1 = np.array([
    [0.4122214708, 0.5363325363, 0.0514459929],
    [0.2119034982, 0.6806995451, 0.1073969566],
    [0.0883024619, 0.2817188376, 0.6299787005],
])
# cube-rooted LMS → Lab:
_OK_M2 = np.array([
    [0.2104542553, 0.7936177850, -0.0040720468],
    [1.9779984951, -2.4285922050, 0.4505937099],
    [0.0259040371, 0.7827717662, -0.8086757660],
])
# The inverses are computed rather than copied from oklab_to_linear_srgb(), so that the round trip
# holds to float64 precision; they agree with the published ones (rounded to 10 digits) to 6e-8.
_OK_M1_INV = np.linalg.inv(_OK_M1)
_OK_M2_INV = np.linalg.inv(_OK_M2)


def _oklab_to(colors: NDArray[np.uint8]) -> NDArray[np.float64]:
    lms = _LINEAR[colors] @ _OK_M1.T
    return np.cbrt(lms) @ (_OK_M2.T * OKLAB_SCALE)


def _oklab_from(values: NDArray[np.float64]) -> NDArray[np.uint8]:
    lms = (values @ (_OK_M2_INV.T / OKLAB_SCALE)) ** 3
    return _to_uint8(linear_to_srgb(lms @ _OK_M1_INV.T))


# --- lab -----------------------------------------------------------------------------------------

def _lab_to(colors: NDArray[np.uint8]) -> NDArray[np.float64]:
    from skimage.color import rgb2lab  # imported when used: scikit-image is slow to import

    return rgb2lab(colors) * LAB_SCALE


def _lab_from(values: NDArray[np.float64]) -> NDArray[np.uint8]:
    from skimage.color import lab2rgb

    lab = values / LAB_SCALE
    lab[:, 0] = np.clip(lab[:, 0], 0.0, 100.0)  # the gamut's L*; L* < 0 would not come out black
    # Z < 0 is clipped to 0 by scikit-image with a warning; clipping b* to where Z = 0 first
    # (less 1e-9, against rounding) gives the same colour without the warning.
    lab[:, 2] = np.minimum(lab[:, 2], 200.0 * (lab[:, 0] + 16.0) / 116.0 - 1e-9)
    return _to_uint8(lab2rgb(lab))  # clips to the gamut


class Space(NamedTuple):
    """One working space.

    Attributes
    ----------
    to : callable
        ``(n, 3) uint8`` sRGB → ``(n, 3) float64`` working values.
    from_ : callable
        ``(n, 3) float64`` working values → ``(n, 3) uint8`` nearest sRGB (clipped, rounded).
    grey_axis : (3,) tuple of float
        Working-space direction of the greys: a grey's one working value v stands for the
        colour ``v * grey_axis``.
    """

    to: Callable[[NDArray[np.uint8]], NDArray[np.float64]]
    from_: Callable[[NDArray[np.float64]], NDArray[np.uint8]]
    grey_axis: tuple[float, float, float]


SPACES: dict[str, Space] = {
    "rgb": Space(_rgb_to, _rgb_from, (1.0, 1.0, 1.0)),
    "linear": Space(_linear_to, _linear_from, (1.0, 1.0, 1.0)),
    "oklab": Space(_oklab_to, _oklab_from, (1.0, 0.0, 0.0)),
    "lab": Space(_lab_to, _lab_from, (1.0, 0.0, 0.0)),
}
assert tuple(SPACES) == SPACE_NAMES  # the names users choose from are those of Options


def _space(name: str) -> Space:
    try:
        return SPACES[name]
    except KeyError:
        raise InvalidOptionError(
            f"space must be one of {', '.join(SPACE_NAMES)}; got {name!r}"
        ) from None


def _layout(channels: int) -> int:
    """Number of colour channels (1 or 3) of a C-channel array; the rest is alpha."""
    if channels not in (1, 2, 3, 4):
        raise ValueError(
            f"colours must have 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA) channels, "
            f"got {channels}"
        )
    return 1 if channels <= 2 else 3


def to_working(colors: NDArray[np.uint8], space: str = "rgb") -> NDArray[np.float64]:
    """Map 8-bit colours into the working space.

    Parameters
    ----------
    colors : (n, C) uint8 ndarray
        C = 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA).
    space : str
        One of :data:`SPACE_NAMES`.

    Returns
    -------
    (n, C) float64 ndarray
        C-contiguous; alpha (last channel, if any) times :data:`ALPHA_WEIGHT`.

    Raises
    ------
    InvalidOptionError
        Unknown ``space``.

    Examples
    --------
    >>> import numpy as np
    >>> to_working(np.array([[255, 255, 255]], np.uint8), "oklab").round(3) + 0.0
    array([[255.,   0.,   0.]])
    """
    spec = _space(space)
    colors = np.asarray(colors)
    n_color = _layout(colors.shape[1])
    if n_color == 1:  # the working value of (g, g, g) on the first axis
        values = spec.to(np.repeat(colors[:, :1], 3, axis=1))[:, :1]
    else:
        values = spec.to(colors[:, :3])
    if colors.shape[1] > n_color:
        values = np.column_stack([values, colors[:, -1] * ALPHA_WEIGHT])
    return np.ascontiguousarray(values, dtype=np.float64)


def from_working(values: NDArray[np.float64], space: str = "rgb") -> NDArray[np.uint8]:
    """Map working-space values back to the nearest 8-bit colours.

    Out-of-gamut values are clipped, then rounded.

    Parameters
    ----------
    values : (K, C) float64 ndarray
        C as for :func:`to_working`.
    space : str
        One of :data:`SPACE_NAMES`.

    Returns
    -------
    (K, C) uint8 ndarray

    Raises
    ------
    InvalidOptionError
        Unknown ``space``.
    """
    spec = _space(space)
    values = np.asarray(values, dtype=np.float64)
    n_color = _layout(values.shape[1])
    if n_color == 1:
        colors = spec.from_(values[:, :1] * np.asarray(spec.grey_axis))[:, 1:2]  # G: r ≈ g ≈ b
    else:
        colors = spec.from_(values[:, :3])
    if values.shape[1] > n_color:
        alpha = np.clip(np.rint(values[:, -1] / ALPHA_WEIGHT), 0, 255).astype(np.uint8)
        colors = np.column_stack([colors, alpha])
    return np.ascontiguousarray(colors, dtype=np.uint8)
