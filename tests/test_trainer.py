"""End-to-end checks of the training loop on a tiny built-in dataset (CPU, a few iterations).

* the same seed gives the same weights and metrics;
* a run killed with SIGKILL halfway and resumed ends with the weights of an uninterrupted run;
* 2 processes (torchrun, gloo) give the weights of 1 process with the same global batch;
* a NaN loss stops the run naming the term and the iteration;
* teacher -> KD student through a kdlib run directory, with every run-directory file written.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from kdlib.data.synthetic import generate
from kdlib.engine.config import TrainConfig, resolve_config
from kdlib.engine.trainer import NonFiniteLossError, train

REPO = Path(__file__).resolve().parents[1]

TINY = dict(
    dataset="synthetic_streets", dataset_options={"preset": "tiny"}, crop_size=[48, 96],
    student="deeplabv3_resnet18", student_width=0.125, teacher="deeplabv3_resnet18", teacher_width=0.125,
    iterations=8, batch_size=4, lr=0.01, eval_interval=4, checkpoint_interval=4, log_interval=1,
    num_workers=0, max_val_samples=4, device="cpu",
)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "synthetic_tiny"
    generate(root, preset="tiny", progress=False)
    return root


def tiny_config(data_root: Path, run_dir: Path, **overrides) -> TrainConfig:
    values = {**TINY, "data_root": str(data_root), "run_dir": str(run_dir), **overrides}
    return resolve_config(overrides=values)


def final_weights(run_dir: Path) -> dict:
    return torch.load(Path(run_dir) / "final.pt", map_location="cpu", weights_only=False)["model"]


def assert_same_weights(a: dict, b: dict, atol: float = 0.0) -> None:
    assert a.keys() == b.keys()
    for key in a:
        if atol == 0.0:
            assert torch.equal(a[key], b[key]), key
        else:
            torch.testing.assert_close(a[key].double(), b[key].double(), atol=atol, rtol=1e-4, msg=key)


def test_same_seed_same_result_and_run_dir_contents(data_root, tmp_path):
    first = train(tiny_config(data_root, tmp_path / "a"), progress=False)
    second = train(tiny_config(data_root, tmp_path / "b"), progress=False)
    assert first["miou"] == second["miou"] and first["per_class_iou"] == second["per_class_iou"]
    assert_same_weights(final_weights(tmp_path / "a"), final_weights(tmp_path / "b"))
    other = train(tiny_config(data_root, tmp_path / "c", seed=1), progress=False)
    w_a, w_c = final_weights(tmp_path / "a"), final_weights(tmp_path / "c")
    assert any(not torch.equal(w_a[k], w_c[k]) for k in w_a), "another seed must give other weights"

    run = tmp_path / "a"
    for name in ("config.yaml", "env.json", "log.jsonl", "metrics.json", "per_class_iou.csv", "final.pt",
                 "best.pt", "checkpoint_last.pt"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert len(metrics["per_class_iou"]) == 11 and 0.0 <= metrics["miou"] <= 1.0
    env = json.loads((run / "env.json").read_text())
    assert env["seed"] == 0 and "torch" in json.dumps(env) and "git_commit" in env
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in lines if "loss" in r] == list(range(1, 9))
    assert {"ce", "aux_ce", "loss", "lr"} <= set(lines[0])
    with pytest.raises(FileExistsError):  # a finished run is never overwritten silently
        train(tiny_config(data_root, run), progress=False)


KILLER = textwrap.dedent("""
    # Train, and SIGKILL this very process at the start of iteration {kill_at} (after the checkpoint at 4).
    import os, signal, sys
    import kdlib.engine.trainer as trainer
    from kdlib.engine.config import resolve_config
    real_poly_lr = trainer.poly_lr
    def poly_lr(base, iteration, total, power):
        if iteration == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)
        return real_poly_lr(base, iteration, total, power)
    trainer.poly_lr = poly_lr
    trainer.train(resolve_config(overrides={overrides!r}), progress=False)
