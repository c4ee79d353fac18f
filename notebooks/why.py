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
# # Why the proxy disagrees: one experiment of the why study
#
# Each experiment of `kdlib.studies.why.EXPERIMENTS` changes one property of the proxy's regime (schedule length,
# loss scale, the released pixel queue, ...) and measures the methods again. This notebook prints the
# experiment's question, hypothesis and prediction (written before its runs), trains or reuses its runs
# (`runs_root/<variant>/...`; the main study's setting reuses `main_runs_root`), and writes `runs.csv`,
# `summary.csv` (gains over the baseline, Welch 95 % intervals), `effects.csv` (the experiment's contrasts) and
# `metrics.json` into `output_dir` and the figure into `figures_dir`. `kdlib proxy why_<experiment>` runs it the
# way the committed results were made.

# %% tags=["parameters"]
experiment = "schedule"                     # schedule / loss_scale / map_size / pixel_queue (kdlib.studies.why)
preset = "proxy"                            # the built-in data at the proxy study's sizes
students = ""                               # comma-separated subset of the experiment's students; empty: all
methods = ""                                # subset of its methods; empty: all
variants = ""                               # subset of its variants; empty: all
seeds = "0,1,2"                             # comma-separated
teacher_checkpoint = "runs/proxy/teacher"   # `kdlib proxy` installs the committed proxy teacher here
extra = ""                                  # more kdlib train overrides, as in train_config.py
runs_root = ""                              # the experiment's run folder; empty means output_dir/runs
main_runs_root = ""                         # the main study's runs (reused for the main setting); empty: runs_root
output_dir = "results/why_schedule"
figures_dir = "figures/why_schedule"

# %%
from kdlib.paths import use_project_root

use_project_root()   # relative paths resolve against the project root ($KDLIB_HOME), wherever the kernel started

# %%
from IPython.display import Markdown, display

from kdlib.report.show import show_figures
from kdlib.studies.notebook import parse_extra
from kdlib.studies.study import split_list
from kdlib.studies.why import experiment as get_experiment, run_experiment, write_experiment

exp = get_experiment(experiment)
display(Markdown(f"**{exp.title}.** {exp.question}\n\n*Hypothesis.* {exp.hypothesis}\n\n"
                 f"*Prediction (written before the runs).* {exp.prediction}"))

# %%
runs = run_experiment(experiment, preset, [int(s) for s in split_list(seeds)], runs_root or f"{output_dir}/runs",
                      main_runs_root or None, common={"teacher_checkpoint": teacher_checkpoint, **parse_extra(extra)},
                      students=split_list(students), methods=split_list(methods), variants=split_list(variants))
gains, effects = write_experiment(runs, experiment, output_dir, figures_dir, preset=preset)
display(gains.round(2))
show_figures(figures_dir)

# %% [markdown]
# The experiment's contrasts, same student and method: the setting's mIoU minus the reference setting's, and its
# gain over its own baseline minus the reference's gain (mIoU pp, Welch 95 % intervals; `resolved` when the gain
# difference's interval excludes 0).

# %%
display(effects.round(2))
