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
# # CIRKD Fig. 7: temperature and numbers of contrastive embeddings
#
# CIRKD Fig. 7 plots Cityscapes val mIoU against (a) the temperature tau of the pixel relations, (b) the
# number of contrastive pixel embeddings K_p and (c) the number of contrastive region embeddings K_r drawn
# from the memory queues; the code's defaults are tau = 0.1, K_p = 4096, K_r = 1024. The plotted values were
# not extracted (UNCONFIRMED), so kdlib sweeps log-spaced grids around the defaults. Every run is CIRKD with
# all its paper settings, only the swept option changed (tau is the `contrast_temperature` shared by the
# mini-batch and memory terms); the student is presumably the Table 4 one (DeepLabV3-MBV2, UNCONFIRMED).
# K_p / K embeddings per class are drawn, so K_p // K + 1 must fit in the pixel queue (likewise K_r);
# values that do not are refused before training. Each panel shows mIoU (mean, 95 % CI over seeds) with the
# paper default starred. Writes `runs.csv`, `summary.csv` and `metrics.json` into `output_dir` and the
# curves into `figures_dir`.

# %% tags=["parameters"]
preset = "quick"                            # quick / proxy (built-in data) or cityscapes (the paper)
student = "deeplabv3_mobilenetv2"           # presumably the paper's ablation student
temperatures = "0.03,0.05,0.1,0.2,0.5"      # tau, comma-separated (empty: skip panel a)
pixel_contrast_sizes = "1024,2048,4096,8192,16384"   # K_p (empty: skip panel b)
region_contrast_sizes = "256,512,1024,2048,4096"     # K_r (empty: skip panel c)
seeds = "0"                                 # comma-separated (kdlib grid --seeds 0,1,2 sets it)
teacher_checkpoint = "runs/quick/teacher"   # kdlib run dir or the official teacher .pth
imagenet_dir = ""                           # folder of the official ImageNet files (resnet18-imagenet.pth, ...):
                                            # each student gets its own; paper presets need it; none: no ImageNet init
nproc_per_node = 1                          # processes (GPUs) per run; above 1 trains each run with torchrun
extra = ""                                  # more kdlib train overrides, as in train_config.py
runs_root = ""                              # run folder shared by notebooks; empty means output_dir/runs
output_dir = "results/cirkd_fig7"
figures_dir = "figures/cirkd_fig7"

# %%
from kdlib.paths import use_project_root

use_project_root()   # relative paths resolve against the project root ($KDLIB_HOME), wherever the kernel started

# %%
from kdlib.studies.notebook import parse_extra
from kdlib.studies.study import split_list
from kdlib.studies.sweep import reproduce_figure
from kdlib.report.show import show_figures, show_table

summary, runs = reproduce_figure("cirkd_fig7", preset, student,
                                 {"cirkd_tau": temperatures, "cirkd_pixel_contrast": pixel_contrast_sizes,
                                  "cirkd_region_contrast": region_contrast_sizes},
                                 [int(s) for s in split_list(seeds)], output_dir, figures_dir,
                                 common={"teacher_checkpoint": teacher_checkpoint, **parse_extra(extra)},
    runs_root=runs_root or None, imagenet_dir=imagenet_dir,
    nproc_per_node=nproc_per_node)
show_table(summary)
show_figures(figures_dir)
