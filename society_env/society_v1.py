"""Version 1 of the society world was replaced by version 2 (``society_env.society_v2``): the same rules,
spaces and rewards with another random stream for regrowing food (see the env docstring's Version
History). As PettingZoo does with superseded environments, importing the old version fails with a
message naming the new one."""

raise ImportError("society_env.society_v1 was replaced by society_env.society_v2 (same rules and spaces; food "
                  "regrowth draws changed, so seeds give other trajectories): use `from society_env import society_v2`")
