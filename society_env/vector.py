"""The array API for many worlds at once (public path; the implementation is
:mod:`society_env.world.vector`): ``from society_env.vector import SocietyVectorEnv``."""

from society_env.world.vector import SocietyVectorEnv

__all__ = ["SocietyVectorEnv"]
