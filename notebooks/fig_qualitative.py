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
# # Qualitative segmentation results (as CIRKD Fig. 4)
#
# Rows are validation images; columns the image, the prediction of the student trained with each method
# (`none` = the baseline trained alone, then CWD, CIRKD, Af-DCD) and the ground truth (ignored pixels black),
# in the dataset's class colours (`palette`). Runs named in `run_dirs` (`method:run_dir` pairs) are used as
# they are; the others are trained (or reused, if finished) under `runs_root` with `preset`, the first seed
# and the teacher, so a fresh checkout makes the figure from scratch. Writes
# `figures_dir/qualitative.{png,pdf}` and `output_dir/metrics.json` (the runs, the samples and each student's
# pixel accuracy on them).

# %% tags=["parameters"]
preset = "quick"                            # quick / proxy (built-in data) or a paper dataset preset
student = "deeplabv3_resnet18"
methods = "none,cwd,cirkd,afdcd"            # columns, in this order; none is the baseline
run_dirs = ""                               # optional method:run_dir pairs, comma-separated
seeds = "0"                                 # the runs of the first seed are drawn
teacher_checkpoint = "runs/quick/teacher"   # kdlib run dir or the official teacher .pth
extra = ""                                  # more kdlib train overrides, as in train_config.py
runs_root = ""                              # where missing runs are trained; empty means results/figure_runs/PRESET
num_samples = 4                             # validation images (rows)
first_sample = 0                            # index of the first one
palette = "dataset"                         # the dataset's class colours, or a seaborn palette such as colorblind
device = "auto"                             # auto, cpu or cuda
output_dir = "results/fig_qualitative"
figures_dir = "figures/fig_qualitative"

# %%
from kdlib.paths import use_project_root

use_project_root()   # relative paths resolve against the project root ($KDLIB_HOME), wherever the kernel started

# %%
from kdlib.studies.notebook import parse_extra, save_metrics
from kdlib.figures.predictions import parse_run_dirs
from kdlib.studies.paper_figures import make_qualitative_figure
from kdlib.studies.study import split_list

result = make_qualitative_figure(preset, student, split_list(methods), int(split_list(seeds)[0]), num_samples,
                                 runs_root or f"results/figure_runs/{preset}", figures_dir,
                                 common={"teacher_checkpoint": teacher_checkpoint, **parse_extra(extra)},
                                 run_dirs=parse_run_dirs(run_dirs), first_sample=first_sample, device=device,
                                 palette=palette)
save_metrics(output_dir, result)
print(result["pixel_acc"])

# %%
from kdlib.report.show import show_figures

show_figures(figures_dir)
