"""Show results inside a notebook: tables as rendered tables, figures inline (the executed notebooks committed
under results/ then carry what a reader wants to see). Outside IPython both fall back to plain text."""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import pandas as pd


def _display(obj: object, fallback: str) -> None:
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:   # plain Python
        print(fallback)
        return
    if get_ipython() is None:
        print(fallback)
    else:
        display(obj)


def show_table(table: pd.DataFrame, title: Optional[str] = None) -> None:
    """The table as a rendered markdown table (:func:`kdlib.report.tables.render_table`'s formatting)."""
    from IPython.display import Markdown

    from kdlib.report.tables import render_table

    text = (f"**{title}**\n\n" if title else "") + render_table(table)
    _display(Markdown(text), text)


def show_figures(figures_dir: Optional[os.PathLike]) -> List[Path]:
    """Every PNG under ``figures_dir`` (sorted), shown inline; none when the folder is empty or not given."""
    if not figures_dir or not Path(figures_dir).is_dir():
        return []
    from IPython.display import Image

    shown = sorted(Path(figures_dir).rglob("*.png"))
    for path in shown:
        _display(Image(filename=str(path)), f"figure: {path}")
    return shown


__all__ = ["show_figures", "show_table"]
