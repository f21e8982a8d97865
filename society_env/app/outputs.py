"""Output directories that never lose a recording: ``run`` and ``experiment`` refuse an ``--out`` that
already holds one, and ``--force`` replaces it whole (the new output is written to a hidden sibling and
renamed into place at the end, so a killed run leaves the old recording untouched)."""

from __future__ import annotations

import os
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from society_env.app.errors import UserError


def _describe(path: Path) -> str | None:
    """What occupies ``path`` (None when it is absent or empty)."""
    if not path.exists():
        return None
    if not path.is_dir():
        return "a file"
    if (path / "meta.json").exists():
        return "a recording"
    if (path / "experiment.json").exists():
        return "an experiment"
    return "files" if any(path.iterdir()) else None


@contextmanager
def fresh_output(path: Path, force: bool) -> Iterator[Path]:
    """The directory to write ``path``'s new output into. Without ``force`` an occupied ``path`` is a
    ``UserError`` naming ``--force``; with it, the output goes to a hidden sibling that replaces ``path``
    by renames when the block ends without an exception (a failed or killed run leaves ``path`` as it was).
    A directory holding anything but a recording or an experiment is never replaced."""
    occupant = _describe(path)
    if occupant is None:
        yield path
        return
    if occupant in ("a file", "files"):
        what = "a file that is not" if occupant == "a file" else "files that are not"
        raise UserError(f"--out {path} holds {what} a society-env recording; choose another --out")
    if not force:
        raise UserError(f"--out {path} already holds {occupant}; nothing was written. Use --force to replace it "
                        "(the old one is removed only once the new one is complete) or choose another --out")
    staging = path.parent / f".{path.name}.new-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        yield staging
    except KeyboardInterrupt:
        print(f"society-env: {path} is unchanged; the interrupted new output is in {staging}", file=sys.stderr)
        raise
    retired = path.parent / f".{path.name}.old-{os.getpid()}"
    os.replace(path, retired)  # two renames: at every moment one complete output is in place or beside it
    os.replace(staging, path)
    shutil.rmtree(retired, ignore_errors=True)
