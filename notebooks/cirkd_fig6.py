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
# # CIRKD Fig. 6: pixel and region queue sizes, with their memory cost
#
# CIRKD Fig. 6 plots Cityscapes val mIoU and the GPU memory cost against (a) the pixel-queue size N_p per
# class and (b) the region-queue size N_r per class; the code's defaults, which the plots centre on, are
# N_p = 20000 and N_r = 2000. The plotted values were not extracted (UNCONFIRMED), so kdlib sweeps a
# log-spaced grid around the defaults. Every run is CIRKD with all its paper settings, only the swept queue
# length changed; the student is presumably the Table 4 one (DeepLabV3-MBV2, UNCONFIRMED). The curves show
# mIoU (mean, 95 % CI over seeds) with the paper default starred, and on a second axis the queue's own
# memory, computed exactly as K classes x N entries x d floats (d the teacher's head width; on Cityscapes
# with N_p = 20000 this is 371 MB). The measured peak memory of every run is in the tables too (on CPU it is
# the kernel's running maximum; see `afdcd_table5.py` for isolated measurements). Writes `runs.csv`,
# `summary.csv` and `metrics.json` into `output_dir` and the curves into `figures_dir`.

# %% tags=["parameters"]
preset = "quick"                            # quick / proxy (built-in data) or cityscapes (the paper)
student = "deeplabv3_mobilenetv2"           # presumably the paper's ablation student
pixel_queue_sizes = "2500,5000,10000,20000,40000"    # N_p per class, comma-separated (empty: skip panel a)
region_queue_sizes = "250,500,1000,2000,4000"        # N_r per class (empty: skip panel b)
seeds = "0"                                 # comma-separated (kdlib grid --seeds 0,1,2 sets it)
teacher_checkpoint = "runs/quick/teacher"   # kdlib run dir or the official teacher .pth
imagenet_dir = ""                           # folder of the official ImageNet files (resnet18-imagenet.pth, ...):
                                            # each student gets its own; paper presets need it; none: no ImageNet init
nproc_per_node = 1                          # processes (GPUs) per run; above 1 trains each run with torchrun
extra = ""                                  # more kdlib train overrides, as in train_config.py
runs_root = ""                              # run folder shared by notebooks; empty means output_dir/runs
output_dir = "results/cirkd_fig6"
figures_dir = "figures/cirkd_fig6"

# %%
from kdlib.paths import use_project_root

use_project_root()   # relative paths resolve against the project root ($KDLIB_HOME), wherever the kernel started

# %%
from kdlib.studies.notebook import parse_extra
from kdlib.studies.study import split_list
from kdlib.studies.sweep import reproduce_figure
from kdlib.report.show import show_figures, show_table

summary, runs = reproduce_figure("cirkd_fig6", preset, student,
                                 {"cirkd_pixel_queue": pixel_queue_sizes, "cirkd_region_queue": region_queue_sizes},
                                 [int(s) for s in split_list(seeds)], output_dir, figures_dir,
                                 common={"teacher_checkpoint": teacher_checkpoint, **parse_extra(extra)},
    runs_root=runs_root or None, imagenet_dir=imagenet_dir,
    nproc_per_node=nproc_per_node)
show_table(summary)
show_figures(figures_dir)
