"""Every table notebook runs through papermill with tiny parameters on the built-in data and writes its files."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from notebook_runner import execute

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_data_and_teacher):
    extra, teacher = tiny_data_and_teacher
    return tmp_path_factory.mktemp("nb"), extra, teacher


def test_cirkd_table1_notebook(tiny):
    base, extra, teacher = tiny
    out, figs = base / "t1", base / "t1_figs"
    execute("cirkd_table1.py", {"students": "deeplabv3_resnet18", "methods": "none,kd,cirkd", "seeds": "0,1",
                                "teacher_checkpoint": str(teacher), "extra": extra, "output_dir": str(out),
                                "figures_dir": str(figs)})
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 6 and runs["miou"].between(0, 1).all()
    runs_dirs = [Path(p).name for p in runs["run_dir"]]
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["method"]) == {"cirkd", "kd", "none", "skd", "ifvd", "cwd"}  # ours + the paper's others
    assert summary.loc[summary["method"] == "skd", "ours gain"].isna().all()
    assert (summary.loc[summary["method"] == "none", "ours gain"] == 0).all()
    paper = summary.set_index("method")["paper gain"]
    assert paper["cirkd"] == pytest.approx(76.38 - 74.21, abs=1e-6)  # CIRKD Table 1, R18, val
    assert paper["none"] == 0
    assert (figs / "per_class_iou.png").stat().st_size > 1000
    assert json.loads((out / "metrics.json").read_text())["dataset"] == "synthetic_streets"
    # the R18* row (no ImageNet): the same runs reused on the built-in data, beside the paper's R18* gains
    star = pd.read_csv(out / "no_imagenet" / "summary.csv").set_index("method")
    assert star.loc["cirkd", "paper gain"] == pytest.approx(68.18 - 65.17, abs=1e-6)
    ours = summary[summary["student"] == "deeplabv3_resnet18"].set_index("method")["ours gain"]
    assert star.loc["cirkd", "ours gain"] == pytest.approx(ours["cirkd"], abs=1e-9)
    assert sorted(p.name for p in (out / "runs").iterdir()) == sorted(runs_dirs)   # nothing trained twice


TABLE_NOTEBOOKS = ["cirkd_table2", "cirkd_table3", "afdcd_cityscapes", "afdcd_camvid", "afdcd_voc", "afdcd_ade20k",
                   "afdcd_coco_stuff"]


@pytest.mark.parametrize("name", TABLE_NOTEBOOKS)
def test_table_notebooks(tiny, name):
    """Each table notebook with its own methods (one tiny run each) on the first student. The notebooks share
    one runs_root, as the proxy study's do: a (student, method, seed) run trained by one is reused by the next."""
    from kdlib.studies.reproduce import TABLES, paper_rows

    base, extra, teacher = tiny
    spec = TABLES[name]
    out = base / name
    execute(f"{name}.py", {"students": spec.students[0], "teacher_checkpoint": str(teacher), "extra": extra,
                           "output_dir": str(out), "figures_dir": str(base / f"{name}_figs"),
                           "runs_root": str(base / "shared_table_runs")})
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


def _run_config(out: Path, student: str, variant: str, seed: int = 0) -> dict:
    """The resolved config.yaml of one ablation run."""
    import yaml

    from kdlib.studies.grid import run_id

    path = out / "runs" / run_id({"student": student, "variant": variant, "seed": seed}) / "config.yaml"
    return yaml.safe_load(path.read_text())


