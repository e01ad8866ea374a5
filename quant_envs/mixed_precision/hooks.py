"""Run a model in eval mode with forward hooks, then put it back as it was (written once).

Finding layer shapes, calibrating quantizers and recording layer inputs for sensitivities all need
the same thing: one forward pass in eval mode with hooks on some modules, after which the model's
train/eval flags are restored and every hook is removed, also when the forward pass raises.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from torch import nn

#: A forward pre-hook ``hook(module, args)`` or a forward hook ``hook(module, args, output)``.
Hook = Callable[..., Any]


@contextlib.contextmanager
def eval_mode_hooks(model: nn.Module, modules_and_hooks: Iterable[tuple[nn.Module, Hook]] = (),
                    pre: bool = True) -> Iterator[nn.Module]:
    """Within the block, ``model`` is in eval mode with each ``(module, hook)`` registered (forward
    pre-hooks with ``pre=True``, forward hooks otherwise). On leaving it, even by an exception, the
    hooks are removed and every submodule gets back its own ``training`` flag. Yields ``model``."""
    modes = [(m, m.training) for m in model.modules()]  # the model itself included
    handles = []
    try:
        for module, hook in modules_and_hooks:
            register = module.register_forward_pre_hook if pre else module.register_forward_hook
            handles.append(register(hook))
        model.eval()
        yield model
    finally:
        for h in handles:
            h.remove()
        for module, mode in modes:  # each its own flag: a frozen norm layer stays in eval mode
            module.training = mode
