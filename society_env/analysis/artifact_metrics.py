"""What the society made: TerraLingua's artifact metrics for every version of every artifact, with lineage and reuse.

Per version (``artifact_created`` is version 1, each ``artifact_modified`` the next):

| column | meaning |
|---|---|
| ``zlib_bytes`` | length of the text's UTF-8 bytes compressed by zlib (level 9) |
| ``zlib_ratio`` | UTF-8 bytes / zlib bytes: above 1 the text repeats itself, near or below 1 it does not (short texts fall below 1: zlib's own 8 bytes) |
| ``surprisal`` | mean negative log-likelihood per token, in nats, under a local GGUF (needs a model; ``report --tags``) |
| ``similarity`` | largest cosine similarity of the text's embedding to every earlier version's (a GGUF's embeddings) |
| ``novelty`` | ``1 - similarity``; 1 for the first text of the run |
| ``llm_novelty`` | an LLM's 0-5 score of the text against the most similar earlier versions, averaged over samples (TerraLingua's; ``report --tags --llm-novelty N``) |
| ``extends`` | the versions it builds on: the previous version of the same artifact, and any earlier artifact whose text (8 characters or more) it contains |

Per artifact, reuse by agents other than its creator: ``picked_up`` (into an inventory), ``handed_on``
(``artifact_given`` by anyone), ``reads`` (agent-steps in which another agent stood on the cell where it
lay or held it: the world shows an artifact's text to exactly those agents).

The model-based columns come from callables the caller passes (``surprisal(texts)``, ``embed(texts)``),
so that this module needs no model; ``society_env.app.anthropologist`` builds them from llama.cpp.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from society_env.world import outcome
from society_env.analysis.loading import RunData, slot_of

MIN_QUOTED_CHARS = 8
"""An artifact "extends" an earlier one whose text it contains only if that text is at least this long
(shorter texts, "map" or "food", turn up by chance)."""

Surprisal = Callable[[Sequence[str]], Sequence[float]]
Embedder = Callable[[Sequence[str]], np.ndarray]


@dataclass
class ArtifactVersion:
    artifact: str
    name: str
    version: int
    step: int
    author: str
    text: str
    chars: int
    zlib_bytes: int
    zlib_ratio: float
    extends: list[str] = field(default_factory=list)
    """``artifact@version`` of the versions it builds on."""
    surprisal: float | None = None
    similarity: float | None = None
    novelty: float | None = None
    llm_novelty: float | None = None
    """An LLM's 0-5 novelty score against the earlier artifacts, averaged over samples (``report --llm-novelty``)."""

    @property
    def key(self) -> str:
        return f"{self.artifact}@{self.version}"


@dataclass
class ArtifactReuse:
    artifact: str
    name: str
    creator: str
    created_step: int
    versions: int
    picked_up: int = 0
    handed_on: int = 0
    reads: int = 0
    readers: int = 0
    """Distinct other agents that read it."""
    ended: str = ""
    """``destroyed``, ``expired`` or empty (still there at the end)."""


def compression(text: str) -> tuple[int, float]:
    """(zlib bytes, UTF-8 bytes / zlib bytes) of a text."""
    raw = text.encode("utf-8")
    packed = len(zlib.compress(raw, 9))
    return packed, len(raw) / packed


def artifact_versions(run: RunData) -> list[ArtifactVersion]:
    """Every version of every artifact, in the order they were written, with zlib metrics and lineage."""
    versions: list[ArtifactVersion] = []
    latest: dict[str, ArtifactVersion] = {}
    names: dict[str, str] = {}
    for step in sorted(run.events_by_step):
        for event in run.events_by_step[step]:
            kind = event["type"]
            if kind not in (outcome.ARTIFACT_CREATED, outcome.ARTIFACT_MODIFIED):
                continue
            artifact, text = event["artifact"], event.get("text", "")
            if kind == outcome.ARTIFACT_CREATED:
                names[artifact] = event.get("name", "")
            packed, ratio = compression(text)
            version = ArtifactVersion(str(artifact), names.get(artifact, ""), int(event.get("version", 1)), step,
                                      event["agent"], text, len(text), packed, ratio)
            if artifact in latest:
                version.extends.append(latest[artifact].key)
            else:
                version.extends.extend(earlier.key for earlier in latest.values()
                                       if len(earlier.text) >= MIN_QUOTED_CHARS and earlier.text in text)
            latest[artifact] = version
            versions.append(version)
    return versions


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a zero row stays zero): dot products of the result are cosines."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def add_model_metrics(versions: list[ArtifactVersion], surprisal: Surprisal | None = None,
                      embed: Embedder | None = None) -> None:
    """Fill ``surprisal`` and ``similarity``/``novelty`` of every version (in place) with the given models."""
    texts = [version.text for version in versions]
    if surprisal is not None and texts:
        for version, value in zip(versions, surprisal(texts)):
            version.surprisal = None if value is None else float(value)
    if embed is not None and texts:
        unit = unit_rows(np.asarray(embed(texts), dtype=np.float64))
        cosine = unit @ unit.T
        for index, version in enumerate(versions):
            version.similarity = float(cosine[index, :index].max()) if index else None
            version.novelty = 1.0 - version.similarity if index else 1.0


