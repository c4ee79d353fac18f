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
# # t-SNE of pixel embeddings, coloured by class
#
# Head features (the tensor CIRKD distils) of the teacher, the baseline student (`none`) and the distilled
# student (`distilled_method`) on the first `num_images` validation images. The same class-balanced sample of
# labelled pixels (labels nearest-resized to the feature map, ignored pixels dropped, at most `max_points`) is
# embedded for every model, each pixel vector L2-normalised, by scikit-learn's t-SNE (PCA init, fixed
# `tsne_seed`). Writes `figures_dir/tsne.{png,pdf}`, the embedding as `output_dir/tsne.csv` and, in
# `metrics.json`, each model's cosine silhouette score of those pixels by class (higher means better separated
# classes). Runs not named in `run_dirs` are trained (or reused) under `runs_root`.

# %% tags=["parameters"]
preset = "quick"                            # quick / proxy (built-in data) or a paper dataset preset
student = "deeplabv3_resnet18"
distilled_method = "cirkd"
run_dirs = ""                               # optional method:run_dir pairs, comma-separated
seeds = "0"                                 # the runs of the first seed are used
teacher_checkpoint = "runs/quick/teacher"   # kdlib run dir or the official teacher .pth
extra = ""                                  # more kdlib train overrides, as in train_config.py
runs_root = ""                              # where missing runs are trained; empty means results/figure_runs/PRESET
num_images = 8                              # validation images the pixels come from
max_points = 2000                           # pixels embedded per model
tsne_seed = 0                               # pixel sampling and t-SNE random state
perplexity = 30.0
device = "auto"                             # auto, cpu or cuda
output_dir = "results/fig_tsne"
figures_dir = "figures/fig_tsne"

# %%
from kdlib.paths import use_project_root

use_project_root()   # relative paths resolve against the project root ($KDLIB_HOME), wherever the kernel started

# %%
from kdlib.studies.paper_figures import make_tsne_figure
from kdlib.studies.notebook import parse_extra
from kdlib.figures.predictions import parse_run_dirs
from kdlib.studies.study import split_list

result = make_tsne_figure(preset, student, distilled_method, int(split_list(seeds)[0]),
                          runs_root or f"results/figure_runs/{preset}", teacher_checkpoint, output_dir, figures_dir,
                          common={"teacher_checkpoint": teacher_checkpoint, **parse_extra(extra)},
                          run_dirs=parse_run_dirs(run_dirs), num_images=num_images, max_points=max_points,
                          tsne_seed=tsne_seed, perplexity=perplexity, device=device)
print(result["silhouette"])

# %%
from kdlib.report.show import show_figures

show_figures(figures_dir)
