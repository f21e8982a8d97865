"""A hand-written tiny recording with known numbers, for the analysis tests (the real run is a conftest fixture)."""

from __future__ import annotations

import json
from pathlib import Path

from society_env.world.config import make_config
from society_env.recording.files import write_json_atomic
from society_env.recording.format import FORMAT_NAME, FORMAT_VERSION

TINY_CONFIG = make_config("small", width=10, height=10, view_radius=2, num_founders=3, max_agents=8, initial_food=5)
GENOME = [0.5, -0.5, 0.25, -0.25, 0.0, 1.0, -1.0, 0.75]


def _snapshot(step: int, agents: dict[int, tuple[int, int, int]], food: dict[int, int]) -> dict:
    slots = sorted(agents)
    return {"step": step, "agents": slots, "row": [agents[s][0] for s in slots], "col": [agents[s][1] for s in slots],
            "energy": [agents[s][2] for s in slots], "food_cells": sorted(food), "food_values": [food[c] for c in sorted(food)]}


def write_tiny_recording(run_dir: Path, extra_events: list[dict] = ()) -> Path:
    """Four snapshots on a 10x10 torus with view radius 2 (the numbers in test_analysis.py follow from these).

    step 0: agent_0 (0,0) forager, agent_1 (0,2) raider, agent_2 (5,5) forager      pairs in view: 0-1
    step 1: agent_1 takes 5 from agent_0; agent_0 says "hello" (heard by agent_1)  pairs: 0-1
    step 2: agent_2 stands at (9,9) (1 cell from (0,0) across the wrap) and gives agent_0 3, says "hi";
            agent_0 has agent_3 at (1,0)                                          pairs: 0-1 0-2 0-3 1-3 2-3
    step 3: agent_1 starves; agent_0 creates the artifact "map" and hands it to agent_3; agent_2 leaves
            the artifact "sign" on cell (5,5)                                    pairs: 0-2 0-3 2-3
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(run_dir / "meta.json", {
        "format": FORMAT_NAME, "version": FORMAT_VERSION, "preset": "small", "seed": 0, "steps_requested": 3,
        "policy": "forager=2,raider=1", "assignment": {"agent_0": "forager", "agent_1": "raider", "agent_2": "forager"},
        "config": TINY_CONFIG.to_dict(), "command": "run"})
    snapshots = [
        _snapshot(0, {0: (0, 0, 50), 1: (0, 2, 50), 2: (5, 5, 50)}, {11: 10}),
        _snapshot(1, {0: (0, 0, 44), 1: (0, 2, 54), 2: (5, 5, 49)}, {}),
        _snapshot(2, {0: (0, 0, 46), 1: (0, 2, 53), 2: (9, 9, 45), 3: (1, 0, 50)}, {10: 7}),
        _snapshot(3, {0: (0, 0, 45), 2: (9, 9, 44), 3: (1, 0, 56)}, {}),
    ]
    added = [{"step": 0, "type": "added", "agent": f"agent_{slot}", "policy": policy, "position": position,
              "energy": 50, "genome": GENOME}
             for slot, policy, position in ((0, "forager", [0, 0]), (1, "raider", [0, 2]), (2, "forager", [5, 5]))]
    events = added + [
        {"step": 1, "type": "took", "agent": "agent_1", "from": "agent_0", "amount": 5},
        {"step": 1, "type": "message", "agent": "agent_0", "token": 0, "text": "hello"},
        {"step": 2, "type": "born", "agent": "agent_3", "parent": "agent_0", "policy": "forager", "position": [1, 0],
         "genome": GENOME},
        {"step": 2, "type": "gave", "agent": "agent_2", "to": "agent_0", "amount": 3},
        {"step": 2, "type": "message", "agent": "agent_2", "token": 3, "text": "hi"},
        {"step": 3, "type": "died", "agent": "agent_1", "cause": "starvation", "age": 3, "energy": 0, "position": [0, 2]},
        {"step": 3, "type": "artifact_created", "agent": "agent_0", "artifact": "a1", "name": "map", "text": "food east",
         "lifespan": 50, "position": [0, 0]},
        {"step": 3, "type": "artifact_given", "agent": "agent_0", "artifact": "a1", "to": "agent_3"},
        {"step": 3, "type": "artifact_created", "agent": "agent_2", "artifact": "a2", "name": "sign", "text": "",
         "lifespan": 50, "position": [5, 5]},
    ]
    actions = [  # agent_2 moves east but stays (blocked); at step 2 agent_0 north and agent_1 west are blocked too
        {"step": 0, "actions": {"agent_0": [0, 0, 0, 0], "agent_1": [6, 0, 1, 0], "agent_2": [4, 0, 0, 0]}},
        {"step": 1, "actions": {"agent_0": [7, 0, 0, 0], "agent_1": [0, 0, 0, 0], "agent_2": [0, 0, 0, 3]}},
        {"step": 2, "actions": {"agent_0": [1, 0, 0, 0], "agent_1": [3, 0, 0, 0], "agent_2": [0, 0, 0, 0]}},
    ]
    events += list(extra_events)  # appended by a test that needs more known events
    for name, records in (("snapshots", snapshots), ("events", events), ("actions", actions)):
        (run_dir / f"{name}.jsonl").write_text("".join(json.dumps(record) + "\n" for record in records))
    return run_dir
