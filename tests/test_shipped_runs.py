"""Finished runs carried between sessions without weights (kdlib.studies.shipped_runs, `kdlib proxy --ship`):
only finished runs travel, nothing with weights, an installed copy is reused and never re-trained, never
replaces a run that is there, is not counted as reproduced by --verify, and is not taken for a run with weights."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from kdlib.studies import proxy
from kdlib.studies.shipped_runs import MARK, finished_runs, install_runs, is_installed_copy, ship_runs

RUN = "student-deeplabv3resnet18_method-none_seed-0"


def _finished(run_dir: Path, miou: float = 0.25, config: str = "x: 1\n") -> Path:
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(config)
    (run_dir / "env.json").write_text(json.dumps({"git_commit": "abc1234", "started": "2026-12-04 10:00:00"}))
    (run_dir / "metrics.json").write_text(json.dumps({"miou": miou, "pixel_acc": 0.5, "per_class_iou": {}}))
    (run_dir / "log.jsonl").write_text('{"iteration": 10, "loss": 1.0}\n')
    (run_dir / "best.pt").write_bytes(b"weights")
    (run_dir / "checkpoint_last.pt").write_bytes(b"state")
    return run_dir


def test_only_finished_runs_are_shipped_and_never_their_weights(tmp_path):
    runs, shipped = tmp_path / "runs", tmp_path / "shipped"
    _finished(runs / "main" / RUN)
    _finished(runs / "why_schedule" / "iterations-1600" / RUN, miou=0.3)
    stopped = runs / "why_schedule" / "iterations-3200" / RUN
    stopped.mkdir(parents=True)
    (stopped / "config.yaml").write_text("x: 1\n")
    (stopped / "checkpoint_last.pt").write_bytes(b"state")
    _finished(runs / "teacher")                                   # not a student folder: not shipped here
    new = ship_runs(runs, shipped, ("main", "why_*"))
    assert sorted(p.relative_to(shipped).as_posix() for p in new) == [
        f"main/{RUN}", f"why_schedule/iterations-1600/{RUN}"]
    copy = shipped / "why_schedule" / "iterations-1600" / RUN
    assert sorted(f.name for f in copy.iterdir()) == ["config.yaml", "env.json", "log.jsonl", "metrics.json"]
    assert json.loads((copy / "metrics.json").read_text())["miou"] == 0.3
    assert ship_runs(runs, shipped, ("main", "why_*")) == []        # shipped once: a finished run never changes


def test_installed_runs_fill_only_empty_places_and_carry_a_mark(tmp_path):
    shipped, runs = tmp_path / "shipped", tmp_path / "runs"
    _finished(shipped / "main" / RUN, miou=0.25)
    _finished(shipped / "main" / RUN.replace("seed-0", "seed-1"), miou=0.5)
    here = _finished(runs / "main" / RUN.replace("seed-0", "seed-1"), miou=0.75)   # trained here: kept
    installed = install_runs(shipped, runs)
    assert installed == [runs / "main" / RUN]
    assert is_installed_copy(runs / "main" / RUN) and not is_installed_copy(here)
    assert json.loads((here / "metrics.json").read_text())["miou"] == 0.75
    assert json.loads((runs / "main" / RUN / MARK).read_text())["shipped_from"] == str(shipped / "main" / RUN)
    assert install_runs(shipped, runs) == []
    # an installed copy is not shipped back (it is already), nor found as a run trained here
    assert finished_runs(runs, ("main",)) == [here]


def test_an_installed_run_is_reused_not_retrained(tmp_path, monkeypatch):
    from kdlib.engine import trainer
    from kdlib.engine.config import resolve_config
    from kdlib.engine.reuse import train_or_reuse

    cfg = resolve_config("quick", {"run_dir": str(tmp_path / "runs" / "main" / RUN)})
    _finished(tmp_path / "shipped" / "main" / RUN, miou=0.125, config=cfg.to_yaml())
    install_runs(tmp_path / "shipped", tmp_path / "runs")

    def no_training(*args, **kwargs):
        raise AssertionError("a shipped run must be reused, not retrained")

    monkeypatch.setattr(trainer, "train", no_training)
    assert train_or_reuse(cfg, progress=False)["miou"] == 0.125


def test_verify_and_figure_steps_do_not_take_an_installed_copy(tmp_path, monkeypatch):
    from kdlib.engine.rundir import weights_file

    monkeypatch.chdir(tmp_path)
    trained = _finished(tmp_path / "runs/proxy/main" / RUN.replace("seed-0", "seed-1"), miou=0.5)
    _finished(tmp_path / "shipped" / "main" / RUN, miou=0.25)
    install_runs(tmp_path / "shipped", tmp_path / "runs/proxy")
    copy = Path("runs/proxy/main") / RUN
    table = tmp_path / "results/proxy/main_runs/cell"
    table.mkdir(parents=True)
    (table / "runs.csv").write_text(f"run_dir,miou\n{copy},0.25\nruns/proxy/main/{trained.name},0.5\n")
    checked = proxy.verify_runs(tmp_path / "results/proxy")
    assert checked["run_dir"].tolist() == [f"runs/proxy/main/{trained.name}"]
    step = next(s for s in proxy.STEPS if s.name == "fig_similarity")
    assert str(copy) in proxy.missing_weights(step)
    with pytest.raises(FileNotFoundError, match="without its weights"):
        weights_file(copy)


def test_ship_and_status_from_the_command_line(tmp_path, monkeypatch, capsys):
    from kdlib.cli import main

    monkeypatch.chdir(tmp_path)
    _finished(tmp_path / "runs/proxy/main" / RUN)
    assert main(["proxy", "--ship"]) == 0
    assert "1 finished run(s) newly shipped" in capsys.readouterr().out
    assert (tmp_path / "results/proxy/shipped_runs/main" / RUN / "metrics.json").is_file()
    assert not (tmp_path / "results/proxy/shipped_runs/main" / RUN / "best.pt").exists()

    # a fresh clone: the shipped run is not under runs/ yet; --status counts it as waiting to be installed
    import shutil

    shutil.rmtree(tmp_path / "runs")
    assert main(["proxy", "--status", "why_map_size"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:4] == ["maps-8x16", "0/15", "runs", "done"]
    assert "(+1 shipped in results/proxy/shipped_runs, installed when the step runs)" in out[1]
    assert not (tmp_path / "runs").exists()                            # --status changes nothing
