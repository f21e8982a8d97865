"""Artifact rules on small hand-built states: creation, expiry, versions, carrying, giving, dropping on
death, inert invisibility, caps, and the recording/replay of artifact actions."""

import numpy as np
import pytest

import society_env
from society_env.world.artifacts import artifact_action
from society_env.world.observations import ARTIFACT_CHANNEL
from society_env.world.state import DEAD
from tests.test_world_rules import place


def make_env(**overrides):
    settings = dict(width=12, height=12, num_founders=3, initial_food=0, food_regrowth_rate=0.0, food_decay_prob=0.0,
                    view_radius=3, max_steps=1000, lifespan=1000, initial_energy=500)
    settings.update(overrides)
    env = society_env.parallel_env("core", **settings)
    env.reset(seed=0)
    place(env, 0, 5, 5)
    place(env, 1, 5, 6)  # east of agent_0
    place(env, 2, 10, 10)  # out of agent_0's view (radius 3)
    return env


def act(env, artifact_actions=None, moves=None):
    """One step: every living agent stays (or moves), with the given artifact actions by slot."""
    actions = {}
    for agent in env.agents:
        slot = int(agent.split("_")[1])
        vector = np.array([(moves or {}).get(slot, 0), 0, 0, 0], dtype=np.int64)
        actions[agent] = {"action": vector, "message": "",
                          "artifact": (artifact_actions or {}).get(slot, artifact_action())}
    return env.step(actions)


def create(name="map", text="food north", lifespan=1, **extra):
    return artifact_action("create", name=name, text=text, lifespan=lifespan, **extra)


def events_of(infos, agent):
    return infos[agent].get("artifacts", [])


def test_create_puts_a_named_text_on_the_cell_others_see_the_name_the_holder_reads_the_text():
    env = make_env()
    obs, _, _, _, infos = act(env, {0: create()})
    [event] = events_of(infos, "agent_0")
    assert event == {"step": 1, "type": "artifact_created", "agent": "agent_0", "artifact": 0, "name": "map",
                     "text": "food north", "lifespan": 50, "position": [5, 5]}
    artifact = env.world.artifacts[0]
    assert (artifact.row, artifact.col, artifact.holder, artifact.creator, artifact.created_step) == (5, 5, -1, 0, 1)
    assert 'Read "map" (by agent_0, v1): food north' in obs["agent_0"]["text"]
    neighbour = obs["agent_1"]["text"]
    assert '"map" (-1,0)' in neighbour and "food north" not in neighbour  # a marker with the name only
    assert infos["agent_1"]["view"]["artifacts"] == [("map", -1, 0)] and infos["agent_1"]["view"]["carrying"] == []
    view, _ = society_env.split_observation(obs["agent_1"], env.config)
    r = env.config.view_radius
    assert view[r, r - 1, ARTIFACT_CHANNEL] == 1 and view[..., ARTIFACT_CHANNEL].sum() == 1
    far = obs["agent_2"]["text"]
    assert "Artifacts (dx,dy): none visible" in far and "Carrying: nothing" in far


def test_finite_lifespans_count_down_and_expire_forever_ones_stay():
    env = make_env(artifact_lifespans=(3, 0))
    act(env, {0: create("short", lifespan=0), 1: create("long", lifespan=1)})
    for step in range(2, 5):
        _, _, _, _, infos = act(env)
        expired = [e for i in infos.values() for e in i.get("artifacts", [])]
        assert expired == []  # on the ground: the expiry event has no agent, so it is not in anyone's infos
        names = {a.name for a in env.world.artifacts.values()}
        assert names == ({"long"} if step >= 3 else {"short", "long"})
    assert [e["type"] for e in env.last_outcome.artifact_events] == []
    assert env.world.artifacts[1].lifespan_left == -1


def test_expiry_event_names_the_holder_when_carried():
    env = make_env(artifact_lifespans=(2,))
    act(env, {0: create(lifespan=0)})
    act(env, {0: artifact_action("pick_up", name="map")})
    assert env.world.artifacts == {}
    assert env.last_outcome.artifact_events[-1] == {"step": 2, "type": "artifact_expired", "agent": "agent_0", "artifact": 0}


