"""Progress bars that read well in a terminal and in a log file.

In a terminal (stderr is a TTY) :func:`progress_bar` is an ordinary live ``tqdm`` bar. Anywhere else — a log
file, ``nohup``, a CI job, a Slurm job, a papermill or Jupyter kernel — it prints one plain line at most every
``KDLIB_PROGRESS_SECONDS`` seconds (default 30) and one at the end, instead of thousands of carriage-return
updates (and without Jupyter's widget, so no "IProgress not found" warning)::

    train kd:  40%|####      | 400/1000 [01:02<01:33,  6.4it/s, loss=1.23]
"""
from __future__ import annotations

import os
import sys
from typing import Any, Iterable, Optional, TextIO

DEFAULT_SECONDS = 30.0


def log_interval_seconds() -> float:
    """Seconds between two lines when the output is not a terminal (``KDLIB_PROGRESS_SECONDS``, default 30)."""
    try:
        return max(0.0, float(os.environ.get("KDLIB_PROGRESS_SECONDS", DEFAULT_SECONDS)))
    except ValueError:
        return DEFAULT_SECONDS


class _Lines:
    """A stream for tqdm that turns its carriage-return refreshes into whole lines."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "").rstrip()
        if text:
            self.stream.write(text + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable: Optional[Iterable[Any]] = None, *, total: Optional[int] = None, desc: str = "",
                 disable: bool = False, initial: int = 0, unit: str = "it", leave: bool = True) -> Any:
    """A ``tqdm`` bar over ``iterable`` (or ``total`` steps), live in a terminal, periodic lines elsewhere."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, disable=disable, initial=initial, unit=unit, leave=leave,
                    dynamic_ncols=True)
    from tqdm import tqdm

    seconds = log_interval_seconds()
    return tqdm(iterable, total=total, desc=desc, disable=disable, initial=initial, unit=unit, leave=leave,
                file=_Lines(sys.stderr), mininterval=seconds, maxinterval=max(seconds, 1.0), ascii=True, ncols=100)


__all__ = ["log_interval_seconds", "progress_bar"]
