"""Rule tags (TerraLingua's vocabulary, exact from the recording) on a hand-written recording whose events are known."""


import pytest

from society_env.analysis.lineage import lineage
from society_env.analysis.loading import load_run
from society_env.analysis.tags import (
    AGENT_TAGS, COMMUNITY_TAGS, EVIDENCE_SCALE, RULE_AGENT_TAGS, RULE_COMMUNITY_TAGS, confidence, rule_agent_tags,
    rule_community_tags, tag_frequencies,
)
from tests.analysis_runs import write_tiny_recording

EXTRA_EVENTS = [  # appended to the tiny recording's step 3 (analysis_runs.py): the tags below follow from them
    {"step": 3, "type": "gave", "agent": "agent_0", "to": "agent_3", "amount": 2},   # to its own child
    {"step": 3, "type": "gave", "agent": "agent_0", "to": "agent_2", "amount": 1},   # answers agent_2's gift of step 2
    {"step": 3, "type": "took", "agent": "agent_2", "from": "agent_1", "amount": 1},  # agent_1 starves in this step
    {"step": 3, "type": "artifact_picked_up", "agent": "agent_3", "artifact": "a2"},  # agent_2's artifact
]

EXPECTED = {  # (agent, tag) -> evidence steps
    ("agent_0", "REPRODUCTION"): [2], ("agent_0", "EXCHANGE"): [2, 3], ("agent_0", "CONFLICT"): [1],
    ("agent_0", "ARTIFACT_CREATED"): [3], ("agent_0", "ARTIFACT_USE"): [3], ("agent_0", "NURTURED_OFFSPRING"): [3],
    ("agent_0", "ALTRUISM"): [3], ("agent_0", "RECIPROCITY"): [2, 3], ("agent_0", "COMMUNICATION_PROTOCOL_USE"): [1],
    ("agent_1", "CONFLICT"): [1, 3], ("agent_1", "PREDATION"): [1],
    ("agent_2", "EXCHANGE"): [2, 3], ("agent_2", "CONFLICT"): [3], ("agent_2", "PREDATION"): [3], ("agent_2", "KILL"): [3],
    ("agent_2", "ARTIFACT_CREATED"): [3], ("agent_2", "ALTRUISM"): [2], ("agent_2", "RECIPROCITY"): [2, 3],
    ("agent_2", "COMMUNICATION_PROTOCOL_USE"): [2], ("agent_2", "EXPLORATION"): [2],
    ("agent_3", "EXCHANGE"): [3], ("agent_3", "ARTIFACT_USE"): [3], ("agent_3", "TOOL_USE"): [3],
    ("agent_3", "FORAGING"): [3],  # born on the food cell (1, 0) at step 2, eats it in step 3 (energy 50 -> 56)
}


@pytest.fixture
def tagged(tmp_path):
    return load_run(write_tiny_recording(tmp_path / "tiny", EXTRA_EVENTS))


def test_every_rule_agent_tag_of_a_known_recording(tagged):
    tags = rule_agent_tags(tagged, lineage(tagged))
    assert {(t.subject, t.tag): t.evidence_steps for t in tags} == EXPECTED
    assert all(t.source == "rules" and t.confidence == confidence(t.count, EVIDENCE_SCALE.get(t.tag, 1)) for t in tags)
    counts = {(t.subject, t.tag): t.count for t in tags}
    assert counts[("agent_0", "EXCHANGE")] == 4  # received energy at 2; handed the map and gave twice at 3
    assert counts[("agent_0", "EXCHANGE")] != len(EXPECTED[("agent_0", "EXCHANGE")])  # counts, not steps


def test_rule_tags_come_from_terralingua_vocabulary_only():
    assert set(RULE_AGENT_TAGS) <= set(AGENT_TAGS) and set(RULE_COMMUNITY_TAGS) <= set(COMMUNITY_TAGS)
    assert len(AGENT_TAGS) == 24 and len(COMMUNITY_TAGS) == 9


def test_confidence_grows_with_evidence_and_saturates_at_ten():
    assert [confidence(n) for n in range(6)] == [0, 5, 8, 9, 9, 10]
    assert confidence(3, scale=3) == 5 and confidence(100, scale=3) == 10


def test_community_tags_follow_the_windows(tagged):
    windows = [(0, [[0, 1], [2], [3]]), (2, [[0, 2, 3], [1]]), (3, [[0], [2, 3]])]
    tags = {t.tag: t for t in rule_community_tags(tagged, [[0, 2, 3], [1]], windows)}
    assert set(tags) == {"resource_network", "COALITION_FORMED", "COALITION_BROKEN", "division_of_labor"}
    assert all(t.subject == "community_0" for t in tags.values())  # singletons get no tags
    assert tags["resource_network"].evidence_steps == [2, 3] and tags["resource_network"].count == 4
    assert tags["COALITION_FORMED"].evidence_steps == [2]  # first window with two members together
    assert tags["COALITION_BROKEN"].evidence_steps == [3]  # agent_0 leaves agent_2 and agent_3
    # roles: forager/move (agent_0: stay, reproduce, north), forager/stay (agent_2), forager/none (agent_3)
    assert tags["division_of_labor"].confidence == 10
    kept = rule_community_tags(tagged, [[0, 2, 3]], [(0, [[0, 2, 3]]), (2, [[0, 2, 3]])])
    assert "COALITION_BROKEN" not in {t.tag for t in kept}


def test_tag_frequencies_count_subjects_per_block(tagged):
    frequency = tag_frequencies(rule_agent_tags(tagged, lineage(tagged)), tagged.steps, stride=2)
    assert frequency["CONFLICT"] == [2, 2]  # block 0 (steps 0-1): agent_0, agent_1; block 1: agent_1, agent_2
    assert frequency["FORAGING"] == [0, 1]


def test_rule_tags_of_a_real_run_agree_with_its_events(recorded_run):
    run = load_run(recorded_run)
    tags = rule_agent_tags(run, lineage(run))
    total = lambda tag: sum(t.count for t in tags if t.tag == tag)
    events = [e for step in run.events_by_step.values() for e in step]
    assert total("REPRODUCTION") == sum(e["type"] == "born" for e in events)
    assert total("PREDATION") == sum(e["type"] == "took" for e in events)
    assert total("COMMUNICATION_PROTOCOL_USE") == sum(e["type"] == "message" for e in events)
    assert total("FORAGING") > 0 and total("EXPLORATION") > 0  # scripted foragers eat and walk
