"""Finished student runs carried between sessions and clones, without their weights.

A study that spans sessions (the why study: about 5 hours on 2 cores) may lose ``runs/`` between them, and
``runs/`` is not committed. ``kdlib proxy --ship`` copies each finished run's small files
(:data:`SHIPPED_FILES`: config, environment, metrics, per-class IoU, training log; no weights) from
``runs/proxy/<path>`` to ``results/proxy/shipped_runs/<path>``, to be committed. ``kdlib proxy`` installs them
back into ``runs/proxy/<path>`` wherever no run is there yet, and the study then reuses them as finished runs
(:func:`kdlib.engine.reuse.train_or_reuse` reads only ``config.yaml`` and ``metrics.json``), so nothing is
trained twice. Each row of a results table keeps the ``git_commit`` the run was trained at (``env.json``).

An installed run holds :data:`MARK`. It was not trained on this machine, so ``kdlib proxy --verify`` does not
count it as reproduced, and it has no weights, so figure steps that load weights do not take it.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import List, Sequence

#: What is carried: everything a finished run's results row and cost table read, no checkpoint.
SHIPPED_FILES = ("config.yaml", "env.json", "metrics.json", "per_class_iou.csv", "log.jsonl")
#: The files without which a shipped run is not a finished run.
REQUIRED_FILES = ("config.yaml", "env.json", "metrics.json")
#: Written into an installed run folder: where it came from.
MARK = "shipped.json"


def is_installed_copy(run_dir: Path) -> bool:
    """True when ``run_dir`` was installed from a shipped run (not trained here)."""
    return (Path(run_dir) / MARK).is_file()


def finished_runs(runs_root: Path, folders: Sequence[str]) -> List[Path]:
    """The finished run folders (a ``metrics.json`` and a ``config.yaml``) under ``runs_root/<folder>`` for each
    of ``folders`` (glob patterns, e.g. ``why_*``), at any depth, skipping installed copies and temporary folders."""
    runs_root = Path(runs_root)
    found = set()
    for pattern in folders:
        for top in runs_root.glob(pattern):
            for metrics in top.rglob("metrics.json"):
                run_dir = metrics.parent
                if (run_dir / "config.yaml").is_file() and not is_installed_copy(run_dir) \
                        and not any(part.endswith(".tmp") for part in run_dir.parts):
                    found.add(run_dir)
    return sorted(found)


def ship_runs(runs_root: Path, shipped_root: Path, folders: Sequence[str]) -> List[Path]:
    """Copy the small files of every finished run under ``runs_root/<folders>`` to the same relative path under
    ``shipped_root``, where not shipped yet (a shipped run is a finished run: it never changes). Each copy is
    written to a temporary folder renamed at the end, so a shipped folder is whole or absent. Returns the new
    shipped folders."""
    shipped: List[Path] = []
    for run_dir in finished_runs(runs_root, folders):
        target = Path(shipped_root) / run_dir.relative_to(runs_root)
        if all((target / f).is_file() for f in REQUIRED_FILES):
            continue
        _copy_whole(run_dir, target, [f for f in SHIPPED_FILES if (run_dir / f).is_file()])
        shipped.append(target)
    return shipped


def shipped_runs(shipped_root: Path) -> List[Path]:
    """Every whole shipped run folder under ``shipped_root``."""
    root = Path(shipped_root)
    return sorted(p.parent for p in root.rglob("metrics.json")
                  if all((p.parent / f).is_file() for f in REQUIRED_FILES)) if root.is_dir() else []


def install_runs(shipped_root: Path, runs_root: Path) -> List[Path]:
    """Copy each shipped run into ``runs_root`` at its relative path where that folder does not exist yet (a run
    there, finished or interrupted, is never replaced), with :data:`MARK` naming its source. Returns the
    installed folders."""
    installed: List[Path] = []
    for source in shipped_runs(shipped_root):
        target = Path(runs_root) / source.relative_to(shipped_root)
        if target.exists():
            continue
        mark = {"shipped_from": str(source), "installed": time.strftime("%Y-%m-%d %H:%M:%S"),
                "note": "a finished run's files without weights, trained elsewhere: reused, not re-trained"}
        _copy_whole(source, target, [f for f in SHIPPED_FILES if (source / f).is_file()],
                    extra={MARK: json.dumps(mark, indent=1) + "\n"})
        installed.append(target)
    return installed


def _copy_whole(source: Path, target: Path, files: Sequence[str], extra: dict = None) -> None:
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in files:
        shutil.copy2(source / name, tmp / name)
    for name, text in (extra or {}).items():
        (tmp / name).write_text(text)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


__all__ = ["MARK", "REQUIRED_FILES", "SHIPPED_FILES", "finished_runs", "install_runs", "is_installed_copy",
           "ship_runs", "shipped_runs"]
