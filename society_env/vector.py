"""Many society worlds stepped as arrays: the batched API for RL on thousands of agents.

    from society_env.vector import SocietyVectorEnv
    envs = SocietyVectorEnv(num_envs=8, preset="default")
    observations, infos = envs.reset(seed=0)          # observations: float32 [8, slots, obs_size]
    actions = policy(observations)                    # int [8, slots, 4]; rows of empty slots are ignored
    observations, rewards, terminations, truncations, infos = envs.step(actions)
    alive = infos["alive"]                            # bool [8, slots]: who lives (and acts next step)

Each world is the ``parallel_env`` world of the same preset and overrides, over fixed slots: slot ``i`` of
world ``e`` is ``agent_i`` of that world; unborn and dead slots are rows of zeros, and births and deaths
show up only in ``infos["alive"]``. World ``e`` is seeded with ``seed + e`` exactly as
``parallel_env(..., fixed_slots=True).reset(seed=seed + e)``, and takes the same trajectory under the same
actions (tested step for step). Nothing per agent is a Python object in ``step``: actions, rules and
observations are arrays and compiled loops.

**Episode ends and automatic reset.** A world ends when nobody is left (``terminations[e]`` all True) or
after ``max_steps`` steps (``truncations[e]`` all True); in the same call it is reset from its own random
generator (as ``parallel_env.reset()`` without a seed continues it), so the observations and
``infos["alive"]`` returned for it are those of its new episode, and ``infos["episode_ended"][e]`` is True.
Rewards, terminations and truncations returned with them belong to the step that ended the old episode.

**Buffers.** ``observations`` and the other arrays returned are the env's own buffers, overwritten by the
next ``step`` or ``reset`` (as PufferLib and Gymnasium's ``copy=False`` do): copy what you keep.

Only the numeric view: ``language=True`` needs text per agent and is refused.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from society_env.config import SocietyConfig, make_config
from society_env.kernels import first_bad_action
from society_env.observations import (
    check_threads,
    numeric_action_space,
    numeric_observation_space,
    observation_size,
    padded_grid_shape,
    write_observations,
)
from society_env.rules import Actions, advance_world, episode_end
from society_env.state import ALIVE, WorldState, initial_state


class SocietyVectorEnv:
    """``num_envs`` worlds of ``preset`` (plus ``SocietyConfig`` overrides) over fixed slots.

    ``num_threads``: threads of the observation loops (default: the cores available to the process); any
    value gives the same arrays, and worlds of fewer than ``PARALLEL_MIN_AGENTS`` (2048) living agents use one.

    Attributes: ``config``, ``num_envs``, ``num_threads``, ``num_slots`` (= ``config.max_agents``), ``single_observation_space``
    (a flat float32 ``Box``), ``single_action_space`` (``MultiDiscrete([8, view cells, amounts, tokens])``),
    ``worlds`` (each world's :class:`~society_env.state.WorldState`, read-only).
    """

    def __init__(self, num_envs: int = 1, preset: str = "default", num_threads: int | None = None, **overrides: Any):
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if overrides.get("fixed_slots", True) is not True:
            raise ValueError("SocietyVectorEnv always uses fixed slots (fixed_slots=True)")
        config: SocietyConfig = make_config(preset, **{**overrides, "fixed_slots": True})
        if config.language:
            raise ValueError("SocietyVectorEnv runs the numeric view only; use parallel_env for language=True")
        self.config = config
        self.num_threads = check_threads(num_threads)
        self.num_envs = int(num_envs)
        self.num_slots = config.max_agents
        self.single_observation_space = numeric_observation_space(config)
        self.single_action_space = numeric_action_space(config)
        self._action_sizes = self.single_action_space.nvec.astype(np.int64)
        shape = (self.num_envs, self.num_slots)
        self._observations = np.zeros(shape + (observation_size(config),), dtype=np.float32)
        self._rewards = np.zeros(shape)
        self._terminations = np.zeros(shape, dtype=bool)
        self._truncations = np.zeros(shape, dtype=bool)
        self._alive = np.zeros(shape, dtype=bool)
        self._energy = np.zeros(shape, dtype=np.int64)
        self._age = np.zeros(shape, dtype=np.int64)
        self._episode_ended = np.zeros(self.num_envs, dtype=bool)
        self._episode_steps = np.zeros(self.num_envs, dtype=np.int64)
        self._padded = np.zeros(padded_grid_shape(config), dtype=np.float32)  # reused by every world and step
        self.worlds: list[WorldState | None] = [None] * self.num_envs
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs

    # ---- episode ---------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Start every world. With an int ``seed`` world ``e`` is seeded with ``seed + e``; ``None`` keeps
        each world's generator going (fresh entropy the first time)."""
        if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)):
            raise ValueError(f"seed must be an int or None, got {seed!r}")
        for e in range(self.num_envs):
            if seed is not None or self._rngs[e] is None:
                self._rngs[e] = np.random.default_rng(None if seed is None else int(seed) + e)
            self._start_episode(e)
        self._rewards[:] = 0.0
        self._terminations[:] = False
        self._truncations[:] = False
        self._episode_ended[:] = False
        return self._observations, self._infos()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Advance every world by one step. ``actions``: ints ``[num_envs, num_slots, 4]`` (kind, target,
        amount, message, as in ``parallel_env``); only living slots' rows are read, and a bad one raises
        ``ValueError`` naming the world and the slot before any world changes."""
        if self.worlds[0] is None:
            raise RuntimeError("call reset() before step()")
        actions = self._check_actions(actions)
        config = self.config
        for e in range(self.num_envs):
            world, alive = self.worlds[e], self._alive[e]
            chosen = actions[e]
            parsed = Actions(alive.copy(), chosen[:, 0], chosen[:, 1], chosen[:, 2], chosen[:, 3])
            outcome = advance_world(world, parsed, config, self._rngs[e])
            self._rewards[e] = outcome.rewards
            now_alive = world.status == ALIVE
            ended, out_of_time = episode_end(world, config)
            self._terminations[e] = ended and not out_of_time
            self._truncations[e] = ended and out_of_time
            self._episode_ended[e] = ended
            if ended:
                self._start_episode(e)
                continue
            self._observations[e, outcome.death_slot] = 0.0  # the dead see nothing from now on
            living = np.flatnonzero(now_alive)
            write_observations(world, config, living, self._observations[e], living, self._padded, self.num_threads)
            alive[:] = now_alive
            self._record_state(e)
        return self._observations, self._rewards, self._terminations, self._truncations, self._infos()

    def close(self) -> None:
        pass

    # ---- helpers ---------------------------------------------------------------------------------
    def _start_episode(self, e: int) -> None:
        world = initial_state(self.config, self._rngs[e])
        self.worlds[e] = world
        self._observations[e] = 0.0
        living = np.flatnonzero(world.status == ALIVE)
        write_observations(world, self.config, living, self._observations[e], living, self._padded, self.num_threads)
        self._alive[e] = world.status == ALIVE
        self._record_state(e)

    def _record_state(self, e: int) -> None:
        world = self.worlds[e]
        self._energy[e] = world.energy
        self._age[e] = world.age
        self._episode_steps[e] = world.step

    def _infos(self) -> dict[str, np.ndarray]:
        return {"alive": self._alive, "energy": self._energy, "age": self._age,
                "episode_ended": self._episode_ended, "episode_steps": self._episode_steps}

    def _check_actions(self, actions: Any) -> np.ndarray:
        actions = np.asarray(actions)
        expected = (self.num_envs, self.num_slots, self._action_sizes.size)
        if actions.shape != expected:
            raise ValueError(f"actions must have shape {expected} (num_envs, num_slots, kind/target/amount/message), "
                             f"got {actions.shape}")
        if actions.dtype.kind not in "iu":
            raise ValueError(f"actions must be integers, got dtype {actions.dtype}")
        e, slot = first_bad_action(actions, self._action_sizes, self._alive)
        if e >= 0:
            field = ("kind", "target", "amount", "message")[int(np.argmax((actions[e, slot] < 0) | (actions[e, slot] >= self._action_sizes)))]
            raise ValueError(f"world {e}, slot {slot} (agent_{slot}): action {field} out of range in "
                             f"{actions[e, slot].tolist()} (sizes {self._action_sizes.tolist()})")
        return actions.astype(np.int64, copy=False)
