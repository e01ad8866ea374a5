"""A permutation-equivariant actor-critic for environments with one row per item (``CVT*-v1``, ``FeelAllocation-v2``).

Observations are (k, f) matrices and actions (k, d) matrices with one row per generator
(:mod:`quant_envs.cvt.env_v1`) or per device (:mod:`quant_envs.feel.env_v2`); nothing here is
specific to CVT, and ``PerRowPolicy`` is the same class under a neutral name. :class:`PerGeneratorPolicy` applies one MLP to every row to get
that generator's action mean (a shared rule, as Lloyd's method is), with one log standard
deviation per action coordinate shared by all generators; the critic applies another MLP to every
row and averages over the rows (a DeepSets value, invariant to the generators' order). Permuting
the generators therefore permutes the action distribution and leaves the value unchanged; the
number of parameters does not depend on k.

Used through ``agents/hyperparams/ppo.yml`` (``policy: agents.cvt_policy.PerGeneratorPolicy``),
so ``python train.py --env quant_envs/CVT1D-v1 --algo ppo`` picks it up.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import DiagGaussianDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

__all__ = ["PerGeneratorExtractor", "PerGeneratorPolicy", "PerRowPolicy", "RowLinear"]


def _mlp(n_in: int, sizes: list[int], activation: type[nn.Module]) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for n_out in sizes:
        layers += [nn.Linear(n_in, n_out), activation()]
        n_in = n_out
    return nn.Sequential(*layers), n_in


class PerGeneratorExtractor(nn.Module):
    """Actor latent: a shared row MLP, (B, k, f) -> (B, k * h); critic latent: its row mean."""

    def __init__(self, k: int, n_features: int, net_arch: list[int], vf_net_arch: list[int],
                 activation_fn: type[nn.Module]) -> None:
        super().__init__()
        self.k, self.n_features = k, n_features
        self.policy_net, self.row_dim = _mlp(n_features, net_arch, activation_fn)
        self.value_row_net, vf_dim = _mlp(n_features, vf_net_arch, activation_fn)
        self.latent_dim_pi = k * self.row_dim
        self.latent_dim_vf = vf_dim

    def _rows(self, features: th.Tensor) -> th.Tensor:
        return features.reshape(-1, self.k, self.n_features)

    def forward_actor(self, features: th.Tensor) -> th.Tensor:
        return self.policy_net(self._rows(features)).reshape(-1, self.latent_dim_pi)

    def forward_critic(self, features: th.Tensor) -> th.Tensor:
        return self.value_row_net(self._rows(features)).mean(dim=1)

    def forward(self, features: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        return self.forward_actor(features), self.forward_critic(features)


class RowLinear(nn.Module):
    """The same linear map applied to each of the k rows: (B, k * h) -> (B, k * d)."""

    def __init__(self, k: int, n_in: int, n_out: int) -> None:
        super().__init__()
        self.k, self.n_in = k, n_in
        self.linear = nn.Linear(n_in, n_out)

    def forward(self, x: th.Tensor) -> th.Tensor:
        return self.linear(x.reshape(-1, self.k, self.n_in)).reshape(x.shape[0], -1)


class PerGeneratorPolicy(ActorCriticPolicy):
    """Actor-critic whose actor is one MLP shared by all rows (see the module docstring).

    ``net_arch``: hidden sizes of the actor's row MLP (default [64, 64]); ``vf_net_arch``: of the
    critic's row MLP (default: the same). Needs a Box observation of shape (k, f) and a Box
    action of shape (k, d).
    """

    observation_space: spaces.Box  # both checked in __init__
    action_space: spaces.Box

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Any,
                 net_arch: list[int] | None = None, vf_net_arch: list[int] | None = None,
                 **kwargs: Any) -> None:
        if not (isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 2):
            raise ValueError(f"PerGeneratorPolicy needs a Box observation of shape (k, f); got {observation_space}")
        if not (isinstance(action_space, spaces.Box) and len(action_space.shape) == 2
                and action_space.shape[0] == observation_space.shape[0]):
            raise ValueError(f"PerGeneratorPolicy needs a Box action of shape (k, d) with k = "
                             f"{observation_space.shape[0]}; got {action_space}")
        if kwargs.get("use_sde"):
            raise ValueError("PerGeneratorPolicy does not support use_sde=True")
        self.row_arch = list(net_arch) if net_arch is not None else [64, 64]
        self.vf_row_arch = list(vf_net_arch) if vf_net_arch is not None else list(self.row_arch)
        super().__init__(observation_space, action_space, lr_schedule, net_arch=[], **kwargs)

    def _build_mlp_extractor(self) -> None:
        k, f = self.observation_space.shape
        # SB3 annotates mlp_extractor as its MlpExtractor but takes any module with latent_dim_pi,
        # latent_dim_vf, forward_actor and forward_critic (its documented way to customise it)
        self.mlp_extractor = PerGeneratorExtractor(  # type: ignore[assignment]
            k, f, self.row_arch, self.vf_row_arch, self.activation_fn)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        assert isinstance(self.action_dist, DiagGaussianDistribution)
        extractor = self.mlp_extractor
        assert isinstance(extractor, PerGeneratorExtractor)  # built by _build_mlp_extractor
        k, d = self.action_space.shape
        # Replace SB3's (k h) -> (k d) dense head and per-index std by shared per-row ones.
        self.action_net = RowLinear(k, extractor.row_dim, d)
        self.log_std = nn.Parameter(th.full((d,), float(self.log_std_init)), requires_grad=True)
        if self.ortho_init:
            self.action_net.apply(lambda m: self.init_weights(m, gain=0.01))
        # optimizer_class is a type[Optimizer], whose base __init__ takes no lr (SB3 ignores the same)
        self.optimizer = self.optimizer_class(  # type: ignore[call-arg]
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor) -> Distribution:
        mean = self.action_net(latent_pi)
        k = self.action_space.shape[0]
        return self.action_dist.proba_distribution(mean, self.log_std.repeat(k))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(net_arch=self.row_arch, vf_net_arch=self.vf_row_arch)
        return data


def _action_mean(policy: PerGeneratorPolicy, obs: th.Tensor) -> th.Tensor:
    # read before the next get_distribution call: SB3 reuses one distribution object per policy
    dist = policy.get_distribution(obs)
    assert isinstance(dist, DiagGaussianDistribution)
    return dist.distribution.mean


#: The same policy for any (k, f) -> (k, d) environment, e.g. ``agents.cvt_policy.PerRowPolicy``.
PerRowPolicy = PerGeneratorPolicy


def row_permutation_check(policy: PerGeneratorPolicy, obs: np.ndarray, perm: np.ndarray) -> tuple[float, float]:
    """Largest |mean(obs[perm]) - mean(obs)[perm]| and |V(obs[perm]) - V(obs)| (both ~0)."""
    with th.no_grad():
        x = th.as_tensor(obs[None], dtype=th.float32)
        xp = th.as_tensor(obs[perm][None], dtype=th.float32)
        m, mp = (_action_mean(policy, t).reshape(obs.shape[0], -1) for t in (x, xp))
        v, vp = policy.predict_values(x), policy.predict_values(xp)
    return float((mp - m[perm]).abs().max()), float((vp - v).abs().max())
