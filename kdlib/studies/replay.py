"""Replay: re-execute a study's notebooks from its committed results instead of training.

When ``$KDLIB_REPLAY`` names a folder, :func:`kdlib.studies.study.run_study` takes every run's numbers from the
``runs.csv`` files under that folder (matched by ``run_dir``) and trains nothing; a run that is not there is an
error, never a training. The notebooks then redraw their figures and rewrite their tables and executed
notebooks exactly as a real run would, from the same numbers and with each run's original ``git_commit``.
``kdlib proxy --redraw`` uses it to regenerate the committed proxy study's figures after a change to the
figure code, without retraining.
"""
from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, Optional

ENV_VAR = "KDLIB_REPLAY"
#: A sub-folder of the replay folder whose rows win when a run appears in several ``runs.csv`` files (the same run
#: folder trained again for another step, e.g. a main run re-trained from a clean tree): ``kdlib proxy --redraw``
#: sets it to the step being redrawn, so each step keeps its own rows' commits and start times.
PREFER_VAR = "KDLIB_REPLAY_PREFER"
#: Columns of a runs.csv row that are the run's own numbers (besides ``iou/<class>``).
RESULT_COLUMNS = ("miou", "pixel_acc", "best_miou", "wall_time_s", "peak_memory_mb", "report_checkpoint",
                  "final_split", "best_checkpoint_miou", "final_model_miou", "val_split", "best_iteration")


def replay_source() -> Optional[Path]:
    """The folder runs are replayed from, or None (the normal case: runs are trained or reused)."""
    value = os.environ.get(ENV_VAR)
    return Path(value) if value else None


@lru_cache(maxsize=4)
def _rows(folder: str, prefer: str = "") -> Dict[str, Dict[str, Any]]:
    import pandas as pd

    rows: Dict[str, Dict[str, Any]] = {}
    paths = sorted(Path(folder).rglob("runs.csv"))
    if prefer:   # read last, so its rows win
        paths.sort(key=lambda p: p.relative_to(folder).parts[0] == prefer)
    for path in paths:
        table = pd.read_csv(path)
        if "run_dir" not in table.columns:
            continue
        for row in table.to_dict(orient="records"):
            rows[str(row["run_dir"])] = row
    return rows


def replayed_result(run_dir: os.PathLike) -> Optional[Dict[str, Any]]:
    """The committed result of ``run_dir`` under replay (the keys :func:`kdlib.studies.notebook.train_config`
    returns, plus ``git_commit``); None when not replaying. ``ValueError`` when replaying a run that was never
    committed."""
    source = replay_source()
    if source is None:
        return None
    row = _rows(str(source), os.environ.get(PREFER_VAR, "")).get(str(run_dir))
    if row is None:
        raise ValueError(f"replay ({ENV_VAR}={source}): {run_dir} is not among the committed runs; a replay "
                         f"never trains")

    def present(value: Any) -> bool:
        return not (isinstance(value, float) and math.isnan(value))

    result = {k: row[k] for k in RESULT_COLUMNS if k in row and present(row[k])}
    result["per_class_iou"] = {k[len("iou/"):]: v for k, v in row.items() if k.startswith("iou/")}
    result["git_commit"] = row.get("git_commit") if present(row.get("git_commit")) else None
    result["started"] = row.get("started") if present(row.get("started")) else None
    result.setdefault("best_miou", result.get("miou"))
    return result


__all__ = ["ENV_VAR", "PREFER_VAR", "replay_source", "replayed_result"]
