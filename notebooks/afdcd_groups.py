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
# # Af-DCD: number of channel groups M
#
# Af-DCD's hyper-parameter ablation of M, the number of channel groups the Omni-Contrasting splits the c4
# features into (each 4 x 4 patch gives N x N x M contrastive samples; negatives are the other groups). The
# code's default is M = 16; **the paper's swept values and numbers are UNCONFIRMED** (the paper text could not
# be retrieved), so this notebook shows our numbers only. Every run is Af-DCD with all its paper settings for
# the dataset, only `groups` changed; M must divide the teacher's c4 width (256 for the quick preset's
# teacher, 2048 for R101). The curve shows mIoU (mean, 95 % CI over seeds) against M with the default
# starred. Writes `runs.csv`, `summary.csv` and `metrics.json` into `output_dir` and the curve into
# `figures_dir`.

# %% tags=["parameters"]
sweep = "afdcd_groups"
preset = "quick"                            # quick / proxy (built-in data) or cityscapes, ade20k ...
student = "deeplabv3_resnet18"
values = "4,8,16,32,64"                     # M, comma-separated
seeds = "0"                                 # comma-separated (kdlib grid --seeds 0,1,2 sets it)
teacher_checkpoint = "runs/quick/teacher"   # kdlib run dir or the official teacher .pth
imagenet_dir = ""                           # folder of the official ImageNet files (resnet18-imagenet.pth, ...):
                                            # each student gets its own; paper presets need it; none: no ImageNet init
nproc_per_node = 1                          # processes (GPUs) per run; above 1 trains each run with torchrun
extra = ""                                  # more kdlib train overrides, as in train_config.py
runs_root = ""                              # run folder shared by notebooks; empty means output_dir/runs
output_dir = "results/afdcd_groups"
figures_dir = "figures/afdcd_groups"

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
