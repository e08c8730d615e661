"""The exceptions kmquant raises.

Library code raises these; only the shells (``cli``, later ``batch`` and ``web``) translate them
into exit codes, per-file results or HTTP statuses. Every message is one sentence a person can act
on: what is wrong, and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "KmquantError",
    "InvalidOptionError",
    "InputNotFoundError",
    "ImageReadError",
    "NotAnImageError",
    "TruncatedImageError",
    "UnsupportedModeError",
    "ImageTooLargeError",
    "OutputError",
    "OutputExistsError",
    "OutputNotWritableError",
    "EngineUnavailableError",
    "AbortedError",
    "TargetUnreachableError",
    "OutputLargerError",
    "ClusterError",
]


class KmquantError(Exception):
    """Base class of every error kmquant raises on purpose."""


class InvalidOptionError(KmquantError, ValueError):
    """An option is out of its allowed range or of the wrong kind."""


class InputNotFoundError(KmquantError, FileNotFoundError):
    """The input path does not exist or is not a file."""


class ImageReadError(KmquantError):
    """The input could not be decoded as an image."""


class NotAnImageError(ImageReadError):
    """The input is not in any image format Pillow can read."""


class TruncatedImageError(ImageReadError):
    """The input starts like an image but is truncated or corrupt."""


class UnsupportedModeError(ImageReadError):
    """The image decodes, but its pixel mode cannot be turned into RGB(A)."""


class ImageTooLargeError(KmquantError):
    """The image has more pixels than the configured limit (decompression-bomb guard)."""


class OutputError(KmquantError):
    """The output cannot be written."""


class OutputExistsError(OutputError, FileExistsError):
    """The output file exists and overwriting was not asked for."""


class OutputNotWritableError(OutputError, PermissionError):
    """The output directory does not exist or cannot be written to."""


class EngineUnavailableError(KmquantError, ImportError):
    """The chosen k-means engine needs a package that is not installed."""


class AbortedError(KmquantError):
    """A progress callback asked to stop the work."""


class TargetUnreachableError(KmquantError):
    """No K up to 256 meets the quality or size target of ``-k auto``."""


class QualityTooLowError(TargetUnreachableError):
    """``--quality MIN-MAX``: even 256 colours stay below MIN, so nothing was written
    (pngquant's exit 99)."""


class OutputLargerError(KmquantError):
    """With ``skip_if_larger``: the output would be larger than the input, so nothing was
    written (pngquant's ``--skip-if-larger``, exit 98)."""


class ClusterError(KmquantError):
    """The Dask cluster cannot be reached, or gave up on a task after its retries (a worker
    that died each time, storage that kept failing)."""
