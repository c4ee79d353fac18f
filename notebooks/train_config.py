# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Train and evaluate one configuration
#
# The building block of every grid: train one student (alone or distilled) with a preset and overrides,
# evaluate it, and write `metrics.json` into `output_dir` for `kdlib grid`. For example
#
#     kdlib grid notebooks/train_config.py --param method=none,kd --seeds 0,1,2 --jobs 2 \
#         --param teacher_checkpoint=runs/quick/teacher
#
# (`make quick` trains `runs/quick/teacher` first.) `extra` takes more `kdlib train` overrides as one string of
# space-separated `key=value` pairs with YAML values, e.g. `iterations=200 method_options.temperature=4`.

# %% tags=["parameters"]
preset = "quick"            # a kdlib preset (kdlib train --help lists them)
method = "kd"               # none, kd, cwd, at, fitnet, ifvd, skd, cirkd, afdcd
seed = 0
teacher_checkpoint = "runs/quick/teacher"  # kdlib run dir / checkpoint or official .pth (ignored for none)
iterations = 0              # 0: the preset's
extra = ""                  # more kdlib train overrides (format: see above)
nproc_per_node = 1          # >1: train with torchrun in that many processes (one per GPU)
imagenet_dir = ""           # folder of the official ImageNet files (the student's is used); none: no ImageNet init
output_dir = ""             # set by kdlib grid: where metrics.json and the run directory go

# %%
from kdlib.paths import use_project_root

use_project_root()   # relative paths resolve against the project root ($KDLIB_HOME), wherever the kernel started

# %%
from pathlib import Path

from kdlib.studies.notebook import parse_extra, save_metrics, train_config

overrides = {"method": method, "seed": seed, **parse_extra(extra)}
if method != "none":
    overrides["teacher_checkpoint"] = teacher_checkpoint
if iterations:
    overrides["iterations"] = iterations
run_dir = Path(output_dir or f"runs/notebook/{method}-seed{seed}") / "run"
result = train_config(preset, overrides, run_dir, nproc_per_node=nproc_per_node, imagenet_dir=imagenet_dir)
print(f"{method} seed {seed}: mIoU {100 * result['miou']:.2f} %")

# %%
save_metrics(output_dir, {k: result[k] for k in ("miou", "pixel_acc", "mean_acc", "best_miou", "per_class_iou",
                                                 "wall_time_s", "peak_memory_mb")})
