"""The society's anthropologist: TerraLingua's LLM tagging protocol, on a local GGUF or any OpenAI-compatible server.

For the tags no rule can see (deception, territory, aggression, leadership, norms, planning: the part of
TerraLingua's vocabulary that ``society_env.analysis.tags`` does not decide), every agent's life log and
every community's log is read by an LLM, with TerraLingua's three calls per subject:

1. **tag**: the log (in chunks that fit the context) -> ``{"tags": [{"tag", "confidence"}]}``, the tag
   names and 0-10 confidences constrained to the vocabulary by a grammar (a JSON schema turned into GBNF;
   on servers that ignore grammars, the schema as ``response_format``);
2. **audit**: the same chunk and the proposed tags -> for each, whether the log supports it and the
   auditor's confidence; unsupported tags are dropped;
3. **note**: a few sentences of free text on the subject (from its kept tags and the start of its log).

Greedy decoding (temperature 0) with a fixed seed: the same log and model give the same tags. Every call
(messages, grammar schema, answer, tokens, seconds) goes to ``report-llm.jsonl`` in the run directory,
keyed by the SHA-256 of (model identity, messages, schema, settings); a later ``report --tags`` with the
same model reuses those answers without running the model (content cache), so a report is rebuilt
exactly. A malformed or cut-off answer gives no tags for its chunk and is counted (``failed``).

Every call goes through the LLM stack's one backend interface (``policies.llm.backend.LanguageModel``:
``LocalBackend`` for a GGUF, ``ServerBackend`` for a server). The model-based artifact metrics
(surprisal and embedding novelty) always run on a local GGUF through llama.cpp (``--model``, default the
embedded model), also when the tags come from a server.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from policies.llm.backend import Answer
from society_env.world import outcome
from society_env.analysis.artifact_metrics import ArtifactVersion, add_model_metrics, unit_rows
from society_env.analysis.loading import RunData, slot_of
from society_env.analysis.report import RunReport
from society_env.analysis.tags import (
    AGENT_TAGS, COMMUNITY_TAGS, LLM, MAX_CONFIDENCE, RULE_AGENT_TAGS, RULE_COMMUNITY_TAGS, Tag,
)
from society_env.world.encodings import ACTION_NAMES
from society_env.recording.files import write_bytes_atomic
from society_env.world.names import agent_name

LLM_AGENT_TAGS = tuple(tag for tag in AGENT_TAGS if tag not in RULE_AGENT_TAGS)
LLM_COMMUNITY_TAGS = tuple(tag for tag in COMMUNITY_TAGS if tag not in RULE_COMMUNITY_TAGS)
DEFINITIONS = {
    "DECEPTION": "says something false or misleading to others", "TERRITORY_CLAIM": "claims an area as its own",
    "AGGRESSION": "hostile acts or threats beyond what it needs", "SUBMISSION": "yields to others' demands or takes",
    "JOINT_ACTION": "acts together with others towards a shared goal",
    "specialization": "keeps to one role or activity", "territoriality": "stays in and guards one area",
    "creativity": "makes new artifacts, words or ways of doing things",
    "strategic_planning": "acts on plans that reach beyond the next step", "role_switching": "changes its role over its life",
    "LEADER_DECLARED": "one member is named or acts as leader", "COORDINATED_ATTACK": "members take from others together",
    "cultural_norms": "shared rules or habits that members follow", "hierarchy": "some members rank above others",
    "collective_memory": "knowledge kept and passed on (messages, artifacts)",
}
RECORD_FILE = "report-llm.jsonl"
MEASURED = ("embedding", "surprisal")
"""Records of ``report-llm.jsonl`` that hold a local model's measurement of one artifact text, not a call."""
CHUNK_CHARS = 3000
"""Characters of log per call: about 1000 tokens of SmolLM2's vocabulary, inside a 2048-token context with
the instructions and the answer."""
CONTEXT_RESERVE = 800
"""Tokens of the context kept for the instructions (about 350), the tags named in an audit and the answer."""
MAX_CHUNKS = 4
"""Chunks read per subject, spread evenly over its log (a long life is sampled, not read whole)."""
MAX_TAGS = 5
TAG_TOKENS, NOTE_TOKENS = 320, 80
"""Answer token limits (the tiny test model writes one token per character)."""
SEED = 0
CHAT_CONTEXT = 2048
"""Context tokens of a local model's chats."""


