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
# # Af-DCD: patch size N and pooling
#
# Af-DCD's hyper-parameter ablation of the patch size N of its Omni-Contrasting (samples are contrasted
# within N x N patches) and of the max-pooling applied before it. The released code max-pools both c4 maps
# by 4 and uses 4 x 4 patches (no pooling on CamVid and the built-in data); the seed summary mentions N from
# 2 to 8; **the paper's numbers are UNCONFIRMED**, so this notebook shows our numbers only. A value is a
# patch token: `4` is patch 4 with the dataset's default pooling, `4/pool2` patch 4 after a 2 x 2 max-pool,
# `4/nopool` patch 4 without pooling. Every run is Af-DCD with all its other paper settings; the tables hold
# each run's effective `patch` and `pool`, and the curve draws mIoU (mean, 95 % CI over seeds) against N,
# one line per pooling setting, the default starred. The pooled map must hold one patch (the quick preset's
# maps are 8 x 16). Writes `runs.csv`, `summary.csv` and `metrics.json` into `output_dir` and the curve into
# `figures_dir`.

# %% tags=["parameters"]
sweep = "afdcd_patch"
preset = "quick"                            # quick / proxy (built-in data) or cityscapes, ade20k ...
student = "deeplabv3_resnet18"
values = "2,4,8,2/pool2,4/pool2"            # patch tokens, comma-separated
seeds = "0"                                 # comma-separated (kdlib grid --seeds 0,1,2 sets it)
teacher_checkpoint = "runs/quick/teacher"   # kdlib run dir or the official teacher .pth
imagenet_dir = ""                           # folder of the official ImageNet files (resnet18-imagenet.pth, ...):
                                            # each student gets its own; paper presets need it; none: no ImageNet init
nproc_per_node = 1                          # processes (GPUs) per run; above 1 trains each run with torchrun
extra = ""                                  # more kdlib train overrides, as in train_config.py
runs_root = ""                              # run folder shared by notebooks; empty means output_dir/runs
output_dir = "results/afdcd_patch"
figures_dir = "figures/afdcd_patch"

# %%
from kdlib.paths import use_project_root

use_project_root()   # relative paths resolve against the project root ($KDLIB_HOME), wherever the kernel started

# %%
from kdlib.studies.notebook import parse_extra
from kdlib.studies.study import split_list
from kdlib.studies.sweep import reproduce_sweep
from kdlib.report.show import show_figures, show_table

summary, runs = reproduce_sweep(sweep, preset, student, values, [int(s) for s in split_list(seeds)], output_dir,
                                figures_dir, common={"teacher_checkpoint": teacher_checkpoint, **parse_extra(extra)},
    runs_root=runs_root or None, imagenet_dir=imagenet_dir,
    nproc_per_node=nproc_per_node)
show_table(summary)
show_figures(figures_dir)
