"""The one way a study gets a run: reuse it if it finished, resume it if it was interrupted, else train it.

A run directory that holds a run made with *other* settings is never taken for the requested one: it is an
error naming the differing fields and what to do (:func:`kdlib.engine.rundir.reusable_result`).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Sequence, Union

from kdlib.engine.config import TrainConfig

if TYPE_CHECKING:
    import os

#: ``launch(cfg, resume) -> metrics``: trains ``cfg`` somewhere else (``torchrun``, a fresh process).
Launcher = Callable[[TrainConfig, bool], Dict[str, Any]]


def train_or_reuse(cfg: TrainConfig, progress: bool = True, fresh: bool = False,
                   launch: Optional[Launcher] = None,
                   fix: str = "use another run folder, or delete that run to retrain it") -> Dict[str, Any]:
    """The metrics of the run ``cfg`` describes (``cfg.run_dir`` must be set).

    Finished with this config: its ``metrics.json``, nothing trained. Interrupted with this config: resumed
    from its last checkpoint. Absent: trained. ``fresh``: retrained from scratch whatever is there.
    ``launch`` trains elsewhere instead of in this process (default :func:`kdlib.engine.trainer.train`);
    ``fix`` is what the error tells the user when the folder holds a run made with other settings.
    """
    from kdlib.engine.rundir import reusable_result
    from kdlib.engine.trainer import train

    if not cfg.run_dir:
        raise ValueError("train_or_reuse needs cfg.run_dir")
    run_dir = Path(cfg.run_dir)
    if fresh:
        return train(cfg, overwrite=True, progress=progress)
    done = reusable_result(run_dir, cfg.to_yaml(), fix)
    if done is not None:
        return done
    resume = (run_dir / "config.yaml").is_file()
    if launch is not None:
        return launch(cfg, resume)
    return train(cfg, resume=resume, progress=progress)


def install_shipped_run(shipped: Path, run_dir: Path, cfg: TrainConfig, files: Sequence[str], retrain: str,
                        other_settings: str = "refuse") -> bool:
    """Copy a committed finished run (``files`` of the folder ``shipped``: weights, ``config.yaml``,
    ``metrics.json``) into ``run_dir`` when no run is there yet; True if copied.

    The committed run must have been made with ``cfg`` (the run folder aside): otherwise ``other_settings=
    "refuse"`` raises ``ValueError`` naming the fields and ``retrain`` (how to train it instead), and ``"skip"``
    installs nothing (the run is then trained as requested). The copy goes to a temporary folder renamed at the end,
    so ``run_dir`` holds a whole run or none. :func:`train_or_reuse` then reuses it.
    """
    from kdlib.engine.rundir import config_changes

    if (run_dir / "config.yaml").is_file() or not all((shipped / f).is_file() for f in files):
        return False
    changed = config_changes(shipped, cfg.to_yaml())
    if changed and other_settings == "skip":
        return False
    if changed:
        raise ValueError(f"the committed run {shipped} was made with other settings ({', '.join(changed)}); "
                         f"{retrain}")
    _copy_whole(shipped, run_dir, files)
    return True


def _copy_whole(source: Path, target: Path, files: Sequence[str]) -> None:
    """Copy ``files`` of ``source`` into a new folder ``target``: into a temporary folder renamed at the end, so
    ``target`` holds all of them or does not exist."""
    import shutil

    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in files:
        shutil.copyfile(source / name, tmp / name)
    tmp.rename(target)


#: Default teacher run folders and the committed runs that fill them (``make quick`` / ``kdlib proxy`` install
#: them too): a notebook or ``kdlib train`` naming the default finds it in a fresh clone.
SHIPPED_RUNS = {"runs/quick/teacher": "results/quick/teacher", "runs/proxy/teacher": "results/proxy/teacher"}
SHIPPED_FILES = ("best.pt", "config.yaml", "metrics.json")


def install_default_run(path: Union[str, "os.PathLike[str]"]) -> bool:
    """When ``path`` is one of :data:`SHIPPED_RUNS`' default folders (relative to the working directory) and
    missing, copy the committed run there (whole or nothing); True if copied. The loader then checks the
    model, width and classes as for any checkpoint."""
    key = Path(path).as_posix().rstrip("/")
    shipped = Path(SHIPPED_RUNS.get(key, ""))
    target = Path(key)
    if key not in SHIPPED_RUNS or target.exists() or not all((shipped / f).is_file() for f in SHIPPED_FILES):
        return False
    _copy_whole(shipped, target, SHIPPED_FILES)
    print(f"kdlib: installed the committed {shipped} into {target}", flush=True)
    return True

__all__ = ["Launcher", "SHIPPED_RUNS", "install_default_run", "install_shipped_run", "train_or_reuse"]
