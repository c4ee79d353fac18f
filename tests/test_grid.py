"""kdlib grid: parameter parsing, the Cartesian product, and a real papermill grid on tiny data."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from kdlib.studies.grid import expand_grid, parse_param, run_grid, run_id, split_values

REPO = Path(__file__).resolve().parents[1]


def test_values_split_outside_brackets_and_parse_as_yaml():
    assert split_values("[64,128],[96,192]") == ["[64,128]", "[96,192]"]
    assert split_values("a,'b,c',d") == ["a", "'b,c'", "d"]
    assert parse_param("tau=0.05,0.1,null") == ("tau", [0.05, 0.1, None])
    assert parse_param("crop=[64,128],[96,192]") == ("crop", [[64, 128], [96, 192]])
    with pytest.raises(ValueError, match="key=v1"):
        parse_param("tau")
    with pytest.raises(ValueError, match="parameter name"):
        parse_param("1x=2")


def test_grid_is_the_cartesian_product_with_seeds_fastest():
    cells = expand_grid({"method": ["none", "kd"], "tau": [1, 4]}, seeds=[0, 1])
    assert len(cells) == 8
    assert cells[:3] == [{"method": "none", "tau": 1, "seed": 0}, {"method": "none", "tau": 1, "seed": 1},
                         {"method": "none", "tau": 4, "seed": 0}]
    ids = {run_id(c) for c in cells}
    assert len(ids) == 8 and run_id(cells[0]) == "method-none_tau-1_seed-0"
    assert len(run_id({"x": "y" * 500})) <= 120


@pytest.fixture(scope="module")
def tiny_setup(tmp_path_factory, tiny_data_and_teacher):
    extra, teacher = tiny_data_and_teacher
    return tmp_path_factory.mktemp("grid"), extra, teacher


def test_papermill_grid_runs_skips_done_cells_and_reports_failures(tiny_setup, capsys):
    base, extra, teacher = tiny_setup
    notebook = REPO / "notebooks" / "train_config.py"
    params = {"method": ["none", "kd", "no_such_method"], "extra": [extra],
              "teacher_checkpoint": [str(teacher)]}
    table, results = run_grid(notebook, params, seeds=[0], jobs=2, results_root=base / "results",
                              progress=False)
    status = {r.params["method"]: r.status for r in results}
    assert status == {"none": "ok", "kd": "ok", "no_such_method": "failed"}
    failed = next(r for r in results if r.status == "failed")
    assert "no_such_method" in failed.error and "unknown method" in failed.error
    assert (Path(failed.output_dir) / "notebook.ipynb").is_file()  # the partial notebook is kept as the log

    runs = pd.read_csv(base / "results" / "train_config" / "runs.csv")
    assert len(runs) == 3 and set(runs["status"]) == {"ok", "failed"}
    ok = runs[runs["status"] == "ok"].set_index("method")
    assert ok.loc["kd", "miou"] == pytest.approx(json.loads(
        (Path(base / "results" / "train_config" / run_id({"method": "kd", "extra": extra,
                                                          "teacher_checkpoint": str(teacher), "seed": 0}))
         / "metrics.json").read_text())["miou"])
    assert {"iou/Road", "iou/Sky", "seed", "wall_time_s", "extra", "git_commit", "peak_memory_mb"} <= set(runs.columns)

    # second call: finished cells are skipped, the failed one is retried (and fails again)
    _, again = run_grid(notebook, params, seeds=[0], jobs=1, results_root=base / "results", progress=False)
    assert {r.params["method"]: r.status for r in again} == {"none": "skipped", "kd": "skipped",
                                                             "no_such_method": "failed"}


def test_grid_cli_exit_status_and_summary(tiny_setup, capsys):
    from kdlib.cli import main

    base, extra, teacher = tiny_setup
    code = main(["grid", str(REPO / "notebooks" / "train_config.py"), "--param", "method=none",
                 "--param", f"extra={extra}", "--results-root", str(base / "cli"), "--quiet"])
    assert code == 0
    assert "1 cell(s) run" in capsys.readouterr().out


def test_submitit_local_executor_runs_the_cells(tiny_setup):
    """The Slurm path (a submitit job array), exercised with submitit's local executor."""
    pytest.importorskip("submitit")
    base, extra, teacher = tiny_setup
    table, results = run_grid(REPO / "notebooks" / "train_config.py", {"method": ["none"], "extra": [extra]},
                              seeds=[0, 1], results_root=base / "submitit", executor="submitit-local",
                              slurm_options={"timeout_min": 10}, progress=False)
    assert [r.status for r in results] == ["ok", "ok"]
    assert len(table) == 2 and table["miou"].between(0, 1).all()
    assert (base / "submitit" / "train_config" / "_submitit").is_dir()  # submitit's logs live beside the runs


