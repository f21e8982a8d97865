"""Emergent communication, measured: the estimators, the decisions rebuilt from a recording, the sanity rows
(scripted cooperators signal and listen, random agents do neither), the report section, and the causal test's
channel interventions (zeroed, shuffled) and paired episodes."""

import json

import numpy as np
import pytest

from tests.analysis_runs import write_tiny_recording
from policies import CooperatorPolicy, PolicyAssignment
from policies.channel import ChannelIntervention, CounterfactualProbe, edit_channel, heard_cells
from policies.rollout import run_episode
from society_env.analysis.communication import (
    APPROACH, NoMessageTokens, communication, decisions_and_hearings, mutual_information, shuffled_within,
)
from society_env.analysis.loading import load_run
from society_env.app.cli import main
from society_env.app.communication import CausalSettings, causal_test
from society_env.world.config import make_config
from society_env.world.env import SocietyEnv
from society_env.world.names import agent_slot
from society_env.world.observations import MESSAGE_CHANNEL, split_observation
from society_env.world.state import ALIVE


def _run(tmp_path_factory, policy: str, seed: int, steps: int = 200):
    run_dir = tmp_path_factory.mktemp("communication") / f"{policy}_{seed}"
    assert main(["run", "--preset", "small", "--policy", policy, "--steps", str(steps), "--seed", str(seed),
                 "--out", str(run_dir), "--quiet", "--checkpoint-every", "0"]) == 0
    return run_dir


@pytest.fixture(scope="module")
def cooperators(tmp_path_factory):
    return _run(tmp_path_factory, "cooperator", 0)


@pytest.fixture(scope="module")
def random_runs(tmp_path_factory):
    return [_run(tmp_path_factory, "random", seed) for seed in (0, 1, 2)]


# ---------------------------------------------------------------------------------------------
# estimators
# ---------------------------------------------------------------------------------------------
def test_mutual_information_by_hand():
    x = np.array([0, 0, 1, 1] * 25)
    assert mutual_information(x, x) == pytest.approx(1.0)
    assert mutual_information(x, np.array([0, 1] * 50)) == pytest.approx(0.0)  # every pair equally often
    assert mutual_information(x, 1 - x) == pytest.approx(1.0)
    # I(X; Y | Z): Y = X within each Z stratum, but X is constant in stratum 1 -> half a bit
    z = np.repeat([0, 1], 50)
    x = np.concatenate([np.tile([0, 1], 25), np.zeros(50, dtype=int)])
    assert mutual_information(x, x.copy(), z) == pytest.approx(0.5)


def test_shuffles_stay_within_their_step():
    groups = np.repeat([0, 1, 2], [3, 1, 4])
    values = np.arange(8)
    order = shuffled_within(groups, np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(8))
    assert np.array_equal(groups[order], groups)  # every value stays in its own step
    assert not np.array_equal(order, np.arange(8))
    assert sorted(values[order][4:].tolist()) == [4, 5, 6, 7]


def test_decisions_are_rebuilt_from_the_snapshots(tmp_path):
    """The tiny recording: food cell 11 = (1, 1) at step 0; agent_2 broadcasts token 3 at step 1 and stands at
    (9, 9) at snapshot 2, heard across the wrap by agent_0 at (0, 0), who then moves north: towards it."""
    run = load_run(write_tiny_recording(tmp_path / "tiny"))
    decisions, hearings = decisions_and_hearings(run)
    slots = run.slot[decisions.entry]
    at_zero = decisions.snapshot == 0
    assert dict(zip(slots[at_zero].tolist(), decisions.sees_food[at_zero].tolist())) == {0: True, 1: True, 2: False}
    assert not decisions.sees_food[decisions.snapshot == 1].any()  # no food at snapshot 1
    assert decisions.token[(decisions.snapshot == 1) & (slots == 2)].tolist() == [3]
    heard = {(int(run.slot[decisions.entry[d]]), int(run.slot[s])): int(r)
             for d, s, r in zip(hearings.decision, hearings.speaker, hearings.response)
             if decisions.snapshot[d] == 2}
    # at snapshot 2: 0 hears 1, 2 (across the wrap) and 3; 1 hears 0 and 3; agent_3, a newborn, has no action
    assert set(heard) == {(0, 1), (0, 2), (0, 3), (1, 0), (1, 3), (2, 0), (2, 3)}
    assert heard[(0, 2)] == APPROACH


