"""The RL libraries people already use, on this env (the snippets of docs/world.md, "Use it from ...")."""

import numpy as np
import pytest


@pytest.mark.slow
def test_stable_baselines3_ppo_trains_through_supersuit(tmp_path):
    # --- docs/world.md: use it from Stable-Baselines3 ---
    import supersuit as ss
    from stable_baselines3 import PPO
    from stable_baselines3.common.utils import set_random_seed

    import society_env

    env = society_env.parallel_env("small", fixed_slots=True, max_agents=16)
    vec = ss.pettingzoo_env_to_vec_env_v1(env)                 # one vector-env row per slot
    vec = ss.concat_vec_envs_v1(vec, 2, num_cpus=0, base_class="stable_baselines3")
    set_random_seed(0)  # not PPO(seed=...): SB3 then calls vec.seed(), which SuperSuit's ConcatVecEnv lacks
    model = PPO("MlpPolicy", vec, n_steps=64, batch_size=256, n_epochs=1, device="cpu", verbose=0)
    model.learn(total_timesteps=4096)
    model.save(tmp_path / "sb3-society")
    # --- end of snippet ---
    assert model.num_timesteps >= 4096
    loaded = PPO.load(tmp_path / "sb3-society", device="cpu")
    actions, _ = loaded.predict(vec.reset(), deterministic=True)
    assert actions.shape == (2 * 16, 4) and np.all(actions < env.action_space("agent_0").nvec)


@pytest.mark.slow
def test_rllib_ppo_trains_an_iteration_through_parallel_pettingzoo_env():
    # --- docs/world.md: use it from RLlib ---
    import ray
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.env.wrappers.pettingzoo_env import ParallelPettingZooEnv
    from ray.tune.registry import register_env

    import society_env

    # Fixed slots: RLlib's multi-agent env wants the same agents from reset to the end of an episode.
    register_env("society", lambda config: ParallelPettingZooEnv(
        society_env.parallel_env("small", fixed_slots=True, max_agents=8, max_steps=40)))
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    config = (
        PPOConfig()
        .environment("society")
        .env_runners(num_env_runners=0)
        .training(train_batch_size=320, minibatch_size=64, num_epochs=1)
        .multi_agent(policies={"shared"}, policy_mapping_fn=lambda agent_id, *args, **kwargs: "shared")
    )
    algo = config.build_algo()
    result = algo.train()
    # --- end of snippet ---
    try:
        assert result["num_env_steps_sampled_lifetime"] >= 320
        learned = result["learners"]["shared"]
        assert np.isfinite(learned["policy_loss"]) and np.isfinite(learned["vf_loss"])
    finally:
        algo.stop()
        ray.shutdown()
