"""society-env: a society of agents on a grid world, as a standard PettingZoo ParallelEnv.

    import society_env
    env = society_env.parallel_env()            # TerraLingua's core setting
    env = society_env.parallel_env("small", language=True)
    env = society_env.parallel_env("core")        # a TerraLingua condition: language + artifacts
"""

import pettingzoo

from society_env.world.artifacts import ARTIFACT_ACTION_NAMES, artifact_action
from society_env.world.config import CONDITIONS, PRESETS, SocietyConfig, make_config
from society_env.world.env import SocietyEnv, env, parallel_env, raw_env
from society_env.world.encodings import ACTION_NAMES, EAST, GIVE, NORTH, REPRODUCE, SOUTH, STAY, TAKE, WEST, view_cell_index
from society_env.world.observations import split_observation

__version__ = "0.1.0"

ENV_ID = "society/society-v2"
"""The world's id in PettingZoo's registry: ``pettingzoo.make("parallel", ENV_ID, preset="small")`` (or
``"aec"``) after ``import society_env``. The version follows the module ``society_v2``."""

# PettingZoo loads nothing from entry points: a package registers its envs when it is imported.
pettingzoo.register("parallel", ENV_ID, entry_point="society_env.society_v2:parallel_env")
pettingzoo.register("aec", ENV_ID, entry_point="society_env.society_v2:env")

__all__ = [
    "ACTION_NAMES",
    "ARTIFACT_ACTION_NAMES",
    "CONDITIONS",
    "EAST",
    "ENV_ID",
    "GIVE",
    "NORTH",
    "PRESETS",
    "REPRODUCE",
    "SOUTH",
    "STAY",
    "SocietyConfig",
    "SocietyEnv",
    "TAKE",
    "WEST",
    "artifact_action",
    "env",
    "make_config",
    "parallel_env",
    "raw_env",
    "split_observation",
    "view_cell_index",
]
