"""HAQ's DDPG agent (Wang et al., CVPR 2019; mit-han-lab/haq) on stable-baselines3's DDPG.

What differs from SB3's DDPG, each as in HAQ's code (``rl_quantize.py``, ``lib/rl/ddpg.py``):

* separate Adam learning rates for the actor (1e-4) and the critic (1e-3);
* exploration: the action is drawn from a normal distribution centred on the actor's output and
  truncated to the action bounds (``scipy.stats.truncnorm``), sigma 0.5 decayed x0.99 per episode
  after the warm-up; the first ``warmup_episodes`` episodes (20) act uniformly at random;
* a moving-average reward baseline: a terminal reward r is stored as r - b, then
  b <- b + (1 - alpha) (r - b) (alpha 0.5);
* the replay buffer holds ``replay_per_layer`` (128, HAQ's ``rmsize``) transitions per quantizable
  layer (HAQ: ``args.rmsize = args.rmsize * len(env.quantizable_idx)``), unless ``buffer_size`` is given.

With ``MixedPrecisionContinuous-v1`` and ``budget_enforcement="haq"``, the environment lowers an
over-budget policy with HAQ's ``_final_action_wall`` (last layer to first, activations then
weights). The deliberate differences that remain between this pairing and HAQ's code:

==============================  ================================  ===============================================
aspect                          HAQ (mit-han-lab/haq)             here, and why
==============================  ================================  ===============================================
reward placement                final reward copied into every    reward on the last step only; discount 1 carries
                                transition of the episode         it back through the critic (the TD form of the
                                                                  same return; SB3 stores transitions as they come)
reward baseline                 moving average over episodes      the same moving average, applied per episode
                                                                  when the terminal transition is stored
accuracy in the reward          after finetuning, the training    validation accuracy (``eval_split="val"``) after
                                loader's accuracy                 the task's short retraining; test kept for reports
finetune optimiser              SGD momentum 0.9, one epoch on    the task's recipe: batch-norm re-estimation and a
                                a 20k-image subset                few Adam steps (MNIST-1D: 10, lr 1e-4)
weight quantization             per-tensor, k-means / linear,     per-output-channel symmetric, clip by MSE search
                                clip by KL divergence             (``quantize.best_weight_clip_ratio``)
activation ranges               calibrated, then trained          calibrated once on training data (MSE-optimal
                                                                  clip), fixed during retraining
steps per layer                 two (weight, then activation)     one by default (``two_steps_per_layer=True``
                                                                  gives HAQ's two)
first / last layer              always 8 bits (input 8-bit)       free by default; ``keep_first_last_8bit=True``
budget enforcement              ``_final_action_wall`` only       exact masks by default; ``"haq"`` is HAQ's rule
==============================  ================================  ===============================================
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from scipy.stats import truncnorm
from stable_baselines3 import DDPG
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.utils import update_learning_rate


class HAQDDPG(DDPG):
    """DDPG with HAQ's learning rates, truncated-normal exploration and reward baseline."""

    action_space: spaces.Box  # checked in __init__

    def __init__(
        self,
        policy: Any,
        env: Any,
        *,
        actor_lr: float = 1e-4,
        critic_lr: float = 1e-3,
        warmup_episodes: int = 20,
        noise_sigma: float = 0.5,
        noise_decay: float = 0.99,
        baseline_alpha: float = 0.5,
        episode_steps: int | None = None,
        replay_per_layer: int = 128,
        **kwargs: Any,
    ) -> None:
        self.actor_lr, self.critic_lr = float(actor_lr), float(critic_lr)
        self.noise_sigma, self.noise_decay = float(noise_sigma), float(noise_decay)
        self.baseline_alpha = float(baseline_alpha)
        self.warmup_episodes = int(warmup_episodes)
        self.reward_baseline: float | None = None
        self.episodes_done = 0
        kwargs.setdefault("learning_rate", self.critic_lr)
        self.replay_per_layer = int(replay_per_layer)
        layers = _num_layers(env)
        if "buffer_size" not in kwargs and layers is not None:
            kwargs["buffer_size"] = self.replay_per_layer * layers  # HAQ: rmsize x quantizable layers
        super().__init__(policy, env, **kwargs)
        if not isinstance(self.action_space, spaces.Box):
            raise ValueError("ddpg_haq needs a continuous (Box) action space, e.g. quant_envs/MixedPrecisionContinuous-v0")
        if episode_steps is None:
            episode_steps = _episode_steps(self.get_env())
        # warm-up is counted in steps by SB3; HAQ counts episodes of fixed length
        self.learning_starts = self.warmup_episodes * max(int(episode_steps), 1)

    def _update_learning_rate(self, optimizers: Any) -> None:
        self.logger.record("train/actor_lr", self.actor_lr)
        self.logger.record("train/critic_lr", self.critic_lr)
        update_learning_rate(self.actor.optimizer, self.actor_lr)
        update_learning_rate(self.critic.optimizer, self.critic_lr)

    def _sample_action(self, learning_starts: int, action_noise: ActionNoise | None = None,
                       n_envs: int = 1) -> tuple[np.ndarray, np.ndarray]:
        low, high = self.action_space.low, self.action_space.high
        if self.num_timesteps < learning_starts:
            action = np.array([self.action_space.sample() for _ in range(n_envs)])
        else:
            assert self._last_obs is not None  # set by learn() before the first step
            mu, _ = self.predict(self._last_obs, deterministic=True)
            sigma = self.noise_sigma
            a, b = (low - mu) / sigma, (high - mu) / sigma
            action = truncnorm.rvs(a, b, loc=mu, scale=sigma, random_state=self._noise_rng)
            action = np.clip(action, low, high).astype(self.action_space.dtype)
        return action, self.policy.scale_action(action)

    def _setup_model(self) -> None:
        super()._setup_model()
        self._noise_rng = np.random.default_rng(self.seed)

    def _store_transition(self, replay_buffer: ReplayBuffer, buffer_action: np.ndarray, new_obs: Any,
                          reward: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]]) -> None:
        reward = np.array(reward, dtype=np.float32, copy=True)
        for i, done in enumerate(dones):
            if not done:
                continue
            r = float(reward[i])
            if self.reward_baseline is None:
                self.reward_baseline = r
            reward[i] = r - self.reward_baseline
            self.reward_baseline += (1.0 - self.baseline_alpha) * (r - self.reward_baseline)
            if self.episodes_done >= self.warmup_episodes:  # HAQ: sigma_e = 0.5 * 0.99^(e - warmup)
                self.noise_sigma *= self.noise_decay
            self.episodes_done += 1
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_noise_rng"]


def _num_layers(env: Any) -> int | None:
    """Quantizable layers of a mixed-precision environment (or VecEnv); None for anything else."""
    if env is None or isinstance(env, str):
        return None
    try:
        if hasattr(env, "get_attr"):
            return int(env.get_attr("num_layers")[0])
        return int(env.unwrapped.num_layers)
    except (AttributeError, TypeError, IndexError):
        return None


def _episode_steps(vec_env: Any) -> int:
    """Steps per episode of a fixed-length quant_envs environment (1 when unknown)."""
    try:
        return int(vec_env.get_attr("num_steps")[0])
    except (AttributeError, TypeError):  # no env (loading a checkpoint) or no fixed episode length
        return 1
