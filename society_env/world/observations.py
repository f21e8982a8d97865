"""Spaces and the numeric observation: egocentric view channels + the agent's own state.

Numeric observation (``float32``, flat): the ``view_size x view_size x NUM_CHANNELS`` window centred
on the agent, flattened in (row, column, channel) order, followed by ``NUM_FEATURES`` own-state
features. :func:`split_observation` turns the flat vector back into ``(view, features)``.
"""

from __future__ import annotations

import string
from typing import NamedTuple

import numpy as np
from gymnasium import spaces

from society_env.world import artifacts
from society_env.world.config import SocietyConfig
from society_env.world.encodings import NUM_ACTION_KINDS
from society_env.world.kernels import (
    ObservationSpec,
    OwnState,
    fill_grid_parallel,
    gather_views_parallel,
    group_families,
    observe,
    position_order,
    write_features_parallel,
)
from society_env.world.state import ALIVE, GENOME_SIZE, WorldState, world_arrays
from society_env.world.threads import PARALLEL_MIN_AGENTS, use_threads

# View channels.
FOOD_CHANNEL, AGENT_CHANNEL, ENERGY_CHANNEL, KIN_CHANNEL, MESSAGE_CHANNEL, ARTIFACT_CHANNEL = range(6)
NUM_CHANNELS = 6
"""The artifact channel counts artifacts lying on a cell plus those carried by the agent standing there
(always 0 without artifacts, or when they are invisible)."""
# Own-state features (after the view).
FEATURE_NAMES = ("energy", "age", "row", "column") + tuple(f"genome_{i}" for i in range(GENOME_SIZE))
NUM_FEATURES = len(FEATURE_NAMES)

PRINTABLE_CHARSET = frozenset(string.printable) - {"\x0b", "\x0c"}
"""Characters allowed in text observations and messages: printable ASCII, space, tab and newlines."""


def observation_size(config: SocietyConfig) -> int:
    return config.view_size**2 * NUM_CHANNELS + NUM_FEATURES


def numeric_observation_space(config: SocietyConfig) -> spaces.Box:
    """Box bounds per entry: food and energy are unbounded above (no cap), the rest is bounded."""
    view_low = np.zeros((config.view_size, config.view_size, NUM_CHANNELS), dtype=np.float32)
    view_high = np.empty_like(view_low)
    view_high[..., FOOD_CHANNEL] = np.inf
    view_high[..., AGENT_CHANNEL] = 1.0
    view_high[..., ENERGY_CHANNEL] = np.inf
    view_high[..., KIN_CHANNEL] = 1.0
    view_high[..., MESSAGE_CHANNEL] = config.message_vocab_size - 1
    view_high[..., ARTIFACT_CHANNEL] = config.artifact_max_per_cell + config.artifact_max_inventory
    feature_low = np.array([-np.inf, 0.0, 0.0, 0.0] + [-1.0] * GENOME_SIZE, dtype=np.float32)
    feature_high = np.array([np.inf, np.inf, 1.0, 1.0] + [1.0] * GENOME_SIZE, dtype=np.float32)
    low = np.concatenate([view_low.ravel(), feature_low])
    high = np.concatenate([view_high.ravel(), feature_high])
    return spaces.Box(low=low, high=high, dtype=np.float32)


def numeric_action_space(config: SocietyConfig) -> spaces.MultiDiscrete:
    """(kind, target view cell, amount index, message token)."""
    return spaces.MultiDiscrete(
        [NUM_ACTION_KINDS, config.view_size**2, len(config.transfer_amounts), config.message_vocab_size]
    )


def build_spaces(config: SocietyConfig) -> tuple[spaces.Space, spaces.Space]:
    """The (observation, action) spaces shared by every agent."""
    observation = numeric_observation_space(config)
    action = numeric_action_space(config)
    if config.language:
        charset = "".join(sorted(PRINTABLE_CHARSET))
        observation = spaces.Dict(
            {"observation": observation, "text": spaces.Text(max_length=config.text_max_chars, min_length=0, charset=charset)}
        )
        entries = {"action": action, "message": spaces.Text(max_length=config.message_max_chars, min_length=0, charset=charset)}
        if config.artifacts:
            entries["artifact"] = artifact_action_space(config, charset)
        action = spaces.Dict(entries)
    return observation, action


