"""The paper path: paper presets reproduce the published runs by default, and `kdlib plan` shows every run.

Expected values are the papers' / official scripts' numbers written out here by hand (CIRKD Tables 1-3 and
its scripts, Af-DCD's per-dataset scripts), not read from kdlib's recipe tables.
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from kdlib.cli import main

try:  # pytest's default "prepend" import mode puts tests/ on sys.path
    import official_reference as ref
    from data_fixtures import write_camvid, write_cityscapes
except ImportError:  # pragma: no cover - tests/ imported as a package
    from tests import official_reference as ref
    from tests.data_fixtures import write_camvid, write_cityscapes

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"

# the official ImageNet file of each student (CIRKD / Af-DCD READMEs; SegFormer's MiT files)
OFFICIAL_FILE = {"deeplabv3_resnet18": "resnet18-imagenet.pth", "pspnet_resnet18": "resnet18-imagenet.pth",
                 "deeplabv3_mobilenetv2": "mobilenetv2-imagenet.pth", "deeplabv3_resnet101": "resnet101-imagenet.pth",
                 "segformer_mit_b0": "mit_b0.pth"}


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory) -> Path:
    """Empty files under the official names: `kdlib plan` checks they exist and never reads them."""
    folder = tmp_path_factory.mktemp("imagenet")
    for name in set(OFFICIAL_FILE.values()):
        (folder / name).touch()
    return folder


def plan(capsys, notebook: str, **params) -> list:
    args = ["plan", str(NOTEBOOKS / notebook)]
    for key, value in params.items():
        args += ["--param", f"{key}={json.dumps(value) if isinstance(value, str) else value}"]
    capsys.readouterr()
    assert main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines()]


def plan_error(capsys, notebook: str, **params) -> str:
    args = ["plan", str(NOTEBOOKS / notebook)]
    for key, value in params.items():
        args += ["--param", f"{key}={json.dumps(value) if isinstance(value, str) else value}"]
    capsys.readouterr()
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kdlib: error: "), captured.err
    return lines[0]


# ------------------------------------------------------------------------------------------------ kdlib plan
# (notebook, preset, students, methods, dataset facts: crop, iterations, final split)
TABLES = {
    "cirkd_table1.py": ("cityscapes", ["deeplabv3_resnet18", "deeplabv3_mobilenetv2", "pspnet_resnet18"],
                        ["none", "skd", "ifvd", "cwd", "cirkd"], [512, 1024], 40000, "val"),
    "cirkd_table2.py": ("camvid", ["deeplabv3_resnet18", "pspnet_resnet18"], ["none", "skd", "ifvd", "cwd", "cirkd"],
                        [360, 360], 40000, "test"),
    "cirkd_table3.py": ("voc", ["deeplabv3_resnet18", "pspnet_resnet18"], ["none", "skd", "ifvd", "cwd", "cirkd"],
                        [512, 512], 40000, "val"),
    "afdcd_cityscapes.py": ("cityscapes", ["deeplabv3_resnet18", "deeplabv3_mobilenetv2"],
                            ["none", "skd", "ifvd", "cwd", "cirkd", "afdcd"], [512, 1024], 40000, "val"),
    "afdcd_camvid.py": ("camvid", ["deeplabv3_resnet18", "pspnet_resnet18"],
                        ["none", "skd", "ifvd", "cwd", "cirkd", "afdcd"], [360, 360], 40000, "test"),
    "afdcd_voc.py": ("voc", ["deeplabv3_resnet18", "pspnet_resnet18"],
                     ["none", "skd", "ifvd", "cwd", "cirkd", "afdcd"], [512, 512], 40000, "val"),
    "afdcd_ade20k.py": ("ade20k", ["deeplabv3_resnet18"], ["none", "kd", "cirkd", "afdcd"], [512, 512], 40000, "val"),
    "afdcd_coco_stuff.py": ("coco_stuff_164k", ["deeplabv3_resnet18"], ["none", "kd", "cirkd", "afdcd"], [512, 512],
                            80000, "val"),
}
# Af-DCD (lambda_kd, lambda_fd, lambda_ctr) of the official per-dataset scripts
AFDCD_LAMBDAS = {"cityscapes": (1.0, 2e-6, 0.005), "camvid": (1.0, 8e-6, 0.01), "voc": (1.0, 1e-6, 0.005),
                 "ade20k": (0.5, 1e-6, 0.04), "coco_stuff_164k": (0.5, 5e-6, 0.005)}


def check_paper_run(run: dict, imagenet_dir: Path, crop, iterations: int, final_split: str) -> None:
    cfg = run["config"]
    assert run["nproc_per_node"] == 1 and run["status"] == "new"
    assert cfg["run_dir"].endswith(run["run_id"])
    assert cfg["batch_size"] == 16 and cfg["lr"] == 0.02 and cfg["momentum"] == 0.9
    assert cfg["weight_decay"] == 1e-4 and cfg["poly_power"] == 0.9 and cfg["optimizer"] == "sgd"
    assert cfg["crop_size"] == crop and cfg["iterations"] == iterations and cfg["eval_interval"] == 800
    assert cfg["report_checkpoint"] == "best" and cfg["final_split"] == final_split
    if "init-none" in run["run_id"]:
        assert cfg["student_imagenet"] == "none"
    else:
        assert cfg["student_imagenet"] == str(imagenet_dir / OFFICIAL_FILE[cfg["student"]])
    method, options, weights = cfg["method"], cfg["method_options"], cfg["loss_weights"]
    if method != "none":
        assert cfg["teacher"] == "deeplabv3_resnet101" and cfg["teacher_checkpoint"] == "t.pth"
    if method == "cirkd":
        memory = 0.01 if cfg["dataset"] == "voc" else 0.1
        assert weights == {"kd": 1.0, "batch_p2p": 1.0, "memory_p2p": memory, "memory_p2r": memory}
        assert options["pixel_queue_bug"] is True
        assert (options["pixel_memory_size"], options["region_memory_size"]) == (20000, 2000)
        assert (options["pixel_contrast_size"], options["region_contrast_size"]) == (4096, 1024)
        assert options["contrast_temperature"] == 0.1
    if method == "afdcd":
        kd, fd, ctr = AFDCD_LAMBDAS[cfg["dataset"]]
        assert (weights["kd"], weights["fd"], weights["ctr"]) == (kd, fd, ctr)
        assert options["tau"] == 0.07 and options["groups"] == 16 and options["mask_ratio"] == 0.75
        assert options["rand_mask"] is True and options["enhance_projector"] is False
        # Af-DCD's own trainer validates (selects its best checkpoint) on CamVid's test list
        assert cfg["val_split"] == ("test" if cfg["dataset"] == "camvid" else "val")
    elif method in ("skd", "ifvd", "cwd"):
        assert weights["kd"] == 1.0 and weights["adv"] == 0.001
        assert cfg["val_split"] == "val"
    else:
        assert cfg["val_split"] == "val"


@pytest.mark.parametrize("notebook", sorted(TABLES), ids=str)
def test_plan_resolves_every_run_of_a_paper_table(notebook, capsys, imagenet_dir):
    preset, students, methods, crop, iterations, final_split = TABLES[notebook]
    runs = plan(capsys, notebook, preset=preset, imagenet_dir=str(imagenet_dir), teacher_checkpoint="t.pth",
                seeds="0,1", output_dir=f"results/{notebook[:-3]}")
    extra = 2 * len(methods) if notebook == "cirkd_table1.py" else 0   # the R18* row, 2 seeds
    assert len(runs) == 2 * len(students) * len(methods) + extra
    assert {(r["config"]["student"], r["config"]["method"]) for r in runs} == {(s, m) for s in students
                                                                                 for m in methods}
    assert {r["config"]["seed"] for r in runs} == {0, 1}
    assert all(r["config"]["dataset"] == {"coco_stuff_164k": "coco_stuff_164k"}.get(preset, preset) for r in runs)
    for run in runs:
        check_paper_run(run, imagenet_dir, crop, iterations, final_split)


def test_cirkd_table1_r18_star_pass_has_its_own_runs(capsys, imagenet_dir):
    runs = plan(capsys, "cirkd_table1.py", preset="cityscapes", imagenet_dir=str(imagenet_dir),
                teacher_checkpoint="t.pth", methods="none,cirkd", students="deeplabv3_resnet18", seeds="0")
    by_dir = {r["run_dir"]: r["config"]["student_imagenet"] for r in runs}
    assert len(by_dir) == 4   # main and R18* for none and cirkd: four folders, nothing shared
    star = {d: v for d, v in by_dir.items() if "init-none" in d}
    assert sorted(Path(d).name for d in star) == ["student-deeplabv3resnet18_method-cirkd_init-none_seed-0",
                                                   "student-deeplabv3resnet18_method-none_init-none_seed-0"]
    assert set(star.values()) == {"none"}
    assert {v for d, v in by_dir.items() if d not in star} == {str(imagenet_dir / "resnet18-imagenet.pth")}


def test_builtin_presets_keep_their_choices(capsys):
    """quick / proxy: no ImageNet needed, the final model on val, CIRKD's corrected pixel queue; the R18*
    pass reuses the main runs (nothing is ImageNet-initialised there)."""
    for preset in ("quick", "proxy"):
        runs = plan(capsys, "cirkd_table1.py", preset=preset, methods="none,cirkd", seeds="0",
                    students="deeplabv3_resnet18")
        assert len(runs) == 2
        for run in runs:
            cfg = run["config"]
            assert cfg["student_imagenet"] is None and cfg["report_checkpoint"] == "final"
            assert cfg["final_split"] == "val" == cfg["val_split"]
            if cfg["method"] == "cirkd":
                assert cfg["method_options"]["pixel_queue_bug"] is False


def test_plan_segformer_pair_and_ablation(capsys, imagenet_dir):
    runs = plan(capsys, "segformer_pair.py", preset="cityscapes_segformer", imagenet_dir=str(imagenet_dir),
                teacher_checkpoint="t.pth", width=1.0, lr=0, methods="none,cirkd")
    for run in runs:
        cfg = run["config"]
        assert cfg["student_imagenet"] == str(imagenet_dir / "mit_b0.pth")
        assert (cfg["optimizer"], cfg["lr"], cfg["batch_size"], cfg["iterations"]) == ("adamw", 2e-4, 8, 160000)
        assert cfg["crop_size"] == [1024, 1024] and cfg["report_checkpoint"] == "best"
        if cfg["method"] == "cirkd":
            assert cfg["method_options"]["pixel_memory_size"] == 2000
            assert cfg["method_options"]["pixel_queue_bug"] is True
    runs = plan(capsys, "cirkd_table4.py", preset="cityscapes", imagenet_dir=str(imagenet_dir),
                teacher_checkpoint="t.pth")
    assert len(runs) == 7 and {r["config"]["student"] for r in runs} == {"deeplabv3_mobilenetv2"}
    assert {r["config"]["student_imagenet"] for r in runs} == {str(imagenet_dir / "mobilenetv2-imagenet.pth")}
    assert all(r["config"]["report_checkpoint"] == "best" for r in runs)


def test_plan_writes_nothing_and_reports_runs_already_trained(capsys, imagenet_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = plan(capsys, "afdcd_ade20k.py", preset="ade20k", imagenet_dir=str(imagenet_dir), teacher_checkpoint="t.pth",
                methods="none")
    assert len(runs) == 1 and list(tmp_path.iterdir()) == []
    assert Path.cwd() == tmp_path   # the notebook's use_project_root() did not move kdlib plan's process
    run_dir = Path(runs[0]["run_dir"])
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(__import__("yaml").safe_dump(runs[0]["config"]))
    again = plan(capsys, "afdcd_ade20k.py", preset="ade20k", imagenet_dir=str(imagenet_dir),
                 teacher_checkpoint="t.pth", methods="none")
    assert again[0]["status"] == "resumable"


# ------------------------------------------------------------------------------ bad input: one line, exit 2
def test_paper_preset_without_imagenet_files_names_the_file(capsys):
    line = plan_error(capsys, "cirkd_table3.py", preset="voc", teacher_checkpoint="t.pth",
                      students="pspnet_resnet18")
    assert "preset voc" in line and "'resnet18-imagenet.pth'" in line and "imagenet_dir" in line
    assert "student_imagenet=none" in line
    line = plan_error(capsys, "afdcd_cityscapes.py", preset="cityscapes", teacher_checkpoint="t.pth",
                      students="deeplabv3_mobilenetv2")
    assert "'mobilenetv2-imagenet.pth'" in line


def test_missing_wrong_or_unknown_inputs_are_one_line(capsys, imagenet_dir, tmp_path, monkeypatch):
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "resnet18-imagenet.pth").touch()
    line = plan_error(capsys, "afdcd_cityscapes.py", preset="cityscapes", imagenet_dir=str(partial),
                      teacher_checkpoint="t.pth")
    assert "not found" in line and "mobilenetv2-imagenet.pth" in line
    line = plan_error(capsys, "cirkd_table2.py", preset="camvid", imagenet_dir=str(imagenet_dir),
                      teacher_checkpoint="t.pth", students="deeplabv3_resnet18x")
    assert "unknown model 'deeplabv3_resnet18x'" in line and "did you mean deeplabv3_resnet18" in line
    line = plan_error(capsys, "cirkd_table2.py", methd="kd")
    assert "no parameter 'methd'" in line and "did you mean methods" in line
    line = plan_error(capsys, "cirkd_table2.py", preset="quick", extra="method_options.temprature=4",
                      methods="kd")
    assert "temprature" in line
    # a file of another student: MBV2 given ResNet-18's file
    line = plan_error(capsys, "train_config.py", preset="cityscapes", method="none",
                      extra=f"student=deeplabv3_mobilenetv2 student_imagenet={imagenet_dir / 'resnet18-imagenet.pth'}")
    assert "not of the student deeplabv3_mobilenetv2" in line and "mobilenetv2-imagenet.pth" in line
    # more processes than visible GPUs
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    line = plan_error(capsys, "cirkd_table2.py", preset="camvid", imagenet_dir=str(imagenet_dir),
                      teacher_checkpoint="t.pth", nproc_per_node=2)
    assert "nproc_per_node=2" in line and "1 GPU(s)" in line


def test_grid_refuses_unknown_parameter_with_suggestion(tmp_path):
    from kdlib.studies.grid import run_grid

    with pytest.raises(ValueError, match="no parameter 'methd'.*did you mean method"):
        run_grid(NOTEBOOKS / "train_config.py", {"methd": ["kd"]}, results_root=tmp_path, progress=False)
    assert not any(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------ real tiny runs
def test_paper_preset_starts_with_the_students_imagenet_file(tmp_path, capsys):
    """`kdlib train --preset cityscapes` on a Cityscapes fixture: stops without the file, starts with it."""
    root = tmp_path / "cityscapes"
    write_cityscapes(root, {"train": 2, "val": 1})
    folder = tmp_path / "imagenet"
    folder.mkdir()
    torch.save(ref.random_imagenet_state("deeplabv3_mobilenetv2", seed=1), folder / "mobilenetv2-imagenet.pth")
    args = ["train", "--preset", "cityscapes", "--quiet", f"data_root={root}", "student=deeplabv3_mobilenetv2",
            "iterations=1", "batch_size=2", "crop_size=[24,32]", "num_workers=0"]
    capsys.readouterr()
    assert main([*args, "--run-dir", str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "mobilenetv2-imagenet.pth" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "missing").exists()   # stopped before anything was written

    run = tmp_path / "run"
    assert main([*args, f"student_imagenet={folder / 'mobilenetv2-imagenet.pth'}", "--run-dir", str(run)]) == 0
    config = __import__("yaml").safe_load((run / "config.yaml").read_text())
    assert config["student_imagenet"] == str(folder / "mobilenetv2-imagenet.pth")
    assert config["report_checkpoint"] == "best" and config["final_split"] == "val"

    star = tmp_path / "star"   # the explicit opt-out is accepted and recorded
    assert main([*args, "student_imagenet=none", "--run-dir", str(star)]) == 0
    assert __import__("yaml").safe_load((star / "config.yaml").read_text())["student_imagenet"] == "none"


def test_camvid_table_compares_the_best_checkpoint_on_test(tmp_path):
    """CIRKD Table 2 with the camvid preset on a CamVid fixture: checkpoint chosen on val, number on test."""
    from kdlib.studies.reproduce import reproduce_table
    from kdlib.data import build_dataset
    from kdlib.engine.evaluate import evaluate
    from kdlib.models import build_model

    root = tmp_path / "CamVid"
    write_camvid(root, {"train": 4, "val": 2, "test": 3})
    folder = tmp_path / "imagenet"
    folder.mkdir()
    torch.save(ref.random_imagenet_state("deeplabv3_resnet18", seed=2), folder / "resnet18-imagenet.pth")
    common = {"data_root": str(root), "iterations": 3, "eval_interval": 1, "checkpoint_interval": 3,
              "batch_size": 2, "crop_size": [24, 32], "num_workers": 0}
    table, runs = reproduce_table("cirkd_table2", "camvid", ["deeplabv3_resnet18"], ["none"], [0],
                                  tmp_path / "out", None, common=common, imagenet_dir=folder, progress=False)
    run = runs.iloc[0]
    assert (run["report_checkpoint"], run["final_split"], run["val_split"]) == ("best", "test", "val")
    metrics = json.loads((Path(run["run_dir"]) / "metrics.json").read_text())
    log = [json.loads(line) for line in (Path(run["run_dir"]) / "log.jsonl").read_text().splitlines()]
    validations = {r["iteration"]: r["eval"]["miou"] for r in log if "eval" in r}
    assert sorted(validations) == [1, 2, 3]
    best_iteration = max(validations, key=lambda i: (validations[i], -i))
    assert metrics["best_iteration"] == best_iteration and metrics["best_miou"] == validations[best_iteration]

    # the best checkpoint evaluated on the 3 test images, independently of the run
    weights = torch.load(Path(run["run_dir"]) / "best.pt", map_location="cpu", weights_only=False)
    model = build_model("deeplabv3_resnet18", 11)
    model.load_state_dict(weights["model"])
    test = evaluate(model, build_dataset("camvid", root, "test", augment=False), "cpu")
    assert run["miou"] == pytest.approx(test["miou"], abs=1e-12)
    assert metrics["best_checkpoint_miou"] == pytest.approx(test["miou"], abs=1e-12)
    final = torch.load(Path(run["run_dir"]) / "final.pt", map_location="cpu", weights_only=False)
    model.load_state_dict(final["model"])
    final_test = evaluate(model, build_dataset("camvid", root, "test", augment=False), "cpu")
    assert metrics["final_model_miou"] == pytest.approx(final_test["miou"], abs=1e-12)

    row = table.iloc[0]   # what the table compares: the paper's 66.92 against the best checkpoint on test
    assert row["reported"] == 66.92 and row["reported on"] == "best checkpoint, test"
    assert row["mean"] == pytest.approx(100 * test["miou"])
    assert row["ours final model"] == pytest.approx(100 * final_test["miou"])
    saved = pd.read_csv(tmp_path / "out" / "runs.csv")
    assert {"best_miou", "best_checkpoint_miou", "final_model_miou", "final_split", "val_split"} <= set(saved.columns)


def test_table_notebook_cell_trains_in_two_processes(tiny_data_and_teacher, tmp_path):
    """nproc_per_node=2 in a table notebook: its run trains under torchrun (2 gloo processes)."""
    from kdlib.studies.grid import run_grid

    extra, _ = tiny_data_and_teacher
    table, results = run_grid(NOTEBOOKS / "cirkd_table2.py",
                              {"students": ["deeplabv3_resnet18"], "methods": ["none"], "extra": [extra],
                               "nproc_per_node": [2], "figures_dir": [""]},
                              results_root=tmp_path, progress=False)
    assert [r.status for r in results] == ["ok"], results[0].error
    env = json.loads(next(tmp_path.glob("cirkd_table2/*/runs/*/env.json")).read_text())
    assert env["world_size"] == 2
