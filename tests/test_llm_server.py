"""LLM agents on an OpenAI-compatible server: llama-cpp-python's own ``python -m llama_cpp.server`` on the
tiny generated GGUF, on a loopback port."""

import socket

import pytest

from policies.llm.server import ServerError, ServerPolicy, launch_local_server
from society_env.app.cli import main
from society_env.app.runs import replay_recording
from society_env.recording.format import Recording
from tests.tiny_gguf import write_tiny_model

pytest.importorskip("openai")
pytest.importorskip("fastapi")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(model_path, alias="tiny"):
    return launch_local_server(model_path, threads=1, n_ctx=4096, alias=alias)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("server") / "tiny.gguf")


@pytest.fixture()
def server(tiny_model):
    process, url = start_server(tiny_model)
    yield process, url
    process.kill()
    process.wait()


@pytest.mark.slow
def test_a_society_runs_on_the_server_with_valid_actions_and_replays_without_it(server, tmp_path, capsys):
    process, url = server
    out = tmp_path / "run"
    assert main(["run", "--preset", "small", "--policy", "llm=2,forager=1", "--steps", "3", "--seed", "2",
                 "--llm-server", url, "--llm-model", "tiny", "--out", str(out), "--quiet"]) == 0
    recording = Recording(out)
    calls = [e for e in recording.events() if e["type"] == "llm_call"]
    llm_agents = sum(policy == "llm" for policy in recording.meta["assignment"].values())
    assert llm_agents == 4 and len(calls) == llm_agents * 3  # 2/3 of the 6 founders, 3 steps each
    for call in calls:
        assert call["failure"] is None and call["completion"].startswith('{"action": "')
        assert call["tokens_in"] > 100 and call["tokens_out"] > 0 and call["seconds"] > 0
    costs = recording.summary["costs"]["llm"]
    assert costs["constraint"] == {url: "grammar"} and costs["failures"] == 0 and costs["failed_requests"] == 0
    assert recording.meta["llm"]["urls"] == url
    process.kill()
    process.wait()
    assert replay_recording(out)["identical"]  # no server needed to replay


@pytest.mark.slow
def test_unreachable_server_and_unknown_model_are_one_line_errors(server, tmp_path, capsys):
    _, url = server
    base = ["run", "--preset", "small", "--policy", "llm=1", "--steps", "1", "--quiet"]
    assert main(base + ["--llm-server", f"http://127.0.0.1:{_free_port()}", "--out", str(tmp_path / "a")]) == 2
    error = capsys.readouterr().err
    assert "cannot reach the LLM server" in error and len(error.strip().splitlines()) == 1
    assert main(base + ["--llm-server", url, "--llm-model", "gpt-9", "--out", str(tmp_path / "b")]) == 2
    error = capsys.readouterr().err
    assert "does not serve model 'gpt-9'; it serves: tiny" in error
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


@pytest.mark.slow
def test_a_server_killed_mid_run_makes_agents_stay_counted_then_stops_the_run(server, tmp_path):
    import society_env
    from policies import POLICIES, PolicyAssignment, make_policy, parse_policy_spec
    from policies.rollout import EveryStep, run_episode

    process, url = server
    config = society_env.make_config("small", language=True)
    # (a killed server refuses connections at once; the timeout only bounds a server that hangs)
    policy = ServerPolicy(config, url, timeout=60.0, retries=0, max_failed_steps=2, prompt="small")
    env = society_env.SocietyEnv(config)
    entries = parse_policy_spec("llm=1,forager=2", POLICIES)  # 2 LLM agents of the 6 founders
    failures_seen = []

    def kill_after_two_steps(env, stats):
        failures_seen.append(policy.failures)
        if stats.steps == 2:
            process.kill()
            process.wait()

    with pytest.raises(ServerError, match="failed 2 steps in a row"):
        run_episode(env, PolicyAssignment(entries, config.num_founders),
                    {"llm": policy, "forager": make_policy("forager", config)}, 0, 10, [EveryStep(kill_after_two_steps)])
    # steps 1-2 answered; step 3 failed for both agents, who stayed (counted); step 4 stopped the run
    assert failures_seen == [0, 0, 2]
    calls = [e for e in policy.drain_events() if e["type"] == "llm_call"]
    assert [c["failure"] is None for c in calls[:4]] == [True] * 4 and "server" in calls[4]["failure"]


@pytest.mark.slow
def test_the_default_model_on_the_server_answers_valid_actions(tmp_path):
    from policies.llm.models import resolve_model

    process, url = start_server(resolve_model(None), alias="smollm2")
    try:
        out = tmp_path / "run"
        assert main(["run", "--preset", "forage", "--policy", "llm", "--steps", "2", "--llm-server", url,
                     "--out", str(out), "--quiet"]) == 0
    finally:
        process.kill()
        process.wait()
    calls = [e for e in Recording(out).events() if e["type"] == "llm_call"]
    assert len(calls) == 4 and all(call["failure"] is None for call in calls)
    assert replay_recording(out)["identical"]


def test_high_level_llama_skips_the_extra_weight_buffers_where_amx_kernels_would_crash():
    """llama.cpp's AMX kernels segfault on some Xeons (llama.cpp #20824); the workaround that the server
    launcher applies turns the extra buffers off exactly when the build has those kernels."""
    import llama_cpp.llama_cpp as bindings

    from policies.llm.engine import amx_kernels_built_in, disable_amx_weight_buffers

    disable_amx_weight_buffers()
    assert bindings.llama_model_default_params().use_extra_bufts is (not amx_kernels_built_in())
