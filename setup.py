"""Build of the compiled core: every ``src/kmquant/_core/*.pyx`` becomes one extension module.

Cython (the way scikit-learn writes its k-means kernels): typed memoryviews, ``nogil`` loops and
OpenMP ``prange`` for the Lloyd step. Everything else about the package is in pyproject.toml.

Environment:
    KMQUANT_SANITIZE=address,undefined   build with AddressSanitizer and UBSan (``make sanitize``)
    KMQUANT_ONLY=_lloyd,_dither          build only these modules (development)
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from Cython.Build import cythonize
from setuptools import Extension, setup

CORE = Path("src/kmquant/_core")


def _flags() -> tuple[list[str], list[str]]:
    """Compile and link flags: optimised, no fast-math or FMA contraction (the kernels must give
    the numpy reference's bits), OpenMP where the compiler has it."""
    if sys.platform == "win32":
        return ["/O2", "/openmp", "/fp:precise"], []
    compile_args = ["-O3", "-fno-math-errno", "-ffp-contract=off", "-fopenmp"]
    link_args = ["-fopenmp"]
    sanitize = os.environ.get("KMQUANT_SANITIZE", "").strip()
    if sanitize:
        extra = [f"-fsanitize={sanitize}", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all",
                 "-g", "-O1"]
        compile_args = [a for a in compile_args if a != "-O3"] + extra
        link_args += [f"-fsanitize={sanitize}"]
    return compile_args, link_args


def extensions() -> list[Extension]:
    compile_args, link_args = _flags()
    only = {name for name in os.environ.get("KMQUANT_ONLY", "").split(",") if name}
    modules = [
        Extension(f"kmquant._core.{source.stem}", [str(source)],
                  extra_compile_args=compile_args, extra_link_args=link_args)
        for source in sorted(CORE.glob("*.pyx"))
        if not only or source.stem in only
    ]
    return cythonize(
        modules,
        compiler_directives={
            "language_level": 3, "boundscheck": False, "wraparound": False, "cdivision": True,
            "initializedcheck": False, "nonecheck": False, "embedsignature": True,
        },
    )


# the C compiler runs on every core at once, one module a thread (a sixth off a wheel's build on two)
setup(ext_modules=extensions(), options={"build_ext": {"parallel": os.cpu_count() or 1}})
