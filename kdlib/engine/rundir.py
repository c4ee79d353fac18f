"""A run directory: resolved config, environment, JSONL log, metrics, per-class IoU, checkpoints.

Layout::

    <run_dir>/config.yaml         resolved TrainConfig
    <run_dir>/env.json            git commit, seed, versions, device, world size, command line
    <run_dir>/log.jsonl           one JSON object per logged step / evaluation
    <run_dir>/metrics.json        final metrics (+ best), written last: its presence marks a finished run
    <run_dir>/per_class_iou.csv   class, iou (final and best)
    <run_dir>/checkpoint_last.pt  resumable state (atomic)
    <run_dir>/best.pt, final.pt   student weights (+ config) of the best validation and of the end
"""
from __future__ import annotations

import csv
import io
import json
import os
import platform
import functools
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from kdlib import atomic


class RunDirectoryError(FileExistsError):
    pass


def prepare_run_dir(path: str | os.PathLike, resume: bool, overwrite: bool) -> Path:
    """Create the run directory; refuse to clobber a finished or unfinished run unless asked."""
    run = Path(path)
    finished = (run / "metrics.json").is_file()
    started = (run / "config.yaml").is_file()
    if finished and not overwrite:
        raise RunDirectoryError(f"{run} already holds a finished run (metrics.json); choose another --run-dir "
                                f"or pass --overwrite to replace it")
    if started and not finished and not (resume or overwrite):
        raise RunDirectoryError(f"{run} holds an unfinished run; pass --resume to continue it or --overwrite "
                                f"to start again")
    if overwrite and run.exists():
        for name in ("metrics.json", "log.jsonl", "per_class_iou.csv", "checkpoint_last.pt", "best.pt",
                     "final.pt", "config.yaml", "env.json"):
            (run / name).unlink(missing_ok=True)
    run.mkdir(parents=True, exist_ok=True)
    return run


#: Study outputs that runs write into the repository: changes there do not make the code "-dirty".
OUTPUT_PATHS = ("results", "figures")


def commit_date(commit: Optional[str]) -> Optional[str]:
    """The date (YYYY-MM-DD) of ``commit`` (a ``-dirty`` suffix ignored) in this checkout, or None if unknown."""
    if not commit or not isinstance(commit, str):
        return None
    return _commit_date(commit.removesuffix("-dirty"))


@functools.lru_cache(maxsize=256)
def _commit_date(sha: str) -> Optional[str]:
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "show", "-s", "--format=%cs", sha], cwd=root, capture_output=True, text=True,
                             timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def git_commit() -> Optional[str]:
    """HEAD of the kdlib checkout, ``-dirty`` when tracked files other than the study outputs
    (:data:`OUTPUT_PATHS`, which a running study appends to) differ from it; None outside a git checkout."""
    try:
        root = Path(__file__).resolve().parents[2]
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        excluded = [f":(exclude){p}" for p in OUTPUT_PATHS]
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded],
                               cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions(names: tuple = ("torchvision", "pillow", "pandas", "pyyaml", "tqdm")) -> Dict[str, Any]:
    """Installed versions of the given distributions (None where absent)."""
    from importlib import metadata

    versions: Dict[str, Any] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere; ``unknown``)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def onednn_version() -> Optional[str]:
    """The oneDNN (MKL-DNN) version torch was built with, as its build configuration states it."""
    import re

    match = re.search(r"MKL-DNN v([0-9][0-9.]*)", torch.__config__.show())
    return match.group(1) if match else None


def machine() -> Dict[str, Any]:
    """What decides a CPU run's exact numbers beyond the code and the seed: the CPU, the instruction set torch's
    kernels use (its CPU capability, e.g. AVX2 / AVX512), the threads, torch and oneDNN. Two machines with the
    same ``kind`` (CPU model and capability) give the same numbers; others differ in the last bits, which a
    thousand steps turn into differences within the seed noise."""
    capability = torch.backends.cpu.get_cpu_capability()
    model = cpu_model()
    return {"kind": f"{model} / {capability}", "cpu_model": model, "cpu_capability": capability,
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "onednn": onednn_version(), "machine": platform.machine()}


