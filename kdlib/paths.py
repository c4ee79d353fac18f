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

import os
from pathlib import Path

ENV_VAR = "KDLIB_HOME"


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
    root = project_root()
    if Path.cwd().resolve() != root:
        os.chdir(root)


__all__ = ["ENV_VAR", "project_root", "use_project_root"]
