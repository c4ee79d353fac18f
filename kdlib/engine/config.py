"""The training configuration: one flat dataclass whose fields map one-to-one to the papers' settings.

Resolution order: dataclass defaults < preset (``kdlib.engine.recipes``) < the method's per-dataset
defaults (loss weights, options) < explicit overrides (``key=value`` on the command line).
"""
from __future__ import annotations

import dataclasses
import os
import typing
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
    weight_scaling: str = field(default="none", metadata={"help": "none (the published weights) or paper_shapes: rescale each term from the paper's tensor sizes to this run's (kdlib.methods.scaling)"})
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
        """A validated config from field values: unknown fields and values of the wrong type are refused with
        one line naming the field, what it takes and what it got (``ValueError``)."""
        from kdlib.registry import did_you_mean

        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            hints = "".join(f"{name}{did_you_mean(name, known)}, " for name in unknown).rstrip(", ")
            raise ValueError(f"unknown config field(s): {hints}; `kdlib train --help` lists the fields")
        hints = typing.get_type_hints(cls)
        cfg = cls()
        for key, value in data.items():
            setattr(cfg, key, check_type(key, _coerce(known[key], value), hints[key]))
        cfg.validate()
        return cfg

    def validate(self) -> None:
        """Value checks across fields (types are checked by :meth:`from_dict`)."""
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
        if len(self.crop_size) != 2 or min(self.crop_size) < 1:
            raise ValueError(f"crop_size must be two positive integers [H, W], e.g. crop_size=[64,128]; "
                             f"got {list(self.crop_size)}")
        for name in ("eval_interval", "checkpoint_interval", "log_interval"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.lr < 0:
            raise ValueError(f"lr must be >= 0, got {self.lr}")
        if self.weight_scaling not in WEIGHT_SCALINGS:
            raise ValueError(f"weight_scaling must be one of {', '.join(WEIGHT_SCALINGS)}, got {self.weight_scaling!r}")
        if self.weight_scaling != "none" and self.student.startswith("segformer"):
            raise ValueError("weight_scaling=paper_shapes is defined for the CNN students (output stride 8), "
                             f"not {self.student}")
        if self.report_checkpoint not in REPORT_CHECKPOINTS:
            raise ValueError(f"report_checkpoint must be best or final, got {self.report_checkpoint!r}")

    @property
    def reported_split(self) -> str:
        """The split the reported number is on: ``final_split``, or ``val_split`` when unset."""
        return self.final_split or self.val_split


REPORT_CHECKPOINTS = ("best", "final")
#: ``weight_scaling`` values: the published weights, or kdlib.methods.scaling's rule.
WEIGHT_SCALINGS = ("none", "paper_shapes")
NO_IMAGENET = "none"  # student_imagenet value of the explicit opt-out (CIRKD Table 1's R18* setting)


def normalise_fields(data: Dict[str, Any]) -> Dict[str, Any]:
    """Fill the fields whose unset value means another field's value (``final_split`` None -> ``val_split``),
    so that a resolved config states them and two configs compare by meaning."""
    out = dict(data)
    if out.get("final_split") in (None, ""):
        out["final_split"] = out.get("val_split", "val")
    return out


def _type_name(hint: Any) -> str:
    """``Optional[int]`` -> ``an integer or null``; the words the one-line errors use."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Union:
        inner = [a for a in args if a is not type(None)]
        return " or ".join(_type_name(a) for a in inner) + " or null"
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"a list of {_type_name(args[0]).split(' ', 1)[-1]}s, e.g. [1.0]"
        return f"a list of {len(args)} {_type_name(args[0]).split(' ', 1)[-1]}s, e.g. [64,128]"
    if origin is dict:
        return "a mapping, e.g. {key: value} or key.sub=value"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}.get(hint, str(hint))


def _matches(value: Any, hint: Any) -> bool:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin is typing.Union:
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return len(value) == len(args) and all(_matches(v, a) for v, a in zip(value, args))
    if origin is dict:
        return isinstance(value, dict) and all(_matches(v, args[1]) for v in value.values())
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def check_type(name: str, value: Any, hint: Any) -> Any:
    """``value`` if it has the field's declared type, else a one-line ``ValueError``: ``iterations must be an
    integer, got 'abc'`` (YAML parsed the command line, so ``abc`` is a string and ``2.5`` a number)."""
    if not _matches(value, hint):
        shown = list(value) if isinstance(value, tuple) else value
        raise ValueError(f"{name} must be {_type_name(hint)}, got {shown!r}")
    return value


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    if isinstance(value, os.PathLike):   # paths given from Python: stored as the string a YAML file would hold
        return os.fspath(value)
    if isinstance(default, tuple) and isinstance(value, (list, tuple)):
        return tuple(value)
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, tuple) and all(isinstance(v, float) for v in default) and isinstance(value, tuple):
        return tuple(float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value)
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
    """Defaults < preset < method defaults for the dataset < overrides, validated.

    Overriding a preset's ``dataset`` with another one drops the preset's ``data_root`` and
    ``dataset_options`` (they describe the preset's dataset): the data root becomes ``data/<dataset>``
    unless ``data_root`` is given too.
    """
    from kdlib.engine.recipes import PRESETS, method_defaults
    from kdlib.registry import did_you_mean

    data: Dict[str, Any] = TrainConfig().to_dict()
    overrides = overrides or {}
    if preset:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}{did_you_mean(preset, PRESETS)}; known presets: "
                             f"{', '.join(sorted(PRESETS))}")
        chosen = dict(PRESETS[preset])
        if "dataset" in overrides and overrides["dataset"] != chosen.get("dataset", data["dataset"]):
            chosen.pop("dataset_options", None)
            chosen["data_root"] = f"data/{overrides['dataset']}"
        data = merge(data, chosen)
        data["preset"] = preset
    method = overrides.get("method", data["method"])
    dataset = overrides.get("dataset", data["dataset"])
    data = merge(data, method_defaults(method, dataset))
    data = merge(data, overrides)
    return TrainConfig.from_dict(normalise_fields(data))


def load_config_file(path: str) -> Dict[str, Any]:
    """The mapping of config fields in the YAML file ``path``; a malformed file is one ``ValueError`` line."""
    try:
        with open(path) as fh:
            data = yaml.safe_load(fh) or {}
    except FileNotFoundError:
        raise FileNotFoundError(f"config file {path} not found") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ValueError(f"{path} is not valid YAML{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file must hold a mapping of field: value")
    return data


