"""What every quant-envs environment shares: the episode guard and the render plumbing.

:class:`QuantEnv` is a ``gymnasium.Env`` with

* one **episode guard**: ``step()`` before the first ``reset()`` or after the episode ended
  (terminated or truncated) raises ``RuntimeError`` with the same message in every environment,
  instead of stepping a finished episode on (Gymnasium leaves that to each environment);
* one **render plumbing**: ``render_mode`` checked against ``metadata["render_modes"]`` when the
  environment is made (``ValueError`` naming it), and ``render()`` that warns and returns None
  without a mode (as Gymnasium's own environments do) and otherwise calls ``_render_ansi`` or
  ``_render_rgb_array``, which each environment writes.

An environment calls :meth:`QuantEnv._begin_episode` when its state is ready for a first step (at
the end of ``reset``; or in ``__init__`` where stepping before ``reset`` was always allowed),
:meth:`QuantEnv._check_can_step` first thing in ``step``, and sets ``self._done`` when the
episode ends.
"""

from __future__ import annotations

from typing import Generic, TypeVar

import gymnasium as gym
import numpy as np

from quant_envs.checks import check_choice

__all__ = ["DOCSTRING_SECTIONS", "RENDER_MODES", "STEP_AFTER_END", "STEP_BEFORE_RESET", "QuantEnv"]

ObsType = TypeVar("ObsType")
ActType = TypeVar("ActType")

#: The ``## Section`` headings of every environment's class docstring, in Gymnasium's order (its
#: environment pages' sections); the docs site makes each id's page from them.
DOCSTRING_SECTIONS = (
    "Description",
    "Action Space",
    "Observation Space",
    "Rewards",
    "Starting State",
    "Episode End",
    "Arguments",
    "Version History",
)

#: The render modes every environment supports.
RENDER_MODES = ["ansi", "rgb_array"]

#: The errors of the episode guard (one wording for every environment).
STEP_BEFORE_RESET = "step() called before reset(); call reset() first"
STEP_AFTER_END = "step() called after the episode has ended (terminated or truncated); call reset() first"


class QuantEnv(gym.Env[ObsType, ActType], Generic[ObsType, ActType]):
    """Base of every quant-envs environment (see the module docstring)."""

    metadata = {"render_modes": RENDER_MODES, "render_fps": 4}

    #: the episode has ended (or never begun): step() raises until reset()
    _done: bool = True
    #: reset() (or the constructor) has made a first state to step from
    _begun: bool = False

    # ---------------------------------------------------------------------------- arguments
    def _set_render_mode(self, render_mode: str | None) -> None:
        """Check ``render_mode`` (None or one of ``metadata["render_modes"]``) and keep it."""
        self.render_mode = check_choice("render_mode", render_mode, [None, *self.metadata["render_modes"]])

    # ------------------------------------------------------------------------ episode guard
    def _begin_episode(self) -> None:
        """The state is ready: ``step()`` may be called until the episode ends."""
        self._begun = True
        self._done = False

    def _check_can_step(self) -> None:
        """Raise ``RuntimeError`` before the first episode began or after it ended."""
        if not self._begun:
            raise RuntimeError(STEP_BEFORE_RESET)
        if self._done:
            raise RuntimeError(STEP_AFTER_END)

    # ---------------------------------------------------------------------------- rendering
    def render(self) -> str | np.ndarray | None:
        """A text frame (``render_mode="ansi"``) or an RGB image (``"rgb_array"``); None, with a
        warning, without a ``render_mode``."""
        if self.render_mode is None:
            gym.logger.warn(f"render() called without a render_mode; pass render_mode= one of "
                            f"{self.metadata['render_modes']} when making {type(self).__name__}")
            return None
        if self.render_mode == "ansi":
            return self._render_ansi()
        return self._render_rgb_array()

    def _render_ansi(self) -> str:
        raise NotImplementedError(f"{type(self).__name__} has no text rendering")

    def _render_rgb_array(self) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} has no image rendering")
