"""Rendering: a text grid (``ansi``) and an RGB image (``rgb_array``) of the world state."""

from __future__ import annotations

import string

import numpy as np

from society_env.world.artifacts import count_grid
from society_env.world.config import SocietyConfig
from society_env.world.state import ALIVE, WorldState

FAMILY_LETTERS = string.ascii_uppercase + string.ascii_lowercase
IMAGE_TARGET_PIXELS = 480
BACKGROUND = np.array([24, 24, 32], dtype=np.float64)
FOOD_COLOUR = np.array([40, 200, 70], dtype=np.float64)


def render_ansi(state: WorldState, config: SocietyConfig) -> str:
    """One character per cell: a letter per family for agents, ``?`` an artifact lying there (visible
    artifacts only), ``*`` full food, ``:`` partly eaten, ``.`` empty."""
    grid = np.full((config.height, config.width), ".", dtype="<U1")
    grid[state.food > 0] = ":"
    grid[state.food >= config.food_value] = "*"
    grid[count_grid(state, config) > 0] = "?"
    occupied = state.occupant >= 0
    families = state.lineage[state.occupant[occupied]]
    grid[occupied] = np.array(list(FAMILY_LETTERS))[families % len(FAMILY_LETTERS)]
    alive = int(np.count_nonzero(state.status == ALIVE))
    header = (
        f"step {state.step}/{config.max_steps}  alive {alive}  born {state.num_born}  "
        f"food tiles {int(np.count_nonzero(state.food))}  (letters = families, * food)"
    )
    if config.artifacts:
        header += f"  artifacts {len(state.artifacts)} (?)"
    return header + "\n" + "\n".join("".join(row) for row in grid)


def family_colours(lineage: np.ndarray) -> np.ndarray:
    """A distinct, stable RGB colour per family id (golden-ratio hues), in [0, 255]."""
    hue = (lineage * 0.61803398875) % 1.0
    # HSV -> RGB with saturation 0.75, value 1.
    k = (np.array([5.0, 3.0, 1.0]) + hue[..., None] * 6.0) % 6.0
    channel = 1.0 - 0.75 * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)
    return channel * 255.0


def render_rgb(state: WorldState, config: SocietyConfig) -> np.ndarray:
    """uint8 image: food in green (brighter = more), agents coloured by family, shaded by energy."""
    cell = max(1, IMAGE_TARGET_PIXELS // max(config.height, config.width))
    amount = np.clip(state.food / config.food_value, 0.0, 1.0)[..., None]
    image = np.where(amount > 0, BACKGROUND + (FOOD_COLOUR - BACKGROUND) * (0.35 + 0.65 * amount), BACKGROUND)

    occupied = state.occupant >= 0
    slots = state.occupant[occupied]
    shade = 0.35 + 0.65 * np.clip(state.energy[slots] / (2.0 * config.initial_energy), 0.0, 1.0)
    agent_colour = family_colours(state.lineage[slots]) * shade[:, None]

    big = np.repeat(np.repeat(image, cell, axis=0), cell, axis=1)
    if cell >= 4:
        # Draw agents as inset squares so the food under them stays visible at the border.
        margin = max(1, cell // 6)
        rows, cols = np.nonzero(occupied)
        for dy in range(margin, cell - margin):
            for dx in range(margin, cell - margin):
                big[rows * cell + dy, cols * cell + dx] = agent_colour
    else:
        agents = np.zeros_like(image)
        agents[occupied] = agent_colour
        mask = np.repeat(np.repeat(occupied, cell, axis=0), cell, axis=1)
        big[mask] = np.repeat(np.repeat(agents, cell, axis=0), cell, axis=1)[mask]
    return big.astype(np.uint8)
