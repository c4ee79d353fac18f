"""Engine pieces that need no dataset: metrics, sampler, lr schedule, config, run directory."""
import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from kdlib.engine.config import TrainConfig, parse_overrides, resolve_config
from kdlib.engine.evaluate import confusion_matrix, metrics_from_confusion
from kdlib.engine.rundir import RunDirectoryError, prepare_run_dir
from kdlib.engine.sampler import ResumableSampler
from kdlib.engine.trainer import poly_lr, task_loss


def test_miou_matches_torchmetrics_on_random_data():
    g = torch.Generator().manual_seed(0)
    k = 7
    target = torch.randint(-1, k, (4, 33, 41), generator=g)
    pred = torch.where(torch.rand(target.shape, generator=g) < 0.6, target.clamp(min=0),
                       torch.randint(0, k, target.shape, generator=g))
    conf = confusion_matrix(pred, target, k, ignore_index=-1)
    ours = metrics_from_confusion(conf)
    ref = MulticlassJaccardIndex(num_classes=k, average=None, ignore_index=-1)(pred, target)
    assert torch.allclose(torch.tensor(list(ours["per_class_iou"].values()), dtype=torch.float32), ref, atol=1e-6)
    assert ours["miou"] == pytest.approx(float(ref.mean()), abs=1e-6)
    valid = target != -1
    assert ours["pixel_acc"] == pytest.approx(float((pred[valid] == target[valid]).double().mean()), abs=1e-12)


def test_absent_classes_count_as_zero_in_miou():
    # hand case: 3 classes, class 2 never appears in GT nor prediction -> IoU 0, still averaged (official)
    target = torch.tensor([[0, 0, 1, 1]])
    pred = torch.tensor([[0, 1, 1, 1]])
    m = metrics_from_confusion(confusion_matrix(pred, target, 3))
    assert m["per_class_iou"] == pytest.approx({"0": 0.5, "1": 2 / 3, "2": 0.0})
    assert m["miou"] == pytest.approx((0.5 + 2 / 3) / 3)
    assert m["miou_present"] == pytest.approx((0.5 + 2 / 3) / 2)


def test_confusion_rejects_corrupt_labels():
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix(torch.zeros(2, 2, dtype=torch.long), torch.tensor([[0, 5], [1, 0]]), 3)


def test_sampler_resume_and_world_size_invariance():
    full = list(ResumableSampler(13, 6, 9, seed=3))
    assert len(full) == 54
    resumed = list(ResumableSampler(13, 6, 9, seed=3, start_iteration=4))
    assert resumed == full[24:]
    for step in range(9):
        one = {i for i, _ in full[6 * step:6 * step + 6]}
        shards = [list(ResumableSampler(13, 6, 9, seed=3, rank=r, world_size=3))[2 * step:2 * step + 2]
                  for r in range(3)]
        assert {i for shard in shards for i, _ in shard} == one
    # every epoch is a permutation
    assert sorted(i for i, e in full if e == 0) == list(range(13))
    with pytest.raises(ValueError):
        ResumableSampler(13, 5, 9, world_size=2)


def test_poly_lr_matches_formula():
    assert poly_lr(0.02, 1, 100, 0.9) == pytest.approx(0.02)
    assert poly_lr(0.02, 51, 100, 0.9) == pytest.approx(0.02 * 0.5 ** 0.9)
    assert poly_lr(0.02, 100, 100, 0.9) == pytest.approx(0.02 * 0.01 ** 0.9)


def test_task_loss_upsamples_and_ignores():
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 1] = 10.0
    labels = torch.full((1, 8, 8), -1, dtype=torch.long)
    labels[0, 0, 0] = 1
    assert float(task_loss(logits, labels)) == pytest.approx(float(-torch.log_softmax(torch.tensor([0., 10., 0.]), 0)[1]))


def test_config_resolution_order_and_errors():
    cfg = resolve_config("cityscapes", parse_overrides(["lr=0.01", "crop_size=[256,512]"]))
    assert cfg.crop_size == (256, 512) and cfg.lr == 0.01 and cfg.iterations == 40000
    assert resolve_config("coco_stuff_164k").iterations == 80000
    with pytest.raises(ValueError, match="unknown config field"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="unknown preset"):
        resolve_config("kitti")
    with pytest.raises(ValueError, match="needs a teacher"):
        resolve_config(None, {"method": "kd", "teacher": None})
    assert parse_overrides(["loss_weights.kd=0.5"]) == {"loss_weights": {"kd": 0.5}}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["lr"])


def test_run_dir_is_never_overwritten_silently(tmp_path):
    run = prepare_run_dir(tmp_path / "r", resume=False, overwrite=False)
    (run / "config.yaml").write_text("x")
    with pytest.raises(RunDirectoryError, match="unfinished"):
        prepare_run_dir(run, resume=False, overwrite=False)
    prepare_run_dir(run, resume=True, overwrite=False)
    (run / "metrics.json").write_text("{}")
    with pytest.raises(RunDirectoryError, match="finished run"):
        prepare_run_dir(run, resume=True, overwrite=False)
    prepare_run_dir(run, resume=False, overwrite=True)
    assert not (run / "metrics.json").exists()


def test_config_changes_treats_fields_added_later_as_their_default(tmp_path):
    """A run saved before a config field existed was made with what is now that field's default."""
    import yaml

    from kdlib.engine.config import TrainConfig
    from kdlib.engine.rundir import config_changes

    cfg = TrainConfig().to_dict()
    old = {k: v for k, v in cfg.items() if k != "optimizer"}          # a config.yaml from before `optimizer`
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    assert config_changes(tmp_path, yaml.safe_dump(cfg)) == []
    assert config_changes(tmp_path, yaml.safe_dump({**cfg, "optimizer": "adamw"})) == ["optimizer"]
    assert config_changes(tmp_path, yaml.safe_dump({**cfg, "lr": 0.5})) == ["lr"]


def test_cpu_peak_memory_is_per_run():
    """After a reset the CPU peak no longer holds an earlier, larger allocation (Linux VmHWM)."""
    import os

    import torch

    from kdlib.engine.trainer import peak_memory_mb, reset_peak_memory

    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("no /proc/self/clear_refs (not Linux)")
    cpu = torch.device("cpu")
    reset_peak_memory(cpu)
    big = torch.ones(300 * 2 ** 20 // 4)          # 300 MB, touched
    high = peak_memory_mb(cpu)
    del big
    reset_peak_memory(cpu)
    low = peak_memory_mb(cpu)
    assert high - low > 250, (high, low)