@pytest.mark.parametrize("notebook", sorted((REPO / "notebooks").glob("*.py")), ids=lambda p: p.name)
def test_every_notebook_has_a_parameters_cell_papermill_can_read(notebook):
    import ast

    import jupytext
    import papermill as pm

    nb = jupytext.read(notebook)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    assigned = [t.id for node in ast.parse(cells[0].source).body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)]
    assert "output_dir" in assigned
    assert ("seed" in assigned) != ("seeds" in assigned), "one seed mechanism: seed (one run) or seeds (a study)"
    assert list(pm.inspect_notebook(nb)) == assigned  # no parameter papermill fails to parse


def test_train_config_never_reuses_a_run_made_with_other_settings(tiny_setup, tmp_path):
    from kdlib.studies.notebook import parse_extra, train_config

    base, extra, teacher = tiny_setup
    overrides = {**parse_extra(extra), "method": "none"}
    first = train_config("quick", overrides, tmp_path / "run")
    assert train_config("quick", overrides, tmp_path / "run") == first  # same settings: reused
    with pytest.raises(ValueError, match="other settings.*iterations"):
        train_config("quick", {**overrides, "iterations": 4}, tmp_path / "run")


def test_kernel_threads_split_the_cores_between_jobs():
    from kdlib.studies.grid import kernel_threads

    assert kernel_threads(1, cpus=2) is None            # one job: PyTorch's own default
    assert kernel_threads(2, cpus=2) == 1
    assert kernel_threads(3, cpus=16) == 5
    assert kernel_threads(8, cpus=2) == 1


def test_kernel_thread_setting_does_not_leak(monkeypatch):
    """The grid's OMP_NUM_THREADS for its kernels is restored afterwards (later subprocesses are unaffected)."""
    import os

    from kdlib.studies.grid import _kernel_threads_env

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    with _kernel_threads_env(1):
        assert os.environ["OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS" not in os.environ
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    with _kernel_threads_env(1):
        assert os.environ["OMP_NUM_THREADS"] == "3"          # the user's choice wins
    assert os.environ["OMP_NUM_THREADS"] == "3"


def test_notebooks_are_kept_as_text_without_outputs():
    """notebooks/ holds reviewable jupytext text files only: no .ipynb (whose outputs would land in git), and
    every .py is a percent-format notebook with a markdown title cell and no leftover output markers."""
    import jupytext

    folder = REPO / "notebooks"
    assert not list(folder.glob("*.ipynb")), "commit notebooks as jupytext .py files (jupytext --to py:percent)"
    for path in sorted(folder.glob("*.py")):
        text = path.read_text()
        assert "format_name: percent" in text, path.name
        nb = jupytext.read(path)
        assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.lstrip().startswith("# "), path.name
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), path.name


def test_grid_seeds_go_to_a_studys_own_seeds_parameter(monkeypatch, tmp_path):
    """--seeds on a notebook that trains its own seeds: one cell with seeds="0,1,2" (no dead seed parameter);
    on train_config (a seed parameter): one cell per seed; on both at once, or twice: refused."""
    from kdlib.studies import grid as grid_module

    cells = []
    monkeypatch.setattr(grid_module, "_run_local", lambda nb, todo, *a: cells.extend(c for c, _ in todo) or [])
    monkeypatch.setattr(grid_module, "collect_runs", lambda study_dir: pd.DataFrame())
    run_grid(REPO / "notebooks" / "cirkd_table2.py", {"methods": ["none"]}, seeds=[0, 1, 2], results_root=tmp_path,
             progress=False)
    assert [c["seeds"] for c in cells] == ["0,1,2"]
    cells.clear()
    run_grid(REPO / "notebooks" / "train_config.py", {"method": ["none"]}, seeds=[0, 1], results_root=tmp_path,
             progress=False)
    assert [c["seed"] for c in cells] == [0, 1]
    with pytest.raises(ValueError, match="once"):
        run_grid(REPO / "notebooks" / "cirkd_table2.py", {"seeds": ["0"]}, seeds=[1], results_root=tmp_path)
