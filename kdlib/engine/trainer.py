"""The training loop: student-only or teacher -> student, on CPU, one GPU, or many via ``torchrun``.

Read top to bottom: ``train(cfg)`` builds data, models and the distillation method, then runs

    teacher forward (no grad, eval mode) -> student forward -> CE + 0.4 aux CE + weighted distillation
    terms -> poly lr -> zero grad -> backward -> (clip the method's own gradients) -> SGD (or AdamW) step
    -> (the method's own step, e.g. a discriminator's Adam) -> periodic evaluation / atomic checkpoint

exactly in the official order (docs/reference.md §5). Every run writes a run directory (see ``rundir.py``).
"""
from __future__ import annotations

import random
import resource
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from kdlib import distributed
from kdlib.progress import progress_bar
from kdlib.engine.checkpoint import (CHECKPOINT_FORMAT, atomic_save, load_checkpoint, load_segmentation_model,
                                     rng_state, set_rng_state)
from kdlib.engine.config import NO_IMAGENET, TrainConfig
from kdlib.engine.preflight import check_imagenet
from kdlib.engine.evaluate import evaluate
from kdlib.engine.rundir import (append_jsonl, environment, prepare_run_dir, write_json,
                                 write_per_class_csv, write_text_atomic)
from kdlib.engine.sampler import EpochKeyed, ResumableSampler
from kdlib.engine.sync_bn import convert_sync_batchnorm
from kdlib.methods import DistillLoss, PairSpec, build_distiller
from kdlib.engine.weight_scaling import method_settings
from kdlib.models import Segmentor, build_model, load_imagenet_backbone
from kdlib.models.output import SegOutput