# ---------------------------------------------------------------------------------------------
# the sanity rows
# ---------------------------------------------------------------------------------------------
def test_cooperators_signal_food_and_follow_the_call(cooperators):
    """Cooperators broadcast token 1 when they see food and walk towards a caller when they see none."""
    measured = communication(load_run(cooperators))
    food = measured.signalling["food"]
    assert measured.positive_signalling and food.significant
    assert food.p_value == pytest.approx(1 / 201)  # no shuffle comes near
    assert food.bits > food.null_p95 + 0.3  # far above the shuffled null, not only above zero
    assert measured.food_share_by_token == {0: 0.0, 1: 1.0}
    assert measured.positive_listening and measured.listening.excess > 0.01
    approach = measured.approach_by_token
    assert approach[1]["approach_share"] > approach[0]["approach_share"] + 0.2


def test_random_agents_neither_signal_nor_listen(random_runs):
    for run_dir in random_runs:
        measured = communication(load_run(run_dir))
        assert not measured.positive_signalling and not measured.positive_listening, run_dir.name
        for dependence in (*measured.signalling.values(), measured.listening):
            assert dependence.p_value > 0.01
            assert dependence.excess < 0.02  # the plug-in MI is the null's bias, nothing more
        # the pitfall: finite samples give positive plug-in MI between independent variables
        assert measured.signalling["consistency"].bits > 0.05
        assert measured.signalling["consistency"].null_mean > 0.05


def test_the_measures_are_deterministic(cooperators):
    run = load_run(cooperators)
    assert communication(run, permutations=20).record() == communication(run, permutations=20).record()


def test_a_recording_without_tokens_says_so(tmp_path_factory):
    run_dir = _run(tmp_path_factory, "forager", 0, steps=30)
    with pytest.raises(NoMessageTokens, match="sent token 0 \\(silence\\)"):
        communication(load_run(run_dir))
    with pytest.raises(ValueError, match="no agents of policy 'raider'"):
        communication(load_run(run_dir), policy="raider")


def test_the_report_has_a_communication_section(cooperators, tmp_path_factory, capsys):
    silent = _run(tmp_path_factory, "forager", 1, steps=30)
    assert main(["report", str(cooperators), str(silent), "--compare-dir", str(cooperators.parent)]) == 0
    printed = capsys.readouterr().out
    assert "signalling: I(token; seen)" in printed and "positive" in printed and "not measured (no tokens)" in printed
    section = json.loads((cooperators / "report.json").read_text())["communication"]
    assert section["measured"] and section["positive_signalling"] and section["positive_listening"]
    assert section["signalling"]["food"]["p_value"] <= section["significance"]
    assert 'id="communication"' in (cooperators / "report.html").read_text()
    silent_section = json.loads((silent / "report.json").read_text())["communication"]
    assert not silent_section["measured"] and "no information" in silent_section["reason"]
    assert "Not measured" in (silent / "report.html").read_text()


# ---------------------------------------------------------------------------------------------
# the causal test
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def talking_world():
    """A small world after one step in which every agent broadcast a different token."""
    config = make_config("small", num_founders=6)
    env = SocietyEnv(config)
    env.reset(seed=3)
    actions = {agent: np.array([0, 0, 0, 1 + i % (config.message_vocab_size - 1)]) for i, agent in enumerate(env.agents)}
    observations, *_ = env.step(actions)
    return config, env, observations


def test_zeroing_silences_every_other_agent_and_keeps_the_rest(talking_world):
    config, env, observations = talking_world
    edited = edit_channel(observations, config, "zero", np.random.default_rng(0))
    r = config.view_radius
    assert any(split_observation(obs, config)[0][..., MESSAGE_CHANNEL].sum() > 0 for obs in observations.values())
    for agent, obs in observations.items():
        view, features = split_observation(edited[agent], config)
        original, _ = split_observation(obs, config)
        assert view[r, r, MESSAGE_CHANNEL] == original[r, r, MESSAGE_CHANNEL]  # its own token stays
        view_others = view[..., MESSAGE_CHANNEL].copy()
        view_others[r, r] = 0
        assert not view_others.any()
        changed = np.argwhere(view != original)
        assert all(channel == MESSAGE_CHANNEL for *_, channel in changed)
        assert np.array_equal(features, split_observation(obs, config)[1])


def test_shuffling_permutes_tokens_between_senders(talking_world):
    config, env, observations = talking_world
    world = env.world
    living = np.flatnonzero(world.status == ALIVE)
    sent = {int(slot): int(world.message[slot]) for slot in living}
    occupant = {(int(world.position[s, 0]), int(world.position[s, 1])): int(s) for s in living}
    r = config.view_radius
    moved = False
    for seed in range(5):
        edited = edit_channel(observations, config, "shuffle", np.random.default_rng(seed))
        heard_now: dict[int, int] = {}
        for agent, obs in edited.items():
            view, _ = split_observation(obs, config)
            row, col = world.position[agent_slot(agent)]
            for i, j in zip(*heard_cells(view, r)):
                sender = occupant[(int(row + i - r) % config.height, int(col + j - r) % config.width)]
                token = int(view[i, j, MESSAGE_CHANNEL])
                assert heard_now.setdefault(sender, token) == token  # every listener hears a sender alike
            assert view[r, r, MESSAGE_CHANNEL] == sent[agent_slot(agent)]
        # every token heard is one that was sent this step, and no token is heard more often than it was sent
        assert all(np.count_nonzero(np.array(list(heard_now.values())) == t) <= list(sent.values()).count(t)
                   for t in set(heard_now.values()))
        moved |= any(heard_now[sender] != sent[sender] for sender in heard_now)
    assert moved


