"""Progress output: periodic plain lines when stderr is not a terminal (log files, CI, kernels)."""
from __future__ import annotations

import io
import sys

from kdlib.progress import progress_bar


def test_log_output_is_whole_lines_without_carriage_returns(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    monkeypatch.setenv("KDLIB_PROGRESS_SECONDS", "0")
    for _ in progress_bar(range(5), desc="train kd"):
        pass
    text = out.getvalue()
    assert "\r" not in text
    lines = text.strip().split("\n")
    assert lines[-1].startswith("train kd: 100%") and "5/5" in lines[-1]
    assert all(line.startswith("train kd:") for line in lines)


def test_log_output_is_rate_limited(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    monkeypatch.setenv("KDLIB_PROGRESS_SECONDS", "3600")
    bar = progress_bar(total=1000, desc="grid")
    for _ in range(1000):
        bar.update(1)
    bar.close()
    lines = out.getvalue().strip().split("\n")
    assert 1 <= len(lines) <= 3 and "1000/1000" in lines[-1]   # the start, maybe one more, and the end


def test_a_training_run_logs_a_few_lines_not_one_per_step(tiny_data_and_teacher, tmp_path, monkeypatch, capfd):
    """The trainer's bar (loss terms as its postfix) refreshes only every KDLIB_PROGRESS_SECONDS in a log."""
    from kdlib.engine.config import resolve_config
    from kdlib.engine.trainer import train
    from kdlib.studies.notebook import parse_extra

    extra, _ = tiny_data_and_teacher
    monkeypatch.setenv("KDLIB_PROGRESS_SECONDS", "3600")
    overrides = {**parse_extra(extra), "iterations": 12, "log_interval": 1, "eval_interval": 12,
                 "checkpoint_interval": 12, "run_dir": str(tmp_path / "run")}
    capfd.readouterr()
    train(resolve_config("quick", overrides), progress=True)
    lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("train none")]
    assert 1 <= len(lines) <= 3 and "12/12" in lines[-1], lines
