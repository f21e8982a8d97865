"""A trained model as a patch of its base (policies.llm.patch) and the tuned models built from patches
(the registry policies.llm.models, `society-env models`, `society-env run --model NAME`), on the tiny GGUF."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from policies.llm.models import sha256_of
from policies.llm import models as tuned
from qes_trainer.fitness import FitnessSettings
from policies.llm.patch import PatchError, apply_patch, read_patch, write_patch
from policies.llm.gguf_codes import SparseDelta
from qes_trainer.train import TrainConfig, train
from society_env.app.cli import main as society_env_main
from tests.tiny_gguf import write_tiny_model

TINY_TRAIN = TrainConfig(generations=2, pairs=2, sigma=0.5, alpha=0.5, threads=1, batch_size=4,
                         fitness=FitnessSettings(preset="forage", policy="llm=2", episodes=1, max_steps=2, n_ctx=2048,
                                                 temperature=1.0))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny model and a two-generation QES run of it (codes changed)."""
    directory = tmp_path_factory.mktemp("patch")
    base = write_tiny_model(directory / "tiny.gguf", "Q8_0")
    model = train(dataclasses.replace(TINY_TRAIN, model=str(base)), directory / "run")
    return base, model, directory / "run" / "model.qespatch"


def _register_test_model(monkeypatch, tmp_path, base, patch) -> None:
    """Register the run's patch as tuned model "model" of the tiny base, with a cache of its own."""
    monkeypatch.setenv("SOCIETY_ENV_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tuned, "PATCH_DIRECTORY", patch.parent)
    monkeypatch.setitem(tuned.TUNED_MODELS, "model", tuned.TunedModel("model", "forage", "the test run"))
    monkeypatch.setattr(tuned, "pull_default_model", lambda quiet=False: base)


def test_qes_train_writes_a_patch_that_rebuilds_its_model_bit_for_bit(trained_run, tmp_path):
    base, model, patch = trained_run
    meta, diff = read_patch(patch)
    assert meta["base"]["sha256"] == sha256_of(base) and meta["result_sha256"] == sha256_of(model)
    assert meta["config"]["fitness"]["preset"] == "forage" and meta["generations"] == 2  # the recipe that made it
    assert sum(delta.nnz for delta in diff.values()) > 0
    rebuilt = apply_patch(patch, base, tmp_path / "rebuilt.gguf")
    assert rebuilt.read_bytes() == model.read_bytes()


def test_a_patch_for_another_base_or_a_damaged_patch_is_refused_and_writes_nothing(trained_run, tmp_path):
    base, model, patch = trained_run
    other = write_tiny_model(tmp_path / "other.gguf", "Q8_0", seed=1)
    target = tmp_path / "out.gguf"
    with pytest.raises(PatchError, match="was made for tiny.gguf") as error:
        apply_patch(patch, other, target)
    assert "\n" not in str(error.value)
    data = patch.read_bytes()
    middle = len(data) // 2
    flipped = data[:middle] + bytes([data[middle] ^ 0xFF]) + data[middle + 1:]
    for name, damaged in (("truncated", data[: len(data) // 2]), ("corrupt", data[:100] + bytes(200) + data[300:]),
                          ("flipped", flipped), ("tail", data[:-10]), ("empty", b""), ("text", b"not a patch\n" * 50)):
        path = tmp_path / f"{name}.qespatch"
        path.write_bytes(damaged)
        with pytest.raises(PatchError, match=f"{path.name}") as error:
            apply_patch(path, base, target)
        assert "\n" not in str(error.value)
    assert not target.exists() and list(tmp_path.glob("*.tmp")) == []


def test_a_patch_whose_result_does_not_match_is_refused(trained_run, tmp_path):
    base, model, _ = trained_run
    names = ["blk.0.ffn_down.weight"]
    diff = {names[0]: SparseDelta(np.array([0, 5]), np.array([1, -1], dtype=np.int16), 64 * 128)}
    path = write_patch(tmp_path / "wrong.qespatch", base, diff, model)  # claims to build the trained model
    with pytest.raises(PatchError, match="built a model with SHA-256"):
        apply_patch(path, base, tmp_path / "out.gguf")
    assert not (tmp_path / "out.gguf").exists()


def test_tuned_models_are_listed_and_built_on_first_use(trained_run, tmp_path, monkeypatch, capsys):
    base, model, patch = trained_run
    _register_test_model(monkeypatch, tmp_path, base, patch)
    assert society_env_main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "SmolLM2-135M-Instruct.Q4_1.gguf" in listing and "Apache-2.0" in listing  # the default model
    assert "smollm2-society" in listing and "patch not shipped" in listing
    assert "model  base tiny.gguf  recipe: qes-train --recipe forage" in listing and "not built yet" in listing
    built = tuned.tuned_model_path("model", quiet=True)
    assert society_env_main(["models"]) == 0 and "(built)" in capsys.readouterr().out
    assert sha256_of(built) == sha256_of(model)
    built.write_bytes(b"changed")  # a damaged build is noticed and rebuilt
    assert sha256_of(tuned.tuned_model_path("model", quiet=True)) == sha256_of(model)
    # `society-env run --model NAME` plays with the built model
    out = tmp_path / "run"
    assert society_env_main(["run", "--preset", "forage", "--policy", "llm=2", "--steps", "2", "--model", "model",
                             "--n-ctx", "2048", "--out", str(out), "--quiet"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["llm"]["model"] == str(built)
    # the policy resolves the name itself, through the same registry
    import society_env
    from policies.llm.policy import LlamaCppPolicy

    policy = LlamaCppPolicy(society_env.make_config("forage"), model="model", n_ctx=2048, n_threads=1,
                            prompt="forage")
    assert policy.engine.model_path == built


def test_a_tuned_model_whose_patch_is_not_installed_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tuned, "PATCH_DIRECTORY", tmp_path)
    status = society_env_main(["run", "--preset", "forage", "--policy", "llm=2", "--steps", "1",
                               "--model", "smollm2-society", "--out", str(tmp_path / "run")])
    error = capsys.readouterr().err.strip()
    assert status == 2 and "smollm2-society" in error and "not in this installation" in error
    assert len(error.splitlines()) == 1 and not (tmp_path / "run").exists()


def test_a_patch_of_another_format_or_for_missing_tensors_is_refused(trained_run, tmp_path):
    base, model, _ = trained_run
    other = tmp_path / "other.qespatch"
    with open(other, "wb") as handle:
        np.savez_compressed(handle, meta=np.frombuffer(json.dumps({"format": "something else"}).encode(), dtype=np.uint8))
    with pytest.raises(PatchError, match="is not a society-env-model-patch version 1 file"):
        read_patch(other)
    diff = {"blk.9.no_such.weight": SparseDelta(np.array([0]), np.array([1], dtype=np.int16), 10)}
    path = write_patch(tmp_path / "missing.qespatch", base, diff, model)
    with pytest.raises(PatchError, match="no trainable tensor blk.9.no_such.weight"):
        apply_patch(path, base, tmp_path / "out.gguf")
    diff = {"blk.0.ffn_down.weight": SparseDelta(np.array([64 * 128]), np.array([1], dtype=np.int16), 64 * 128)}
    path = write_patch(tmp_path / "outside.qespatch", base, diff, model)  # an index past the tensor's end
    with pytest.raises(PatchError, match="inconsistent model patch"):
        read_patch(path)
    assert not (tmp_path / "out.gguf").exists()


def test_qes_eval_takes_tuned_model_names(trained_run, tmp_path, monkeypatch, capsys):
    from qes_trainer import evaluate

    base, model, patch = trained_run
    _register_test_model(monkeypatch, tmp_path, base, patch)
    built = evaluate._built_tuned_models({"base": None, "trained": "model", "other": str(model)})
    assert built == {"base": None, "trained": str(tuned.built_path("model")), "other": str(model)}
    assert sha256_of(tuned.built_path("model")) == sha256_of(model)
    assert "building model from tiny.gguf" in capsys.readouterr().err  # said once, on first use
    monkeypatch.setattr(tuned, "PATCH_DIRECTORY", tmp_path / "nowhere")
    assert evaluate.main(["--trained", "smollm2-society", "--episodes", "2"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("qes-eval: error: the patch of smollm2-society") and len(error.splitlines()) == 1