def test_modifications_make_versions_the_reader_sees_the_current_one_and_the_state_keeps_the_last_few():
    env = make_env(artifact_max_versions=2)
    act(env, {0: create(text="v1")})
    act(env, {1: artifact_action("modify", name="map", text="v2")})  # not on agent_1's cell: fails
    assert env.last_outcome.artifact_failed == {1: "no_such_artifact"}
    act(env, {0: artifact_action("modify", name="map", text="v2")})
    obs, _, _, _, infos = act(env, {0: artifact_action("modify", name="map", text="v3")})
    assert events_of(infos, "agent_0") == [{"step": 4, "type": "artifact_modified", "agent": "agent_0",
                                             "artifact": 0, "version": 3, "text": "v3"}]
    artifact = env.world.artifacts[0]
    assert artifact.version == 3 and [v[0] for v in artifact.versions] == [2, 3] and artifact.text == "v3"
    assert 'Read "map" (by agent_0, v3): v3' in obs["agent_0"]["text"] and ": v2" not in obs["agent_0"]["text"]


def test_pick_up_carry_read_while_moving_drop_elsewhere():
    env = make_env()
    act(env, {0: create()})
    obs, _, _, _, infos = act(env, {0: artifact_action("pick_up", name="map")})
    assert events_of(infos, "agent_0")[0]["type"] == "artifact_picked_up"
    assert env.world.artifacts[0].holder == 0 and env.world.artifacts[0].holders == [(2, 0)]
    obs, *_ = act(env, moves={0: society_env.NORTH})
    text = obs["agent_0"]["text"]
    assert 'Carrying: "map"' in text and 'Read "map" (by agent_0, v1): food north' in text
    view, _ = society_env.split_observation(obs["agent_1"], env.config)
    r = env.config.view_radius
    assert view[r - 1, r - 1, ARTIFACT_CHANNEL] == 1  # carried artifacts show on their carrier's cell
    _, _, _, _, infos = act(env, {0: artifact_action("drop", name="map")})
    assert events_of(infos, "agent_0")[0] == {"step": 4, "type": "artifact_dropped", "agent": "agent_0",
                                              "artifact": 0, "position": [4, 5]}
    assert (env.world.artifacts[0].row, env.world.artifacts[0].col, env.world.artifacts[0].holder) == (4, 5, -1)


def test_give_to_a_visible_agent_and_failures():
    env = make_env(artifact_max_inventory=1)
    east = society_env.view_cell_index(env.config, 0, 1)
    west = society_env.view_cell_index(env.config, 0, -1)
    act(env, {0: create("a")})
    act(env, {0: artifact_action("pick_up", name="a"), 1: create("b")})
    act(env, {0: artifact_action("give", name="a", target=west)})  # nobody there
    assert env.last_outcome.artifact_failed == {0: "no_agent_at_target"}
    act(env, {1: artifact_action("pick_up", name="b")})
    act(env, {0: artifact_action("give", name="a", target=east)})  # agent_1's inventory is full
    assert env.last_outcome.artifact_failed == {0: "inventory_full"}
    act(env, {1: artifact_action("drop", name="b")})
    _, _, _, _, infos = act(env, {0: artifact_action("give", name="a", target=east)})
    assert events_of(infos, "agent_0") == [{"step": 7, "type": "artifact_given", "agent": "agent_0", "artifact": 0,
                                             "to": "agent_1"}]
    assert env.world.artifacts[0].holder == 1 and [h[1] for h in env.world.artifacts[0].holders] == [0, 1]
    act(env, {0: artifact_action("give", name="a", target=east)})
    assert env.last_outcome.artifact_failed == {0: "no_such_artifact"}


def test_the_dead_drop_what_they_carry_and_artifacts_outlive_their_creator():
    env = make_env(artifact_max_per_cell=2)
    act(env, {0: create("a")})
    act(env, {0: artifact_action("pick_up", name="a")})
    act(env, {0: create("b")})
    act(env, {0: artifact_action("pick_up", name="b")})
    act(env, {0: create("c")})  # the cell now holds one, agent_0 carries two
    env.world.energy[0] = 1
    _, _, terminations, _, infos = act(env)
    assert terminations["agent_0"] and env.world.status[0] == DEAD
    kinds = [(e["type"], e["artifact"], e.get("reason")) for e in events_of(infos, "agent_0")]
    assert kinds == [("artifact_dropped", 0, None), ("artifact_destroyed", 1, "cell_full")]
    assert sorted(a.name for a in env.world.artifacts.values()) == ["a", "c"]
    assert all(a.holder == -1 and (a.row, a.col) == (5, 5) for a in env.world.artifacts.values())
    # the creator is gone; another agent walks onto the cell and reads its artifacts
    obs, *_ = act(env, moves={1: society_env.WEST})
    text = obs["agent_1"]["text"]
    assert 'Read "a" (by agent_0, v1): food north' in text and 'Read "c" (by agent_0, v1)' in text