AMP_DTYPES = {"none": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class NonFiniteLossError(FloatingPointError):
    """A loss term became NaN or Inf; the message names the term and the iteration."""


# --------------------------------------------------------------------------------------------- losses
class StudentStep(nn.Module):
    """Student forward and all losses in one module, so DDP sees every trained parameter in one forward."""

    def __init__(self, student: Segmentor, distiller: Optional[DistillLoss], weights: Dict[str, float],
                 aux_weight: float) -> None:
        super().__init__()
        self.student = student
        self.distiller = distiller
        self.weights = {k: float(v) for k, v in weights.items() if v}
        self.aux_weight = aux_weight

    def forward(self, images: Tensor, labels: Tensor, teacher_out: Optional[SegOutput]
                ) -> Tuple[Tensor, Dict[str, Tensor]]:
        out = self.student(images)
        terms = {"ce": task_loss(out.logits, labels)}
        if out.aux_logits is not None and self.aux_weight:
            terms["aux_ce"] = task_loss(out.aux_logits, labels)
        total = terms["ce"] + self.aux_weight * terms.get("aux_ce", 0.0)
        if self.distiller is not None and teacher_out is not None:
            distill_terms = self.distiller(out, teacher_out, labels)
            for name, value in distill_terms.items():
                total = total + self.weights[name] * value
            terms.update(distill_terms)
        return total, terms


def task_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """CE of logits bilinearly upsampled (align_corners=True) to the label size, ignoring -1 (docs/reference.md §3.1).

    One process: the mean over valid pixels. Under DDP the local sum is divided by (global valid pixels /
    world size), so after DDP's gradient averaging the objective is the mean over the *global* batch's
    valid pixels, independent of how ignore pixels fall on ranks (the official code averages per GPU;
    the two agree when every GPU holds as many valid pixels).
    """
    up = F.interpolate(logits.float(), size=labels.shape[-2:], mode="bilinear", align_corners=True)
    world = distributed.world_size()
    if world == 1:
        return F.cross_entropy(up, labels, ignore_index=-1)
    valid = (labels != -1).sum().to(up.dtype)
    distributed.all_reduce_sum(valid)
    total = F.cross_entropy(up, labels, ignore_index=-1, reduction="sum")
    return total / (valid / world).clamp(min=1.0)


def poly_lr(base_lr: float, iteration: int, total: int, power: float) -> float:
    """lr_t = base * (1 - (t - 1) / T) ** power for t = 1..T (set before every step, no warm-up)."""
    return base_lr * (1.0 - (iteration - 1) / total) ** power


def build_optimizer(cfg: TrainConfig, params) -> torch.optim.Optimizer:
    """One param group for the student and the method's own trained modules: SGD (lr, momentum, weight decay;
    the CNN papers) or AdamW (lr, weight decay, default betas; CIRKD's SegFormer recipe). The poly schedule
    sets every group's lr before each step in both cases."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"optimizer must be sgd or adamw, got {cfg.optimizer!r}")


# --------------------------------------------------------------------------------------------- models
def load_teacher(cfg: TrainConfig, num_classes: int, device: torch.device) -> Segmentor:
    """Teacher from a kdlib run directory / checkpoint or an official CIRKD/Af-DCD state dict; frozen."""
    if not cfg.teacher_checkpoint:
        raise ValueError(f"method {cfg.method!r} needs a trained teacher: set teacher_checkpoint=<kdlib run "
                         f"dir, kdlib checkpoint or official .pth>")
    teacher = load_segmentation_model(cfg.teacher_checkpoint, num_classes, model_name=cfg.teacher,
                                      width=cfg.teacher_width, role="teacher checkpoint",
                                      width_field="teacher_width").model
    teacher.eval().requires_grad_(False)
    return teacher.to(device)


def _disable_dropout(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def reset_peak_memory(device: torch.device) -> None:
    """Start this run's peak-memory measurement (see :func:`peak_memory_mb`)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux >= 4.0: writing 5 to clear_refs resets this process's RSS high-water mark (VmHWM)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory of the run since :func:`reset_peak_memory` (MB of 2^20 bytes).

    CUDA: ``max_memory_allocated`` (tensor memory). CPU: the process's resident-set high-water mark
    ``VmHWM`` (``/proc/self/status``), reset at the start of each run, so several runs trained one after
    another in one process (a notebook) each get their own peak, which still includes what the process held
    before the run (interpreter, libraries, earlier objects). Elsewhere ``getrusage``'s ``ru_maxrss``: never
    reset, and on Linux it also counts the parent's RSS at fork time.
    """
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    hwm = process_peak_rss_mb()
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB


def process_peak_rss_mb() -> Optional[float]:
    """This process's resident-set high-water mark in MB (Linux ``VmHWM``; None where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


# --------------------------------------------------------------------------------------------- the loop
def train(cfg: TrainConfig, resume: bool = False, overwrite: bool = False, progress: bool = True
          ) -> Dict[str, Any]:
    """Train a student (and distil from a teacher if ``cfg.method != 'none'``); return final metrics.

    The phases, in the official order (module docstring): :func:`build_run` (checks, run directory, seeds, data,
    models, method, optimizer, DDP) -> :func:`restore` (``--resume``) -> the loop, one :func:`train_step` per
    iteration with logging, :func:`validate` every ``eval_interval`` (best checkpoint kept) and a resumable
    checkpoint every ``checkpoint_interval`` -> :func:`finish` (final evaluation on the reported split,
    ``metrics.json`` last).
    """
    run = build_run(cfg, resume, overwrite, progress)
    try:
        return _train_loop(run, resume, progress)
    except BaseException:
        _discard_unstarted(run.run_dir, run.created, run.dist.is_main)
        raise


def _train_loop(run: "Run", resume: bool, progress: bool) -> Dict[str, Any]:
    """:func:`train` after :func:`build_run`: restore, run files, the loop, :func:`finish`."""
    cfg = run.cfg
    start, best = restore(run, resume)
    write_run_files(run, start)
    loader = make_loader(run, start)
    started = time.time()
    bar = progress_bar(total=cfg.iterations, initial=start, desc=f"train {cfg.method}",
                       disable=not (progress and run.dist.is_main))
    run.step_module.train()
    iteration, last_metrics = start, None
    for images, labels in loader:
        iteration += 1
        total, terms, lr = train_step(run, images, labels, iteration)
        if iteration % cfg.log_interval == 0 or iteration == cfg.iterations:
            record = {"iteration": iteration, "lr": lr, "loss": float(total.detach()),
                      **{k: float(v.detach()) for k, v in terms.items()}, "time": round(time.time() - started, 3)}
            if run.dist.is_main:
                append_jsonl(run.run_dir / "log.jsonl", record)
                bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k not in ("iteration", "time")},
                                refresh=False)   # shown at the next refresh (periodic in a log)
        bar.update(1)
        if iteration % cfg.eval_interval == 0 or iteration == cfg.iterations:
            last_metrics, best = validate(run, iteration, best)
        if iteration % cfg.checkpoint_interval == 0 or iteration == cfg.iterations:
            _save_resumable(run.run_dir / "checkpoint_last.pt", run.core, run.optimizer, run.scaler, iteration,
                            best, run.dist.world_size)
    bar.close()
    if iteration != cfg.iterations:
        raise RuntimeError(f"the data loader stopped at iteration {iteration} of {cfg.iterations}")
    return finish(run, start, last_metrics, best, started)


