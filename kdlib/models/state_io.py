"""Reading state dicts and checking them against a model: the all-or-nothing rule every loader follows.

:func:`read_state` accepts a path or a mapping, unwraps ``{'state_dict': ...}`` / ``{'model': ...}`` and a DDP
``module.`` prefix; :func:`check_and_build` compares the incoming tensors with the model's and raises one
:class:`OfficialCheckpointError` naming the missing / unexpected / mis-shaped keys. Used by the official
CNN layouts (:mod:`kdlib.models.official`) and SegFormer's (:mod:`kdlib.models.segformer`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Tuple, Union

import torch
from torch import Tensor

StateSource = Union[Mapping[str, Tensor], str, os.PathLike]


class OfficialCheckpointError(ValueError):
    """A checkpoint does not fit the model; the message names the offending keys and what to do."""


def read_state(source: StateSource) -> Dict[str, Tensor]:
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file not found: {path}")
        source = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(source, Mapping):
        raise OfficialCheckpointError(f"expected a state dict (mapping of names to tensors), got {type(source)}")
    for wrapper in ("state_dict", "model"):  # tolerate {'state_dict': {...}} style wrappers
        if wrapper in source and isinstance(source[wrapper], Mapping):
            source = source[wrapper]
    state = dict(source)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


def summarise_keys(keys: List[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def check_and_build(model_state: Mapping[str, Tensor], incoming: Mapping[str, Tensor], what: str,
                     hint: str, tolerated_extra: Tuple[str, ...] = (),
                     display: Callable[[str], str] = lambda key: key) -> Dict[str, Tensor]:
    """Validate ``incoming`` (already in kdlib names) against ``model_state``; return the full dict to load.

    ``display`` maps a kdlib key to the name the user's file uses, so that errors name the file's keys.
    """
    missing = [display(k) for k in model_state if k not in incoming and not k.endswith("num_batches_tracked")]
    unexpected = [display(k) for k in incoming if k not in model_state and not k.startswith(tolerated_extra)]
    mismatched = [f"{display(k)} {tuple(incoming[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in model_state.items() if k in incoming and incoming[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"missing keys: {summarise_keys(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {summarise_keys(unexpected)}")
    if mismatched:
        problems.append(f"shape mismatches: {summarise_keys(mismatched)}")
    if problems:
        raise OfficialCheckpointError(f"{what} does not fit the model; nothing was loaded.\n  "
                                      + "\n  ".join(problems) + f"\n  {hint}")
    full = {}
    for k, v in model_state.items():
        full[k] = incoming[k] if k in incoming else v  # only num_batches_tracked can be absent
    return full


__all__ = ["OfficialCheckpointError", "StateSource", "check_and_build", "read_state", "summarise_keys"]