def artifact_action_space(config: SocietyConfig, charset: str) -> spaces.Dict:
    """The ``artifact`` entry of a language action (``society_env.world.artifacts.artifact_action``).

    Name and text may be as long as ``config.artifact_action_max_chars``; the tighter artifact caps are rules, so
    exceeding them fails cleanly (``infos[agent]["artifact_failed"]``) instead of being a bad action.
    """
    text = spaces.Text(max_length=config.artifact_action_max_chars, min_length=0, charset=charset)
    return spaces.Dict({
        "kind": spaces.Discrete(artifacts.NUM_ARTIFACT_KINDS),
        "name": text,
        "text": text,
        "lifespan": spaces.Discrete(len(config.artifact_lifespans)),
        "target": spaces.Discrete(config.view_size**2),
    })


def channel_grid(state: WorldState, config: SocietyConfig) -> np.ndarray:
    """The whole world as a (height, width, NUM_CHANNELS) float32 grid (kin is filled per viewer)."""
    grid = np.zeros((config.height, config.width, NUM_CHANNELS), dtype=np.float32)
    grid[..., FOOD_CHANNEL] = state.food / config.food_value
    occupied = state.occupant >= 0
    who = state.occupant[occupied]
    grid[occupied, AGENT_CHANNEL] = 1.0
    grid[occupied, ENERGY_CHANNEL] = state.energy[who] / config.initial_energy
    grid[occupied, MESSAGE_CHANNEL] = state.message[who]
    grid[..., ARTIFACT_CHANNEL] = artifacts.count_grid(state, config)
    return grid


def wrap_pad(grid: np.ndarray, radius: int) -> np.ndarray:
    """``grid`` (height, width, ...) padded by ``radius`` cells on every side with the torus' wrap-around.

    Cell ``(row, col)`` of the padded grid is cell ``((row - radius) % height, (col - radius) % width)``,
    so the view window of an agent at ``(row, col)`` is the padded block starting at ``(row, col)``.
    """
    height, width = grid.shape[:2]
    if radius > height or radius > width:  # the view wraps more than once around the torus
        rows = np.arange(-radius, height + radius) % height
        cols = np.arange(-radius, width + radius) % width
        return np.ascontiguousarray(grid[rows][:, cols])
    padded = np.empty((height + 2 * radius, width + 2 * radius) + grid.shape[2:], dtype=grid.dtype)
    middle = padded[radius : radius + height]
    middle[:, radius : radius + width] = grid
    middle[:, :radius] = grid[:, width - radius :]
    middle[:, radius + width :] = grid[:, :radius]
    padded[:radius] = padded[height : height + radius]
    padded[radius + height :] = padded[radius : 2 * radius]
    return padded


def _window_row_starts(padded: np.ndarray, view_size: int) -> np.ndarray:
    """Read-only view of ``padded`` (C-contiguous, >= 2-d) whose item ``k`` is the run of ``view_size``
    cells (all their channels) starting at flat padded cell ``k``: shape (cells - view_size + 1, run)."""
    cells = padded.shape[0] * padded.shape[1]
    cell_bytes = padded.strides[1]
    per_cell = cell_bytes // padded.itemsize
    return np.lib.stride_tricks.as_strided(
        padded, shape=(cells - view_size + 1, view_size * per_cell), strides=(cell_bytes, padded.itemsize), writeable=False
    )


def _window_rows(padded: np.ndarray, config: SocietyConfig, state: WorldState, slots: np.ndarray) -> np.ndarray:
    """Each slot's view window out of a padded grid: (n, view_size, view_size * cell items), one gather."""
    size, padded_width = config.view_size, padded.shape[1]
    runs = _window_row_starts(padded, size)
    starts = state.position[slots, 0] * padded_width + state.position[slots, 1]
    return runs[starts[:, None] + np.arange(0, size * padded_width, padded_width)]


def window_views(array: np.ndarray, state: WorldState, config: SocietyConfig, slots: np.ndarray) -> np.ndarray:
    """Each slot's (view_size, view_size) window of a (height, width) ``array``: shape (n, size, size)."""
    size = config.view_size
    if slots.size == 0:
        return np.empty((0, size, size), dtype=array.dtype)
    return _window_rows(wrap_pad(array, config.view_radius), config, state, slots)


def padded_grid_shape(config: SocietyConfig) -> tuple[int, int, int]:
    """Shape of the wrap-padded channel grid that observations are gathered from."""
    return config.height + 2 * config.view_radius, config.width + 2 * config.view_radius, NUM_CHANNELS


SLOT_ORDER_MAX_GRID_BYTES = 12 * 2**20
"""Up to this size of the padded channel grid, agents' views are gathered in slot order (the output rows
written one after the other, the grid read where the agents stand); above it, in position order (the
grid read row after row, the output rows scattered). Measured on a 32 MiB-L3 AMD EPYC (2026-12-06, one
gather of every living agent): slot order 1.5x faster at 5000 agents (3.2 MB float32 grid) and 1.2x at
20,000 (12.4 MB); position order 1.3x faster at 50,000 (31 MB) and at 100,000 with uint8 (15 MB)."""