@dataclass
class Run:
    """Everything :func:`build_run` makes for one training run."""

    cfg: TrainConfig
    dist: Any                       # kdlib.distributed.DistInfo
    amp_dtype: Optional[torch.dtype]
    run_dir: Path
    data_opts: Dict[str, Any]
    train_set: Any
    val_set: Any
    teacher: Optional[Segmentor]
    distiller: Optional[DistillLoss]
    core: StudentStep               # the bare student + method
    step_module: nn.Module          # ``core``, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    created: bool = False           # this call created run_dir (removed again if the run fails before a checkpoint)
    scaling: Optional[Dict[str, Any]] = None   # weight_scaling's record (effective weights, options), if any

    @property
    def device(self) -> torch.device:
        return self.dist.device


def build_run(cfg: TrainConfig, resume: bool, overwrite: bool, progress: bool) -> Run:
    """Checks, the run directory, seeds, data, student (ImageNet init), teacher, method, optimizer, DDP —
    in this order, which fixes every random draw of a run."""
    cfg.validate()
    check_imagenet(cfg)   # before anything is built: a paper preset without its ImageNet file stops here
    dist_info = distributed.init_distributed(cfg.device)
    reset_peak_memory(dist_info.device)
    if cfg.batch_size % dist_info.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} (global) must be divisible by the "
                         f"{dist_info.world_size} processes")
    amp_dtype = AMP_DTYPES[cfg.amp]
    if amp_dtype is torch.float16 and dist_info.device.type != "cuda":
        raise ValueError("amp=fp16 needs a CUDA device; use amp=bf16 on CPU")
    run_dir = Path(cfg.run_dir or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{cfg.method}-{cfg.student}")
    created = overwrite or not run_dir.exists()   # overwrite: the old run is gone once prepare_run_dir ran
    if dist_info.is_main:
        prepare_run_dir(run_dir, resume, overwrite)
    distributed.barrier()
    try:
        return _build_parts(cfg, dist_info, amp_dtype, run_dir, progress, created)
    except BaseException:
        _discard_unstarted(run_dir, created, dist_info.is_main)
        raise


def _discard_unstarted(run_dir: Path, created: bool, is_main: bool) -> None:
    """A run that failed before its first resumable checkpoint leaves nothing: remove the run directory this
    call created (a failed run leaves either a checkpoint to resume from, or no trace)."""
    import shutil

    if created and is_main and not (run_dir / "checkpoint_last.pt").exists():
        shutil.rmtree(run_dir, ignore_errors=True)


def _build_parts(cfg: TrainConfig, dist_info: Any, amp_dtype: Optional[torch.dtype], run_dir: Path,
                 progress: bool, created: bool) -> "Run":
    """The rest of :func:`build_run`, after the run directory exists (seeds, data, models, method, optimizer)."""
    from kdlib.data import build_dataset, generates_on_first_use

    device, rank, world = dist_info.device, dist_info.rank, dist_info.world_size
    seed_everything(cfg.seed * 1000 + rank)  # distinct dropout noise per rank, reproducible per run

    # ---- data ----
    data_opts = dict(cfg.dataset_options)
    if generates_on_first_use(cfg.dataset):   # the built-in data writes itself on first use
        data_opts.setdefault("progress", progress and dist_info.is_main)
    train_set = build_dataset(cfg.dataset, cfg.data_root, cfg.train_split, crop_size=tuple(cfg.crop_size),
                              augment=True, seed=cfg.seed, **data_opts)
    val_set = build_dataset(cfg.dataset, cfg.data_root, cfg.val_split, augment=False, **data_opts)
    num_classes = train_set.num_classes

    # ---- models ----
    student = build_model(cfg.student, num_classes, aux=cfg.aux, width=cfg.student_width)
    if cfg.student_imagenet and cfg.student_imagenet.lower() != NO_IMAGENET:
        load_imagenet_backbone(student, cfg.student_imagenet)
    if cfg.disable_dropout:
        _disable_dropout(student)
    teacher = load_teacher(cfg, num_classes, device) if cfg.method != "none" else None
    distiller, loss_weights, scaling = None, cfg.loss_weights, None
    if teacher is not None:
        pair = PairSpec(num_classes, student.feature_channels, teacher.feature_channels, student.c4_channels,
                        teacher.c4_channels)
        loss_weights, method_options, scaling = method_settings(cfg, pair)   # the config's, unless weight_scaling
        distiller = build_distiller(cfg.method, pair, loss_weights, method_options)
    step_module: nn.Module = StudentStep(student, distiller, loss_weights, cfg.aux_weight if cfg.aux else 0.0)
    if world > 1:
        step_module = convert_sync_batchnorm(step_module, device)
    step_module.to(device)
    if cfg.channels_last:
        step_module.to(memory_format=torch.channels_last)
    core: StudentStep = step_module  # type: ignore[assignment]
    # parameters a method trains itself (e.g. a discriminator with its own Adam) stay out of the student's SGD
    own = {id(p) for p in core.distiller.separately_optimized_parameters()} if distiller is not None else set()
    optimizer = build_optimizer(cfg, [p for p in step_module.parameters() if id(p) not in own])
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype is torch.float16)
    if world > 1:
        # Buffers are kept identical on every rank by construction (SyncBN statistics are global; memory
        # queues enqueue gathered embeddings), so they are broadcast once here instead of before every
        # forward (DDP's default would copy e.g. CIRKD's queues, 0.4-3.7 GB, every iteration).
        for buffer in core.buffers():
            torch.distributed.broadcast(buffer, src=0)
        step_module = DistributedDataParallel(step_module, device_ids=[device.index] if device.type == "cuda"
                                              else None, broadcast_buffers=False)
    return Run(cfg, dist_info, amp_dtype, run_dir, data_opts, train_set, val_set, teacher, distiller, core,
               step_module, optimizer, scaler, created, scaling)


