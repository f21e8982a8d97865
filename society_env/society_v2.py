"""The society world, version 2 (PettingZoo's versioned-module convention, like ``pettingzoo.mpe.simple_v3``).

    from society_env import society_v2
    env = society_v2.parallel_env("small", max_cycles=100)

The version follows the env docstring's Version History; the metadata name is ``society_v2``.
"""

from society_env.world.env import SocietyEnv, env, parallel_env, raw_env

__all__ = ["SocietyEnv", "env", "parallel_env", "raw_env"]
