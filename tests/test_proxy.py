"""The proxy study's plan (kdlib.studies.proxy): every cell fits its notebook, training cells precede the final
cell that reads their runs, and the printed `kdlib grid` commands parse back to the same cells."""
from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from kdlib.studies import proxy

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)


def notebook_parameters(name: str) -> set:
    import jupytext
    import papermill as pm

    return set(pm.inspect_notebook(jupytext.read(REPO / "notebooks" / f"{name}.py")))


def test_every_cell_only_sets_parameters_its_notebook_has():
    known = {}
    for step, phase, root, notebook, params, jobs in proxy.plan(["main", "why"]):
        names = known.setdefault(notebook, notebook_parameters(notebook))
        assert set(params) <= names, (step, phase, set(params) - names)
        assert all(isinstance(v, list) and v for v in params.values())


def test_training_cells_come_before_their_final_cell_and_write_no_figures():
    calls = proxy.plan(["main", "why"])
    steps = [c[0] for c in calls]
    assert set(steps) == set(proxy.STEP_NAMES)
    for name in proxy.STEP_NAMES:
        mine = [c for c in calls if c[0] == name]
        assert [c[1] for c in mine][-1] == "final" and all(c[1] == "train" for c in mine[:-1])
        final = mine[-1]
        assert final[2] == proxy.RESULTS and final[5] == 1
        step = next(s for s in proxy.STEPS if s.name == name)
        assert final[4]["figures_dir"] == ([str(proxy.FIGURES / name)] if step.figures else [""])
        for _, _, root, _, params, jobs in mine[:-1]:
            assert root == proxy.CELLS and params["figures_dir"] == [""] and jobs == 2
    # the main tables (and main_runs' own final table) read exactly runs that main_runs trains: same run folder,
    # seeds and teacher, and every (student, method) row among the training cells
    cells = [c[4] for c in calls if c[0] == "main_runs" and c[1] == "train"]
    trained = {(s, m) for p in cells for s in p["students"] for m in p["methods"]}
    assert len(trained) == 19 and ("deeplabv3_mobilenetv2", "kd") not in trained   # no table has that row
    for table in [*proxy.TABLE_ROWS, "main_runs"]:
        final = [c for c in calls if c[0] == table][-1][4]
        assert final["runs_root"] == cells[0]["runs_root"] and final["seeds"] == cells[0]["seeds"] == ["0,1,2"]
        rows = {(s, m) for s in final["students"][0].split(",") for m in final["methods"][0].split(",")}
        assert rows <= trained, (table, rows - trained)


def test_sweep_cells_split_one_value_per_cell_other_panels_empty():
    fig7 = [c for c in proxy.plan(["cirkd_fig7"]) if c[1] == "train"]
    assert len(fig7) == 3
    first = fig7[0][4]
    assert first["temperatures"] == ["0.05", "0.1", "0.2"] and first["extra"] == [proxy.SHORT]
    assert first["pixel_contrast_sizes"] == [""] and first["region_contrast_sizes"] == [""]


def test_grid_command_parses_back_to_the_same_cells():
    from kdlib.studies.grid import expand_grid, parse_param

    for step, phase, root, notebook, params, jobs in proxy.plan(["main_runs", "cirkd_fig6", "afdcd_table5"]):
        argv = shlex.split(proxy.grid_command(notebook, params, root, step, jobs))
        specs = [argv[i + 1] for i, a in enumerate(argv) if a == "--param"]
        parsed = dict(parse_param(spec) for spec in specs)
        as_text = {k: [str(v) for v in vs] for k, vs in parsed.items()}
        assert as_text == {k: [str(v) for v in vs] for k, vs in params.items()}, step
        assert len(expand_grid(parsed, [0])) == len(expand_grid(params, [0]))


def test_unknown_step_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown proxy step"):
        proxy.plan(["cirkd_table9"])


