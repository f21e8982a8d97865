"""Learned policies: PPO on the array API (``train_ppo``, a CleanRL-style script) and the trained network
as a policy (``ppo``). Needs the ``rl`` extra (torch). See docs/baselines.md."""