# ---------------------------------------------------------------------------------------------
# logs
# ---------------------------------------------------------------------------------------------
def _event_text(event: dict[str, Any]) -> tuple[str | None, str]:
    """(the agent whose life it belongs to, what it says) of a recorded event; other agents' sides too."""
    kind = event["type"]
    text = {
        outcome.GAVE: lambda: f"gave {event['amount']} energy to {event['to']}",
        outcome.TOOK: lambda: f"took {event['amount']} energy from {event['from']}",
        outcome.MESSAGE: lambda: f"said \"{event.get('text') or 'token ' + str(event.get('token'))}\"",
        outcome.BORN: lambda: f"was born to {event['parent']}",
        outcome.DIED: lambda: f"died of {event['cause']} at age {event['age']}",
        outcome.ARTIFACT_CREATED: lambda: f"made artifact '{event.get('name', '')}': \"{event.get('text', '')}\"",
        outcome.ARTIFACT_MODIFIED: lambda: f"rewrote artifact {event['artifact']}: \"{event.get('text', '')}\"",
        outcome.ARTIFACT_PICKED_UP: lambda: f"picked up artifact {event['artifact']}",
        outcome.ARTIFACT_DROPPED: lambda: f"dropped artifact {event['artifact']}",
        outcome.ARTIFACT_GIVEN: lambda: f"handed artifact {event['artifact']} to {event['to']}",
    }.get(kind)
    return (event.get("agent"), text()) if text else (None, "")


def _offset_text(drow: int, dcol: int) -> str:
    """A grid offset in compass words: (-2, 1) -> "2N 1E", (0, 0) -> "here"."""
    parts = ([f"{abs(drow)}{'N' if drow < 0 else 'S'}"] if drow else []) + ([f"{abs(dcol)}{'W' if dcol < 0 else 'E'}"] if dcol else [])
    return " ".join(parts) or "here"


