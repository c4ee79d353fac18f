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
# # CIRKD Table 4: loss-term ablation, Cityscapes val mIoU
#
# Trains the student with each combination of CIRKD's loss terms (and seed), then sets our numbers beside the
# paper's (`kdlib.paper_numbers.cirkd_table4`; student DeepLabV3-MBV2, teacher DeepLabV3-R101). A variant names
# its active terms: `ce` is the student trained alone; otherwise CIRKD runs with the named terms at their paper
# weights and the others at weight 0 (not computed). `kd` is logit KD, `batch_p2p` the mini-batch pixel-to-pixel
# term, `memory_p2p` / `memory_p2r` the memory-bank pixel-to-pixel and pixel-to-region terms. With `preset =
# "cityscapes"`, the paper's teacher and `imagenet_dir` (the official ImageNet files) the table is our mean ± 95
# % CI against the reported mIoU; with the default built-in `quick` preset it sets our gain over the `ce` row
# beside the paper's gain. Writes `runs.csv`, `summary.csv` and `metrics.json` into `output_dir` and an mIoU bar
# chart into `figures_dir`.

# %% tags=["parameters"]
ablation = "cirkd_table4"
preset = "quick"                            # quick / proxy (built-in data) or cityscapes (the paper)
student = "deeplabv3_mobilenetv2"           # the paper's student
variants = "ce,ce+kd,ce+kd+batch_p2p,ce+kd+memory_p2p,ce+kd+memory_p2r,ce+kd+memory_p2p+memory_p2r,ce+kd+batch_p2p+memory_p2p+memory_p2r"
seeds = "0"                                 # comma-separated (kdlib grid --seeds 0,1,2 sets it)
teacher_checkpoint = "runs/quick/teacher"   # kdlib run dir or the official teacher .pth
imagenet_dir = ""                           # folder of the official ImageNet files (resnet18-imagenet.pth, ...):
                                            # each student gets its own; paper presets need it; none: no ImageNet init
nproc_per_node = 1                          # processes (GPUs) per run; above 1 trains each run with torchrun
extra = ""                                  # more kdlib train overrides, as in train_config.py
runs_root = ""                              # run folder shared by notebooks; empty means output_dir/runs
output_dir = "results/cirkd_table4"
figures_dir = "figures/cirkd_table4"

# %%
from kdlib.paths import use_project_root

use_project_root()   # relative paths resolve against the project root ($KDLIB_HOME), wherever the kernel started

# %%
from kdlib.studies.ablation import reproduce_ablation
from kdlib.studies.notebook import parse_extra
from kdlib.studies.study import split_list
from kdlib.report.show import show_figures, show_table

result, runs = reproduce_ablation(ablation, preset, student, split_list(variants),
                                  [int(s) for s in split_list(seeds)], output_dir, figures_dir,
                                  common={"teacher_checkpoint": teacher_checkpoint, **parse_extra(extra)},
    runs_root=runs_root or None, imagenet_dir=imagenet_dir,
    nproc_per_node=nproc_per_node)
show_table(result)
show_figures(figures_dir)
