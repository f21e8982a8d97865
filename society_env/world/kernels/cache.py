"""The decorator every compiled function of the kernels package is made with: numba's ``njit`` with its disk
cache stamped by the sources of the whole package, so that a function compiled against an older version of a
function of another file of the package is never loaded.

Why: numba caches a compiled function (``cache=True``) with the functions it calls compiled into it, and
takes its cached code as fresh while the file that defines it is unchanged. Its own docs say so ("Cache
invalidation fails to recognize changes in symbols defined in a different file"; numba issues #1833, #6845,
#8851, #9483): edit a callee in one file, and its caller in another keeps running the old callee. The
kernels were one file for that reason. Now each file has one job, and the cache's *source stamp* (numba's
word: the value an index file is saved with, and which must match for the index to be read; numba uses the
defining file's hash) is the hash of every ``.py`` file of this folder: an edit anywhere in the package
makes every kernel's index stale, as an edit of the one file did. Only code of this folder may be compiled
into a kernel (``tests/test_kernel_cache.py`` checks the imports, and that an edited callee is seen).

How: numba picks a cache *locator* (where the files go, and the stamp) from a list of classes;
:class:`KernelCache` is numba's ``FunctionCache`` with the same list, each class given the package's stamp
(numba's CUDA target plugs in its own cache the same way). If numba is told to use other locators
(``NUMBA_CACHE_LOCATOR_CLASSES``), the kernels are compiled without a disk cache, with a warning: slow to
start, never stale.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Callable
from pathlib import Path

from numba import njit
from numba.core.caching import (
    CompileResultCacheImpl,
    FunctionCache,
    InTreeCacheLocator,
    UserProvidedCacheLocator,
    UserWideCacheLocator,
)


def sources_stamp(folder: Path) -> str:
    """The sha256 of every ``.py`` file of ``folder`` (names and contents, in name order)."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


KERNEL_SOURCES_STAMP = sources_stamp(Path(__file__).resolve().parent)
"""The stamp of every kernel's disk cache: :func:`sources_stamp` of this folder, read once at import."""


class _StampedBySources:
    """A numba cache locator whose source stamp is :data:`KERNEL_SOURCES_STAMP`."""

    def get_source_stamp(self) -> str:
        return KERNEL_SOURCES_STAMP


class _UserProvided(_StampedBySources, UserProvidedCacheLocator):
    """``NUMBA_CACHE_DIR``, when set."""


class _InTree(_StampedBySources, InTreeCacheLocator):
    """``__pycache__`` next to the source file (the usual case)."""


class _UserWide(_StampedBySources, UserWideCacheLocator):
    """The user's cache folder, when the package's folder is not writable."""


class _KernelCacheImpl(CompileResultCacheImpl):
    _locator_classes = [_UserProvided, _InTree, _UserWide]  # numba's order, without IPython's and zip files'


class KernelCache(FunctionCache):
    """numba's per-function disk cache, its index stamped with the sources of the whole kernels package."""

    _impl_class = _KernelCacheImpl


def kernel(function: Callable | None = None, /, **options) -> Callable:
    """``njit(**options)`` with :class:`KernelCache` as its disk cache: ``@kernel``, ``@kernel(parallel=True)``.
    (``cache`` is not an option: every kernel is cached.)"""
    if function is None:
        return lambda f: kernel(f, **options)
    dispatcher = njit(**options)(function)
    cache = KernelCache(dispatcher.py_func)
    if isinstance(cache._impl.locator, _StampedBySources):
        dispatcher._cache = cache  # what Dispatcher.enable_caching does with numba's FunctionCache
    else:  # NUMBA_CACHE_LOCATOR_CLASSES chose a locator stamped by the defining file only
        warnings.warn(f"NUMBA_CACHE_LOCATOR_CLASSES is set: {function.__qualname__} is compiled without a disk "
                      "cache (a cache stamped by one file could load a kernel compiled against old callees)",
                      RuntimeWarning, stacklevel=2)
    return dispatcher