""")


def test_sigkill_halfway_then_resume_equals_uninterrupted(data_root, tmp_path):
    reference = tmp_path / "uninterrupted"
    train(tiny_config(data_root, reference), progress=False)

    killed = tmp_path / "killed"
    overrides = {**TINY, "data_root": str(data_root), "run_dir": str(killed)}
    script = KILLER.format(kill_at=6, overrides=overrides)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert (killed / "checkpoint_last.pt").is_file() and not (killed / "metrics.json").exists()
    assert torch.load(killed / "checkpoint_last.pt", weights_only=False)["iteration"] == 4

    result = train(tiny_config(data_root, killed), resume=True, progress=False)
    assert_same_weights(final_weights(killed), final_weights(reference))
    assert result["miou"] == json.loads((reference / "metrics.json").read_text())["miou"]


def _flat(weights: dict) -> torch.Tensor:
    return torch.cat([v.double().flatten() for k, v in weights.items()
                      if v.is_floating_point() and "running" not in k])


def test_two_gloo_processes_equal_one_process(data_root, tmp_path):
    """torchrun, 2 CPU processes, gloo, SyncBN: the same weights as 1 process with the same global batch.

    Scale augmentation is off for this test: its zero padding makes flat regions whose exact max-pool ties
    are broken by float rounding, so *any* change of summation order (even the thread count) sends
    gradients to other pixels. Without ties, float noise stays ~1e-5 of the update, while a real
    difference (per-rank BN statistics, per-rank loss normalisation, another batch) is ~1e-1.
    """
    common = {**TINY, "data_root": str(data_root), "disable_dropout": True, "iterations": 4,
              "eval_interval": 4, "checkpoint_interval": 4,
              "dataset_options": {"preset": "tiny", "scales": [1.0]}}
    train(resolve_config(overrides={**common, "lr": 0.0, "iterations": 1, "run_dir": str(tmp_path / "init")}),
          progress=False)
    single = tmp_path / "single"
    train(resolve_config(overrides={**common, "run_dir": str(single)}), progress=False)

    ddp = tmp_path / "ddp"
    args = [f"{k}={json.dumps(v)}" for k, v in {**common, "run_dir": str(ddp)}.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(torchrun + ["-m", "kdlib", "train", "--quiet", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    env_json = json.loads((ddp / "env.json").read_text())
    assert env_json["world_size"] == 2 and env_json["per_device_batch"] == 2

    init, w_single, w_ddp = (_flat(final_weights(tmp_path / "init")), _flat(final_weights(single)),
                             _flat(final_weights(ddp)))
    update = (w_single - init).norm()
    assert update > 1e-3  # the runs did train
    assert (w_ddp - w_single).norm() / update < 2e-3
    s_state, d_state = final_weights(single), final_weights(ddp)
    for key in s_state:  # the BN running statistics are synchronised too
        if "running_mean" in key:
            torch.testing.assert_close(d_state[key], s_state[key], rtol=1e-3, atol=1e-4, msg=key)
    m_single = json.loads((single / "metrics.json").read_text())
    m_ddp = json.loads((ddp / "metrics.json").read_text())
    assert m_ddp["pixel_acc"] == pytest.approx(m_single["pixel_acc"], abs=1e-3)


def test_nan_loss_stops_naming_term_and_iteration(data_root, tmp_path, monkeypatch):
    import kdlib.engine.trainer as trainer

    real = trainer.task_loss
    calls = {"n": 0}

    def poisoned(logits, labels):
        calls["n"] += 1
        value = real(logits, labels)
        # two calls per iteration (main and aux head): poison the main CE of iteration 3
        return value * float("nan") if calls["n"] == 5 else value

    monkeypatch.setattr(trainer, "task_loss", poisoned)
    with pytest.raises(NonFiniteLossError, match=r"'ce'.*iteration 3"):
        train(tiny_config(data_root, tmp_path / "nan"), progress=False)
    assert not (tmp_path / "nan" / "metrics.json").exists()


def test_teacher_then_kd_student(data_root, tmp_path):
    teacher_run = tmp_path / "teacher"
    train(tiny_config(data_root, teacher_run, student="deeplabv3_resnet18", student_width=0.25),
          progress=False)
    teacher_file = final_weights(teacher_run)
    cfg = tiny_config(data_root, tmp_path / "kd", method="kd", teacher_width=0.25,
                      teacher_checkpoint=str(teacher_run))
    assert cfg.loss_weights == {"kd": 1.0}  # the method's paper default
    result = train(cfg, progress=False)
    log = [json.loads(line) for line in (tmp_path / "kd" / "log.jsonl").read_text().splitlines()]
    kd_values = [r["kd"] for r in log if "kd" in r]
    assert len(kd_values) == 8 and all(v > 0 for v in kd_values)
    first = next(r for r in log if "loss" in r)
    assert first["loss"] == pytest.approx(first["ce"] + 0.4 * first["aux_ce"] + first["kd"], rel=1e-5)
    assert_same_weights(final_weights(teacher_run), teacher_file)
    assert 0.0 <= result["miou"] <= 1.0

    bad = tiny_config(data_root, tmp_path / "kd_bad", method="kd", teacher_width=0.5,
                      teacher_checkpoint=str(teacher_run / "final.pt"), teacher="pspnet_resnet18")
    with pytest.raises(ValueError, match="pspnet_resnet18"):
        train(bad, progress=False)


def test_cli_train_bad_input_is_a_clear_message_not_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "kdlib", "train", "dataset=cityscapes",
                           f"data_root={tmp_path / 'missing'}", f"run_dir={tmp_path / 'run'}", "iterations=2"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("kdlib: error: ") and str(tmp_path / "missing") in proc.stderr
    assert "set data_root=<folder>" in proc.stderr.splitlines()[0]  # says what to do, in the CLI's spelling
    assert not (tmp_path / "run").exists()   # a failed run leaves a checkpoint to resume from, or nothing


def test_quick_study_tiny(data_root, tmp_path):
    from kdlib.studies.quick import run_quick

    overrides = {"data_root": str(data_root), "dataset_options": {"preset": "tiny"}, "crop_size": [48, 96],
                 "iterations": 4, "eval_interval": 4, "checkpoint_interval": 4, "num_workers": 0,
                 "student_width": 0.125, "teacher_width": 0.125, "max_val_samples": 4}
    dirs = dict(results_dir=str(tmp_path / "results"), figures_dir=str(tmp_path / "figures"),
                runs_root=str(tmp_path / "runs"))
    summary = run_quick(overrides=overrides, progress=False, **dirs)
    assert list(summary["run"]) == ["teacher", "baseline", "kd"]
    assert list(summary["iterations"]) == [6, 4, 4]  # the teacher trains 1.5x longer
    assert summary["miou_pct"].between(0, 100).all()   # results CSVs: percent, with their provenance
    assert (summary["seed"] == 0).all() and summary["git_commit"].notna().all() and summary["started"].notna().all()
    per_class = (tmp_path / "results" / "per_class_iou.csv").read_text().splitlines()
    assert per_class[0] == "run,label,class,iou_pct,seed,git_commit,started" and len(per_class) == 1 + 3 * 11
    for name in ("miou.png", "per_class_iou.png"):
        assert (tmp_path / "figures" / name).stat().st_size > 1000
    kd_mtime = (tmp_path / "runs" / "kd" / "final.pt").stat().st_mtime
    again = run_quick(overrides=overrides, progress=False, **dirs)  # finished runs are reused
    assert (tmp_path / "runs" / "kd" / "final.pt").stat().st_mtime == kd_mtime
    assert list(again["miou_pct"]) == list(summary["miou_pct"])
    with pytest.raises(ValueError, match="iterations"):  # ... but never with other settings
        run_quick(overrides={**overrides, "iterations": 5}, progress=False, **dirs)


def test_official_layout_teacher_and_kdlib_eval(data_root, tmp_path, capsys):
    """A teacher given as an official-layout state dict (``export_official``) distils like the kdlib run;
    ``kdlib eval`` on a run directory reproduces the run's final metrics."""
    from kdlib.cli import main
    from kdlib.models import build_model, export_official

    teacher_run = tmp_path / "teacher"
    train(tiny_config(data_root, teacher_run), progress=False)
    teacher = build_model("deeplabv3_resnet18", 11, width=0.125)
    teacher.load_state_dict(final_weights(teacher_run))
    official = tmp_path / "teacher_official.pth"
    export_official(teacher, official)
    assert all(k.startswith(("pretrained.", "head.", "auxlayer.")) for k in torch.load(official))

    via_run = train(tiny_config(data_root, tmp_path / "kd_run", method="kd", teacher_checkpoint=str(teacher_run)),
                    progress=False)
    via_official = train(tiny_config(data_root, tmp_path / "kd_off", method="kd",
                                     teacher_checkpoint=str(official)), progress=False)
    assert via_official["miou"] == via_run["miou"]
    assert_same_weights(final_weights(tmp_path / "kd_off"), final_weights(tmp_path / "kd_run"))

    with pytest.raises(Exception, match="does not fit|shape"):  # a teacher of another width does not load
        train(tiny_config(data_root, tmp_path / "kd_bad", method="kd", teacher_width=0.25,
                          teacher_checkpoint=str(official)), progress=False)

    out = tmp_path / "eval.json"
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "kd_run" / "final.pt"), "--output", str(out), "--max-samples", "4"]) == 0
    assert "mIoU" in capsys.readouterr().out
    evaluated = json.loads(out.read_text())
    assert evaluated["miou"] == pytest.approx(via_run["miou"], abs=1e-9)
    assert evaluated["per_class_iou"] == pytest.approx(via_run["per_class_iou"], abs=1e-9)


