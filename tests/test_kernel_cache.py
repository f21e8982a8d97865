"""The kernels' disk cache (``society_env.world.kernels.cache``) never loads a kernel compiled against an older
callee of another file of the package: its stamp is the hash of every file of the folder. Each check runs
fresh Python processes on a copy of the cache module, so that numba's disk cache, not this process's
compiled code, answers."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import society_env.world.kernels as kernels_package

KERNELS = Path(kernels_package.__file__).resolve().parent

CALLEE = "from numba import njit\n\n{decorator}\ndef value():\n    return {value}\n"
CALLER = ("from numba import njit\n\nfrom probe.callee import value\n\n\n{decorator}\ndef read():\n"
          "    return value()\n")
RUN = ("import json, sys; sys.path.insert(0, {root!r}); from probe.caller import read; "
       "print(json.dumps([read(), sum(read.stats.cache_hits.values())]))")


def _package(root: Path, decorator: str, value: int) -> None:
    """A package ``probe`` of a callee and a caller in two files, compiled with ``decorator``."""
    package = root / "probe"
    package.mkdir(exist_ok=True)
    shutil.copy(KERNELS / "cache.py", package / "cache.py")  # (imports nothing of society_env)
    (package / "__init__.py").write_text("")
    imports = "from probe.cache import kernel\n" if "kernel" in decorator else ""
    (package / "callee.py").write_text(imports + CALLEE.format(decorator=decorator, value=value))
    (package / "caller.py").write_text(imports + CALLER.format(decorator=decorator))


def _read(root: Path) -> tuple[int, int]:
    """(what the caller returns, the caller's disk-cache hits) in a fresh process."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("NUMBA_CACHE")}
    done = subprocess.run([sys.executable, "-c", RUN.format(root=str(root))], capture_output=True, text=True,
                          env=environment, timeout=300)
    assert done.returncode == 0, done.stderr
    value, hits = json.loads(done.stdout)
    return value, hits


@pytest.mark.parametrize("decorator", ["@njit(cache=True)", "@kernel"])
def test_an_edited_callee_in_another_file_is_seen_only_with_the_kernel_cache(tmp_path, decorator):
    _package(tmp_path, decorator, 1)
    assert _read(tmp_path) == (1, 0)  # compiled, and saved
    assert _read(tmp_path) == (1, 1)  # loaded from the disk cache
    _package(tmp_path, decorator, 2)  # the callee's file changes, the caller's does not
    value, hits = _read(tmp_path)
    if decorator == "@kernel":
        assert (value, hits) == (2, 0)  # the stamp of the whole folder changed: compiled afresh
    else:  # numba's own stamp is the caller's file: the old callee runs (numba issues #1833, #9483)
        assert (value, hits) == (1, 1), "numba sees edited callees now: the kernels' stamp may be unneeded"


def test_kernels_compile_only_code_of_their_folder():
    """A kernel's cache is stamped by this folder's files only: the kernel files import nothing of the project
    from elsewhere (a function or constant imported from another file would be compiled in unseen)."""
    outside = []
    for path in sorted(KERNELS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "society_env":
                if not node.module.startswith("society_env.world.kernels"):
                    outside.append(f"{path.name}: from {node.module}")
            elif isinstance(node, ast.Import):
                outside += [f"{path.name}: import {a.name}" for a in node.names if a.name.startswith("society_env")]
    assert not outside


def test_every_kernel_uses_the_kernel_cache():
    """Every compiled function of the package has the stamped cache (none made with numba's ``njit(cache=True)``,
    whose cache would go stale when a callee of another file changes)."""
    from numba.core.registry import CPUDispatcher

    from society_env.world.kernels.cache import KernelCache

    modules = [m for name, m in sys.modules.items() if name.startswith("society_env.world.kernels.")]
    dispatchers = {f"{m.__name__}.{name}": value for m in modules for name, value in vars(m).items()
                   if isinstance(value, CPUDispatcher)}
    assert len(dispatchers) > 30
    assert not [name for name, d in dispatchers.items() if not isinstance(d._cache, KernelCache)]
