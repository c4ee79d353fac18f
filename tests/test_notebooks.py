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
    execute("cirkd_table1.py", {"students": "deeplabv3_resnet18", "methods": "none,kd,cirkd", "seeds": "0,1",
                                "teacher_checkpoint": str(teacher), "extra": extra, "output_dir": str(out),
                                "figures_dir": str(figs)})
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 6 and runs["miou"].between(0, 1).all()
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["method"]) == {"cirkd", "kd", "none", "skd", "ifvd", "cwd"}  # ours + the paper's others
    assert summary.loc[summary["method"] == "skd", "ours gain"].isna().all()
    assert (summary.loc[summary["method"] == "none", "ours gain"] == 0).all()
    paper = summary.set_index("method")["paper gain"]
    assert paper["cirkd"] == pytest.approx(76.38 - 74.21, abs=1e-6)  # CIRKD Table 1, R18, val
    assert paper["none"] == 0
    assert (figs / "per_class_iou.png").stat().st_size > 1000
    assert json.loads((out / "metrics.json").read_text())["dataset"] == "synthetic_streets"


TABLE_NOTEBOOKS = ["cirkd_table2", "cirkd_table3", "afdcd_cityscapes", "afdcd_camvid", "afdcd_voc", "afdcd_ade20k",
                   "afdcd_coco_stuff"]


@pytest.mark.parametrize("name", TABLE_NOTEBOOKS)
def test_table_notebooks(tiny, name):
    """Each table notebook with its own methods (one tiny run each) on the first student."""
    from kdlib.analysis.reproduce import TABLES, paper_rows

    base, extra, teacher = tiny
    spec = TABLES[name]
    out = base / name
    execute(f"{name}.py", {"students": spec.students[0], "teacher_checkpoint": str(teacher), "extra": extra,
                           "output_dir": str(out), "figures_dir": str(base / f"{name}_figs")})
    summary = pd.read_csv(out / "summary.csv")
    paper = paper_rows(name)
    reported = paper[(paper["student"] == spec.students[0])].set_index("method")["value"]
    ours = summary[summary["student"] == spec.students[0]].set_index("method")
    assert set(spec.methods) <= set(ours.index) and ours.loc[list(spec.methods), "ours gain"].notna().all()
    assert (ours.loc["none", "ours gain"] == 0) and set(reported.index) <= set(ours.index)
    gains = ours["paper gain"]
    for method in reported.index:  # the paper's gains are its numbers minus its baseline
        assert gains[method] == pytest.approx(reported[method] - reported["none"], abs=1e-6)
    assert (base / f"{name}_figs" / "per_class_iou.png").is_file()