def restore(run: Run, resume: bool) -> Tuple[int, Optional[Dict[str, Any]]]:
    """``(start iteration, best validation so far)``: from ``checkpoint_last.pt`` when resuming (model, method
    state, optimizer, scaler, this rank's RNG), else ``(0, None)``."""
    last_path = run.run_dir / "checkpoint_last.pt"
    if not (resume and last_path.is_file()):
        return 0, None
    ckpt = load_checkpoint(last_path)
    run.core.load_state_dict(ckpt["step_module"])
    run.optimizer.load_state_dict(ckpt["optimizer"])
    run.scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"][run.dist.rank] if isinstance(ckpt["rng"], list) else ckpt["rng"])
    return ckpt["iteration"], ckpt.get("best")


def write_run_files(run: Run, start: int) -> None:
    """``config.yaml`` and ``env.json`` (rank 0)."""
    if not run.dist.is_main:
        return
    cfg, world = run.cfg, run.dist.world_size
    write_text_atomic(run.run_dir / "config.yaml", cfg.to_yaml())
    if run.scaling is not None:
        write_json(run.run_dir / "weight_scaling.json", run.scaling)
    env = environment(cfg.seed, run.device, world)
    env.update(global_batch=cfg.batch_size, per_device_batch=cfg.batch_size // world, resumed_at=start)
    write_json(run.run_dir / "env.json", env)


def make_loader(run: Run, start: int) -> DataLoader:
    """The training batches from iteration ``start`` on (data order keyed by seed and epoch only)."""
    cfg, rank, world = run.cfg, run.dist.rank, run.dist.world_size
    sampler = ResumableSampler(len(run.train_set), cfg.batch_size, cfg.iterations, cfg.seed, rank, world, start)
    return DataLoader(EpochKeyed(run.train_set), batch_size=cfg.batch_size // world, sampler=sampler,
                      num_workers=cfg.num_workers, drop_last=True, pin_memory=run.device.type == "cuda",
                      generator=torch.Generator().manual_seed(cfg.seed))


def train_step(run: Run, images: Tensor, labels: Tensor, iteration: int) -> Tuple[Tensor, Dict[str, Tensor], float]:
    """One iteration: teacher forward (no grad) -> student forward and losses -> poly lr -> backward ->
    (clip the method's own gradients) -> optimizer step -> the method's own step. Returns (loss, terms, lr)."""
    cfg, device, amp_dtype = run.cfg, run.device, run.amp_dtype
    images = images.to(device, non_blocking=True)
    labels = labels.to(device, non_blocking=True).long()
    if cfg.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        teacher_out = None
        if run.teacher is not None:
            with torch.no_grad():
                teacher_out = run.teacher(images)
        total, terms = run.step_module(images, labels, teacher_out)
    _check_finite(total, terms, iteration)
    lr = poly_lr(cfg.lr, iteration, cfg.iterations, cfg.poly_power)
    for group in run.optimizer.param_groups:
        group["lr"] = lr
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(total).backward()
    if run.distiller is not None and run.distiller.clip_grad_norm:
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.core.distiller.parameters(), run.distiller.clip_grad_norm)
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if run.distiller is not None:  # method's own updates after the student step (e.g. discriminator Adam)
        terms.update(run.core.distiller.after_student_step())
    return total, terms, lr


