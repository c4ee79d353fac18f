"""Shared fixtures: a tiny built-in dataset and a tiny teacher run, made once per test session (per worker)."""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import pytest


@pytest.fixture(scope="session")
def tiny_data_and_teacher(tmp_path_factory) -> Tuple[str, Path]:
    """``(extra, teacher_run)``: ``extra`` holds ``kdlib train`` overrides (space-separated key=value) for
    3-iteration runs of width-0.125 models on the ``tiny`` synthetic preset; ``teacher_run`` is a finished
    run of the quick preset's teacher architecture trained with them."""
    from kdlib.studies.notebook import parse_extra
    from kdlib.data.synthetic import generate
    from kdlib.engine.config import resolve_config
    from kdlib.engine.trainer import train

    base = tmp_path_factory.mktemp("tiny_shared")
    data = generate(base / "data", preset="tiny", progress=False)
    extra = (f"data_root={data} dataset_options.preset=tiny crop_size=[48,96] iterations=3 eval_interval=3 "
             f"checkpoint_interval=3 num_workers=0 student_width=0.125 teacher_width=0.125 max_val_samples=4")
    teacher = base / "teacher"
    train(resolve_config("quick", {**parse_extra(extra), "run_dir": str(teacher)}), progress=False)
    return extra, teacher
