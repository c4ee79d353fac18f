"""The training configuration: one flat dataclass whose fields map one-to-one to the papers' settings.

Resolution order: dataclass defaults < preset (``kdlib.engine.recipes``) < the method's per-dataset
defaults (loss weights, options) < explicit overrides (``key=value`` on the command line).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple

import yaml


@dataclass
class TrainConfig:
    # ---- data ----
    dataset: str = field(default="synthetic_streets", metadata={"help": "registered dataset name"})
    data_root: str = field(default="data/synthetic_streets", metadata={"help": "dataset root in its official layout"})
    dataset_options: Dict[str, Any] = field(default_factory=dict, metadata={"help": "extra build_dataset options (both splits)"})
    train_split: str = field(default="train", metadata={"help": "split used for training"})
    val_split: str = field(default="val", metadata={"help": "split of the periodic validations that select the best checkpoint"})
    final_split: Optional[str] = field(default=None, metadata={"help": "split the reported number is on (None: val_split; CamVid paper presets: test)"})
    crop_size: Tuple[int, int] = field(default=(512, 1024), metadata={"help": "training crop (H, W)"})
    max_val_samples: Optional[int] = field(default=None, metadata={"help": "evaluate on the first N val images only (tiny runs)"})
    # ---- models ----
    student: str = field(default="deeplabv3_resnet18", metadata={"help": "student model name (kdlib info lists them)"})
    student_width: float = field(default=1.0, metadata={"help": "student channel multiplier (1.0 = paper model)"})
    student_imagenet: Optional[str] = field(default=None, metadata={"help": "the student's official ImageNet file (required by paper presets); 'none' = no ImageNet init (CIRKD's R18* row)"})
    aux: bool = field(default=True, metadata={"help": "auxiliary FCN head (ResNet students)"})
    aux_weight: float = field(default=0.4, metadata={"help": "weight of the auxiliary CE (docs/reference.md §3.1)"})
    teacher: Optional[str] = field(default=None, metadata={"help": "teacher model name (None: no distillation)"})
    teacher_width: float = field(default=1.0, metadata={"help": "teacher channel multiplier (must match its checkpoint)"})
    teacher_checkpoint: Optional[str] = field(default=None, metadata={"help": "kdlib run dir / checkpoint, or an official state dict"})
    # ---- distillation ----
    method: str = field(default="none", metadata={"help": "registered method name (none: the student alone); kdlib.registry.METHODS lists them"})
    method_options: Dict[str, Any] = field(default_factory=dict, metadata={"help": "method hyperparameters (e.g. temperature, queue sizes); see the method docstring"})
    loss_weights: Dict[str, float] = field(default_factory=dict, metadata={"help": "weight of each named loss term; 0 disables a term (ablations)"})
    # ---- optimisation (docs/reference.md §5) ----
    iterations: int = field(default=40000, metadata={"help": "training iterations (papers: 40000; COCO-Stuff 80000)"})
    batch_size: int = field(default=16, metadata={"help": "global batch (all ranks together)"})
    optimizer: str = field(default="sgd", metadata={"help": "sgd (CNN papers) or adamw (CIRKD's SegFormer recipe); same lr / weight_decay / poly schedule"})
    lr: float = field(default=0.02, metadata={"help": "base learning rate for the global batch (papers: SGD 0.02 for 16 images; SegFormer: AdamW 2e-4 for 8)"})
    momentum: float = field(default=0.9, metadata={"help": "SGD momentum (unused by adamw)"})
    weight_decay: float = field(default=1e-4, metadata={"help": "weight decay, applied to all parameters as in the official code"})
    poly_power: float = field(default=0.9, metadata={"help": "poly schedule power: lr_t = lr * (1 - (t-1)/T) ** power"})
    # ---- evaluation, logging, checkpoints ----
    eval_interval: int = field(default=800, metadata={"help": "evaluate every N iterations (and at the end); best checkpoint kept"})
    report_checkpoint: str = field(default="final", metadata={"help": "what 'miou' reports: best (the best periodic validation's checkpoint, the papers') or final (the last iteration's model)"})
    checkpoint_interval: int = field(default=800, metadata={"help": "write the resumable checkpoint every N iterations"})
    log_interval: int = field(default=10, metadata={"help": "log loss terms to log.jsonl every N iterations"})
    eval_flip: bool = field(default=False, metadata={"help": "average predictions with the horizontally flipped image (off in the papers)"})
    eval_scales: Tuple[float, ...] = field(default=(1.0,), metadata={"help": "multi-scale inference scales (papers: single scale 1.0)"})
    # ---- system ----
    seed: int = field(default=0, metadata={"help": "seed for data order, augmentation, init, dropout and sampling"})
    device: str = field(default="auto", metadata={"help": "auto, cpu, cuda, cuda:N"})
    amp: str = field(default="none", metadata={"help": "none, bf16, fp16"})
    channels_last: bool = field(default=False, metadata={"help": "use channels_last memory format (GPU speed-up)"})
    num_workers: int = field(default=2, metadata={"help": "DataLoader worker processes"})
    disable_dropout: bool = field(default=False, metadata={"help": "set every dropout p to 0 (for exact equivalence tests only)"})
    run_dir: Optional[str] = field(default=None, metadata={"help": "output directory of the run (default runs/<time>-<method>-<student>)"})
    preset: Optional[str] = field(default=None, metadata={"help": "name of the preset the config was resolved from (informational)"})

    @classmethod
    def describe(cls) -> str:
        """One line per field: name, default and meaning (used by ``kdlib train --help``)."""
        lines = []
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore
            lines.append(f"  {f.name:<20} {str(default):<24} {f.metadata.get('help', '')}")
        return "\n".join(lines)

    def to_dict(self) -> Dict[str, Any]:
        d = dataclasses.asdict(self)
        for key, value in d.items():
            if isinstance(value, tuple):
                d[key] = list(value)
        return d

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "TrainConfig":
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise ValueError(f"unknown config field(s): {', '.join(unknown)}; known fields: "
                             f"{', '.join(sorted(known))}")
        cfg = cls()
        for key, value in data.items():
            setattr(cfg, key, _coerce(known[key], value))
        cfg.validate()
        return cfg

    def validate(self) -> None:
        if self.iterations < 1:
            raise ValueError("iterations must be >= 1")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be sgd or adamw, got {self.optimizer!r}")
        if self.amp not in ("none", "bf16", "fp16"):
            raise ValueError(f"amp must be none, bf16 or fp16, got {self.amp!r}")
        if self.method != "none" and not self.teacher:
            raise ValueError(f"method {self.method!r} needs a teacher: set teacher=<model name> and "
                             f"teacher_checkpoint=<kdlib run dir or official checkpoint>")
        if len(self.crop_size) != 2:
            raise ValueError("crop_size must be (H, W)")
        if self.report_checkpoint not in REPORT_CHECKPOINTS:
            raise ValueError(f"report_checkpoint must be best or final, got {self.report_checkpoint!r}")

    @property
    def reported_split(self) -> str:
        """The split the reported number is on: ``final_split``, or ``val_split`` when unset."""
        return self.final_split or self.val_split


REPORT_CHECKPOINTS = ("best", "final")
NO_IMAGENET = "none"  # student_imagenet value of the explicit opt-out (CIRKD Table 1's R18* setting)


def normalise_fields(data: Dict[str, Any]) -> Dict[str, Any]:
    """Fill the fields whose unset value means another field's value (``final_split`` None -> ``val_split``),
    so that a resolved config states them and two configs compare by meaning."""
    out = dict(data)
    if out.get("final_split") in (None, ""):
        out["final_split"] = out.get("val_split", "val")
    return out


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    if isinstance(default, tuple) and isinstance(value, (list, tuple)):
        return tuple(value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def parse_overrides(items: Sequence[str]) -> Dict[str, Any]:
    """``["lr=0.01", "crop_size=[256,512]", "loss_weights.kd=0.5"]`` -> nested dict (values parsed as YAML)."""
    out: Dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (e.g. lr=0.01)")
        key, raw = item.split("=", 1)
        value = yaml.safe_load(raw) if raw != "" else None
        target = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return out


def merge(base: Dict[str, Any], update: Dict[str, Any]) -> Dict[str, Any]:
    """Recursive dict merge (dict values merge, everything else replaces)."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def resolve_config(preset: Optional[str] = None, overrides: Optional[Dict[str, Any]] = None) -> TrainConfig:
    """Defaults < preset < method defaults for the dataset < overrides, validated."""
    from kdlib.engine.recipes import PRESETS, method_defaults

    data: Dict[str, Any] = TrainConfig().to_dict()
    if preset:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; known presets: {', '.join(sorted(PRESETS))}")
        data = merge(data, PRESETS[preset])
        data["preset"] = preset
    overrides = overrides or {}
    method = overrides.get("method", data["method"])
    dataset = overrides.get("dataset", data["dataset"])
    data = merge(data, method_defaults(method, dataset))
    data = merge(data, overrides)
    return TrainConfig.from_dict(normalise_fields(data))


def load_config_file(path: str) -> Dict[str, Any]:
    with open(path) as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must hold a mapping of field: value")
    return data