def test_bf16_autocast_and_channels_last_train_on_cpu(data_root, tmp_path):
    """The AMP / channels_last code path (used on GPUs) also runs on CPU with bf16 and stays close to fp32."""
    fp32 = train(tiny_config(data_root, tmp_path / "fp32", iterations=4, eval_interval=4), progress=False)
    bf16 = train(tiny_config(data_root, tmp_path / "bf16", iterations=4, eval_interval=4, amp="bf16",
                             channels_last=True), progress=False)
    log = [json.loads(line) for line in (tmp_path / "bf16" / "log.jsonl").read_text().splitlines()]
    first = [r for r in log if "loss" in r][0]
    ref = [json.loads(line) for line in (tmp_path / "fp32" / "log.jsonl").read_text().splitlines()][0]
    assert first["ce"] == pytest.approx(ref["ce"], rel=0.05)  # same data and init, bf16 rounding only
    assert 0.0 <= bf16["miou"] <= 1.0 and bf16["pixel_acc"] > 0
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        train(tiny_config(data_root, tmp_path / "fp16", amp="fp16"), progress=False)


@pytest.mark.parametrize("method", ["cirkd", "skd"])
def test_methods_with_collectives_run_under_two_gloo_processes(data_root, tmp_path, method):
    """CIRKD (gathered enqueue) and SKD (discriminator step with averaged gradients) under torchrun."""
    teacher_run = tmp_path / "teacher"
    train(tiny_config(data_root, teacher_run, iterations=2, eval_interval=2, checkpoint_interval=2),
          progress=False)
    overrides = {**TINY, "data_root": str(data_root), "method": method, "teacher_checkpoint": str(teacher_run),
                 "iterations": 3, "eval_interval": 3, "checkpoint_interval": 3, "run_dir": str(tmp_path / method)}
    if method == "cirkd":
        overrides["method_options"] = {"pixel_memory_size": 64, "region_memory_size": 16,
                                       "pixel_contrast_size": 32, "region_contrast_size": 8}
    args = [f"{k}={json.dumps(v)}" for k, v in overrides.items()]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    proc = subprocess.run(torchrun + ["-m", "kdlib", "train", "--quiet", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    log = [json.loads(line) for line in (tmp_path / method / "log.jsonl").read_text().splitlines()]
    terms = [r for r in log if "loss" in r]
    assert len(terms) == 3 and all(np.isfinite(r["loss"]) for r in terms)
    expected = {"cirkd": {"batch_p2p", "memory_p2p", "memory_p2r"}, "skd": {"pairwise", "adv"}}[method]
    assert expected <= set(terms[-1])
