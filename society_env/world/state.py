"""The explicit world state: plain numpy arrays indexed by agent slot, plus the food grid.

Slot ``i`` is the agent ``agent_i``. A slot is unborn, alive or dead; ids are never reused.
The state is created by :func:`initial_state` and advanced in place by
:func:`society_env.world.rules.advance_world` (:func:`society_env.world.rules.step_world` copies it first).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from society_env.world.config import NUM_TRAITS, SocietyConfig
from society_env.world.kernels import RegrowthBuffers, WorldArrays, draw_free_cells, regrowth_buffers
from society_env.world.outcome import Artifact, copy_artifacts

WORLD_VERSION = "society_v2"
"""The world's version (the env's metadata name): bumped whenever the same seed and actions would give
another trajectory (v2: food regrowth draws). Recordings carry it; replay needs the same one."""

UNBORN, ALIVE, DEAD = 0, 1, 2
GENOME_SIZE = NUM_TRAITS + 1  # traits + fertility
FERTILITY = NUM_TRAITS  # genome column of fertility


@dataclass
class WorldState:
    """Everything the rules need; no hidden state anywhere else."""

    step: int
    """Steps taken since reset."""
    num_born: int
    """Slots used so far (founders + births); the next birth takes slot ``num_born``."""
    status: np.ndarray  # int8 [max_agents]: UNBORN / ALIVE / DEAD
    position: np.ndarray  # int64 [max_agents, 2]: (row, column)
    energy: np.ndarray  # int64 [max_agents]
    age: np.ndarray  # int64 [max_agents]
    genome: np.ndarray  # float64 [max_agents, GENOME_SIZE]: 7 traits in [-1, 1], fertility in [0.5, 1]
    parent: np.ndarray  # int64 [max_agents]: parent slot, -1 for founders
    lineage: np.ndarray  # int64 [max_agents]: founder slot at the root of the family tree
    generation: np.ndarray  # int64 [max_agents]: 0 for founders
    birth_step: np.ndarray  # int64 [max_agents]
    message: np.ndarray  # int64 [max_agents]: token broadcast last step (0 = silent)
    text_message: list[str]  # [max_agents]: free-text message broadcast last step (language option)
    food: np.ndarray  # int64 [height, width]: food value per cell, 0 = no food
    occupant: np.ndarray  # int64 [height, width]: slot standing on the cell, -1 = empty
    food_density: np.ndarray  # float64 [height * width]: spawn density (fixed per episode)
    food_cdf: np.ndarray  # float64 [height * width]: np.cumsum(food_density), for O(count) food draws
    artifacts: dict[int, Artifact] = field(default_factory=dict)
    """Artifacts in the world by id (at most ``artifact_max_total``); see ``society_env.world.artifacts``."""
    next_artifact_id: int = 0
    """Id of the next artifact created (ids are never reused within an episode)."""

    def copy(self) -> "WorldState":
        """Deep copy (arrays, the message list and every artifact)."""
        copied = {
            f.name: (getattr(self, f.name).copy() if hasattr(getattr(self, f.name), "copy") else getattr(self, f.name))
            for f in dataclasses.fields(self)
        }
        copied["artifacts"] = copy_artifacts(self.artifacts)
        return dataclasses.replace(self, **copied)

    @property
    def alive(self) -> np.ndarray:
        """Boolean mask of living slots."""
        return self.status == ALIVE


def world_arrays(state: WorldState) -> WorldArrays:
    """The arrays of ``state`` the kernels read and write, as their record (the same arrays, not copies)."""
    return WorldArrays(state.position, state.occupant, state.status, state.energy, state.age, state.parent,
                       state.lineage, state.generation, state.birth_step, state.genome, state.message, state.food,
                       state.food_density, state.food_cdf)


def toroidal_gaussian_density(config: SocietyConfig, centre: tuple[int, int]) -> np.ndarray:
    """Unnormalised Gaussian density around ``centre`` with toroidal (wrapped) distances, flattened."""
    rows = np.arange(config.height)
    cols = np.arange(config.width)
    d_row = np.abs(rows - centre[0])
    d_row = np.minimum(d_row, config.height - d_row)
    d_col = np.abs(cols - centre[1])
    d_col = np.minimum(d_col, config.width - d_col)
    squared = d_row[:, None] ** 2 + d_col[None, :] ** 2
    return np.exp(-squared / (2.0 * config.food_zone_sigma**2)).ravel()


SPAWN_ROUNDS = 8
"""Rounds of rejection draws :func:`spawn_food_cells` makes before it draws the missing cells exactly."""


NO_BUFFERS = regrowth_buffers(0)
"""Empty :class:`~society_env.world.kernels.RegrowthBuffers`: each draw allocates its own."""


def regrowth_buffers_for(config: SocietyConfig) -> RegrowthBuffers:
    """The :class:`~society_env.world.kernels.RegrowthBuffers` an env keeps for a world of ``config``."""
    return regrowth_buffers(config.height * config.width, config.food_distribution == "uniform")


def spawn_food_cells(
    food: np.ndarray, occupant: np.ndarray, density: np.ndarray, cdf: np.ndarray, count: int,
    rng: np.random.Generator, uniform: bool = False,
) -> np.ndarray:
    """Draw up to ``count`` distinct empty cells (no food, no agent), each in turn with probability
    proportional to ``density`` among the cells still free: flat indices, in the order drawn.

    Rejection sampling keeps the cost O(count log cells) instead of O(cells): each round draws the cells
    still missing from the whole grid's density (``rng.random(missing)`` looked up in ``cdf``, the
    cumulative density) and keeps, in draw order, those that are free and not drawn before. After
    :data:`SPAWN_ROUNDS` rounds (a crowded grid) the cells still missing are drawn exactly over the free
    cells with ``rng.choice(free cells, missing, replace=False, p=their density / its sum)``, which also caps
    ``count`` at the free cells of positive density. All of it is one compiled call
    (:func:`society_env.world.kernels.draw_free_cells`, whose ``choice`` is NumPy's, draw for draw); ``food`` is
    as it was when this returns. ``uniform`` says the density is 1 on every cell (the ``uniform`` food
    distribution), which finds a draw's cell without a search (same cells).
    """
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    return draw_free_cells(rng, food.reshape(-1), occupant.reshape(-1), density, cdf, int(count), SPAWN_ROUNDS,
                           bool(uniform), NO_BUFFERS)


def random_genome(count: int, rng: np.random.Generator) -> np.ndarray:
    """Founder genomes: traits uniform in [-1, 1], fertility uniform in [0.5, 1]."""
    genome = np.empty((count, GENOME_SIZE))
    genome[:, :NUM_TRAITS] = rng.uniform(-1.0, 1.0, size=(count, NUM_TRAITS))
    genome[:, FERTILITY] = rng.uniform(0.5, 1.0, size=count)
    return genome


def initial_state(config: SocietyConfig, rng: np.random.Generator) -> WorldState:
    """Founders on random distinct cells, then the initial food drawn from the spawn density."""
    n, h, w = config.max_agents, config.height, config.width
    status = np.zeros(n, dtype=np.int8)
    position = np.zeros((n, 2), dtype=np.int64)
    occupant = np.full((h, w), -1, dtype=np.int64)

    founders = config.num_founders
    cells = rng.choice(h * w, size=founders, replace=False)
    position[:founders, 0], position[:founders, 1] = np.divmod(cells, w)
    status[:founders] = ALIVE
    occupant.ravel()[cells] = np.arange(founders)

    genome = np.zeros((n, GENOME_SIZE))
    genome[:founders] = random_genome(founders, rng)

    if config.food_distribution == "clustered":
        centre = (int(rng.integers(h)), int(rng.integers(w)))
        density = toroidal_gaussian_density(config, centre)
    else:
        density = np.ones(h * w)

    cdf = np.cumsum(density)
    food = np.zeros((h, w), dtype=np.int64)
    uniform = config.food_distribution == "uniform"
    food.ravel()[spawn_food_cells(food, occupant, density, cdf, config.initial_food, rng, uniform)] = config.food_value

    energy = np.zeros(n, dtype=np.int64)
    energy[:founders] = config.initial_energy
    lineage = np.full(n, -1, dtype=np.int64)
    lineage[:founders] = np.arange(founders)
    return WorldState(
        step=0,
        num_born=founders,
        status=status,
        position=position,
        energy=energy,
        age=np.zeros(n, dtype=np.int64),
        genome=genome,
        parent=np.full(n, -1, dtype=np.int64),
        lineage=lineage,
        generation=np.zeros(n, dtype=np.int64),
        birth_step=np.zeros(n, dtype=np.int64),
        message=np.zeros(n, dtype=np.int64),
        text_message=[""] * n,
        food=food,
        occupant=occupant,
        food_density=density,
        food_cdf=cdf,
    )
