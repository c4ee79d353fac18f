"""Where relative paths resolve: the project root, whatever directory a notebook's kernel started in.

JupyterLab starts a notebook's kernel in the notebook's folder (``notebooks/``) while every default path of the
notebooks (``runs/quick/teacher``, ``data/...``, ``results/...``) is relative to the project root. Each notebook
therefore calls :func:`use_project_root` first. The root is, in order:

1. ``$KDLIB_HOME`` when set (a folder of your own for data, runs and results);
2. the kdlib checkout this package is imported from (an editable install: the folder holding ``pyproject.toml``
   and ``notebooks/``);
3. the nearest folder, from the current one upwards, that holds ``notebooks/`` and ``results/``;
4. the current folder.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator

ENV_VAR = "KDLIB_HOME"
_KEEP_CWD = [False]   # set by keep_working_directory(): notebook code run in-process must not move its caller


def _looks_like_project(folder: Path) -> bool:
    return (folder / "notebooks").is_dir() and (folder / "results").is_dir()


def project_root() -> Path:
    """The folder relative paths resolve against (see the module docstring for the order)."""
    home = os.environ.get(ENV_VAR)
    if home:
        return Path(home).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file() and _looks_like_project(checkout):
        return checkout
    here = Path.cwd().resolve()
    return next((folder for folder in (here, *here.parents) if _looks_like_project(folder)), here)


def use_project_root() -> None:
    """Make the project root (:func:`project_root`) the working directory: a notebook's first call. Returns
    nothing, so the cell shows no output (no machine path in executed notebooks)."""
    if _KEEP_CWD[0]:
        return
    root = project_root()
    if Path.cwd().resolve() != root:
        os.chdir(root)


@contextlib.contextmanager
def keep_working_directory() -> Iterator[None]:
    """Notebook code executed in this process (``kdlib plan``) leaves the working directory alone: its relative
    paths resolve against the caller's folder, and the caller's folder does not change under it."""
    previous = _KEEP_CWD[0]
    _KEEP_CWD[0] = True
    try:
        yield
    finally:
        _KEEP_CWD[0] = previous


__all__ = ["ENV_VAR", "keep_working_directory", "project_root", "use_project_root"]
