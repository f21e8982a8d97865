"""Spaces and the numeric observation: egocentric view channels + the agent's own state.

Numeric observation (``float32``, flat): the ``view_size x view_size x NUM_CHANNELS`` window centred
on the agent, flattened in (row, column, channel) order, followed by ``NUM_FEATURES`` own-state
features. :func:`split_observation` turns the flat vector back into ``(view, features)``.
"""

from __future__ import annotations

import string

import numpy as np
from gymnasium import spaces

from society_env.config import SocietyConfig
from society_env.rules import NUM_ACTION_KINDS
from society_env.state import ALIVE, GENOME_SIZE, WorldState

# View channels.
FOOD_CHANNEL, AGENT_CHANNEL, ENERGY_CHANNEL, KIN_CHANNEL, MESSAGE_CHANNEL = range(5)
NUM_CHANNELS = 5
CHANNEL_NAMES = ("food", "agent", "energy", "kin", "message")
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
        action = spaces.Dict(
            {"action": action, "message": spaces.Text(max_length=config.message_max_chars, min_length=0, charset=charset)}
        )
    return observation, action


def channel_grid(state: WorldState, config: SocietyConfig) -> np.ndarray:
    """The whole world as a (height, width, NUM_CHANNELS) float32 grid (kin is filled per viewer)."""
    grid = np.zeros((config.height, config.width, NUM_CHANNELS), dtype=np.float32)
    grid[..., FOOD_CHANNEL] = state.food / config.food_value
    occupied = state.occupant >= 0
    who = state.occupant[occupied]
    grid[occupied, AGENT_CHANNEL] = 1.0
    grid[occupied, ENERGY_CHANNEL] = state.energy[who] / config.initial_energy
    grid[occupied, MESSAGE_CHANNEL] = state.message[who]
    return grid


def view_cells(state: WorldState, config: SocietyConfig, slots: np.ndarray) -> np.ndarray:
    """Flat grid index (row * width + column) of every cell of each slot's view: shape (n, size * size)."""
    offsets = np.arange(-config.view_radius, config.view_radius + 1)
    rows = (state.position[slots, 0, None] + offsets) % config.height
    cols = (state.position[slots, 1, None] + offsets) % config.width
    return (rows[:, :, None] * config.width + cols[:, None, :]).reshape(slots.size, -1)


def numeric_observations(state: WorldState, config: SocietyConfig, slots: np.ndarray) -> np.ndarray:
    """Observations of ``slots`` as a (len(slots), observation_size) float32 array."""
    n = slots.size
    view_size = config.view_size**2 * NUM_CHANNELS
    out = np.empty((n, view_size + NUM_FEATURES), dtype=np.float32)
    if n == 0:
        return out
    cells = view_cells(state, config, slots)
    grid = channel_grid(state, config).reshape(-1, NUM_CHANNELS)
    view = out[:, :view_size].reshape(n, -1, NUM_CHANNELS)
    np.take(grid, cells, axis=0, out=view)
    # Kin: same family as the viewer. The lineage grid holds -2 on empty cells, never a family id.
    lineage_grid = np.where(state.occupant >= 0, state.lineage[state.occupant], -2).ravel()
    view[..., KIN_CHANNEL] = lineage_grid[cells] == state.lineage[slots, None]
    features = out[:, view_size:]
    features[:, 0] = state.energy[slots] / config.initial_energy
    features[:, 1] = state.age[slots] / config.lifespan
    features[:, 2] = state.position[slots, 0] / config.height
    features[:, 3] = state.position[slots, 1] / config.width
    features[:, 4:] = state.genome[slots]
    return out


def split_observation(observation: np.ndarray, config: SocietyConfig) -> tuple[np.ndarray, np.ndarray]:
    """Flat numeric observation -> (view of shape (size, size, NUM_CHANNELS), features)."""
    if isinstance(observation, dict):
        observation = observation["observation"]
    size = config.view_size
    view_cells = size * size * NUM_CHANNELS
    return observation[:view_cells].reshape(size, size, NUM_CHANNELS), observation[view_cells:]


def view_cell_index(config: SocietyConfig, d_row: int, d_col: int) -> int:
    """Action ``target`` index of the view cell at offset (d_row, d_col) from the agent."""
    r = config.view_radius
    if abs(d_row) > r or abs(d_col) > r:
        raise ValueError(f"offset ({d_row}, {d_col}) is outside the view radius {r}")
    return (d_row + r) * config.view_size + (d_col + r)


def alive_slots(state: WorldState) -> np.ndarray:
    return np.flatnonzero(state.status == ALIVE)
