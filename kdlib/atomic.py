"""Atomic file writes: the one way kdlib writes a result file, so a crash never leaves a half-written file.

Every writer writes a hidden temporary file beside the target (``.<name>.tmp``) and renames it over the target
(:func:`os.replace`, atomic on one file system). Readers therefore see the old file or the new one, never a
part; a file whose presence means "finished" (a run's ``metrics.json``, a grid cell's ``done.json``) is only
there once complete.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator, Union

PathLike = Union[str, os.PathLike]


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it to ``path``, on error remove it.

    For writers that take a path (``torch.save``, ``DataFrame.to_csv``, ``fig.savefig``)::

        with atomic_path(out / "runs.csv") as tmp:
            table.to_csv(tmp, index=False)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON (unknown types as ``str``) to ``path`` atomically; return the path."""
    return write_text(path, json.dumps(data, indent=2, default=str) + "\n")


__all__ = ["atomic_path", "write_json", "write_text"]
