"""Coverage-guided fuzzing of the loader and the whole quantizer with atheris (libFuzzer).

Each input is handed, as bytes, to ``kmquant.quantize(data, 8)`` with small limits (4 M pixels,
512 MiB of memory where the options have a memory budget): that decodes it through
:func:`kmquant.load.load_image` and, when it is a picture, quantizes it. A
:class:`kmquant.errors.KmquantError` is the right answer to a bad file; any other exception is a
finding and is left to propagate, so atheris prints its traceback and libFuzzer writes the input
as ``crash-<sha1>``. An input refused as truncated is tried again with ``allow_truncated=True``
(when the options have it), so the decoders' fill-in path is fuzzed too.

Usage (libFuzzer's arguments pass through)::

    python tests/fuzz/fuzz_load.py CORPUS_COPY -max_total_time=600 -rss_limit_mb=2048 \
        -timeout=10 -artifact_prefix=crashes/

Run it over a *copy* of ``tests/fuzz/corpus``: libFuzzer adds the new inputs it finds to the
first folder it is given. ``-rss_limit_mb`` bounds the memory of one input (over it: an
``oom-*`` finding) and ``-timeout`` its time in seconds (over it: a ``timeout-*`` finding).
Replay one file with ``python tests/fuzz/fuzz_load.py crash-…`` (a file, not a folder, runs once).
"""

from __future__ import annotations

import dataclasses
import sys
import warnings

import atheris

# NumPy and the compiled core are not worth instrumenting (the paths that matter are Pillow's
# plugins and kmquant's Python); importing NumPy first keeps it out of the instrumented set.
import numpy  # noqa: F401  (imported before instrument_imports on purpose)

# Both packages import lazily (kmquant's public names on first use, Pillow's format plugins in
# Image.init), and only modules imported inside this block are instrumented: so import every
# stage the inputs go through here, and load every plugin here.
with atheris.instrument_imports(include=["PIL", "kmquant"]):
    from PIL import Image

    import kmquant.job
    import kmquant.load
    import kmquant.pipeline
    from kmquant.errors import KmquantError, TruncatedImageError
    from kmquant.options import Options

    Image.init()

MAX_PIXELS = 4_000_000
MAX_MEMORY = 512 * 2**20
_FIELDS = {field.name for field in dataclasses.fields(Options)}
#: the limits, restricted to the options this version of kmquant has
LIMITS = {name: value for name, value in (("max_pixels", MAX_PIXELS), ("max_memory", MAX_MEMORY))
          if name in _FIELDS}


def test_one_input(data: bytes) -> None:
    """Quantize ``data``; a KmquantError is a clean refusal, anything else propagates."""
    try:
        kmquant.pipeline.quantize(data, 8, **LIMITS)
    except TruncatedImageError:
        if "allow_truncated" in _FIELDS:
            try:
                kmquant.pipeline.quantize(data, 8, allow_truncated=True, **LIMITS)
            except KmquantError:
                pass
    except KmquantError:
        pass
    load_frames = getattr(kmquant.load, "load_frames", None)  # animations: every frame
    if load_frames is not None:
        try:
            load_frames(data, **LIMITS)
        except KmquantError:
            pass


def main() -> None:
    # Pillow warns about odd files (bad EXIF, palette quirks); a warning is not a finding here
    # and would flood libFuzzer's log (bench/bench_mutate.py reports what reaches stderr).
    warnings.simplefilter("ignore")
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
