"""Every table notebook runs through papermill with tiny parameters on the built-in data and writes its files."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from kdlib.analysis.notebook import parse_extra
    from kdlib.data.synthetic import generate
    from kdlib.engine.config import resolve_config
    from kdlib.engine.trainer import train

    base = tmp_path_factory.mktemp("nb")
    data = generate(base / "data", preset="tiny", progress=False)
    extra = (f"data_root={data} dataset_options.preset=tiny crop_size=[48,96] iterations=2 eval_interval=2 "
             f"checkpoint_interval=2 num_workers=0 student_width=0.125 teacher_width=0.125 max_val_samples=2")
    teacher = base / "teacher"
    train(resolve_config("quick", {**parse_extra(extra), "run_dir": str(teacher)}), progress=False)
    return base, extra, teacher


def execute(notebook: str, parameters: dict) -> None:
    import jupytext
    import papermill as pm

    nb = jupytext.read(REPO / "notebooks" / notebook)
    out = Path(parameters["output_dir"]) / "executed.ipynb"
    out.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(nb, str(out), parameters=parameters, kernel_name="python3", progress_bar=False,
                        cwd=str(REPO))


def test_cirkd_table1_notebook(tiny):
    base, extra, teacher = tiny
    out, figs = base / "t1", base / "t1_figs"
    execute("cirkd_table1.py", {"methods": "none,kd,cirkd", "seeds": "0,1", "teacher_checkpoint": str(teacher),
                                "extra": extra, "output_dir": str(out), "figures_dir": str(figs)})
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 6 and runs["miou"].between(0, 1).all()
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["method"]) == ["cirkd", "kd", "none"]
    assert (summary.loc[summary["method"] == "none", "ours gain"] == 0).all()
    paper = summary.set_index("method")["paper gain"]
    assert paper["cirkd"] == pytest.approx(76.38 - 74.21, abs=1e-6)  # CIRKD Table 1, R18, val
    assert paper["none"] == 0
    assert (figs / "per_class_iou.png").stat().st_size > 1000
    assert json.loads((out / "metrics.json").read_text())["dataset"] == "synthetic_streets"
