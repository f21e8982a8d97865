"""The anthropologist (society-env report --tags): TerraLingua's tag, audit and note calls on the tiny GGUF
in process and on a real llama_cpp.server, recorded and reused by content; the report's new sections in Chromium."""

import json

import numpy as np
import pytest

from society_env.analysis.loading import load_run
from society_env.analysis.tags import AGENT_TAGS, COMMUNITY_TAGS, RULE_AGENT_TAGS, RULE_COMMUNITY_TAGS
from society_env.app import anthropologist
from society_env.app.anthropologist import LLM_AGENT_TAGS, LLM_COMMUNITY_TAGS, chunks, life_logs
from society_env.app.cli import main
from tests.analysis_runs import write_tiny_recording
from tests.browser import Browser, find_chromium
from tests.tiny_gguf import write_tiny_model


def test_llm_vocabulary_is_what_the_rules_cannot_see():
    assert set(LLM_AGENT_TAGS) | set(RULE_AGENT_TAGS) == set(AGENT_TAGS) and not set(LLM_AGENT_TAGS) & set(RULE_AGENT_TAGS)
    assert set(LLM_COMMUNITY_TAGS) | set(RULE_COMMUNITY_TAGS) == set(COMMUNITY_TAGS)
    assert {"DECEPTION", "TERRITORY_CLAIM", "strategic_planning"} <= set(LLM_AGENT_TAGS)
    assert {"LEADER_DECLARED", "cultural_norms"} <= set(LLM_COMMUNITY_TAGS)


def test_life_log_tells_what_the_agent_did_and_suffered(tmp_path):
    logs = life_logs(load_run(write_tiny_recording(tmp_path / "tiny")))
    agent_0 = "\n".join(line for _, line in logs[0])
    assert 't1 (0,0) energy 44 stay; sees no food; near agent_1 2E; lost 5 energy to agent_1; said "hello"' in agent_0
    # what it sees: food and neighbours in its view square (radius 2), across the torus's wrap
    assert logs[0][0][1] == "t0 (0,0) energy 50 -; sees 1 food, nearest 1S 1E; near agent_1 2E"
    assert logs[0][2][1].startswith("t2 (0,0) energy 46 reproduce; sees 1 food, nearest 1S; "
                                    "near agent_3 1S, agent_1 2E, agent_2 1N 1W")
    assert logs[2][0][1] == "t0 (5,5) energy 50 -; sees no food"
    assert "had a child, agent_3" in agent_0 and "got 3 energy from agent_2" in agent_0
    assert "made artifact 'map'" in agent_0
    assert any("died of starvation" in line for _, line in logs[1])  # the step it died in has no snapshot of it


def test_chunks_fit_the_budget_and_sample_a_long_life_evenly():
    lines = [(step, f"t{step} " + "x" * 95) for step in range(100)]  # 100 characters per line
    pieces = chunks(lines, max_chars=1000, max_chunks=4)
    assert len(pieces) == 4 and all(len(text) <= 1000 for _, text in pieces)
    assert [step for step, _ in pieces] == [0, 30, 60, 90]  # 10 pieces of 9-10 lines: the first, ..., the last
    assert chunks(lines[:3], 1000, 4) == [(0, "\n".join(line for _, line in lines[:3]))]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("anthropologist") / "tiny.gguf")


@pytest.fixture(scope="module")
def creative_run(tmp_path_factory):
    """A real 30-step creative run of scripted agents who write food notes (artifacts)."""
    run_dir = tmp_path_factory.mktemp("creative") / "run"
    assert main(["run", "--preset", "creative", "--policy", "cooperator=3,forager=3", "--set", "num_founders=6",
                 "--steps", "30", "--seed", "1", "--out", str(run_dir), "--quiet"]) == 0
    return run_dir


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _check_llm_tags(run_dir, novelty=False):
    tags = [t for t in _lines(run_dir / "report-tags.jsonl") if t["source"] == "llm"]
    assert tags, "the protocol kept no tag at all"
    for tag in tags:
        vocabulary = LLM_AGENT_TAGS if "agent" in tag else LLM_COMMUNITY_TAGS
        assert tag["tag"] in vocabulary and 1 <= tag["confidence"] <= 10 and tag["evidence_steps"]
    calls = _lines(run_dir / "report-llm.jsonl")
    assert {c["call"] for c in calls} == {"chunk_chars", "tag", "audit", "note", "embedding", "surprisal"} | (
        {"novelty"} if novelty else set())
    return tags, calls


