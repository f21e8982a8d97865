"""A trained model as a patch of its base (qes_trainer.patch) and the tuned models built from patches
(qes_trainer.tuned, `society-env models`, `society-env run --model NAME`), on the tiny GGUF."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from policies.models import sha256_of
from qes_trainer import tuned
from qes_trainer.fitness import FitnessSettings
from qes_trainer.patch import PatchError, apply_patch, read_patch, write_patch
from qes_trainer.qes import SparseDelta
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
    for name, damaged in (("truncated", data[: len(data) // 2]), ("corrupt", data[:100] + bytes(200) + data[300:]),
                          ("empty", b"")):
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
    monkeypatch.setenv("SOCIETY_ENV_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tuned, "PATCH_DIRECTORY", patch.parent)
    monkeypatch.setitem(tuned.TUNED_MODELS, "model", tuned.TunedModel("model", "forage", "the test run"))
    monkeypatch.setattr("policies.models.resolve_model", lambda model: base if model is None else model)
    assert society_env_main(["models"]) == 0
    listing = capsys.readouterr().out
    assert "smollm2-society" in listing and "model  the test run" in listing and "built on first use" in listing
    built = tuned.tuned_model_path("model", quiet=True)
    assert sha256_of(built) == sha256_of(model)
    built.write_bytes(b"changed")  # a damaged build is noticed and rebuilt
    assert sha256_of(tuned.tuned_model_path("model", quiet=True)) == sha256_of(model)
    # `society-env run --model NAME` plays with the built model
    out = tmp_path / "run"
    assert society_env_main(["run", "--preset", "forage", "--policy", "llm=2", "--steps", "2", "--model", "model",
                             "--n-ctx", "2048", "--out", str(out), "--quiet"]) == 0
    meta = json.loads((out / "meta.json").read_text())
    assert meta["llm"]["model"] == str(built)


def test_a_tuned_model_whose_patch_is_not_installed_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(tuned, "PATCH_DIRECTORY", tmp_path)
    status = society_env_main(["run", "--preset", "forage", "--policy", "llm=2", "--steps", "1",
                               "--model", "smollm2-society", "--out", str(tmp_path / "run")])
    error = capsys.readouterr().err.strip()
    assert status == 2 and "smollm2-society" in error and "not in this installation" in error
    assert len(error.splitlines()) == 1 and not (tmp_path / "run").exists()
