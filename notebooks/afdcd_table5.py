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
# # Af-DCD Table 5: training time and memory of Af-DCD vs CIRKD
#
# Af-DCD's Table 5 compares its training cost with CIRKD's: GPU memory 7.94 GB vs 10.09 GB and training time
# 4.23 h vs 4.34 h (8 RTX A5000 GPUs, 40000 iterations; from a third-party summary, the pair presumably
# DeepLabV3-R101 to DeepLabV3-R18 on Cityscapes: UNCONFIRMED; `kdlib.paper_numbers.afdcd_table5`). This
# notebook trains each method with the same student, teacher and recipe, **each run in a fresh Python
# process** so that its peak memory is its own (CUDA max allocated, or on CPU the process's maximum resident
# set size), and reports the wall time, the median time per training iteration (from the run log,
# evaluations left out), the peak memory and the mIoU. Absolute numbers depend on the machine: the
# comparable quantities are the ratios to CIRKD, set beside the paper's. Add `none` to `methods` to also
# get each method's overhead above training the student alone. Writes `runs.csv`, `summary.csv` and
# `metrics.json` into `output_dir` and a time / memory bar chart into `figures_dir`.

# %% tags=["parameters"]
preset = "quick"                            # quick / proxy (built-in data) or cityscapes (the paper)
student = "deeplabv3_resnet18"              # presumably the paper's pair R101 to R18
methods = "cirkd,afdcd"                     # comma-separated; none adds the student alone
seeds = "0"                                 # comma-separated (kdlib grid --seeds 0,1,2 sets it)
teacher_checkpoint = "runs/quick/teacher"   # kdlib run dir or the official teacher .pth
imagenet_dir = ""                           # folder of the official ImageNet files (resnet18-imagenet.pth, ...):
                                            # each student gets its own; paper presets need it; none: no ImageNet init
nproc_per_node = 1                          # processes (GPUs) per run; above 1 trains each run with torchrun
extra = ""                                  # more kdlib train overrides, as in train_config.py
output_dir = "results/afdcd_table5"
figures_dir = "figures/afdcd_table5"

# %%
from kdlib.paths import use_project_root

use_project_root()   # relative paths resolve against the project root ($KDLIB_HOME), wherever the kernel started

# %%
from kdlib.studies.cost import compare_cost
from kdlib.studies.notebook import parse_extra
from kdlib.studies.study import split_list
from kdlib.report.show import show_figures, show_table

summary, runs = compare_cost(preset, student, split_list(methods), [int(s) for s in split_list(seeds)], output_dir,
                             figures_dir, common={"teacher_checkpoint": teacher_checkpoint, **parse_extra(extra)},
                             imagenet_dir=imagenet_dir, nproc_per_node=nproc_per_node)
show_table(summary)
show_figures(figures_dir)
