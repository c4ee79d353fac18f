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
# # Similarity maps: the relations CIRKD distils and the patch similarities Af-DCD contrasts
#
# **Anchor maps** (`figures_dir/similarity_maps.{png,pdf}`): cosine similarity of one anchor pixel of image a
# to every pixel of image a (within image) and of image b (across images), on the head feature CIRKD distils,
# for the teacher, the baseline student (`none`) and the distilled student (`distilled_method`). The anchor is
# a feature-map cell (`anchor_row`, `anchor_col`; -1 = the centre of the map).
#
# **Af-DCD patch matrices** (`figures_dir/afdcd_patch_similarity.{png,pdf}`): inside the Af-DCD patch that
# holds the anchor, the spatial (positions x positions, groups matched) and channel (groups x groups, same
# position) similarity of the backbone c4 map, with the Af-DCD run's pooling, patch size, channel groups and
# -L1 similarity. Each model shows its **own** self-similarity (teacher, baseline, Af-DCD student): the paper's
# analysis compares the models' self-similarity, and the student's c4 would otherwise need the Af-DCD align
# conv, which only the Af-DCD run has and its weights file does not keep.
#
# **Numbers** (`output_dir/similarity.csv`, `metrics.json`): per student, the mean absolute difference to the
# teacher's anchor maps and whole relation matrices over `num_images` images, and the correlation with the
# teacher's Af-DCD matrices. Distillation is expected to bring the differences down; reported, not asserted.
# Runs not named in `run_dirs` are trained (or reused) under `runs_root`.

# %% tags=["parameters"]
preset = "quick"                            # quick / proxy (built-in data) or a paper dataset preset
student = "deeplabv3_resnet18"
distilled_method = "cirkd"                  # the distilled student of the anchor maps
afdcd_method = "afdcd"                      # the student of the Af-DCD matrices
run_dirs = ""                               # optional method:run_dir pairs, comma-separated
seeds = "0"                                 # the runs of the first seed are used
teacher_checkpoint = "runs/quick/teacher"   # kdlib run dir or the official teacher .pth
extra = ""                                  # more kdlib train overrides, as in train_config.py
runs_root = ""                              # where missing runs are trained; empty means results/figure_runs/PRESET
image_a = 0                                 # validation image of the anchor
image_b = 1                                 # validation image compared across
anchor_row = -1                             # feature-map cell of the anchor; -1 is the centre
anchor_col = -1
num_images = 4                              # images averaged in the numbers
device = "auto"                             # auto, cpu or cuda
output_dir = "results/fig_similarity"
figures_dir = "figures/fig_similarity"

# %%
from kdlib.paths import use_project_root

use_project_root()   # relative paths resolve against the project root ($KDLIB_HOME), wherever the kernel started

# %%
import pandas as pd

from kdlib.studies.notebook import parse_extra
from kdlib.figures.predictions import parse_run_dirs
from kdlib.studies.paper_figures import make_similarity_figures
from kdlib.studies.study import split_list

result = make_similarity_figures(preset, student, distilled_method, int(split_list(seeds)[0]),
                                 runs_root or f"results/figure_runs/{preset}", teacher_checkpoint, output_dir,
                                 figures_dir, common={"teacher_checkpoint": teacher_checkpoint, **parse_extra(extra)},
                                 run_dirs=parse_run_dirs(run_dirs), afdcd_method=afdcd_method, image_a=image_a,
                                 image_b=image_b, anchor=(anchor_row, anchor_col), num_images=num_images,
                                 device=device)
pd.DataFrame(result["rows"]).drop(columns="run_dir")

# %%
from kdlib.report.show import show_figures

show_figures(figures_dir)