def artifact_reuse(run: RunData) -> list[ArtifactReuse]:
    """Per artifact, how often agents other than its creator picked it up, handed it on or read it."""
    reuse: dict[str, ArtifactReuse] = {}
    creator: dict[str, int] = {}
    on_cell: dict[str, int] = {}  # artifact -> flat cell where it lies
    held_by: dict[str, int] = {}  # artifact -> holder slot
    readers: dict[str, set[int]] = defaultdict(set)
    width = run.config.width
    for step in range(run.steps):
        for event in run.events_by_step.get(step, []):
            kind = event["type"]
            if not kind.startswith(outcome.ARTIFACT_EVENT_PREFIX):
                continue
            artifact, agent = str(event["artifact"]), slot_of(event.get("agent"))
            if kind == outcome.ARTIFACT_CREATED:
                creator[artifact] = agent
                reuse[artifact] = ArtifactReuse(artifact, event.get("name", ""), event["agent"], step, 1)
                row, col = event["position"]
                on_cell[artifact] = row * width + col
                continue
            if artifact not in reuse:
                continue  # an artifact created before a cut recording begins
            record = reuse[artifact]
            if kind == outcome.ARTIFACT_PICKED_UP:
                on_cell.pop(artifact, None)
                held_by[artifact] = agent
                record.picked_up += agent != creator[artifact]
            elif kind == outcome.ARTIFACT_GIVEN:
                on_cell.pop(artifact, None)
                held_by[artifact] = slot_of(event["to"])
                record.handed_on += 1
            elif kind == outcome.ARTIFACT_DROPPED:
                held_by.pop(artifact, None)
                row, col = event["position"]
                on_cell[artifact] = row * width + col
            elif kind == outcome.ARTIFACT_MODIFIED:
                record.versions += 1
            elif kind in (outcome.ARTIFACT_DESTROYED, outcome.ARTIFACT_EXPIRED):
                on_cell.pop(artifact, None)
                held_by.pop(artifact, None)
                record.ended = kind.removeprefix(outcome.ARTIFACT_EVENT_PREFIX)
        if not on_cell and not held_by:
            continue
        here = run.agents_at(step)
        standing: dict[int, list[int]] = defaultdict(list)
        for slot, cell in zip(run.slot[here].tolist(), (run.row[here] * width + run.col[here]).tolist()):
            standing[cell].append(slot)
        for artifact, cell in on_cell.items():
            for slot in standing.get(cell, ()):
                if slot != creator[artifact]:
                    reuse[artifact].reads += 1
                    readers[artifact].add(slot)
        for artifact, slot in held_by.items():
            if slot != creator[artifact]:
                reuse[artifact].reads += 1
                readers[artifact].add(slot)
    for artifact, record in reuse.items():
        record.readers = len(readers[artifact])
    return list(reuse.values())


def mean_of(versions: list[ArtifactVersion], name: str) -> float | None:
    """Mean of one metric over the versions that have it (None if none has)."""
    values = [getattr(v, name) for v in versions if getattr(v, name) is not None]
    return float(np.mean(values)) if values else None


def artifact_series(versions: list[ArtifactVersion], steps: int, stride: int) -> dict[str, list[float | None]]:
    """Per block of ``stride`` steps: versions written, and the mean zlib ratio, surprisal and novelty of them."""
    blocks = max(1, (steps + stride - 1) // stride)
    grouped: list[list[ArtifactVersion]] = [[] for _ in range(blocks)]
    for version in versions:
        grouped[min(version.step // stride, blocks - 1)].append(version)

    return {"start_step": [index * stride for index in range(blocks)],
            "versions": [len(block) for block in grouped],
            **{name: [mean_of(block, name) for block in grouped] for name in ("zlib_ratio", "surprisal", "novelty", "llm_novelty")}}


CSV_COLUMNS = ("artifact", "name", "version", "step", "author", "chars", "zlib_bytes", "zlib_ratio", "surprisal",
               "similarity", "novelty", "llm_novelty", "extends", "picked_up", "handed_on", "reads", "readers", "text")


def csv_rows(versions: list[ArtifactVersion], reuse: list[ArtifactReuse]) -> list[list]:
    """Rows of ``report-artifacts.csv`` (:data:`CSV_COLUMNS`): one per version; reuse on every version of an artifact."""
    by_artifact = {record.artifact: record for record in reuse}
    rows = []
    for version in versions:
        values = asdict(version)
        record = by_artifact.get(version.artifact)
        values.update(extends=" ".join(version.extends),
                      **{name: getattr(record, name) if record else 0 for name in ("picked_up", "handed_on", "reads", "readers")})
        rows.append([round(values[c], 4) if isinstance(values[c], float) else ("" if values[c] is None else values[c])
                     for c in CSV_COLUMNS])
    return rows
