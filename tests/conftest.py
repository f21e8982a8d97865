import numpy as np
import pytest

import society_env


def random_actions(env, rng: np.random.Generator, bias_social: bool = True) -> dict:
    """Seeded random actions for every living agent; biased towards give/take/reproduce so they happen."""
    actions = {}
    sizes = env.action_space(env.possible_agents[0])
    nvec = (sizes["action"] if env.config.language else sizes).nvec
    for agent in env.agents:
        if env.config.fixed_slots and not env.world.status[int(agent.split("_")[1])] == 1:
            vector = np.zeros(4, dtype=np.int64)
        else:
            vector = np.array([rng.integers(n) for n in nvec], dtype=np.int64)
            if bias_social and rng.random() < 0.4:
                # aim give/take at a neighbouring cell so that transfers find partners
                vector[0] = rng.choice([5, 6, 7])
                vector[1] = society_env.view_cell_index(env.config, int(rng.integers(-1, 2)), int(rng.integers(-1, 2)))
        if env.config.language:
            actions[agent] = {"action": vector, "message": "hi" if vector[3] else ""}
        else:
            actions[agent] = vector
    return actions


ARTIFACT_NAMES = ("map", "law", "song")


def random_artifact_action(config, rng: np.random.Generator) -> dict:
    """A seeded random artifact action: few names (so actions find their artifacts), texts around the cap,
    targets next to the actor (so gifts find receivers)."""
    from society_env.world.artifacts import artifact_action

    return artifact_action(
        int(rng.integers(7)), name=str(rng.choice(ARTIFACT_NAMES)),
        text="x" * int(rng.integers(0, config.artifact_text_max_chars + 5)),
        lifespan=int(rng.integers(len(config.artifact_lifespans))),
        target=society_env.view_cell_index(config, int(rng.integers(-1, 2)), int(rng.integers(-1, 2))),
    )


@pytest.fixture
def small_env():
    return society_env.parallel_env("small")


@pytest.fixture(scope="session")
def recorded_run(tmp_path_factory):
    """A real 60-step small-preset run of scripted foragers and raiders (complete, with summary.json)."""
    from society_env.app.cli import main

    run_dir = tmp_path_factory.mktemp("analysis") / "small_run"
    assert main(["run", "--preset", "small", "--policy", "forager=3,raider=2", "--steps", "60", "--seed", "1",
                 "--out", str(run_dir), "--quiet"]) == 0
    return run_dir