_NO_ARTIFACTS = np.zeros((0, 0), dtype=np.int64)


class ObservationScratch(NamedTuple):
    """What the observation writers reuse across steps (:func:`observation_scratch`): the two padded grids
    (a fresh allocation costs page faults on big worlds) and the numbers of the write."""

    padded: np.ndarray  # the view channels, in the observation's dtype
    kin: np.ndarray  # int32: the occupant's lineage id per cell
    spec: ObservationSpec


def observation_scratch(config: SocietyConfig, dtype="float32") -> ObservationScratch:
    """The scratch of the observation writers for ``config``'s observation in ``dtype`` (float32, or the
    compact uint8 / uint16): both grids of :func:`padded_grid_shape`, and the
    :class:`~society_env.world.kernels.ObservationSpec`."""
    shape = padded_grid_shape(config)
    padded = np.zeros(shape, dtype=dtype)
    compact = padded.dtype != np.float32
    spec = ObservationSpec(config.view_radius, config.view_size, ALIVE, compact,
                           int(np.iinfo(padded.dtype).max) if compact else 0, config.food_value,
                           config.initial_energy, config.lifespan, config.height, config.width, KIN_CHANNEL,
                           0 if compact else config.view_size**2 * NUM_CHANNELS,
                           padded.nbytes > SLOT_ORDER_MAX_GRID_BYTES)
    return ObservationScratch(padded, np.zeros(shape[:2], dtype=np.int32), spec)


def _write(state: WorldState, config: SocietyConfig, slots: np.ndarray, rows: np.ndarray,
           scratch: ObservationScratch | None, out: np.ndarray, features: np.ndarray, threads: int,
           observers: int | None = None) -> None:
    """What both observation writers do: fill the padded channel grid in ``out``'s dtype and the lineage
    grid (:func:`society_env.world.kernels.fill_grid`: float32 values, or the compact integers, with the
    artifact counts); copy the view windows of ``slots`` into ``out[rows]``
    (:func:`society_env.world.kernels.gather_views`); then their features into ``features[rows]``
    (:func:`society_env.world.kernels.write_features`).

    On one thread that is one compiled call (:func:`society_env.world.kernels.observe`, which says in which
    order the agents are visited); with threads (:func:`~society_env.world.threads.use_threads` decides, for
    ``observers`` agents, by default ``slots.size``), the same steps through the ``parallel`` twins, one
    call each (in worlds that big, the calls' own cost is nothing)."""
    if slots.size == 0:
        return
    padded, kin, spec = scratch if scratch is not None else observation_scratch(config, out.dtype)
    counts = artifacts.count_grid(state, config) if state.artifacts and config.artifact_visible else _NO_ARTIFACTS
    if not use_threads(threads, slots.size if observers is None else observers):
        observe(spec, padded, kin, counts, world_arrays(state), slots, rows, out, features)
        return
    fill_grid_parallel(padded, kin, spec.radius, state.food, state.energy, state.message, state.lineage,
                       state.position, state.status, spec.alive, spec.compact, spec.food_value, spec.initial_energy,
                       spec.high, counts)
    members, first = group_families(state.lineage, state.status, spec.alive)
    visited, targets = slots, rows
    if spec.by_position:
        order = position_order(state.occupant, slots, config.max_agents)
        visited, targets = slots[order], rows[order]
    gather_views_parallel(padded, kin, spec.size, visited, state.position, state.lineage, members, first, targets,
                          spec.kin_channel, out)
    own = OwnState(state.energy, state.age, state.position, state.genome, spec.initial_energy, spec.lifespan,
                   spec.height, spec.width)
    write_features_parallel(own, slots, rows, features, spec.features_at)


def write_observations(state: WorldState, config: SocietyConfig, slots: np.ndarray, out: np.ndarray,
                       rows: np.ndarray, scratch: ObservationScratch | None = None,
                       threads: int = 1) -> None:
    """Write the numeric observation of ``slots[k]`` into row ``rows[k]`` of ``out`` (float32, shape
    (..., observation_size)); other rows are left as they are. ``scratch``: the grids of
    :func:`observation_scratch` (float32), used instead of new ones.

    One channel grid is built per call, wrap-padded by the view radius, with the occupants' lineage ids in a
    second grid, and compiled loops copy each agent's window and write its features (:func:`_write`).

    With ``threads`` > 1 and at least :data:`~society_env.world.threads.PARALLEL_MIN_AGENTS` observers, the
    grid's rows and the agents' windows are split over that many threads; every thread count writes the
    same bytes.
    """
    _write(state, config, slots, rows, scratch, out, out, threads)


