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
# # Af-DCD: CamVid test mIoU
#
# Trains every student with every method (and seed), then sets our numbers beside the paper's
# (`kdlib.paper_numbers.afdcd_camvid`). With `preset = "camvid"`, the paper's teacher and `imagenet_dir` (the
# official ImageNet files) this is the paper's experiment, compared as mean ± 95 % CI against the reported
# value. With the default built-in `quick` preset absolute numbers are not comparable, so the table sets our
# gains over the baseline student beside the paper's gains. Writes `runs.csv`, `summary.csv` and `metrics.json`
# into `output_dir` and a per-class IoU figure into `figures_dir`. `kdlib plan notebooks/afdcd_camvid.py --param
# preset=...` lists every run (resolved config, ImageNet file, reported split) without training. `make quick`
# trains the default teacher `runs/quick/teacher`.

# %% tags=["parameters"]
table = "afdcd_camvid"
preset = "quick"                            # quick / proxy (built-in data) or camvid (the paper)
students = "deeplabv3_resnet18,pspnet_resnet18"
methods = "none,skd,ifvd,cwd,cirkd,afdcd"
seeds = "0"                                 # comma-separated (kdlib grid --seeds 0,1,2 sets it)
teacher_checkpoint = "runs/quick/teacher"   # kdlib run dir or the official teacher .pth
imagenet_dir = ""                           # folder of the official ImageNet files (resnet18-imagenet.pth, ...):
                                            # each student gets its own; paper presets need it; none: no ImageNet init
nproc_per_node = 1                          # processes (GPUs) per run; above 1 trains each run with torchrun
extra = ""                                  # more kdlib train overrides, as in train_config.py
runs_root = ""                              # run folder shared by notebooks; empty means output_dir/runs
output_dir = "results/afdcd_camvid"
figures_dir = "figures/afdcd_camvid"

# %%
from kdlib.paths import use_project_root

use_project_root()   # relative paths resolve against the project root ($KDLIB_HOME), wherever the kernel started

# %%
from kdlib.studies.notebook import parse_extra
from kdlib.studies.reproduce import reproduce_table
from kdlib.studies.study import split_list
from kdlib.report.show import show_figures, show_table

result, runs = reproduce_table(table, preset, split_list(students), split_list(methods),
                               [int(s) for s in split_list(seeds)], output_dir, figures_dir,
                               common={"teacher_checkpoint": teacher_checkpoint, **parse_extra(extra)},
    runs_root=runs_root or None, imagenet_dir=imagenet_dir,
    nproc_per_node=nproc_per_node)
show_table(result)
show_figures(figures_dir)