def test_run_proxy_drives_run_grid_in_plan_order(monkeypatch, tmp_path):
    """Without training: the teacher and every grid call happen in plan order with the plan's arguments."""
    import pandas as pd

    from kdlib.studies import grid as grid_module
    from kdlib.studies.grid import CellResult

    calls = []
    monkeypatch.setattr(proxy, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(proxy, "SHIPPED_STUDENT_RUNS", tmp_path / "results" / "shipped_runs")   # nothing installed
    monkeypatch.setattr(proxy, "ensure_teacher", lambda progress, train_teacher=False: calls.append("teacher") or {})

    def fake_run_grid(notebook, params, jobs, results_root, study, progress, seeds=None):
        calls.append((Path(notebook).stem, study, jobs, str(results_root)))
        return pd.DataFrame(), [CellResult("x", {}, "ok")]

    monkeypatch.setattr(grid_module, "run_grid", fake_run_grid)
    records = proxy.run_proxy(["cirkd_table4"], jobs=2, progress=False)
    assert calls == ["teacher", ("cirkd_table4", "cirkd_table4", 2, str(proxy.CELLS)),
                     ("cirkd_table4", "cirkd_table4", 1, str(tmp_path / "results"))]
    assert [r["phase"] for r in records] == ["train", "train", "final"]
    timing = pd.read_csv(tmp_path / "results" / "timing.csv")
    assert list(timing["step"]) == ["teacher", "cirkd_table4", "cirkd_table4"] and timing["failed"].sum() == 0


def _ship_teacher(root, yaml_text):
    shipped = root / proxy.SHIPPED_TEACHER
    shipped.mkdir(parents=True)
    (shipped / "config.yaml").write_text(yaml_text)
    (shipped / "best.pt").write_bytes(b"weights")
    (shipped / "metrics.json").write_text('{"miou": 0.4, "pixel_acc": 0.8, "per_class_iou": {}}')
    return shipped


def test_the_committed_teacher_seeds_the_teacher_run_and_is_not_retrained(tmp_path, monkeypatch):
    from kdlib.engine import trainer

    monkeypatch.chdir(tmp_path)
    _ship_teacher(tmp_path, proxy.teacher_config().to_yaml())

    def no_training(*args, **kwargs):
        raise AssertionError("the committed teacher must be reused, not retrained")

    monkeypatch.setattr(trainer, "train", no_training)
    result = proxy.ensure_teacher(progress=False)
    assert result["miou"] == 0.4
    assert (tmp_path / proxy.TEACHER_RUN / "best.pt").read_bytes() == b"weights"
    assert not (tmp_path / "runs" / "proxy" / "teacher.tmp").exists()
    assert (tmp_path / proxy.RESULTS / "teacher.json").is_file()
    assert proxy.install_shipped_teacher() is False          # the run exists now: never overwritten


def test_a_committed_teacher_with_other_settings_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _ship_teacher(tmp_path, proxy.teacher_config({"lr": 0.5}).to_yaml())
    with pytest.raises(ValueError, match="--train-teacher"):
        proxy.install_shipped_teacher()
    assert not (tmp_path / proxy.TEACHER_RUN).exists()


def test_the_committed_teacher_matches_the_study_config():
    shipped = proxy.SHIPPED_TEACHER
    if not (shipped / "config.yaml").is_file():
        pytest.skip("no committed teacher in this checkout")
    from kdlib.engine.rundir import config_changes

    assert config_changes(shipped, proxy.teacher_config().to_yaml()) == []
    assert (shipped / "best.pt").stat().st_size > 1_000_000


def test_why_steps_train_each_variant_into_its_own_folder_and_reuse_the_main_runs():
    from kdlib.studies.why import EXPERIMENTS

    assert proxy.plan() == proxy.plan(["main"]) and {c[0] for c in proxy.plan()} == {s.name for s in proxy.MAIN_STEPS}
    calls = proxy.plan(["why_pixel_queue"])
    train = [c[4] for c in calls if c[1] == "train"]
    assert [p["variants"] for p in train] == [["corrected"], ["released"]]
    assert train[1]["methods"] == ["cirkd"] and train[0]["methods"] == ["none", "cirkd"]
    assert all(p["students"] == ["deeplabv3_resnet18", "deeplabv3_mobilenetv2"] for p in train)   # a cell each
    assert all(p["runs_root"] == ["runs/proxy/why_pixel_queue"] and p["main_runs_root"] == ["runs/proxy/main"]
               and p["seeds"] == ["0", "1", "2"] for p in train)                  # a training cell per seed
    final = [c[4] for c in calls if c[1] == "final"]
    assert len(final) == 1 and final[0]["seeds"] == ["0,1,2"] and "variants" not in final[0]
    assert {n for s in EXPERIMENTS for n in [f"why_{s}"]} == set(proxy.STEP_GROUPS["why"])
    with pytest.raises(ValueError, match="did you mean why_schedule"):
        proxy.plan(["why_schedul"])


def test_a_why_settings_own_teacher_is_shipped_with_the_results_and_reused(tmp_path, monkeypatch):
    from kdlib.engine import trainer
    from kdlib.studies.why import experiment, variant_teacher_config

    monkeypatch.chdir(tmp_path)
    variant = experiment("map_size").variant("maps-16x32")
    cfg = variant_teacher_config(variant, proxy.teacher_config)
    run_dir = Path(cfg.run_dir)
    shipped = proxy.RESULTS / run_dir.name
    shipped.mkdir(parents=True)
    (shipped / "config.yaml").write_text(cfg.to_yaml())
    (shipped / "best.pt").write_bytes(b"weights")
    (shipped / "metrics.json").write_text('{"miou": 0.45, "pixel_acc": 0.8, "per_class_iou": {}}')

    def no_training(*args, **kwargs):
        raise AssertionError("the committed setting teacher must be reused, not retrained")

    monkeypatch.setattr(trainer, "train", no_training)
    records = proxy._step_teachers("why_map_size", progress=False)
    assert [r["phase"] for r in records] == ["teacher maps-16x32"]
    assert (run_dir / "best.pt").read_bytes() == b"weights"
    assert proxy._step_teachers("why_schedule", progress=False) == []

    # a teacher trained here is copied to results/proxy/<its folder> once, whole
    other = tmp_path / "elsewhere"
    assert proxy.ship_run(run_dir, other) is True and (other / "best.pt").read_bytes() == b"weights"
    assert proxy.ship_run(run_dir, other) is False and not other.with_name("elsewhere.tmp").exists()


def test_committed_setting_teachers_match_their_settings():
    """Every why setting's own teacher that is committed under results/proxy was trained with that setting's
    teacher config (skipped where none is committed yet)."""
    from kdlib.engine.rundir import config_changes
    from kdlib.studies.why import EXPERIMENTS, variant_teacher_config

    checked = 0
    for exp in EXPERIMENTS.values():
        for variant in exp.variants:
            cfg = variant_teacher_config(variant, proxy.teacher_config)
            shipped = proxy.RESULTS / Path(cfg.run_dir).name if cfg is not None else None
            if shipped is None or not (shipped / "config.yaml").is_file():
                continue
            assert config_changes(shipped, cfg.to_yaml()) == [], variant.name
            assert (shipped / "best.pt").stat().st_size > 1_000_000
            checked += 1
    if not checked:
        pytest.skip("no setting teacher committed in this checkout")


def test_status_says_where_each_why_run_stands_from_its_files(tmp_path, monkeypatch, capsys):
    from kdlib.cli import main
    from kdlib.studies.why import run_state

    monkeypatch.chdir(tmp_path)
    main_root = tmp_path / "runs/proxy/main"
    done = main_root / "student-deeplabv3resnet18_method-none_seed-0"
    done.mkdir(parents=True)
    (done / "metrics.json").write_text("{}")
    stopped = tmp_path / "runs/proxy/why_schedule/iterations-3200/student-deeplabv3resnet18_method-cirkd_seed-2"
    stopped.mkdir(parents=True)
    (stopped / "config.yaml").write_text("x: 1\n")
    (stopped / "checkpoint_last.pt").write_bytes(b"c")
    (stopped / "log.jsonl").write_text('{"iteration": 1600}\n{"iteration": 1610, "loss": 1.0}\n')
    started = stopped.with_name("student-deeplabv3resnet18_method-kd_seed-0")
    started.mkdir()
    (started / "config.yaml").write_text("x: 1\n")
    assert run_state(done) == ("done", None) and run_state(stopped) == ("interrupted", 1610)
    assert run_state(started) == ("started", None) and run_state(tmp_path / "nothing") == ("to train", None)

    assert main(["proxy", "--status", "why_schedule", "why_map_size"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "why_schedule: final cell not run yet (results/proxy/why_schedule)"
    assert out[1].split() == ["iterations-800", "1/15", "runs", "done"]
    assert out[3].endswith("0/15 runs done; stopped or running (resume from their checkpoint): "
                           "cirkd seed 2 at iteration 1610")
    assert out[4] == "why_map_size: final cell not run yet (results/proxy/why_map_size)"
    assert "own teacher runs/proxy/teacher_128x256: to train" in out[6]
    assert main(["proxy", "--status", "why_schedul"]) == 2             # one line, with a suggestion
    assert "did you mean why_schedule" in capsys.readouterr().err
    assert main(["proxy", "--status", "cirkd_table4"]) == 0
    assert capsys.readouterr().out.strip() == "cirkd_table4: --status covers the why steps only"