def test_tags_on_the_tiny_model_are_recorded_and_rebuilt_without_it(tiny_model, creative_run, monkeypatch, capsys):
    assert main(["report", str(creative_run), "--tags", "--model", str(tiny_model), "--tag-chunks", "2",
                 "--llm-novelty", "2", "--quiet"]) == 0
    tags, calls = _check_llm_tags(creative_run, novelty=True)
    for call in calls:
        if call["call"] in ("tag", "audit") and call["failure"] is None:
            json.loads(call["answer"])  # grammar-constrained: complete JSON whenever the answer finished
    subjects = {c["subject"] for c in calls if c["call"] == "note"}
    assert {f"agent_{slot}" for slot in load_run(creative_run).agents} <= subjects  # every agent gets the protocol
    assert any(s.startswith("community_") for s in subjects)
    first = (creative_run / "report-tags.jsonl").read_bytes()
    versions = [row for row in (creative_run / "report-artifacts.csv").read_text().splitlines()[1:]]
    assert versions and all(row.split(",")[8] not in ("", "nan") for row in versions)  # surprisal of every version
    scored = [row.split(",")[11] for row in versions[1:]]  # llm_novelty: the first version has nothing before it
    assert len(versions) > 1 and all(0 <= float(score) <= 5 for score in scored if score)
    novelty_calls = [c for c in calls if c["call"] == "novelty"]
    assert len(novelty_calls) == 2 * (len(versions) - 1) and {c["seed"] for c in novelty_calls} == {0, 1}
    numbers = json.loads((creative_run / "report.json").read_text())
    asked = [c for c in calls if c["call"] not in anthropologist.MEASURED]
    assert numbers["artifacts"]["mean_novelty"] is not None and numbers["tags"]["llm"]["calls"] == len(asked)

    def no_model(*args, **kwargs):
        raise AssertionError("the model was asked although every answer is recorded")

    from policies.llm.local import LocalBackend

    for method in ("chat", "chat_model"):  # the chats and the chunk length (the chat model's tokenizer)
        monkeypatch.setattr(LocalBackend, method, no_model)
    for method in ("surprisal", "embed"):  # the artifact metrics are recorded too
        monkeypatch.setattr(anthropologist.ArtifactMetrics, method, no_model)
    assert main(["report", str(creative_run), "--tags", "--model", str(tiny_model), "--tag-chunks", "2",
                 "--llm-novelty", "2"]) == 0
    assert f"{len(asked)} LLM calls ({len(asked) - 1} from report-llm.jsonl" in capsys.readouterr().out
    assert (creative_run / "report-tags.jsonl").read_bytes() == first
    assert (creative_run / "report-artifacts.csv").read_text().splitlines()[1:] == versions


def test_llm_novelty_compares_with_the_most_similar_earlier_texts_and_averages_samples(tmp_path):
    class Model:  # pure logic: which texts are shown, how samples are averaged; the real model is tested above
        identity, label = "gguf:test", "test"
        shown = []

        def chat(self, messages, schema, max_tokens, temperature=0.0, seed=0):
            self.shown.append(messages[1]["content"])
            return anthropologist.Answer('{"novelty": %d}' % (1 if seed == 0 else 4) if seed < 2 else "not json")

    from society_env.analysis.artifact_metrics import ArtifactVersion

    texts = ["food north", "water south", "food north east", "a poem"]
    versions = [ArtifactVersion(f"a{i}", "note", 1, i, "agent_0", text, len(text), 0, 1.0) for i, text in enumerate(texts)]
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9]])
    calls = anthropologist.CallLog.open(Model(), tmp_path)
    anthropologist.add_llm_novelty(calls, versions, vectors, samples=3)
    assert versions[0].llm_novelty is None and [v.llm_novelty for v in versions[1:]] == [2.5, 2.5, 2.5]
    assert calls.failed == 3  # the third sample of each version did not parse: left out, counted
    third = Model.shown[3]  # "food north east": the most similar earlier text comes first
    assert third.index("- food north\n") < third.index("- water south")