def test_the_wrapped_policy_hears_the_edited_channel(talking_world):
    config, env, observations = talking_world

    class Recorder:
        name = "listener"

        def reset(self, seed=None):
            pass

        def act(self, observations, infos):
            self.seen = observations
            return {agent: np.zeros(4, dtype=np.int64) for agent in observations}

    inner = Recorder()
    wrapped = ChannelIntervention(inner, config, "zero")
    wrapped.reset(0)
    wrapped.act(observations, {})
    r = config.view_radius
    for obs in inner.seen.values():
        channel = split_observation(obs, config)[0][..., MESSAGE_CHANNEL].copy()
        channel[r, r] = 0
        assert not channel.any()
    with pytest.raises(ValueError, match="unknown channel intervention 'loud'"):
        ChannelIntervention(inner, config, "loud")


def _episode(config, policy, seed=0, steps=60):
    env = SocietyEnv(config)
    assignment = PolicyAssignment([(policy.name, 1.0)], config.num_founders)
    stats = run_episode(env, assignment, {policy.name: policy}, seed, max_steps=steps)
    return dict(stats.returns), stats


def test_the_probe_leaves_the_plain_episode_as_it_is():
    config = make_config("small")
    plain, _ = _episode(config, CooperatorPolicy(config))
    probe = CounterfactualProbe(CooperatorPolicy(config), config)
    probed, stats = _episode(config, probe)
    assert probed == plain
    counts = probe.counts["zero"]
    assert counts["decisions"] == stats.agent_steps
    assert 0 < counts["changed"] <= counts["heard"] <= counts["decisions"]


def test_paired_episodes_random_agents_ignore_the_channel_cooperators_do_not():
    random = causal_test(CausalSettings(policy="random", seeds=2, steps=40))
    for measure, row in random["paired"].items():
        for condition in ("zero - plain", "shuffle - plain"):
            assert row[condition] == {"mean": 0.0, "se": 0.0}, measure  # the same episodes, step for step
    assert random["influence"]["zero"]["changed_share"]["mean"] == 0.0
    cooperators = causal_test(CausalSettings(policy="cooperator", seeds=2, steps=40))
    assert cooperators["influence"]["zero"]["changed_share"]["mean"] > 0.05
    assert cooperators["influence"]["shuffle"]["changed_share"]["mean"] > 0.02
    assert any(row["zero - plain"]["mean"] != 0 for row in cooperators["paired"].values())


def test_the_command_prints_the_paired_table_and_refuses_language_worlds(tmp_path, capsys):
    out = tmp_path / "causal.json"
    assert main(["communication", "--policy", "cooperator", "--seeds", "2", "--steps", "20", "--json", str(out),
                 "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "zero - plain" in printed and "decisions the edited channel would change" in printed
    numbers = json.loads(out.read_text())
    assert numbers["seeds"] == [0, 1] and set(numbers["episodes"]) == {"plain", "zero", "shuffle"}
    assert main(["communication", "--set", "language=true", "--seeds", "2"]) == 2
    assert "does not edit" in capsys.readouterr().err
    assert main(["communication", "--seeds", "1"]) == 2
    assert "at least 2" in capsys.readouterr().err


def test_the_command_runs_a_trained_network_with_its_probe(tmp_path, capsys):
    """What the learned societies' rows will run: a PPO checkpoint (here an untrained network of the right shape)."""
    torch = pytest.importorskip("torch", reason="the ppo policy needs the rl extra")
    from policies.learned.ppo import ActorCritic, save_checkpoint
    from society_env.world.observations import numeric_action_space, observation_size

    config = make_config("small")
    torch.manual_seed(0)
    checkpoint = tmp_path / "policy.pt"
    save_checkpoint(checkpoint, ActorCritic(observation_size(config), numeric_action_space(config).nvec, 16),
                    {"preset": "small", "hidden": 16})
    assert main(["communication", "--policy", "ppo", "--ppo-checkpoint", str(checkpoint), "--seeds", "2",
                 "--steps", "10", "--quiet"]) == 0
    assert "decisions the edited channel would change" in capsys.readouterr().out
