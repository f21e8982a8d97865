"""Fine-tuned models shipped as patches of the embedded default model (``society-env models``).

Each entry names a ``.qespatch`` file in this package (``qes_trainer/tuned/``) made by a documented
``qes-train`` recipe. On first use the model is built from the embedded SmolLM2-135M-Instruct and the
patch into the model cache (next to the default model) and its SHA-256 is checked; later uses check the
SHA-256 of the built file again (0.3 s) and rebuild it if it changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qes_trainer.patch import PATCH_SUFFIX, PatchError, apply_patch, check_base, read_patch

__all__ = ["TunedModel", "TUNED_MODELS", "tuned_model_path", "built_path", "is_tuned_model", "PATCH_DIRECTORY"]

PATCH_DIRECTORY = Path(__file__).resolve().parent / "tuned"


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


def is_tuned_model(name: str | None) -> bool:
    return name is not None and str(name) in TUNED_MODELS


def built_path(name: str) -> Path:
    """Where tuned model ``name`` is built: the model cache, next to the default model."""
    from policies.llm.models import cache_dir

    return cache_dir() / "models" / f"{name}.gguf"


def tuned_model_path(name: str, quiet: bool = False) -> Path:
    """The built GGUF of tuned model ``name`` (built on first use; PatchError for a missing patch)."""
    import sys

    from policies.llm.models import resolve_model, sha256_of

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
