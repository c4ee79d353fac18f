"""Hyper-parameter sweeps (CIRKD Fig. 6 / 7, Af-DCD ablations) and the Af-DCD Table 5 cost comparison."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from notebook_runner import execute
import yaml

from kdlib.studies import sweep as sw

REPO = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------------------------- pure parts
def test_values_parse_to_the_option_type():
    assert sw.parse_values("cirkd_pixel_queue", "5000, 2e4,5000") == [5000, 20000]  # repeats dropped
    assert all(type(v) is int for v in sw.parse_values("cirkd_pixel_queue", "5000,2e4"))
    assert sw.parse_values("afdcd_tau", "0.05,0.07") == [0.05, 0.07]
    assert sw.parse_values("afdcd_pool", "none,2") == [None, 2]
    assert sw.parse_values("afdcd_patch", "2, 4/pool2,4/nopool") == [(2, "default"), (4, 2), (4, None)]
    assert [sw.value_label("afdcd_patch", v) for v in ("2", "4/pool2", "4/NoPool")] == ["2", "4/pool2", "4/nopool"]
    assert sw.parse_values("afdcd_groups", "") == list(sw.SWEEPS["afdcd_groups"].values)  # empty: defaults
    assert sw.format_number(20000) == "20k" and sw.format_number(2500) == "2.5k" and sw.format_number(0.07) == "0.07"


@pytest.mark.parametrize("name, bad", [("cirkd_pixel_queue", "2.5"), ("cirkd_pixel_queue", "abc"),
                                       ("cirkd_pixel_queue", "none"), ("afdcd_tau", "x"),
                                       ("afdcd_patch", "4/max2")])
def test_bad_values_are_refused(name, bad):
    with pytest.raises(ValueError):
        sw.parse_values(name, bad)


def test_unknown_sweep_or_figure():
    with pytest.raises(ValueError, match="unknown sweep"):
        sw.parse_values("cirkd_nothing", "1")
    with pytest.raises(ValueError, match="unknown figure"):
        sw.reproduce_figure("cirkd_fig9", "quick", None, {}, [0], "unused")
    with pytest.raises(ValueError, match="no panel"):
        sw.reproduce_figure("cirkd_fig6", "quick", None, {"cirkd_tau": "0.1"}, [0], "unused")


def test_queue_memory_formula():
    # CIRKD pixel queue on Cityscapes: 19 classes x 20000 x 256 floats x 4 bytes = 389,120,000 bytes
    assert sw.queue_memory_mb(19, 20000, 256) == pytest.approx(389_120_000 / 2 ** 20)
    assert sw.queue_memory_mb(19, 20000, 256) == pytest.approx(371.09375)
    assert sw.queue_memory_mb(11, 1000, 16) == pytest.approx(704_000 / 1_048_576)
    with pytest.raises(ValueError):
        sw.queue_memory_mb(11, -1, 16)
    cfg = sw.sweep_config("cirkd_pixel_queue", 5000, "cityscapes")
    assert sw.teacher_widths(cfg) == (256, 2048) and sw.dataset_num_classes("cityscapes") == 19  # R101
    assert sw.teacher_widths(sw.sweep_config("cirkd_pixel_queue", 5000, "quick")) == (64, 256)  # R18 x 0.5


def _differences(a: dict, b: dict, prefix: str = "") -> set:
    keys = set(a) | set(b)
    out = set()
    for k in keys:
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out |= _differences(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            out.add(f"{prefix}{k}")
    return out


@pytest.mark.parametrize("name, value, changed", [
    ("cirkd_pixel_queue", 5000, {"pixel_memory_size"}), ("cirkd_region_queue", 500, {"region_memory_size"}),
    ("cirkd_tau", 0.2, {"contrast_temperature"}), ("cirkd_pixel_contrast", 1024, {"pixel_contrast_size"}),
    ("cirkd_region_contrast", 512, {"region_contrast_size"}), ("afdcd_groups", 8, {"groups"}),
    ("afdcd_tau", 0.1, {"tau"}), ("afdcd_mask_ratio", 0.5, {"mask_ratio"}), ("afdcd_pool", 2, {"pool"}),
    ("afdcd_patch", "2", {"patch"}), ("afdcd_patch", "4/pool2", {"pool"}),
    ("afdcd_patch", "2/pool2", {"patch", "pool"}),
])
def test_one_value_changes_only_its_option(name, value, changed):
    from kdlib.engine.config import resolve_config

    spec = sw.SWEEPS[name]
    for preset in ("quick", "cityscapes"):
        base = resolve_config(preset, {"student": spec.student, "method": spec.method}).to_dict()
        cfg = sw.sweep_config(name, value, preset).to_dict()
        assert _differences(base, cfg) == {f"method_options.{c}" for c in changed}
    assert sw.value_overrides(name, value)["method"] == spec.method


def test_default_values_are_valid_on_the_quick_preset():
    for name, spec in sw.SWEEPS.items():
        for value in sw.parse_values(name, None):
            sw.check_value(name, value, sw.sweep_config(name, value, "quick"))


@pytest.mark.parametrize("name, value, match", [
    ("cirkd_pixel_queue", 300, "clip"),            # 4096 // 11 + 1 = 373 contrast slots > 300
    ("cirkd_pixel_queue", 8, "pixels_per_class"),
    ("cirkd_region_queue", 50, "clip"),            # 1024 // 11 + 1 = 94 > 50
    ("cirkd_pixel_contrast", 300000, "clip"),
    ("cirkd_tau", 0.0, "positive"),
    ("afdcd_groups", 48, "256 must be divisible by groups=48"),   # 256 % 48 != 0
    ("afdcd_patch", "16", "smaller than"),         # 8 x 16 maps
    ("afdcd_pool", 4, "smaller than"),             # 2 x 4 pooled maps < 4 x 4 patch
    ("afdcd_mask_ratio", 1.5, r"\[0, 1\]"),
    ("afdcd_tau", -0.1, "positive"),
])
def test_invalid_values_raise_clear_errors(name, value, match):
    with pytest.raises(ValueError, match=match):
        sw.check_value(name, value, sw.sweep_config(name, value, "quick"))


def test_a_bad_value_fails_before_anything_trains(tmp_path):
    with pytest.raises(ValueError, match="clip"):
        sw.reproduce_sweep("cirkd_pixel_queue", "quick", None, "20000,300", [0], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_step_seconds_leaves_out_evaluations(tmp_path):
    from kdlib.studies.cost import process_peak_rss_mb, step_seconds

    records = [{"iteration": 10, "time": 1.0}, {"iteration": 20, "time": 2.0},
               {"iteration": 20, "eval": {"miou": 0.1}}, {"iteration": 30, "time": 9.0},  # holds the eval
               {"iteration": 40, "time": 10.2}, {"iteration": 50, "time": 11.2}]
    log = tmp_path / "log.jsonl"
    log.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    assert step_seconds(log) == pytest.approx(0.1)  # median of 0.1, 0.1, 0.12, 0.1
    assert step_seconds(tmp_path / "missing.jsonl") is None
    assert process_peak_rss_mb() > 1


def test_paper_cost_table():
    from kdlib.studies.cost import paper_cost

    paper = paper_cost().set_index("method")
    assert paper.loc["afdcd", "paper_gpu_memory_gb"] == 7.94 and paper.loc["cirkd", "paper_gpu_memory_gb"] == 10.09
    assert paper.loc["afdcd", "paper_train_time_h"] == 4.23 and paper.loc["cirkd", "paper_train_time_h"] == 4.34


# ------------------------------------------------------------------------------------------------ notebooks
@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_data_and_teacher):
    extra, teacher = tiny_data_and_teacher
    return tmp_path_factory.mktemp("sweeps"), extra, teacher


def _config(out: Path, run_id: str) -> dict:
    return yaml.safe_load((out / "runs" / run_id / "config.yaml").read_text())


def _check_outputs(out: Path, figures: Path, figure_names) -> tuple:
    runs, summary = pd.read_csv(out / "runs.csv"), pd.read_csv(out / "summary.csv")
    assert runs["miou"].between(0, 1).all() and runs.filter(like="iou/").stack().between(0, 1).all()
    assert {"method", "seed", "miou", "wall_time_s", "peak_memory_mb", "run_id"} <= set(runs.columns)
    assert (runs["peak_memory_mb"] > 0).all() and (runs["wall_time_s"] > 0).all()
    assert {"n", "miou_pct", "ci95_pct", "wall_time_s", "peak_memory_mb", "paper_default"} <= set(summary.columns)
    assert json.loads((out / "metrics.json").read_text())["rows"]
    for name in figure_names:
        assert (figures / f"{name}.png").stat().st_size > 1000 and (figures / f"{name}.pdf").is_file()
    return runs, summary


def _check_configs(out: Path, runs: pd.DataFrame, option: str, method: str) -> None:
    """Every run's resolved config carries its swept value and the method's paper options otherwise."""
    from kdlib.engine.recipes import method_defaults

    paper = method_defaults(method, "synthetic_streets")["method_options"]
    for _, row in runs[runs[option].notna()].iterrows():
        cfg = _config(out, row["run_id"])
        assert cfg["method"] == method
        value, got = row[option], cfg["method_options"][option]
        if value == "none":
            assert got is None
        else:
            assert float(got) == pytest.approx(float(value))
            assert isinstance(got, type(paper[option]))  # ints stay ints (queue sizes, groups)
        assert {k: v for k, v in cfg["method_options"].items() if k not in (option, "pool")} == \
            {k: v for k, v in paper.items() if k not in (option, "pool")}


def test_cirkd_fig6_notebook(tiny):
    base, extra, teacher = tiny
    out, figs = base / "fig6", base / "fig6_figs"
    execute("cirkd_fig6.py", {"pixel_queue_sizes": "1000,20000", "region_queue_sizes": "500,2000", "seeds": "0",
                              "teacher_checkpoint": str(teacher), "extra": extra, "output_dir": str(out),
                              "figures_dir": str(figs)})
    runs, summary = _check_outputs(out, figs, ["cirkd_fig6", "cirkd_pixel_queue", "cirkd_region_queue"])
    pixel = runs[runs["sweep"] == "cirkd_pixel_queue"]
    assert sorted(pixel["pixel_memory_size"]) == [1000, 20000]
    assert sorted(runs.loc[runs["sweep"] == "cirkd_region_queue", "region_memory_size"]) == [500, 2000]
    assert runs["run_id"].nunique() == 3  # the default point (20000, 2000) is shared by both panels
    # the queue's own memory: 11 classes x N x d = 16 (tiny teacher head width) x 4 bytes
    for _, row in summary.iterrows():
        n = row["pixel_memory_size"] if row["sweep"] == "cirkd_pixel_queue" else row["region_memory_size"]
        assert row["queue_memory_mb"] == pytest.approx(11 * n * 16 * 4 / 2 ** 20)
    assert summary.loc[summary["pixel_memory_size"] == 20000, "paper_default"].item()
    assert not summary.loc[summary["pixel_memory_size"] == 1000, "paper_default"].item()
    _check_configs(out, pixel, "pixel_memory_size", "cirkd")
    _check_configs(out, runs[runs["sweep"] == "cirkd_region_queue"], "region_memory_size", "cirkd")


def test_cirkd_fig7_notebook(tiny):
    base, extra, teacher = tiny
    out, figs = base / "fig7", base / "fig7_figs"
    execute("cirkd_fig7.py", {"temperatures": "0.05,0.1", "pixel_contrast_sizes": "1024,4096",
                              "region_contrast_sizes": "512,1024", "seeds": "0", "teacher_checkpoint": str(teacher),
                              "extra": extra, "output_dir": str(out), "figures_dir": str(figs)})
    runs, summary = _check_outputs(out, figs, ["cirkd_fig7", "cirkd_tau", "cirkd_pixel_contrast",
                                               "cirkd_region_contrast"])
    assert list(summary["sweep"].unique()) == ["cirkd_tau", "cirkd_pixel_contrast", "cirkd_region_contrast"]
    assert sorted(runs["contrast_temperature"].dropna()) == [0.05, 0.1]
    assert "queue_memory_mb" not in summary.columns or summary["queue_memory_mb"].isna().all()
    for option, sweep in (("contrast_temperature", "cirkd_tau"), ("pixel_contrast_size", "cirkd_pixel_contrast"),
                          ("region_contrast_size", "cirkd_region_contrast")):
        _check_configs(out, runs[runs["sweep"] == sweep], option, "cirkd")


@pytest.mark.parametrize("notebook, values, option", [
    ("afdcd_groups", "8,16", "groups"), ("afdcd_tau", "0.05,0.07", "tau"),
    ("afdcd_mask_ratio", "0.5,0.75", "mask_ratio"),
])
def test_afdcd_sweep_notebooks(tiny, notebook, values, option):
    base, extra, teacher = tiny
    out, figs = base / notebook, base / f"{notebook}_figs"
    execute(f"{notebook}.py", {"values": values, "seeds": "0", "teacher_checkpoint": str(teacher), "extra": extra,
                               "output_dir": str(out), "figures_dir": str(figs)})
    runs, summary = _check_outputs(out, figs, [notebook])
    assert sorted(runs[option]) == sorted(float(v) for v in values.split(","))
    assert set(runs["method"]) == {"afdcd"} and len(summary) == 2 and summary["paper_default"].sum() == 1
    _check_configs(out, runs, option, "afdcd")


def test_afdcd_patch_notebook(tiny):
    base, extra, teacher = tiny
    out, figs = base / "patch", base / "patch_figs"
    execute("afdcd_patch.py", {"values": "2,2/pool2", "seeds": "0", "teacher_checkpoint": str(teacher),
                               "extra": extra, "output_dir": str(out), "figures_dir": str(figs)})
    runs, summary = _check_outputs(out, figs, ["afdcd_patch"])
    assert list(runs["patch"]) == [2, 2] and list(runs["pool"].astype(str)) == ["none", "2"]
    configs = [_config(out, r)["method_options"] for r in runs["run_id"]]
    assert [(c["patch"], c["pool"]) for c in configs] == [(2, None), (2, 2)]  # no pooling on the built-in data


def test_afdcd_table5_notebook(tiny):
    base, extra, teacher = tiny
    out, figs = base / "t5", base / "t5_figs"
    execute("afdcd_table5.py", {"methods": "cirkd,afdcd", "seeds": "0", "teacher_checkpoint": str(teacher),
                                "extra": extra, "output_dir": str(out), "figures_dir": str(figs)})
    runs = pd.read_csv(out / "runs.csv")
    assert list(runs["method"]) == ["cirkd", "afdcd"] and runs["miou"].between(0, 1).all()
    assert (runs["peak_memory_mb"] > 0).all() and (runs["ms_per_iter"] > 0).all()
    assert set(runs["memory_source"]) == {"vmhwm"}  # measured in the training subprocess itself
    summary = pd.read_csv(out / "summary.csv").set_index("method")
    assert summary.loc["cirkd", "memory_vs_cirkd"] == 1 and summary.loc["cirkd", "step_vs_cirkd"] == 1
    assert summary.loc["afdcd", "paper_memory_vs_cirkd"] == pytest.approx(7.94 / 10.09)
    assert summary.loc["afdcd", "paper_time_vs_cirkd"] == pytest.approx(4.23 / 4.34)
    for _, row in runs.iterrows():
        cfg = yaml.safe_load((out / "runs" / f"student-deeplabv3resnet18_method-{row['method']}_seed-0" /
                              "config.yaml").read_text())
        assert cfg["method"] == row["method"]
        assert (out / "runs" / f"student-deeplabv3resnet18_method-{row['method']}_seed-0" / "cost.json").is_file()
    assert (figs / "cost.png").stat().st_size > 1000 and (figs / "cost.pdf").is_file()