def environment(seed: int, device: torch.device, world_size: int) -> Dict[str, Any]:
    """What a run needs to be reproduced: commit, seed, device, package versions, command."""
    import numpy

    import kdlib

    return {
        "git_commit": git_commit(), "seed": seed, "device": str(device), "world_size": world_size,
        "kdlib": kdlib.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
        "python": sys.version.split()[0], "platform": platform.platform(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "cpu_threads": torch.get_num_threads(), "command": " ".join(sys.argv),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "packages": package_versions(), "machine": machine(),
    }


def write_text_atomic(path: Path, text: str) -> None:
    """:func:`kdlib.atomic.write_text` (the name the engine has always used)."""
    atomic.write_text(path, text)


def write_json(path: Path, data: Any) -> None:
    """Indented JSON, atomically (:func:`kdlib.atomic.write_text`)."""
    atomic.write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def append_jsonl(path: Path, record: Dict[str, Any]) -> None:
    with open(path, "a") as fh:
        fh.write(json.dumps(record) + "\n")


def write_per_class_csv(path: Path, final: Dict[str, float], best: Optional[Dict[str, float]] = None) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["class", "iou", "best_iou"] if best else ["class", "iou"])
    for name, value in final.items():
        writer.writerow([name, f"{value:.6f}"] + ([f"{best[name]:.6f}"] if best else []))
    write_text_atomic(path, buf.getvalue())


# Options whose absence from a saved config.yaml means the behaviour kdlib had before they existed:
# the discriminator's spectral norm of SKD / IFVD / CWD was torch's (d_spectral_norm added later).
LEGACY_METHOD_OPTIONS: Dict[str, Dict[str, Any]] = {m: {"d_spectral_norm": "torch"} for m in ("skd", "ifvd", "cwd")}


def config_changes(run_dir: Path, wanted_yaml: str) -> List[str]:
    """Fields whose value in ``run_dir/config.yaml`` differs from ``wanted_yaml`` (``run_dir`` excluded).

    Empty when the run directory holds no config yet. Used before reusing or resuming a run, so that a run
    made with other settings is never silently taken for the requested one.
    """
    import yaml

    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return []
    from kdlib.engine.config import TrainConfig, normalise_fields

    saved = yaml.safe_load(path.read_text()) or {}
    # a field added to TrainConfig after the run was made: the run used what is now its default
    saved = normalise_fields({**{k: v for k, v in TrainConfig().to_dict().items() if k not in saved}, **saved})
    # a method option added after the run was made: the run used the behaviour from before the option (its
    # constructor default, or the legacy value where the default now differs)
    method = saved.get("method")
    if isinstance(saved.get("method_options"), dict) and method not in (None, "none"):
        import kdlib.methods  # noqa: F401  (registers the methods)
        from kdlib.registry import METHODS

        defaults = METHODS.get(method).default_options() if method in METHODS else {}
        saved["method_options"] = {**defaults, **LEGACY_METHOD_OPTIONS.get(method, {}), **saved["method_options"]}
    wanted = normalise_fields(yaml.safe_load(wanted_yaml) or {})
    return sorted(k for k in set(saved) | set(wanted) if k != "run_dir" and saved.get(k) != wanted.get(k))


def reusable_result(run_dir: Path, wanted_yaml: str, fix: str) -> Optional[Dict[str, Any]]:
    """The metrics of a finished run in ``run_dir`` made with ``wanted_yaml``; None if not finished yet.

    A run directory holding a run made with other settings raises ``ValueError`` naming the fields and
    ``fix`` (what the caller's user should do), so a different run is never taken for the requested one.
    """
    changed = config_changes(run_dir, wanted_yaml)
    if changed:
        raise ValueError(f"{run_dir} holds a run made with other settings ({', '.join(changed)}); {fix}")
    metrics = Path(run_dir) / "metrics.json"
    return json.loads(metrics.read_text()) if metrics.is_file() else None


def weights_file(path: Path) -> Path:
    """A weights checkpoint: ``path`` itself, or a run directory's ``best.pt`` (else ``final.pt``)."""
    path = Path(path)
    if not path.is_dir():
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint not found: {path}")
        return path
    for name in ("best.pt", "final.pt"):
        if (path / name).is_file():
            return path / name
    if (path / "shipped.json").is_file():   # kdlib.studies.shipped_runs.MARK
        raise FileNotFoundError(f"{path} holds a finished run's results without its weights (installed from "
                                f"results/proxy/shipped_runs); delete {path} and run again to retrain it with weights")
    raise FileNotFoundError(f"{path} holds no best.pt or final.pt: is the run finished?")
