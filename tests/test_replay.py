"""Replay (kdlib.studies.replay): a run's committed numbers are found by its run_dir, a run never committed is an
error, and when several steps committed the same run folder the step being redrawn keeps its own row."""
import pandas as pd
import pytest

from kdlib.studies import replay


def _write(folder, step, commit, miou):
    path = folder / step / "cell" / "runs.csv"
    path.parent.mkdir(parents=True)
    pd.DataFrame([{"run_dir": "runs/proxy/main/r", "miou": miou, "git_commit": commit,
                   "started": f"2026-12-0{miou}", "iou/Road": 0.5}]).to_csv(path, index=False)


def test_each_step_keeps_its_own_row_of_a_run_committed_twice(tmp_path, monkeypatch):
    _write(tmp_path, "why_map_size", "aaa", 1)
    _write(tmp_path, "why_pixel_queue", "bbb", 2)
    monkeypatch.setenv(replay.ENV_VAR, str(tmp_path))
    monkeypatch.setenv(replay.PREFER_VAR, "why_map_size")
    got = replay.replayed_result("runs/proxy/main/r")
    assert (got["git_commit"], got["miou"], got["per_class_iou"]) == ("aaa", 1, {"Road": 0.5})
    monkeypatch.setenv(replay.PREFER_VAR, "why_pixel_queue")
    assert replay.replayed_result("runs/proxy/main/r")["git_commit"] == "bbb"
    with pytest.raises(ValueError, match="never trains"):
        replay.replayed_result("runs/proxy/main/other")
    monkeypatch.delenv(replay.ENV_VAR)
    assert replay.replayed_result("runs/proxy/main/r") is None
