"""A notebook's source as kdlib reads it: the cells, and the names and defaults of its ``parameters`` cell.

Shared by ``kdlib grid`` (papermill execution) and ``kdlib plan`` (planning in-process), so that both refuse a
parameter the notebook does not have, with the closest names.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Dict, List, Sequence, Set, Tuple


def read_notebook(path: Path) -> Any:
    """The notebook (jupytext: ``.ipynb`` or a paired ``.py``), with a default python3 kernelspec."""
    import jupytext

    notebook = jupytext.read(path)
    notebook.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3",
                                                "language": "python"})
    return notebook


def code_cells(notebook: Path) -> List[Tuple[str, Set[str]]]:
    """(source, tags) of every code cell, in order."""
    nb = read_notebook(notebook)
    return [(cell.source, set(cell.metadata.get("tags", []))) for cell in nb.cells if cell.cell_type == "code"]


def notebook_parameters(notebook: os.PathLike) -> Dict[str, Any]:
    """The names and default values of the notebook's ``parameters`` cell."""
    cells = code_cells(Path(notebook))
    source = next((src for src, tags in cells if "parameters" in tags), None)
    if source is None:
        raise ValueError(f"{notebook} has no cell tagged 'parameters'")
    namespace: Dict[str, Any] = {}
    exec(compile(source, f"{notebook}:parameters", "exec"), namespace)  # noqa: S102 - the notebook's own code
    return {k: v for k, v in namespace.items() if not k.startswith("__")}


def check_parameters(notebook: os.PathLike, names: Sequence[str]) -> None:
    """Every name is a parameter of the notebook; otherwise one line with the closest names."""
    from kdlib.registry import did_you_mean

    known = list(notebook_parameters(notebook))
    for name in names:
        if name not in known and name != "output_dir":
            raise ValueError(f"{Path(notebook).name} has no parameter {name!r}{did_you_mean(name, known)}; "
                             f"its parameters: "
                             f"{', '.join(known)}")


__all__ = ["check_parameters", "code_cells", "notebook_parameters", "read_notebook"]