def load_parallel_loops(state: WorldState, config: SocietyConfig, scratch: ObservationScratch, threads: int) -> None:
    """If a world of ``config`` may run the parallel loops (``threads`` > 1 and ``max_agents`` at least
    :data:`~society_env.world.threads.PARALLEL_MIN_AGENTS`), compile them (or load them from numba's disk cache)
    now: write the first living agent's observation with them, into a throwaway row. The envs call this at
    reset, so that no step stalls on it when the population first grows past the threshold (a compile
    takes seconds, a load from the cache 0.1 s; later resets pay a one-agent write)."""
    slots = np.flatnonzero(state.status == ALIVE)[:1]
    if threads <= 1 or config.max_agents < PARALLEL_MIN_AGENTS or slots.size == 0:
        return
    compact = scratch.spec.compact
    views = np.zeros((1, config.view_size**2 * NUM_CHANNELS if compact else observation_size(config)),
                     dtype=scratch.padded.dtype)
    features = np.zeros((1, NUM_FEATURES), dtype=np.float32) if compact else views
    _write(state, config, slots, np.zeros(1, dtype=np.int64), scratch, views, features, threads,
           observers=PARALLEL_MIN_AGENTS)


# ---- the compact observation (SocietyVectorEnv(obs_dtype="uint8" or "uint16")) ------------------------
COMPACT_DTYPES = ("uint8", "uint16")
COMPACT_DIVISORS = ("food_value", 1, "initial_energy", 1, 1, 1)
"""What each view channel of the float32 observation divides the compact integer by (a config field name
or 1): food and energy are kept in energy units, the rest as the float32 observation has them."""


def compact_observation_space(config: SocietyConfig, dtype: str) -> spaces.Box:
    """The compact view: ``(view_size**2 * 6,)`` integers, (row, column, channel) order as the float32 view."""
    high = np.iinfo(dtype).max
    view_high = np.empty((config.view_size, config.view_size, NUM_CHANNELS), dtype=np.int64)
    view_high[..., [FOOD_CHANNEL, ENERGY_CHANNEL]] = high
    view_high[..., [AGENT_CHANNEL, KIN_CHANNEL]] = 1
    view_high[..., MESSAGE_CHANNEL] = config.message_vocab_size - 1
    view_high[..., ARTIFACT_CHANNEL] = config.artifact_max_per_cell + config.artifact_max_inventory
    return spaces.Box(low=0, high=view_high.ravel().astype(dtype), dtype=np.dtype(dtype))


def write_compact_observations(state: WorldState, config: SocietyConfig, slots: np.ndarray, views: np.ndarray,
                               features: np.ndarray, rows: np.ndarray,
                               scratch: ObservationScratch | None = None, threads: int = 1) -> None:
    """The compact form of :func:`write_observations`: row ``rows[k]`` of ``views`` (uint8 or uint16) gets
    the view of ``slots[k]`` as integers (food and energy in energy units, capped at the dtype's maximum;
    presence, kin, message token and artifact count as they are), and the same row of ``features``
    (float32) its 12 features. :func:`float_observations` rebuilds the float32 observation from both,
    exactly wherever no value was capped. ``scratch``: the grids of :func:`observation_scratch` in the
    views' dtype.

    The grid is built in the output's own dtype (values capped as it is filled), so that the gather is
    the same plain copy of bytes and the same kin marks as for float32."""
    _write(state, config, slots, rows, scratch, views, features, threads)


def float_observations(views: np.ndarray, features: np.ndarray, config: SocietyConfig) -> np.ndarray:
    """The float32 observations (as ``parallel_env`` gives them) of compact ``views`` [..., view cells * 6]
    and ``features`` [..., 12]: each channel divided by :data:`COMPACT_DIVISORS` in float64 and rounded to
    float32, as the world computes it; exact wherever food and energy were below the dtype's maximum."""
    divisors = np.array([getattr(config, d) if isinstance(d, str) else d for d in COMPACT_DIVISORS], dtype=np.float64)
    shape = views.shape[:-1]
    view = (views.reshape(shape + (-1, NUM_CHANNELS)).astype(np.float64) / divisors).astype(np.float32)
    return np.concatenate([view.reshape(shape + (-1,)), features.astype(np.float32, copy=False)], axis=-1)


def split_observation(observation: np.ndarray, config: SocietyConfig) -> tuple[np.ndarray, np.ndarray]:
    """Flat numeric observation -> (view of shape (size, size, NUM_CHANNELS), features)."""
    if isinstance(observation, dict):
        observation = observation["observation"]
    size = config.view_size
    view_cells = size * size * NUM_CHANNELS
    return observation[:view_cells].reshape(size, size, NUM_CHANNELS), observation[view_cells:]