def validate(run: Run, iteration: int, best: Optional[Dict[str, Any]]
             ) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """Evaluate on ``val_split``, log it, keep ``best.pt`` when it improves; returns (metrics, best)."""
    cfg = run.cfg
    metrics = evaluate(run.core.student, run.val_set, run.device, cfg.eval_scales, cfg.eval_flip,
                       cfg.max_val_samples, progress=False, amp_dtype=run.amp_dtype)
    run.core.student.train()
    if run.dist.is_main:
        append_jsonl(run.run_dir / "log.jsonl", {"iteration": iteration, "eval": {k: metrics[k] for k in
                                                                                  ("miou", "pixel_acc", "mean_acc")}})
    if best is None or metrics["miou"] > best["miou"]:   # metrics are all-reduced: same on every rank
        best = {**metrics, "iteration": iteration}
        if run.dist.is_main:
            _save_weights(run.run_dir / "best.pt", run.core.student, cfg, best)
    return metrics, best


def finish(run: Run, start: int, last_metrics: Optional[Dict[str, Any]], best: Dict[str, Any],
           started: float) -> Dict[str, Any]:
    """``final.pt``, both models on the reported split, ``per_class_iou.csv`` and ``metrics.json`` (last)."""
    cfg, device, world, run_dir = run.cfg, run.device, run.dist.world_size, run.run_dir
    if start == cfg.iterations:  # resumed a run that had already finished its iterations
        last_metrics = evaluate(run.core.student, run.val_set, device, cfg.eval_scales, cfg.eval_flip,
                                cfg.max_val_samples, progress=False, amp_dtype=run.amp_dtype)
    if run.dist.is_main:
        _save_weights(run_dir / "final.pt", run.core.student, cfg, dict(last_metrics))
    distributed.barrier()   # best.pt / final.pt are on disk for every rank
    final_model, best_checkpoint = final_evaluation(cfg, run.core.student, last_metrics, best, run_dir, device,
                                                    run.amp_dtype, run.data_opts)
    reported = best_checkpoint if cfg.report_checkpoint == "best" else final_model
    result = {
        "miou": reported["miou"], "pixel_acc": reported["pixel_acc"],
        "mean_acc": reported["mean_acc"], "miou_present": reported["miou_present"],
        "per_class_iou": reported["per_class_iou"],
        "report_checkpoint": cfg.report_checkpoint, "final_split": cfg.reported_split,
        "reported": (f"{cfg.report_checkpoint} checkpoint "
                     f"(iteration {best['iteration'] if cfg.report_checkpoint == 'best' else cfg.iterations}) "
                     f"on {cfg.reported_split}"),
        "best_checkpoint_miou": best_checkpoint["miou"], "final_model_miou": final_model["miou"],
        "val_split": cfg.val_split, "best_miou": best["miou"], "best_iteration": best["iteration"],
        "iterations": cfg.iterations, "wall_time_s": round(time.time() - started, 2),
        "peak_memory_mb": round(peak_memory_mb(device), 1), "world_size": world, "device": str(device),
        "run_dir": str(run_dir),
    }
    if run.dist.is_main:
        write_per_class_csv(run_dir / "per_class_iou.csv", final_model["per_class_iou"],
                            best_checkpoint["per_class_iou"])
        write_json(run_dir / "metrics.json", result)  # written last: marks the run as finished
    distributed.barrier()
    return result


