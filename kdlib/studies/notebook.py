"""Small helpers that keep notebooks thin: run a training config, save the cell's metrics for the grid."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Sequence

from kdlib.studies.grid import METRICS_FILE


def save_metrics(output_dir: Optional[os.PathLike], metrics: Mapping[str, Any]) -> Optional[Path]:
    """Write ``metrics`` as ``<output_dir>/metrics.json`` (atomically); ``None`` output_dir: do nothing."""
    from kdlib.studies.plan import active_plan

    if not output_dir or active_plan() is not None:   # kdlib plan writes nothing
        return None
    from kdlib.atomic import write_json

    return write_json(Path(output_dir) / METRICS_FILE, dict(metrics))


def parse_extra(extra: str) -> Dict[str, Any]:
    """``"key=value key2=value2"`` (values as YAML) → dict, as ``kdlib train`` overrides."""
    from kdlib.engine.config import parse_overrides

    return parse_overrides(extra.split()) if extra else {}


def train_config(preset: str, overrides: Mapping[str, Any], run_dir: os.PathLike,
                 progress: bool = False, nproc_per_node: int = 1,
                 imagenet_dir: Optional[os.PathLike] = None) -> Dict[str, Any]:
    """Resolve ``preset`` + ``overrides`` and train into ``run_dir`` (reused if it already finished).

    ``nproc_per_node > 1`` trains in that many processes (``torchrun --standalone``, DDP: one per GPU, or
    gloo on CPU) instead of in this kernel; the result is read back from the run's ``metrics.json``.
    ``imagenet_dir``: a folder of the official ImageNet files; the student's own file is used unless
    ``overrides`` set ``student_imagenet`` (``"none"``: no ImageNet initialisation, recorded).
    Before training, :func:`kdlib.engine.preflight.check_run` stops a run that cannot work (a paper preset
    without its ImageNet file, unknown names or options, more processes than GPUs). Under ``kdlib plan``
    (:mod:`kdlib.studies.plan`) the run is checked and recorded instead of trained.
    """
    import sys

    from kdlib.engine.config import resolve_config
    from kdlib.engine.preflight import check_run, imagenet_path
    from kdlib.engine.reuse import train_or_reuse
    from kdlib.studies.plan import active_plan

    run_dir = Path(run_dir)
    overrides = {**dict(overrides), "run_dir": str(run_dir)}
    cfg = resolve_config(preset, overrides)
    if imagenet_dir not in (None, "") and "student_imagenet" not in overrides:
        cfg = resolve_config(preset, {**overrides, "student_imagenet": imagenet_path(imagenet_dir, cfg.student)})
    check_run(cfg, nproc_per_node)
    plan = active_plan()
    if plan is not None:   # `kdlib plan`: record the checked run, train nothing
        return plan.record(cfg, run_dir, nproc_per_node)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                str(nproc_per_node), "-m", "kdlib", "train"]

    def with_torchrun(cfg: Any, resume: bool) -> Dict[str, Any]:
        return train_in_subprocess(torchrun, cfg, run_dir, resume, progress, "torchrun training")
    return train_or_reuse(cfg, progress=progress, launch=with_torchrun if nproc_per_node > 1 else None,
                          fix="use another output_dir, or delete that run to retrain it")


def train_in_subprocess(launcher: Sequence[str], cfg: Any, run_dir: Path, resume: bool, progress: bool,
                        what: str = "training in a subprocess") -> Dict[str, Any]:
    """Run ``launcher + --config <cfg yaml> --run-dir <run_dir> [--resume] [--quiet]`` (a ``kdlib train``-like
    command line) and return the run's ``metrics.json``; a failure raises ``RuntimeError`` with stderr's tail."""
    import subprocess

    run_dir.mkdir(parents=True, exist_ok=True)
    requested = run_dir.parent / f"{run_dir.name}.requested.yaml"
    requested.write_text(cfg.to_yaml())
    command = [*launcher, "--config", str(requested), "--run-dir", str(run_dir)]
    command += ["--resume"] if resume else []
    command += [] if progress else ["--quiet"]
    proc = subprocess.run(command, capture_output=not progress, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or "")[-3000:] if not progress else ""
        raise RuntimeError(f"{what} failed (exit {proc.returncode}): {run_dir}\n{tail}")
    return json.loads((run_dir / "metrics.json").read_text())


__all__ = ["parse_extra", "save_metrics", "train_config", "train_in_subprocess"]
