"""The one way a study gets a run: reuse it if it finished, resume it if it was interrupted, else train it.

A run directory that holds a run made with *other* settings is never taken for the requested one: it is an
error naming the differing fields and what to do (:func:`kdlib.engine.rundir.reusable_result`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Dict, Optional

from kdlib.engine.config import TrainConfig

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


__all__ = ["Launcher", "train_or_reuse"]