def test_inert_artifacts_can_be_created_but_are_invisible_and_inert():
    env = make_env(artifact_visible=False)
    obs, _, _, _, infos = act(env, {0: create()})
    assert events_of(infos, "agent_0")[0]["type"] == "artifact_created" and len(env.world.artifacts) == 1
    for o in obs.values():
        assert "Artifacts" not in o["text"] and "food north" not in o["text"]
        view, _ = society_env.split_observation(o, env.config)
        assert not view[..., ARTIFACT_CHANNEL].any()
    for kind in ("pick_up", "modify", "destroy"):
        act(env, {0: artifact_action(kind, name="map", text="x")})
        assert env.last_outcome.artifact_failed == {0: "artifacts_inert"}
    assert env.world.artifacts[0].version == 1 and env.world.artifacts[0].holder == -1


def test_caps_and_costs_fail_cleanly():
    env = make_env(artifact_max_total=3, artifact_max_per_cell=2, artifact_text_max_chars=10,
                   artifact_name_max_chars=5, artifact_create_cost=10)
    failures = {
        "text_too_long": create(text="x" * 11),
        "name_too_long": create(name="abcdef"),
        "name_invalid": create(name='a"b'),
        "name_empty": create(name=""),
    }
    for reason, action in failures.items():
        act(env, {0: action})
        assert env.last_outcome.artifact_failed == {0: reason}
    assert env.world.artifacts == {} and env.world.energy[0] == 500 - 4  # failed creations cost nothing
    act(env, {0: create("a")})
    assert env.world.energy[0] == 500 - 5 - 10
    act(env, {0: create("b")})
    act(env, {0: create("c")})
    assert env.last_outcome.artifact_failed == {0: "cell_full"}
    act(env, {1: create("c")})
    act(env, {1: create("d")})
    assert env.last_outcome.artifact_failed == {1: "world_full"}
    env.world.energy[2] = 5
    act(env, {2: create("e")})
    assert env.last_outcome.artifact_failed == {2: "not_enough_energy"}
    act(env, {0: artifact_action("modify", name="a", text="y" * 11)})
    assert env.last_outcome.artifact_failed == {0: "text_too_long"} and env.world.artifacts[0].version == 1
    _, _, _, _, infos = act(env, {0: artifact_action("destroy", name="a")})
    assert events_of(infos, "agent_0")[0]["type"] == "artifact_destroyed" and 0 not in env.world.artifacts
    assert infos["agent_0"].get("artifact_failed") is None


def test_malformed_artifact_actions_raise_and_change_nothing():
    env = make_env()
    act(env, {0: create()})
    before = env.world.copy()
    rng_state = env._rng.bit_generator.state
    stay = {"action": np.zeros(4, dtype=np.int64), "message": ""}
    for bad in ({"kind": 9}, {"kind": 1, "lifespan": 99}, {"kind": 1, "name": 5}, {"kind": 1, "colour": "red"},
                {"kind": 1, "text": "x" * (env.config.artifact_action_max_chars + 1)}, "create"):
        with pytest.raises(ValueError, match="agent_0"):
            env.step({"agent_0": {**stay, "artifact": bad}, "agent_1": stay})
    assert env._rng.bit_generator.state == rng_state and env.world.step == before.step
    assert env.world.artifacts[0].version == 1 and len(env.world.artifacts) == 1


def test_worlds_without_artifacts_reject_the_artifact_entry():
    env = society_env.parallel_env("small", language=True)
    env.reset(seed=0)
    agent = env.agents[0]
    with pytest.raises(ValueError, match=agent):
        env.step({agent: {"action": np.zeros(4, dtype=np.int64), "message": "", "artifact": artifact_action()}})


