"""Many society worlds stepped as arrays: the batched API for RL on thousands of agents.

    from society_env.world.vector import SocietyVectorEnv
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

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

from society_env.world.config import SocietyConfig, make_config
from society_env.world.kernels import entry_point, first_bad_action, generator_handle, step_and_observe
from society_env.world.observations import (
    COMPACT_DTYPES,
    NUM_FEATURES,
    compact_observation_space,
    float_observations,
    load_parallel_loops,
    numeric_action_space,
    numeric_observation_space,
    observation_scratch,
    write_compact_observations,
    write_observations,
)
from society_env.world.rules import episode_end, step_rule
from society_env.world.state import ALIVE, WorldState, initial_state, regrowth_buffers_for, world_arrays
from society_env.world.threads import check_threads, use_threads, world_threads


class SocietyVectorEnv:
    """``num_envs`` worlds of ``preset`` (plus ``SocietyConfig`` overrides) over fixed slots.

    ``obs_dtype``: ``"float32"`` (default: the observation of ``parallel_env``), or ``"uint8"`` / ``"uint16"``
    for the compact form: observations become the view alone as integers ``[num_envs, num_slots, view cells
    * 6]`` (food and energy in energy units, capped at the dtype's maximum; presence, kin, message token,
    artifact count as they are) and the 12 float32 features move to ``infos["features"]``; 1.0 kB instead
    of 4.1 kB per agent with uint8. :meth:`float_observations` (or
    ``society_env.world.observations.float_observations``) rebuilds the float32 observation, exactly wherever
    nothing was capped (docs/world.md gives the mapping).

    ``num_threads``: threads a step may use (default: the cores available to the process); any value gives
    the same arrays. With several worlds, the worlds are split over the threads, each world stepped whole
    on one thread in one compiled call (its rules and its observations). A single world takes the threads
    only from ``society_env.world.threads.PARALLEL_MIN_AGENTS`` = 8192 living agents on, for its observation
    loops (its rules stay serial); below that it steps in one compiled call too. With the other cores
    busy, ``num_threads=1`` is the faster choice.

    Attributes: ``config``, ``num_envs``, ``num_threads``, ``num_slots`` (= ``config.max_agents``), ``single_observation_space``
    (a flat float32 ``Box``), ``single_action_space`` (``MultiDiscrete([8, view cells, amounts, tokens])``),
    ``worlds`` (each world's :class:`~society_env.world.state.WorldState`, read-only).
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}
    """Gymnasium's vector-env convention: a world that ends is reset in the same ``step`` call, which returns
    its new episode's first observations (``infos["episode_ended"]`` marks it)."""

    def __init__(self, num_envs: int = 1, preset: str = "default", num_threads: int | None = None,
                 obs_dtype: str = "float32", **overrides: Any):
        if not isinstance(num_envs, (int, np.integer)) or isinstance(num_envs, bool) or num_envs < 1:
            raise ValueError(f"num_envs must be a positive int, got {num_envs!r}")
        if overrides.get("fixed_slots", True) is not True:
            raise ValueError("SocietyVectorEnv always uses fixed slots (fixed_slots=True)")
        config: SocietyConfig = make_config(preset, **{**overrides, "fixed_slots": True})
        if config.language:
            raise ValueError("SocietyVectorEnv runs the numeric view only; use parallel_env for language=True")
        if obs_dtype not in ("float32",) + COMPACT_DTYPES:
            raise ValueError(f"obs_dtype must be 'float32' or one of {COMPACT_DTYPES} (compact), got {obs_dtype!r}")
        self.config = config
        self.obs_dtype = obs_dtype
        self.compact = obs_dtype != "float32"
        self.num_threads = check_threads(num_threads)
        self.num_envs = int(num_envs)
        self.num_slots = config.max_agents
        self.single_observation_space = (compact_observation_space(config, obs_dtype) if self.compact
                                         else numeric_observation_space(config))
        self.single_action_space = numeric_action_space(config)
        self._action_sizes = self.single_action_space.nvec.astype(np.int64)
        shape = (self.num_envs, self.num_slots)
        self._observations = np.zeros(shape + self.single_observation_space.shape, dtype=obs_dtype)
        self._features = np.zeros(shape + (NUM_FEATURES,), dtype=np.float32) if self.compact else None
        self._rewards = np.zeros(shape)
        self._terminations = np.zeros(shape, dtype=bool)
        self._truncations = np.zeros(shape, dtype=bool)
        self._alive = np.zeros(shape, dtype=bool)
        self._energy = np.zeros(shape, dtype=np.int64)
        self._age = np.zeros(shape, dtype=np.int64)
        self._episode_ended = np.zeros(self.num_envs, dtype=bool)
        self._episode_steps = np.zeros(self.num_envs, dtype=np.int64)
        # what the observation writes reuse (padded grids, the write's numbers) and the rules' numbers
        self._scratch = observation_scratch(config, obs_dtype)
        self._rule = step_rule(config)
        self.worlds: list[WorldState | None] = [None] * self.num_envs
        self._rngs: list[np.random.Generator | None] = [None] * self.num_envs
        self._rng_handles: list[np.ndarray | None] = [None] * self.num_envs  # kernels.generator_handle
        self._living = [0] * self.num_envs  # living agents per world
        self._step_entry = None  # kernels.entry_point of step_and_observe, bound at the first step
        self._argument_parts: list[tuple | None] = [None] * self.num_envs  # _step_arguments, per episode
        # worlds stepped side by side (threads.world_threads): a worker pool, and a scratch per thread
        self._pool: ThreadPoolExecutor | None = None
        self._pool_pid = 0  # the process that started the pool (a forked child starts its own)
        self._scratches = [self._scratch]
        self._regrowth = [regrowth_buffers_for(config) for _ in range(self.num_envs)]  # kept per world

    # ---- episode ---------------------------------------------------------------------------------
    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Start every world. With an int ``seed`` world ``e`` is seeded with ``seed + e``; ``None`` keeps
        each world's generator going (fresh entropy the first time)."""
        if seed is not None and (not isinstance(seed, (int, np.integer)) or isinstance(seed, bool)):
            raise ValueError(f"seed must be an int or None, got {seed!r}")
        for e in range(self.num_envs):
            if seed is not None or self._rngs[e] is None:
                self._rngs[e] = np.random.default_rng(None if seed is None else int(seed) + e)
                self._rng_handles[e] = generator_handle(self._rngs[e])
            self._start_episode(e)
        load_parallel_loops(self.worlds[0], self.config, self._scratch, self.num_threads)
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
        threads = world_threads(self.num_threads, self._living)
        if threads > 1:
            self._step_worlds_on_threads(actions, threads)
        else:
            for e in range(self.num_envs):
                self._living[e] = self._step_compiled(e, actions[e], self._scratch,
                                                      use_threads(self.num_threads, self._living[e]))
        for e in range(self.num_envs):  # (each world's end and reset involve only its own generator)
            ended, out_of_time = episode_end(self.worlds[e], self.config, self._living[e])
            self._terminations[e] = ended and not out_of_time
            self._truncations[e] = ended and out_of_time
            self._episode_ended[e] = ended
            if ended:
                self._start_episode(e)
            else:
                self._record_state(e)
        return self._observations, self._rewards, self._terminations, self._truncations, self._infos()

    def close(self) -> None:
        """Stop the worker threads (if any); a later ``step`` starts them again."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (or deep-copied) without what belongs to this process: the generators' addresses, the
        compiled entry point and the worker threads, rebuilt on the other side."""
        return {**self.__dict__, "_rng_handles": [None] * self.num_envs, "_step_entry": None, "_pool": None,
                "_scratches": [self._scratch], "_regrowth": None, "_argument_parts": [None] * self.num_envs}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._rng_handles = [None if rng is None else generator_handle(rng) for rng in self._rngs]
        self._regrowth = [regrowth_buffers_for(self.config) for _ in range(self.num_envs)]

    # ---- helpers ---------------------------------------------------------------------------------
    def _step_worlds_on_threads(self, actions: np.ndarray, threads: int) -> None:
        """Every world's step (:meth:`_step_compiled`), the worlds split into ``threads`` runs of consecutive
        worlds: the first run on this thread, the others on worker threads, each thread with its own
        scratch grids. A world's step touches nothing of another world and draws from its own generator,
        and the compiled step lets go of the GIL: the same arrays as one thread, side by side."""
        if self._pool is None or self._pool_pid != os.getpid():  # (a forked child has none of the threads)
            workers = min(self.num_threads, self.num_envs) - 1
            self._pool, self._pool_pid = ThreadPoolExecutor(workers, "society-world"), os.getpid()
        self._scratches += [observation_scratch(self.config, self.obs_dtype)
                            for _ in range(threads - len(self._scratches))]
        if self._step_entry is None:  # bound here, once, rather than raced for by the threads
            self._step_entry = entry_point(step_and_observe, *self._step_arguments(0, actions[0], self._scratch, True))
        bounds = [self.num_envs * t // threads for t in range(threads + 1)]  # (per step: no NumPy call for it)
        runs = [range(bounds[t], bounds[t + 1]) for t in range(threads)]

        def step_run(t: int) -> None:
            for e in runs[t]:
                self._living[e] = self._step_compiled(e, actions[e], self._scratches[t])

        others = [self._pool.submit(step_run, t) for t in range(1, threads)]
        try:
            step_run(0)
        finally:  # no return (or exception) while a worker still writes
            for other in others:
                other.result()  # (re-raises a worker's exception here)

    def _step_arguments(self, e: int, actions: np.ndarray, scratch: Any, write: bool) -> tuple:
        """The arguments of ``kernels.step_and_observe`` for world ``e``, with the grids of ``scratch``. What
        stays the same through an episode is put together once (at a few hundred agents, building it at
        every step was 1% of the step)."""
        parts = self._argument_parts[e]
        world = self.worlds[e]
        if parts is None:
            parts = self._argument_parts[e] = (
                (self._rng_handles[e],), (self._alive[e], world_arrays(world)),
                (self._rule, self._rewards[e], self._regrowth[e]),
                (self._observations[e], self._features[e] if self.compact else self._observations[e]))
        handle, before, rules, outputs = parts
        return (*handle, actions, *before, world.num_born, world.step, *rules, scratch.spec, scratch.padded, scratch.kin,
                *outputs, write)

    def _step_compiled(self, e: int, actions: np.ndarray, scratch: Any, parallel: bool = False) -> int:
        """World ``e``'s step: the rules and the rows of the dead zeroed in one compiled call
        (``kernels.step_and_observe``), with the survivors' observations written in the same call (with the
        grids of ``scratch``) or, if ``parallel``, afterwards by the parallel loops. Returns the living
        agents after it."""
        world = self.worlds[e]
        arguments = self._step_arguments(e, actions, scratch, not parallel)
        if self._step_entry is None:  # the same types at every step of every world of this env
            self._step_entry = entry_point(step_and_observe, *arguments)
        born, living = self._step_entry(*arguments)
        world.num_born += born
        world.step += 1
        if parallel:
            self._write(e, np.flatnonzero(self._alive[e]))
        return living

    def _start_episode(self, e: int) -> None:
        world = initial_state(self.config, self._rngs[e])
        self.worlds[e] = world
        self._argument_parts[e] = None
        self._observations[e] = 0
        if self.compact:
            self._features[e] = 0.0
        living = np.flatnonzero(world.status == ALIVE)
        self._write(e, living)
        self._alive[e] = world.status == ALIVE
        self._living[e] = living.size
        self._record_state(e)

    def _write(self, e: int, living: np.ndarray) -> None:
        if self.compact:
            write_compact_observations(self.worlds[e], self.config, living, self._observations[e], self._features[e],
                                       living, self._scratch, self.num_threads)
        else:
            write_observations(self.worlds[e], self.config, living, self._observations[e], living, self._scratch,
                               self.num_threads)

    def float_observations(self) -> np.ndarray:
        """The current observations as float32 ``[num_envs, num_slots, obs_size]``, exactly as with
        ``obs_dtype="float32"`` (with a compact dtype: rebuilt from the views and ``infos["features"]``)."""
        if not self.compact:
            return self._observations.copy()
        return float_observations(self._observations, self._features, self.config)

    def _record_state(self, e: int) -> None:
        world = self.worlds[e]
        self._energy[e] = world.energy
        self._age[e] = world.age
        self._episode_steps[e] = world.step

    def _infos(self) -> dict[str, np.ndarray]:
        infos = {"alive": self._alive, "energy": self._energy, "age": self._age,
                 "episode_ended": self._episode_ended, "episode_steps": self._episode_steps}
        if self.compact:
            infos["features"] = self._features
        return infos

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
        return np.ascontiguousarray(actions, dtype=np.int64)  # one compiled form of the step kernel