def test_a_missing_model_is_a_one_line_error(creative_run, tmp_path, capsys):
    assert main(["report", str(creative_run), "--tags", "--model", str(tmp_path / "none.gguf")]) == 2
    error = capsys.readouterr().err.strip()
    assert "none.gguf" in error and len(error.splitlines()) == 1


@pytest.mark.slow
def test_tags_from_a_real_llama_cpp_server(tiny_model, tmp_path):
    pytest.importorskip("openai")
    from policies.llm.server import launch_local_server

    run_dir = tmp_path / "run"
    assert main(["run", "--preset", "creative", "--policy", "cooperator=2,forager=2", "--set", "num_founders=4",
                 "--steps", "12", "--seed", "2", "--out", str(run_dir), "--quiet"]) == 0
    process, url = launch_local_server(tiny_model, threads=1, n_ctx=4096, alias="tiny")
    try:
        assert main(["report", str(run_dir), "--tags", "--llm-server", url, "--model", str(tiny_model),
                     "--tag-chunks", "1", "--quiet"]) == 0
    finally:
        process.kill()
        process.wait()
    _, calls = _check_llm_tags(run_dir)
    assert {c["model"] for c in calls if c["call"] not in anthropologist.MEASURED} == {"server:tiny"}
    assert {c["model"] for c in calls if c["call"] in anthropologist.MEASURED} == {"tiny.gguf"}  # metrics stay local


CHROMIUM = find_chromium()


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install -y chromium)")
def test_report_page_shows_tags_and_artifacts_in_a_browser(creative_run, tiny_model):
    pytest.importorskip("websocket", reason="websocket-client is part of the test extra")
    assert main(["report", str(creative_run), "--tags", "--model", str(tiny_model), "--tag-chunks", "2", "--quiet"]) == 0
    with Browser(CHROMIUM) as browser:
        browser.open((creative_run / "report.html").as_uri())
        browser.wait_for("document.readyState === 'complete'")
        sections = browser.evaluate("""(() => {
          const after = id => { let n = document.getElementById(id), rows = 0, images = [];
            for (n = n.nextElementSibling; n && n.tagName !== 'H2'; n = n.nextElementSibling) {
              rows += n.querySelectorAll ? n.querySelectorAll('tr').length : 0;
              if (n.tagName === 'IMG') images.push(n.complete && n.naturalWidth > 0); }
            return {rows, images}; };
          return {tags: after('tags'), artifacts: after('artifacts'), text: document.body.innerText}; })()""")
    assert sections["tags"]["rows"] > 3 and sections["tags"]["images"] == [True]
    assert sections["artifacts"]["rows"] > 3 and sections["artifacts"]["images"] == [True]
    assert "FORAGING" in sections["text"] and "*" in sections["text"]  # rule tags and LLM-marked tags
    assert not browser.errors, browser.errors


def test_a_report_killed_midway_keeps_every_answer(tmp_path):
    class Model:  # only the identity is read when every answer is cached
        identity, label = "gguf:test", "test"

        def chat(self, messages, schema, max_tokens, temperature=0.0, seed=0):
            return anthropologist.Answer('{"tags": []}')

    calls = anthropologist.CallLog.open(Model(), tmp_path)
    for subject in ("agent_0", "agent_1"):
        calls.call("tag", subject, [{"role": "user", "content": subject}], None, 10)
    calls.write(tmp_path)
    again = anthropologist.CallLog.open(Model(), tmp_path)
    again.call("tag", "agent_1", [{"role": "user", "content": "agent_1"}], None, 10)
    again.write(tmp_path, final=False)  # as after each subject: agent_0's answer, not asked yet, stays
    assert {r["subject"] for r in _lines(tmp_path / "report-llm.jsonl")} == {"agent_0", "agent_1"} and again.reused == 1
    again.write(tmp_path)  # the end: exactly the calls of this report
    assert [r["subject"] for r in _lines(tmp_path / "report-llm.jsonl")] == ["agent_1"]