def test_recorded_artifact_actions_replay_identically(tmp_path):
    from policies import PolicyAssignment, make_policy
    from policies.rollout import RecordSteps, run_episode
    from society_env.app.runs import replay_recording
    from society_env.recording.format import Recording, RecordingWriter

    config = society_env.make_config("core", width=14, height=14, num_founders=8, initial_food=30, max_steps=80)
    assignment = PolicyAssignment([("cooperator", 1.0)], config.num_founders)
    policies = {"cooperator": make_policy("cooperator", config)}
    meta = {"preset": "core", "seed": 4, "assignment": assignment.policy_of, "config": config.to_dict()}
    with RecordingWriter(tmp_path / "run", meta) as recorder:
        stats = run_episode(society_env.SocietyEnv(config), assignment, policies, 4, 80, [RecordSteps(recorder)])
        recorder.close(stats.summary(assignment.policy_of))
    kinds = {e["type"] for e in Recording(tmp_path / "run").events()}
    assert {"artifact_created", "artifact_modified"} <= kinds
    assert stats.summary(assignment.policy_of)["artifacts"]["created"] > 0
    result = replay_recording(tmp_path / "run")
    assert result["identical"], result


def test_experiment_command_runs_presets_by_seeds_into_one_directory(tmp_path, capsys):
    import json

    from society_env.app.cli import main
    from society_env.app.runs import replay_recording

    out = tmp_path / "exp"
    assert main(["experiment", "--presets", "core,inert", "--seeds", "2", "--policy", "cooperator", "--steps", "40",
                 "--set", "width=14", "--set", "height=14", "--set", "initial_food=30", "--out", str(out), "--quiet"]) == 0
    record = json.loads((out / "experiment.json").read_text())
    assert [(run["preset"], run["seed"]) for run in record["runs"]] == [("core", 0), ("core", 1), ("inert", 0), ("inert", 1)]
    table = dict((label, cells) for label, cells in record["table"])
    assert set(table) >= {"run length (steps)", "mean population", "births", "deaths: starvation",
                          "artifacts created", "artifacts modified", "artifacts alive at end", "messages"}
    assert table["run length (steps)"] == ["40 ± 0.0", "40 ± 0.0"]
    assert table["artifacts modified"][1] == "0 ± 0.0"  # inert artifacts cannot be read, so never rewritten
    assert "| `core` | `inert` |" in (out / "table.md").read_text()
    printed = capsys.readouterr().out
    assert "artifacts created" in printed and "inert" in printed
    assert replay_recording(out / "inert__seed1")["identical"]
    assert main(["experiment", "--presets", "core,nope", "--out", str(tmp_path / "bad")]) == 2
    assert "unknown preset(s) nope" in capsys.readouterr().err


def test_recordings_from_before_artifacts_still_load_and_replay(tmp_path):
    import json

    from society_env.app.cli import main
    from society_env.app.runs import replay_recording
    from society_env.recording.format import Recording

    out = tmp_path / "old"
    assert main(["run", "--preset", "small", "--policy", "cooperator", "--steps", "30", "--quiet", "--out", str(out)]) == 0
    meta = json.loads((out / "meta.json").read_text())
    meta["config"] = {k: v for k, v in meta["config"].items() if not k.startswith(("artifact", "prompt_"))}
    meta["config"]["extra"] = {}  # the unused field configs carried until the layering cleanup
    (out / "meta.json").write_text(json.dumps(meta))  # as written before artifacts existed
    assert not Recording(out).config.artifacts
    assert not any(e["type"].startswith("artifact_") for e in Recording(out).events())
    assert replay_recording(out)["identical"]


def test_ansi_render_marks_artifacts_lying_on_free_cells():
    env = society_env.parallel_env("core", width=12, height=12, num_founders=1, initial_food=0, render_mode="ansi")
    env.reset(seed=0)
    place(env, 0, 5, 5)
    act(env, {0: create()}, moves=None)
    assert "?" not in env.render().splitlines()[1:][5]  # under its creator: the agent's letter shows
    act(env, moves={0: society_env.NORTH})
    rows = env.render().splitlines()
    assert rows[0].endswith("artifacts 1 (?)") and rows[1:][5][5] == "?"
