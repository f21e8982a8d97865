"""The causal test's intervention: a policy that hears an edited message-token channel (Jaques et al. 2019).

:class:`ChannelIntervention` wraps any policy and rewrites the ``MESSAGE_CHANNEL`` of the numeric observations
it receives before the policy sees them:

``zero``
    every other agent's token reads 0 (silence);
``shuffle``
    the tokens of this step are permuted between the agents that sent them (silent ones included), so a
    listener hears a token that really was sent this step, from the wrong agent. The permutation is one per
    step: two listeners of the same agent hear the same (wrong) token from it.

An agent's own cell (the view's centre, its own broadcast of the last step) is left as it is: the test is
about hearing others, and a policy may use its own last token as memory. Agents are told apart by where they
stand: a cell's world position is the listener's own position (its row and column features) plus the cell's
offset, on the torus. Only the numeric channel is edited: in language worlds the text view, which carries
free-text messages, passes unchanged.

The wrapped policy is reset with the seed it would get unwrapped, so an intervened episode and a plain one
of the same seed differ only where the edited channel changes a decision (paired episodes).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from policies.base import Policy
from society_env.world.config import SocietyConfig
from society_env.world.observations import AGENT_CHANNEL, FEATURE_NAMES, MESSAGE_CHANNEL, split_observation

INTERVENTIONS = ("zero", "shuffle")
ROW_FEATURE, COLUMN_FEATURE = FEATURE_NAMES.index("row"), FEATURE_NAMES.index("column")
SHUFFLE_STREAM = 0x70C3
"""Mixed into the reset seed for the shuffles' generator, so it is not the wrapped policy's stream."""


def _numeric(observation: Any) -> np.ndarray:
    return np.asarray(observation["observation"] if isinstance(observation, dict) else observation)


def _with_numeric(observation: Any, numeric: np.ndarray) -> Any:
    return {**observation, "observation": numeric} if isinstance(observation, dict) else numeric


def heard_cells(view: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the view cells where another agent stands (the centre, the listener, left out)."""
    rows, cols = np.nonzero(view[..., AGENT_CHANNEL] > 0)
    others = (rows != radius) | (cols != radius)
    return rows[others], cols[others]


def world_cells(features: np.ndarray, rows: np.ndarray, cols: np.ndarray, config: SocietyConfig) -> np.ndarray:
    """Flat world cell (row * width + column) of view cells, from the listener's own position features."""
    own_row = int(round(float(features[ROW_FEATURE]) * config.height))
    own_col = int(round(float(features[COLUMN_FEATURE]) * config.width))
    r = config.view_radius
    return ((own_row + rows - r) % config.height) * config.width + (own_col + cols - r) % config.width


def edit_channel(observations: dict[str, Any], config: SocietyConfig, mode: str,
                 rng: np.random.Generator) -> dict[str, Any]:
    """Copies of ``observations`` whose token channel is zeroed or shuffled between senders (see the module)."""
    if mode not in INTERVENTIONS:
        raise ValueError(f"unknown channel intervention {mode!r}; known: {', '.join(INTERVENTIONS)}")
    r = config.view_radius
    edited: dict[str, np.ndarray] = {}
    cells: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    sent: dict[int, int] = {}
    for agent, observation in observations.items():
        numeric = np.array(_numeric(observation), copy=True)
        view, features = split_observation(numeric, config)
        rows, cols = heard_cells(view, r)
        edited[agent] = numeric
        if mode == "zero":
            view[rows, cols, MESSAGE_CHANNEL] = 0
            continue
        where = world_cells(features, rows, cols, config)
        cells[agent] = (rows, cols, where)
        sent.update(zip(where.tolist(), view[rows, cols, MESSAGE_CHANNEL].astype(np.int64).tolist()))
        own = int(world_cells(features, np.array([r]), np.array([r]), config)[0])
        sent[own] = int(view[r, r, MESSAGE_CHANNEL])
    if mode == "shuffle" and sent:
        senders = sorted(sent)  # a fixed order, so the permutation depends on the generator only
        tokens = np.array([sent[cell] for cell in senders], dtype=np.float32)[rng.permutation(len(senders))]
        shuffled = dict(zip(senders, tokens.tolist()))
        for agent, (rows, cols, where) in cells.items():
            view, _ = split_observation(edited[agent], config)
            view[rows, cols, MESSAGE_CHANNEL] = [shuffled[cell] for cell in where.tolist()]
    return {agent: _with_numeric(observation, edited[agent]) for agent, observation in observations.items()}


