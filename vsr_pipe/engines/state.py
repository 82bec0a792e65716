"""Weights given to an engine, checked against the model it was built from. Every engine module
imports this one; it imports no engine (``base.py`` dispatches to the engines, so they cannot
import it back)."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..errors import WeightsError


def match_state(model: torch.nn.Module, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` keyed by ``model``'s own state-dict names, checked against them.

    Keys may also be those of a direct child (a wrapped net's own state dict: ``couplings.0...``
    for ``BoundDown``'s ``model.couplings.0...``). Every parameter must be given; buffers may be
    left out (the engine keeps their values). Raises ``WeightsError`` for an unknown key, a shape
    that differs, or a missing parameter.
    """
    own = model.state_dict()
    prefixes = [""] + [f"{name}." for name, _ in model.named_children()]
    prefix = next((p for p in prefixes if all(p + k in own for k in state)), None)
    if prefix is None:
        unknown = next(k for k in state if k not in own)
        raise WeightsError(
            f"weights key '{unknown}' is not one of {type(model).__name__}'s ({len(own)} keys, e.g. '{next(iter(own))}')"
        )
    matched = {prefix + k: v for k, v in state.items()}
    for key, value in matched.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise WeightsError(
                f"weights '{key}' have shape {tuple(value.shape)}; {type(model).__name__} needs {tuple(own[key].shape)}"
            )
    missing = [k for k, _ in model.named_parameters() if k not in matched]
    if missing:
        raise WeightsError(f"weights lack {len(missing)} of {type(model).__name__}'s parameters, e.g. '{missing[0]}'")
    return matched
