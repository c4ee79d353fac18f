"""Execute a repository notebook (jupytext .py) through papermill, as `kdlib grid` does, for the tests."""
from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def execute(notebook: str, parameters: dict) -> None:
    """Run ``notebooks/<notebook>`` with ``parameters`` into ``<output_dir>/executed.ipynb`` (cwd = repo root)."""
    import jupytext
    import papermill as pm

    nb = jupytext.read(REPO / "notebooks" / notebook)
    out = Path(parameters["output_dir"]) / "executed.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(nb, str(out), parameters=parameters, kernel_name="python3", progress_bar=False,
                        cwd=str(REPO))
