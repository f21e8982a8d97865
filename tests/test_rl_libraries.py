"""The RL libraries people already use, on this env (the snippets of docs/world.md, "Use it from ...")."""

import numpy as np


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