def final_evaluation(cfg: TrainConfig, student: Segmentor, last_metrics: Dict[str, Any], best: Dict[str, Any],
                     run_dir: Path, device: torch.device, amp_dtype: Optional[torch.dtype],
                     data_opts: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(final model, best checkpoint) metrics on the reported split ``cfg.reported_split``.

    The best checkpoint is the best of the periodic validations on ``val_split`` (``best.pt``, the official
    ``*_best_model.pth``). When the reported split is ``val_split`` both numbers are the validations'
    own (nothing is evaluated again); otherwise (CamVid: select on val, report test) both models are
    evaluated on the reported split, every rank taking its share as in the periodic validation.
    """
    from kdlib.data import build_dataset

    if cfg.reported_split == cfg.val_split:
        return last_metrics, best
    final_set = build_dataset(cfg.dataset, cfg.data_root, cfg.reported_split, augment=False, **data_opts)

    def run(model: nn.Module) -> Dict[str, Any]:
        return evaluate(model, final_set, device, cfg.eval_scales, cfg.eval_flip, cfg.max_val_samples,
                        progress=False, amp_dtype=amp_dtype)

    final_model = run(student)
    student.train()
    best_model = build_model(cfg.student, student.num_classes, aux=student.aux_head is not None,
                             width=cfg.student_width)
    best_model.load_state_dict(torch.load(run_dir / "best.pt", map_location="cpu", weights_only=False)["model"])
    return final_model, run(best_model.to(device))


def _check_finite(total: Tensor, terms: Dict[str, Tensor], iteration: int) -> None:
    if torch.isfinite(total):
        return
    bad = [name for name, value in terms.items() if not torch.isfinite(value)] or ["total"]
    raise NonFiniteLossError(
        f"loss term {', '.join(repr(b) for b in bad)} became {float(total.detach())} at iteration {iteration}; the last "
        f"checkpoint is kept. Lower lr or the term's weight, or disable amp, then --resume or restart.")


def _save_weights(path: Path, student: Segmentor, cfg: TrainConfig, metrics: Dict[str, Any]) -> None:
    atomic_save({
        "format": CHECKPOINT_FORMAT, "kind": "weights", "model_name": student.name, "width": student.width,
        "num_classes": student.num_classes, "aux": student.aux_head is not None,
        "model": student.state_dict(), "config": cfg.to_dict(),
        "metrics": {k: v for k, v in metrics.items() if k != "per_class_iou"},
    }, path)


def _save_resumable(path: Path, core: StudentStep, optimizer: torch.optim.Optimizer,
                    scaler: torch.amp.GradScaler, iteration: int, best: Optional[Dict[str, Any]],
                    world: int) -> None:
    states = [rng_state()]
    if world > 1:  # every rank's RNG (dropout, masks) so a resumed DDP run continues identically
        gathered: list = [None] * world
        torch.distributed.all_gather_object(gathered, states[0])
        states = gathered
    if distributed.rank() == 0:
        atomic_save({"format": CHECKPOINT_FORMAT, "kind": "resumable", "iteration": iteration,
                     "step_module": core.state_dict(), "optimizer": optimizer.state_dict(),
                     "scaler": scaler.state_dict(), "rng": states if world > 1 else states[0], "best": best}, path)


__all__ = ["train", "task_loss", "poly_lr", "build_optimizer", "load_teacher", "NonFiniteLossError", "StudentStep", "Run",
           "build_run", "restore", "write_run_files", "make_loader", "train_step", "validate", "finish",
           "final_evaluation"]