class ChannelIntervention:
    """``policy`` playing on observations whose token channel is edited by ``mode`` (``zero`` or ``shuffle``).

    Its ``name`` is the wrapped policy's, so a run's policy seeds (derived from the names) stay the same."""

    def __init__(self, policy: Policy, config: SocietyConfig, mode: str):
        if mode not in INTERVENTIONS:
            raise ValueError(f"unknown channel intervention {mode!r}; known: {', '.join(INTERVENTIONS)}")
        self.policy, self.config, self.mode = policy, config, mode
        self.name = policy.name
        self.rng = np.random.default_rng()

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset(seed)
        self.rng = np.random.default_rng(None if seed is None else [seed, SHUFFLE_STREAM])

    def act(self, observations: dict[str, Any], infos: dict[str, dict]) -> dict[str, Any]:
        return self.policy.act(edit_channel(observations, self.config, self.mode, self.rng), infos)

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.state_dict(), "rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.rng.bit_generator.state = state["rng"]


def _vector(action: Any) -> np.ndarray:
    return np.asarray(action["action"] if isinstance(action, dict) else action)


class CounterfactualProbe:
    """``policy`` playing on the real observations, asked at every step what it would have done on each edited
    channel (Jaques et al.'s counterfactual influence, as counts): from its saved state it acts on the edited
    observations, its state is restored, then it acts on the real ones. Its actions are the plain policy's, so
    an episode with the probe is the plain episode. Needs a policy with ``state_dict`` / ``load_state_dict``
    that hold everything ``act`` changes (the scripted and random policies)."""

    def __init__(self, policy: Policy, config: SocietyConfig, modes: tuple[str, ...] = INTERVENTIONS):
        for mode in modes:
            if mode not in INTERVENTIONS:
                raise ValueError(f"unknown channel intervention {mode!r}; known: {', '.join(INTERVENTIONS)}")
        if not (hasattr(policy, "state_dict") and hasattr(policy, "load_state_dict")):
            raise TypeError(f"policy {policy.name!r} cannot save and restore its state, so it cannot be asked "
                            "what it would have done")
        self.policy, self.config, self.modes = policy, config, modes
        self.name = policy.name
        self.rngs = {mode: np.random.default_rng() for mode in modes}
        self.counts = {mode: {"decisions": 0, "heard": 0, "changed": 0} for mode in modes}
        """Per mode: decisions, those whose channel the edit changed, those whose action it changed."""

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset(seed)
        self.rngs = {mode: np.random.default_rng(None if seed is None else [seed, SHUFFLE_STREAM])
                     for mode in self.modes}
        self.counts = {mode: dict.fromkeys(counts, 0) for mode, counts in self.counts.items()}

    def act(self, observations: dict[str, Any], infos: dict[str, dict]) -> dict[str, Any]:
        before = self.policy.state_dict()
        actual = self.policy.act(observations, infos)
        after = self.policy.state_dict()
        for mode in self.modes:
            edited = edit_channel(observations, self.config, mode, self.rngs[mode])
            self.policy.load_state_dict(before)
            counterfactual = self.policy.act(edited, infos)
            counts = self.counts[mode]
            for agent, observation in observations.items():
                counts["decisions"] += 1
                counts["heard"] += not np.array_equal(_numeric(observation), _numeric(edited[agent]))
                counts["changed"] += not np.array_equal(_vector(counterfactual[agent]), _vector(actual[agent]))
        self.policy.load_state_dict(after)
        return actual