def sights(run: RunData, step: int, max_agents: int = 3) -> dict[int, str]:
    """slot -> what each agent alive after ``step`` sees in its view square (the world's ``view_radius``,
    on the torus): the food in view and the nearest of it, and the nearest other agents."""
    config, here, food = run.config, run.agents_at(step), run.food_at(step)
    radius, width, height = config.view_radius, config.width, config.height
    rows, cols, slots = run.row[here], run.col[here], run.slot[here]
    food_rows, food_cols = run.food_cell[food] // width, run.food_cell[food] % width

    def offsets(row: int, col: int, other_rows: np.ndarray, other_cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return ((other_rows - row + height // 2) % height - height // 2, (other_cols - col + width // 2) % width - width // 2)

    seen = {}
    for row, col, slot in zip(rows.tolist(), cols.tolist(), slots.tolist()):
        parts = []
        drow, dcol = offsets(row, col, food_rows, food_cols)
        visible = np.flatnonzero((np.abs(drow) <= radius) & (np.abs(dcol) <= radius))
        if visible.size:
            nearest = visible[np.argmin(np.abs(drow[visible]) + np.abs(dcol[visible]))]
            parts.append(f"sees {visible.size} food, nearest {_offset_text(int(drow[nearest]), int(dcol[nearest]))}")
        else:
            parts.append("sees no food")
        drow, dcol = offsets(row, col, rows, cols)
        distance = np.abs(drow) + np.abs(dcol)
        near = [i for i in np.argsort(distance, kind="stable").tolist()
                if slots[i] != slot and abs(drow[i]) <= radius and abs(dcol[i]) <= radius][:max_agents]
        if near:
            parts.append("near " + ", ".join(f"{agent_name(int(slots[i]))} {_offset_text(int(drow[i]), int(dcol[i]))}"
                                             for i in near))
        seen[slot] = "; ".join(parts)
    return seen


def life_logs(run: RunData) -> dict[int, list[tuple[int, str]]]:
    """slot -> (step, line) per step it lived: position, energy, the action that brought it there, what it
    sees now (food and neighbours in view), what it did and heard, and its LLM answer (``memory`` and the rest
    of its answer text)."""
    logs: dict[int, list[tuple[int, str]]] = defaultdict(list)
    happened: dict[tuple[int, int], list[str]] = defaultdict(list)
    for step, events in run.events_by_step.items():
        for event in events:
            agent, text = _event_text(event)
            if agent:
                happened[(step, slot_of(agent))].append(text)
            if event["type"] == outcome.GAVE:
                happened[(step, slot_of(event["to"]))].append(f"got {event['amount']} energy from {event['agent']}")
            elif event["type"] == outcome.TOOK:
                happened[(step, slot_of(event["from"]))].append(f"lost {event['amount']} energy to {event['agent']}")
            elif event["type"] == outcome.BORN:
                happened[(step, slot_of(event["parent"]))].append(f"had a child, {event['agent']}")
            elif event["type"] == "llm_call" and event.get("completion"):
                happened[(step + 1, slot_of(event["agent"]))].append(f"answered {event['completion'][:200]}")
    for step in range(run.steps):
        here = run.agents_at(step)
        kinds = run.actions_by_step[step]
        seen = sights(run, step)
        for slot, row, col, energy in zip(run.slot[here].tolist(), run.row[here].tolist(), run.col[here].tolist(),
                                          run.energy[here].tolist()):
            kind = kinds.get(slot)
            action = ACTION_NAMES[kind] if kind is not None and 0 <= kind < len(ACTION_NAMES) else "-"
            extra = "; ".join([seen[slot], *happened.get((step, slot), ())])
            logs[slot].append((step, f"t{step} ({row},{col}) energy {energy} {action}; {extra}"))
    for (step, slot), texts in happened.items():  # the step it died in has no snapshot of it
        if any(text.startswith("died") for text in texts):
            logs[slot].append((step, f"t{step} " + "; ".join(texts)))
    return logs


def community_logs(run: RunData, communities: list[list[int]]) -> dict[int, list[tuple[int, str]]]:
    """community index -> (step, line) for every event between or by its members (2 or more members)."""
    logs: dict[int, list[tuple[int, str]]] = {}
    for index, members in enumerate(communities):
        if len(members) < 2:
            continue
        inside = set(members)
        lines = [(0, "members: " + ", ".join(agent_name(m) for m in members))]
        for step in sorted(run.events_by_step):
            for event in run.events_by_step[step]:
                agent, text = _event_text(event)
                partner = event.get("to") or event.get("from")
                if agent and (slot_of(agent) in inside or (partner and slot_of(partner) in inside)):
                    lines.append((step, f"t{step} {agent} {text}"))
        logs[index] = lines
    return logs


def chunks(lines: list[tuple[int, str]], max_chars: int = CHUNK_CHARS, max_chunks: int = MAX_CHUNKS) -> list[tuple[int, str]]:
    """(first step, text) of consecutive pieces of a log of at most ``max_chars`` characters each, at most
    ``max_chunks`` of them spread evenly (first and last included). A longer line is cut."""
    pieces: list[tuple[int, list[str]]] = []
    size = max_chars + 1
    for step, line in lines:
        line = line[:max_chars]
        if size + len(line) + 1 > max_chars:
            pieces.append((step, []))
            size = 0
        pieces[-1][1].append(line)
        size += len(line) + 1
    if len(pieces) > max_chunks:
        keep = np.unique(np.linspace(0, len(pieces) - 1, max_chunks).round().astype(int))
        pieces = [pieces[i] for i in keep]
    return [(step, "\n".join(text)) for step, text in pieces]


# ---------------------------------------------------------------------------------------------
# the three calls
# ---------------------------------------------------------------------------------------------
def _vocabulary(tags: Sequence[str]) -> str:
    return "\n".join(f"- {tag}: {DEFINITIONS[tag]}" for tag in tags)


def tag_schema(tags: Sequence[str], max_items: int = MAX_TAGS) -> dict[str, Any]:
    return {"type": "object", "properties": {"tags": {"type": "array", "maxItems": max_items, "items": {
        "type": "object", "properties": {"tag": {"enum": list(tags)}, "confidence": {"enum": list(range(MAX_CONFIDENCE + 1))}},
        "required": ["tag", "confidence"]}}}, "required": ["tags"]}


def audit_schema(proposed: Sequence[str]) -> dict[str, Any]:
    return {"type": "object", "properties": {"audit": {"type": "array", "minItems": len(proposed), "maxItems": len(proposed),
            "items": {"type": "object", "properties": {
                "tag": {"enum": list(proposed)}, "supported": {"type": "boolean"},
                "confidence": {"enum": list(range(MAX_CONFIDENCE + 1))}},
                "required": ["tag", "supported", "confidence"]}}}, "required": ["audit"]}


SUBJECT_WORDS = {"agent": "one agent's life log", "community": "the log of one community (a group of agents that "
                 "interact more with each other than with the rest)"}
WORLD = ("You are an anthropologist studying an artificial society on a grid world. Agents move, eat food for "
         "energy, give or take energy, talk, reproduce, make text artifacts and die. ")


def tag_messages(kind: str, vocabulary: Sequence[str], log: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": WORLD + f"You read {SUBJECT_WORDS[kind]} and tag what it shows, with "
             "only these tags:\n" + _vocabulary(vocabulary) + "\nGive each tag a confidence from 0 (no sign) to 10 "
             "(certain). Tag only what the log shows; an empty list is a fine answer. Answer in JSON."},
            {"role": "user", "content": log}]


def audit_messages(kind: str, proposed: list[tuple[str, int]], log: str) -> list[dict[str, str]]:
    listed = ", ".join(f"{tag} ({confidence})" for tag, confidence in proposed)
    return [{"role": "system", "content": WORLD + f"Another anthropologist tagged {SUBJECT_WORDS[kind]}. Check "
             "each tag against the raw log below: say whether the log supports it, and give your own confidence "
             "from 0 to 10. Answer in JSON."},
            {"role": "user", "content": f"Tags: {listed}\n\nLog:\n{log}"}]


def note_messages(kind: str, kept: list[Tag], log: str) -> list[dict[str, str]]:
    listed = ", ".join(f"{tag.tag} ({tag.confidence})" for tag in kept) or "none"
    return [{"role": "system", "content": WORLD + f"Write two or three plain sentences on {SUBJECT_WORDS[kind]} "
             "for a report: who this is and what marks it."},
            {"role": "user", "content": f"Tags so far: {listed}\n\nLog (start):\n{log[:1500]}"}]


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------
def chunk_chars(model, sample: str) -> int:
    """Characters of log per call for ``model`` (a :class:`~policies.llm.backend.LanguageModel`): for a local
    GGUF, what fits its chat context beside the instructions and the answer, from the tokens per character
    of ``sample`` (a byte-level vocabulary needs 3x fewer than SmolLM2's); for a server, :data:`CHUNK_CHARS`
    (its context is its business; CHUNK_CHARS fits 2048 tokens of common vocabularies)."""
    from policies.llm.local import LocalBackend

    if not sample or not isinstance(model, LocalBackend):
        return CHUNK_CHARS
    tokens = len(model.chat_model(CHAT_CONTEXT).tokenize(sample.encode("utf-8"), add_bos=False))
    return max(200, min(CHUNK_CHARS, int((CHAT_CONTEXT - CONTEXT_RESERVE) * len(sample) / max(tokens, 1))))


class ArtifactMetrics:
    """Surprisal and embeddings of artifact texts by a local GGUF (the model of a
    :class:`~policies.llm.local.LocalBackend`), each on its own llama.cpp context made on first use."""

    def __init__(self, backend):
        self.backend = backend
        self.identity, self.label = backend.identity, backend.label
        self._contexts: dict[str, Any] = {}

    def _context(self, purpose: str):
        if purpose not in self._contexts:
            import llama_cpp

            from policies.llm.local import high_level_model

            options = {"score": {"logits_all": True}, "embed": {"embedding": True,
                                                                "pooling_type": llama_cpp.LLAMA_POOLING_TYPE_MEAN}}[purpose]
            self._contexts[purpose] = high_level_model(self.backend.engine.model_path, self.backend.engine.n_threads,
                                                       n_ctx=512, **options)
        return self._contexts[purpose]

    def surprisal(self, texts: Sequence[str]) -> list[float | None]:
        """Mean negative log-likelihood per token (nats) of each text after the BOS token; None for empty text."""
        model = self._context("score")
        values: list[float | None] = []
        for text in texts:
            tokens = model.tokenize(text.encode("utf-8"), add_bos=True)[: model.n_ctx()]
            if len(tokens) < 2:
                values.append(None)
                continue
            model.reset()
            model.eval(tokens)
            logits = np.asarray(model.scores[: len(tokens) - 1], dtype=np.float64)
            top = logits.max(axis=1, keepdims=True)
            log_norm = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
            values.append(float(np.mean(log_norm - logits[np.arange(len(tokens) - 1), tokens[1:]])))
        return values

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self._context("embed")
        return np.asarray([model.embed(text or " ") for text in texts], dtype=np.float64)

    def close(self) -> None:
        for context in self._contexts.values():
            context.close()
        self._contexts.clear()


# ---------------------------------------------------------------------------------------------
# the calls, recorded and cached by content
# ---------------------------------------------------------------------------------------------
@dataclass
class CallLog:
    """Every call of one report (``report-llm.jsonl``), and the earlier report's answers by content key."""

    model: Any
    """A :class:`~policies.llm.backend.LanguageModel` (only its ``identity`` is read on a cache hit)."""
    cached: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    failed: int = 0
    reused: int = 0
    seconds: float = 0.0

    @classmethod
    def open(cls, model, run_dir: Path) -> "CallLog":
        cached = {}
        path = run_dir / RECORD_FILE
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                    cached[record["key"]] = record
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue  # a damaged cache line is a miss, never an error
        return cls(model, cached)

    def call(self, kind: str, subject: str, messages: list[dict[str, str]], schema: dict | None, max_tokens: int,
             temperature: float = 0.0, seed: int = SEED) -> Answer:
        # greedy calls keep the key they had before sampled ones existed, so older caches still hit
        key = hashlib.sha256(json.dumps([self.model.identity, messages, schema, max_tokens, seed]
                                        + ([temperature] if temperature else []), sort_keys=True).encode()).hexdigest()
        record = self.cached.get(key)
        if record is not None:
            self.reused += 1
            answer = Answer(record["answer"], record.get("tokens_in", 0), record.get("tokens_out", 0), record.get("failure"))
        else:
            started = time.perf_counter()
            answer = self.model.chat(messages, schema, max_tokens, temperature, seed)
            seconds = time.perf_counter() - started
            self.seconds += seconds
            record = {"key": key, "model": self.model.label, "call": kind, "subject": subject, "messages": messages,
                      "schema": schema, "max_tokens": max_tokens, "temperature": temperature, "seed": seed,
                      "answer": answer.text, "failure": answer.failure,
                      "tokens_in": answer.tokens_in, "tokens_out": answer.tokens_out, "seconds": round(seconds, 3)}
        self.records.append(record)
        return answer

    def chunk_chars(self, sample: str) -> int:
        """The model's chunk length for this log, remembered in the record so that a rebuild needs no model."""
        key = hashlib.sha256(json.dumps([self.model.identity, "chunk_chars", sample]).encode()).hexdigest()
        record = self.cached.get(key) or {"key": key, "call": "chunk_chars", "model": self.model.label,
                                          "answer": str(chunk_chars(self.model, sample))}
        self.records.append(record)
        return int(record["answer"])

    def measured(self, metric: str, model, texts: Sequence[str], compute: Callable[[list[str]], Sequence[Any]]) -> list[Any]:
        """``compute(texts)`` (surprisal or embeddings of a local model), taken from the records where an
        earlier report measured the same text with the same model; only the rest is computed."""
        keys = [hashlib.sha256(json.dumps([model.identity, metric, text]).encode()).hexdigest() for text in texts]
        missing = list(dict.fromkeys(key for key in keys if key not in self.cached))
        if missing:
            text_of = dict(zip(keys, texts))
            started = time.perf_counter()
            values = compute([text_of[key] for key in missing])
            self.seconds += time.perf_counter() - started
            for key, value in zip(missing, values):
                self.cached[key] = {"key": key, "call": metric, "model": model.label, "text": text_of[key],
                                    "answer": value.tolist() if isinstance(value, np.ndarray) else value}
        used = {record["key"] for record in self.records}
        self.records.extend(self.cached[key] for key in dict.fromkeys(keys) if key not in used)
        return [self.cached[key]["answer"] for key in keys]

    def parsed(self, answer: Answer, field_name: str) -> list[dict[str, Any]] | None:
        """The list of objects under ``field_name`` of a JSON object answer; None (counted as failed, once)
        if the answer is malformed, cut off or has no such list."""
        value = self.parsed_object(answer)
        if value is None:
            return None
        items = value.get(field_name)
        if isinstance(items, list) and all(isinstance(item, dict) for item in items):
            return items
        self.failed += 1
        return None

    def parsed_object(self, answer: Answer) -> dict[str, Any] | None:
        """A JSON object answer; None (counted as failed) if malformed or cut off."""
        if answer.failure is None:
            try:
                value = json.loads(answer.text)
                if isinstance(value, dict):
                    return value
            except json.JSONDecodeError:
                pass
        self.failed += 1
        return None

    def write(self, run_dir: Path, final: bool = True) -> None:
        """Write the calls (atomically). Before the end, earlier answers not asked for yet are kept too,
        so that a report killed midway loses no answer and a new one goes on where it stopped."""
        records = self.records
        if not final:
            used = {r["key"] for r in records}
            records = records + [r for key, r in self.cached.items() if key not in used]
        write_bytes_atomic(run_dir / RECORD_FILE, "".join(json.dumps(r) + "\n" for r in records).encode())


def tag_subject(calls: CallLog, kind: str, subject: str, log: list[tuple[int, str]], vocabulary: Sequence[str],
                max_chunks: int = MAX_CHUNKS, chunk_chars: int = CHUNK_CHARS) -> tuple[list[Tag], str]:
    """TerraLingua's protocol on one subject: tag and audit each chunk of its log, then a note. Returns the
    kept tags (highest audited confidence over chunks; evidence steps: the chunks' first steps) and the note."""
    best: dict[str, Tag] = {}
    pieces = chunks(log, chunk_chars, max_chunks)
    for first_step, text in pieces:
        proposed = calls.parsed(calls.call("tag", subject, tag_messages(kind, vocabulary, text), tag_schema(vocabulary),
                                           TAG_TOKENS), "tags")
        if not proposed:
            continue
        proposed_tags = list(dict((item["tag"], item["confidence"]) for item in proposed).items())
        names = [tag for tag, _ in proposed_tags]
        audit = calls.parsed(calls.call("audit", subject, audit_messages(kind, proposed_tags, text), audit_schema(names),
                                        TAG_TOKENS), "audit")
        for verdict in audit or ():
            if not verdict.get("supported") or verdict["tag"] not in names or verdict["confidence"] <= 0:
                continue
            tag = best.setdefault(verdict["tag"], Tag(subject, verdict["tag"], 0, LLM))
            tag.confidence = max(tag.confidence, int(verdict["confidence"]))
            if first_step not in tag.evidence_steps:
                tag.evidence_steps.append(first_step)
                tag.count += 1
    kept = sorted(best.values(), key=lambda t: AGENT_TAGS.index(t.tag) if t.tag in AGENT_TAGS else COMMUNITY_TAGS.index(t.tag))
    note = calls.call("note", subject, note_messages(kind, kept, pieces[0][1] if pieces else ""), None, NOTE_TOKENS).text
    for tag in kept:
        tag.note = note
    return kept, note


# ---------------------------------------------------------------------------------------------
# TerraLingua's LLM novelty of artifacts
# ---------------------------------------------------------------------------------------------
NOVELTY_SCHEMA = {"type": "object", "properties": {"novelty": {"type": "integer", "enum": list(range(6))}},
                  "required": ["novelty"], "additionalProperties": False}
NOVELTY_TEMPERATURE, NOVELTY_TOKENS = 0.7, 24
"""Sampling temperature of the LLM novelty score: each of its samples is one seeded draw (seeds 0, 1, ...)."""
NOVELTY_NEIGHBOURS, NOVELTY_CHARS = 5, 300
"""Earlier artifacts shown per score (the most similar by embedding), and characters shown of each text."""


def novelty_messages(earlier: Sequence[str], text: str) -> list[dict[str, str]]:
    shown = "\n".join(f"- {item[:NOVELTY_CHARS]}" for item in earlier)
    return [{"role": "system", "content": "You judge how new a text written by an agent in a simulated society is."},
            {"role": "user", "content": f"Texts written before (the most similar ones):\n{shown}\n\nNew text:\n"
                                        f"{text[:NOVELTY_CHARS]}\n\nHow novel is the new text against the earlier ones, "
                                        "from 0 (a copy) to 5 (entirely new in content and form)? "
                                        'Answer as JSON: {"novelty": N}'}]


def add_llm_novelty(calls: CallLog, versions: list[ArtifactVersion], vectors: np.ndarray | None, samples: int) -> None:
    """TerraLingua's LLM novelty: each version after the first scored 0-5 against the earlier versions most
    similar to it (by embedding; without embeddings, the latest), averaged over ``samples`` seeded draws.
    The first version of the run has nothing to be compared with and stays unscored."""
    unit = unit_rows(vectors) if vectors is not None and len(vectors) else None
    for index, version in enumerate(versions[1:], start=1):
        if unit is not None:
            order = np.argsort(-(unit[:index] @ unit[index]), kind="stable")[:NOVELTY_NEIGHBOURS]
        else:
            order = np.arange(index)[::-1][:NOVELTY_NEIGHBOURS]
        messages = novelty_messages([versions[i].text for i in order.tolist()], version.text)
        scores = [items["novelty"] for seed in range(samples)
                  if (items := calls.parsed_object(calls.call("novelty", version.key, messages, NOVELTY_SCHEMA, NOVELTY_TOKENS,
                                                              NOVELTY_TEMPERATURE, seed))) is not None]
        version.llm_novelty = float(np.mean(scores)) if scores else None


def add_llm_analysis(report: RunReport, tag_model, metric_model: ArtifactMetrics | None,
                     max_chunks: int = MAX_CHUNKS, progress: Callable[[int, int], None] | None = None,
                     novelty_samples: int = 0) -> dict[str, Any]:
    """Add LLM tags of every agent and community (``tag_model``, a :class:`~policies.llm.backend.LanguageModel`:
    a :class:`~policies.llm.local.LocalBackend` or a :class:`~policies.llm.server.ServerBackend`), the model-based artifact metrics
    (``metric_model``) and, with ``novelty_samples``, ``tag_model``'s 0-5 novelty score of every artifact
    version to an analysed run; record the calls (and the measured metrics), and refresh the report's numbers."""
    run_dir = report.run.run_dir
    calls = CallLog.open(tag_model, run_dir)
    subjects = [("agent", agent_name(slot), lines) for slot, lines in sorted(life_logs(report.run).items())]
    subjects += [("community", f"community_{index}", lines)
                 for index, lines in community_logs(report.run, report.communities).items()]
    sample = "\n".join(line for _, _, lines in subjects[:1] for _, line in lines[:50])
    chunk_chars = calls.chunk_chars(sample)
    notes = {}
    for done, (kind, subject, lines) in enumerate(subjects):
        vocabulary = LLM_AGENT_TAGS if kind == "agent" else LLM_COMMUNITY_TAGS
        tags, notes[subject] = tag_subject(calls, kind, subject, lines, vocabulary, max_chunks, chunk_chars)
        report.tags.extend(tags)
        calls.write(run_dir, final=False)
        if progress is not None:
            progress(done + 1, len(subjects))
    versions, vectors = report.artifact_versions, None
    if metric_model is not None and versions:
        texts = [version.text for version in versions]
        vectors = np.asarray(calls.measured("embedding", metric_model, texts, metric_model.embed), dtype=np.float64)
        add_model_metrics(versions, lambda _: calls.measured("surprisal", metric_model, texts, metric_model.surprisal),
                          lambda _: vectors)
    if novelty_samples:
        add_llm_novelty(calls, versions, vectors, novelty_samples)
    calls.write(run_dir)
    asked = [r for r in calls.records if r["call"] not in MEASURED]
    summary = {"backend": tag_model.label, "calls": len(asked), "reused": calls.reused, "failed": calls.failed,
               "seconds": round(calls.seconds, 2), "agent_steps": int(report.run.agent_offsets[-1]),
               "tokens_in": sum(r.get("tokens_in", 0) for r in asked),
               "tokens_out": sum(r.get("tokens_out", 0) for r in asked), "notes": notes}
    report.refresh_culture_numbers()
    report.numbers["tags"]["llm"] = summary
    return summary