def test_cirkd_table4_notebook(tiny):
    """CIRKD Table 4 with three variants: our gains over `ce` beside the paper's, terms really switched off."""
    from kdlib.paper_numbers import paper_table

    base, extra, teacher = tiny
    out, figs = base / "t4", base / "t4_figs"
    student = "deeplabv3_mobilenetv2"
    execute("cirkd_table4.py", {"student": student, "variants": "ce,ce+kd,ce+batch_p2p+kd", "seeds": "0",
                                "teacher_checkpoint": str(teacher), "extra": extra, "output_dir": str(out),
                                "figures_dir": str(figs)})
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs["variant"]) == ["ce", "ce+kd", "ce+kd+batch_p2p"]  # canonical order of the terms
    assert list(runs["method"]) == ["none", "cirkd", "cirkd"] and runs["miou"].between(0, 1).all()
    summary = pd.read_csv(out / "summary.csv").set_index("variant")
    paper = paper_table("cirkd_table4").set_index("variant")["value"]
    assert list(summary.index) == ["ce", "ce+kd", "ce+kd+batch_p2p", "ce+kd+memory_p2p", "ce+kd+memory_p2r",
                                  "ce+kd+memory_p2p+memory_p2r", "ce+kd+batch_p2p+memory_p2p+memory_p2r"]
    assert set(summary.index) == set(paper.index) and list(summary["n"]) == [1, 1, 1, 0, 0, 0, 0]
    assert summary.loc["ce", "ours gain"] == 0 and summary.loc["ce", "paper gain"] == 0
    assert summary.loc[["ce+kd", "ce+kd+batch_p2p"], "ours gain"].notna().all()
    assert summary.loc["ce+kd+memory_p2p", "ours gain"] != summary.loc["ce+kd+memory_p2p", "ours gain"]  # NaN
    for variant, value in paper.items():  # the paper's gains are its rows minus its `ce` row
        assert summary.loc[variant, "paper gain"] == pytest.approx(value - paper["ce"], abs=1e-6)
    assert summary.loc["ce+kd+batch_p2p", "paper gain"] == pytest.approx(74.87 - 73.12, abs=1e-6)
    gain = 100 * (runs.set_index("variant")["miou"] - runs.set_index("variant").loc["ce", "miou"])
    assert summary.loc["ce+kd", "ours gain"] == pytest.approx(gain["ce+kd"], abs=1e-6)
    cfg = _run_config(out, student, "ce+kd+batch_p2p")
    assert cfg["method"] == "cirkd" and cfg["student"] == student
    assert cfg["loss_weights"] == {"kd": 1.0, "batch_p2p": 1.0, "memory_p2p": 0.0, "memory_p2r": 0.0}
    assert _run_config(out, student, "ce+kd")["loss_weights"]["batch_p2p"] == 0
    assert _run_config(out, student, "ce")["method"] == "none"
    assert (figs / "miou.png").stat().st_size > 1000 and (figs / "miou.pdf").is_file()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["dataset"] == "synthetic_streets" and metrics["paper_dataset"] == "cityscapes"


def test_afdcd_loss_terms_notebook(tiny):
    """Af-DCD ablation: ours only (no paper columns); SC takes the OC weight, omitted terms are at 0."""
    from kdlib.engine.recipes import method_defaults

    base, extra, teacher = tiny
    out, figs = base / "afdcd_terms", base / "afdcd_terms_figs"
    student = "deeplabv3_resnet18"
    execute("afdcd_loss_terms.py", {"student": student, "variants": "ce,ce+kd+fd+sc,ce+kd+fd+ctr", "seeds": "0",
                                    "teacher_checkpoint": str(teacher), "extra": extra, "output_dir": str(out),
                                    "figures_dir": str(figs)})
    summary = pd.read_csv(out / "summary.csv").set_index("variant")
    assert list(summary.index) == ["ce", "ce+kd+fd+sc", "ce+kd+fd+ctr"]
    assert not any("paper" in c for c in summary.columns)
    assert summary.loc["ce", "ours gain"] == 0 and summary["ours gain"].notna().all()
    runs = pd.read_csv(out / "runs.csv").set_index("variant")
    assert summary.loc["ce+kd+fd+ctr", "ours gain"] == pytest.approx(
        100 * (runs.loc["ce+kd+fd+ctr", "miou"] - runs.loc["ce", "miou"]), abs=1e-6)
    paper = method_defaults("afdcd", "synthetic_streets")["loss_weights"]
    sc = _run_config(out, student, "ce+kd+fd+sc")
    assert sc["method"] == "afdcd"
    assert sc["loss_weights"] == {"kd": paper["kd"], "fd": paper["fd"], "ctr": 0.0, "sc": paper["ctr"], "cc": 0.0}
    assert _run_config(out, student, "ce+kd+fd+ctr")["loss_weights"] == {**paper, "sc": 0.0, "cc": 0.0}
    assert (figs / "miou.png").is_file()
    assert json.loads((out / "metrics.json").read_text())["paper_dataset"] is None
