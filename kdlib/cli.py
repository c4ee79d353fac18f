"""Command line: ``kdlib <command> --help`` explains every command and option.

Errors caused by bad input (missing files, wrong class counts, unknown names) are printed as one line
``kdlib: error: ...`` with exit status 2; ``--debug`` shows the full traceback instead.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Dict, List, NoReturn, Optional, Tuple

class OneLineParser(argparse.ArgumentParser):
    """Usage mistakes (a missing argument, a bad value) are one ``kdlib: error: ...`` line and exit status 2,
    like every other mistake, with where to read more instead of the usage block."""

    def error(self, message: str) -> "NoReturn":  # type: ignore[override]
        self.exit(2, f"kdlib: error: {message} (see `{self.prog} --help`)\n")


class ListOption(argparse.Action):
    """A list option: values separated by spaces, commas or both (``--seeds 0 1 2`` = ``--seeds 0,1,2``)."""

    def __init__(self, option_strings: List[str], dest: str, item_type: Any = str, **kwargs: Any) -> None:
        self.item_type = item_type
        super().__init__(option_strings, dest, nargs="+", **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: Optional[str] = None) -> None:
        items = [part.strip() for value in values for part in str(value).split(",") if part.strip()]
        try:
            setattr(namespace, self.dest, [self.item_type(item) for item in items])
        except ValueError:
            kind = "integers" if self.item_type is int else "values"
            parser.error(f"{option_string} takes {kind} separated by spaces or commas, e.g. 0 1 2 or 0,1,2; "
                         f"got {' '.join(map(str, values))!r}")


# bad input and a diverged run (NaN / Inf loss) are reported as one line; anything else is a bug: traceback
EXPECTED_ERRORS = (ValueError, FileNotFoundError, KeyError, FileExistsError, NotADirectoryError, FloatingPointError)


def _cmd_info(args: argparse.Namespace) -> int:
    from kdlib.info import PAPER_SETTINGS, complexity_table, format_table, write_table_file

    if args.recount and not args.size:
        print(f"info: counted every model again into {write_table_file()}", file=sys.stderr)
    settings = PAPER_SETTINGS
    if args.size:
        h, w = _parse_size(args.size)
        settings = (("custom", h, w, args.num_classes),)
    rows = complexity_table(args.models or None, settings, recount=args.recount)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


def _resolve_train_config(args: argparse.Namespace):
    from kdlib.engine.config import load_config_file, merge, parse_overrides, resolve_config

    overrides = load_config_file(args.config) if args.config else {}
    overrides = merge(overrides, parse_overrides(args.overrides))
    if args.run_dir:
        overrides["run_dir"] = args.run_dir
    return resolve_config(args.preset, overrides)


def _cmd_train(args: argparse.Namespace) -> int:
    from kdlib import distributed
    from kdlib.engine.trainer import train

    from kdlib.engine.preflight import check_buildable

    cfg = _resolve_train_config(args)
    check_buildable(cfg)   # names, widths, method options and terms: one line now, not a traceback later
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    try:
        result = train(cfg, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    finally:
        distributed.cleanup()
    if not args.quiet:
        print(f"mIoU {100 * result['miou']:.2f} (best {100 * (result['best_miou'] or 0):.2f} at iteration "
              f"{result['best_iteration']}), {result['wall_time_s']:.0f} s -> {result['run_dir']}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from kdlib.engine.evaluate_cli import run_eval

    result = run_eval(args)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"mIoU {100 * result['miou']:.2f}  pixel acc {100 * result['pixel_acc']:.2f}  "
              f"({result['num_images']} images, {args.split})")
        for name, iou in result["per_class_iou"].items():
            print(f"  {name:<24} {100 * iou:6.2f}")
    return 0


def _cmd_quick(args: argparse.Namespace) -> int:
    from kdlib.engine.config import parse_overrides
    from kdlib.studies.quick import run_quick

    run_quick(args.results_dir, args.figures_dir, args.runs_root, parse_overrides(args.overrides),
              methods=args.methods, progress=not args.quiet, fresh=args.fresh, train_teacher=args.train_teacher)
    return 0


def _cmd_proxy(args: argparse.Namespace) -> int:
    from kdlib.studies.proxy import STEPS, run_proxy

    if args.list:
        for step in STEPS:
            print(f"{step.name:<18} {step.description}")
        return 0
    if args.redraw:
        from kdlib.studies.proxy import redraw

        outcome = redraw(args.steps or None, progress=not args.quiet)
        for step, what in outcome.items():
            print(f"{step:<18} {what}")
        return 1 if any(what.startswith("failed") for what in outcome.values()) else 0
    if args.ship:
        from kdlib.studies.proxy import SHIPPED_STUDENT_RUNS, ship_students

        shipped = ship_students()
        print(f"proxy: {len(shipped)} finished run(s) newly shipped to {SHIPPED_STUDENT_RUNS} (no weights); "
              f"commit it, and `kdlib proxy` in a later session or a fresh clone reuses them")
        return 0
    if args.status:
        from kdlib.studies.proxy import why_status

        print("\n".join(why_status(args.steps or None)))
        return 0
    if args.report:
        from kdlib.report.proxy_report import write_report

        print(f"proxy: tables written to {write_report(STEPS)}")
        return 0
    if args.verify:
        from kdlib.engine.rundir import machine
        from kdlib.studies.proxy import committed_machine, verification_verdict, verify_runs

        checked = verify_runs()
        if checked.empty:
            print("proxy: no run of results/proxy/**/runs.csv is present under runs/proxy here; train some first, "
                  "e.g. `kdlib proxy cirkd_table4` (the teacher first, ~30 min on 2 cores)")
            return 1
        recorded = committed_machine()
        passed, lines = verification_verdict(checked, recorded.get("kind") if recorded else None, machine()["kind"])
        print("\n".join(lines))
        return 0 if passed else 1
    records = run_proxy(args.steps or None, jobs=args.jobs, dry_run=args.dry_run, progress=not args.quiet,
                        train_teacher=args.train_teacher)
    failed = sum(int(r.get("failed", 0)) for r in records)
    if records:
        total = sum(float(r["wall_time_s"]) for r in records)
        print(f"proxy: {len(records)} phase(s) in {total / 60:.1f} min, {failed} failed cell(s); "
              f"timings appended to results/proxy/timing.csv")
    return 1 if failed else 0


def _cmd_grid(args: argparse.Namespace) -> int:
    from kdlib.studies.grid import failure_report, parse_param, run_grid

    params = dict(parse_param(spec) for spec in args.param)
    seeds = args.seeds
    slurm = dict(parse_param(spec) for spec in args.slurm) if args.slurm else {}
    slurm = {k: v[0] for k, v in slurm.items()}
    if args.gpus_per_cell:
        from kdlib.studies.grid import gpus_per_cell

        gpus_per_cell(params, slurm, args.gpus_per_cell)
    table, results = run_grid(args.notebook, params, seeds, jobs=args.jobs, results_root=args.results_root,
                              study=args.study, progress=not args.quiet, executor=args.executor,
                              slurm_options=slurm)
    ran = [r for r in results if r.status != "skipped"]
    skipped = len(results) - len(ran)
    print(f"grid: {len(ran)} cell(s) run, {skipped} already done; table: "
          f"{Path(args.results_root) / (args.study or Path(args.notebook).stem)}/runs.csv ({len(table)} rows)")
    report = failure_report(results)
    if report:
        print(report, file=sys.stderr)
        return 1
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from kdlib.studies.grid import parse_param
    from kdlib.studies.plan import format_runs, plan_grid, plan_summary

    params = dict(parse_param(spec) for spec in args.param)
    runs = plan_grid(args.notebook, params)
    sys.stdout.write(format_runs(runs))
    print(plan_summary(runs, args.seconds_per_iteration), file=sys.stderr)
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    if args.data_command == "generate":
        from kdlib.data.synthetic import generate

        options = {k: v for k, v in (("num_train", args.num_train), ("num_val", args.num_val),
                                     ("num_test", args.num_test), ("difficulty", args.difficulty)) if v is not None}
        if args.size:
            options["height"], options["width"] = _parse_size(args.size)
        path = generate(args.root, preset=args.preset, seed=args.seed, progress=not args.quiet,
                        workers=args.workers, overwrite=args.overwrite, **options)
        print(f"synthetic_streets written to {path}")
    elif args.data_command == "samples":
        from kdlib.figures.sample_grid import plot_sample_grid, plot_synthetic_samples, save_compact_png

        if args.root:
            fig = plot_sample_grid(args.root, n=args.n, split=args.split, indices=args.indices,
                                   columns=args.columns, title=args.title)
        else:
            fig = plot_synthetic_samples(preset=args.preset, n=args.n, seed=args.seed, split=args.split,
                                         indices=args.indices, columns=args.columns, title=args.title)
        out = Path(args.out) if args.out else _new_file(Path("figures/synthetic_streets_samples.png"))
        if out.suffix.lower() == ".png":
            save_compact_png(fig, out)               # 256-colour palette: a small file for the README
        else:
            from kdlib.figures.plots import save_figure

            save_figure(fig, out.with_suffix(""), formats=(out.suffix.lstrip(".") or "png",))
        print(f"sample grid written to {out}")
    else:
        from kdlib.data import build_dataset, verify

        options: Dict[str, object] = {}
        if args.dataset == "synthetic_streets":
            # verify what is on disk: take the generation options from its metadata (no regeneration)
            from kdlib.data.synthetic import loader_options_from_metadata

            options = loader_options_from_metadata(args.root)
        report = verify(build_dataset(args.dataset, args.root, args.split, augment=False, **options))
        print(json.dumps(report, indent=2, default=str))
        if report.get("problems"):
            return 1
    return 0


def _new_file(path: Path) -> Path:
    """``path`` with ``-1``, ``-2``, ... before its suffix: the first name not taken yet."""
    n = 1
    while (candidate := path.with_name(f"{path.stem}-{n}{path.suffix}")).exists():
        n += 1
    return candidate


def _parse_size(text: str) -> Tuple[int, int]:
    """``'HxW'`` → ``(H, W)``; a clear error otherwise."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"size must be HxW, e.g. 128x256, got {text!r}") from None
    return h, w


def _add_info(sub: Any) -> None:
    """``kdlib info``: params / FLOPs of every model."""
    info = sub.add_parser(
        "info", help="params / FLOPs / true multiply-adds of every model at the papers' input sizes",
        description="Print params, the papers' FLOPs (official counting rule) and true multiply-adds of "
                    "every model at the input sizes of CIRKD Tables 1-3, next to the papers' numbers.")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    info.add_argument("--models", action=ListOption, metavar="NAME", help="only these models (default: all)")
    info.add_argument("--size", metavar="HxW", help="count at this input size instead of the papers' sizes")
    info.add_argument("--num-classes", type=int, default=19, help="classes when --size is given (default 19)")
    info.add_argument("--recount", action="store_true",
                      help="count the models again instead of reading the stored table (and rewrite it)")
    info.set_defaults(func=_cmd_info)


def _add_train(sub: Any) -> None:
    """``kdlib train``: one run, resolved from a preset and overrides."""
    from kdlib.engine.config import TrainConfig
    from kdlib.engine.recipes import PRESETS

    train = sub.add_parser(
        "train", help="train a student, alone or distilled from a teacher",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Train a segmentation student (method=none) or distil a teacher into it. The config is "
                    "resolved as: defaults < --preset < the method's paper defaults for the dataset < "
                    "--config file < key=value overrides. Every run writes its own run directory "
                    "(config.yaml, env.json, log.jsonl, metrics.json, per_class_iou.csv, checkpoints).",
        epilog="config fields (override any with key=value; nested with a dot, e.g. loss_weights.kd=0.5):\n"
               + TrainConfig.describe() + "\n\npresets: " + ", ".join(sorted(PRESETS)) +
               "\n\nexamples:\n  kdlib train --preset quick method=none student=deeplabv3_resnet101\n"
               "  torchrun --nproc_per_node 8 -m kdlib train --preset cityscapes method=kd "
               "teacher_checkpoint=teacher.pth")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (values parsed as YAML)")
    train.add_argument("--preset", choices=sorted(PRESETS), help="start from a paper or built-in preset")
    train.add_argument("--config", metavar="YAML", help="a YAML file of config fields")
    train.add_argument("--run-dir", help="output directory of the run")
    train.add_argument("--resume", action="store_true", help="continue the unfinished run in --run-dir")
    train.add_argument("--overwrite", action="store_true", help="replace a run already in --run-dir")
    train.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    train.add_argument("--quiet", action="store_true", help="no progress bar or summary line")
    train.set_defaults(func=_cmd_train)


def _add_eval(sub: Any) -> None:
    """``kdlib eval``: a checkpoint on a dataset split."""
    ev = sub.add_parser(
        "eval", help="evaluate a checkpoint (kdlib or official) on a dataset split",
        description="Whole-image evaluation as in the papers: dataset-level confusion matrix, mIoU = mean "
                    "over all classes (absent classes count 0), per-class IoU, pixel accuracy.")
    ev.add_argument("checkpoint", help="kdlib run directory, kdlib checkpoint (.pt) or official state dict (.pth)")
    ev.add_argument("--dataset", help="dataset name (default: the run's dataset)")
    ev.add_argument("--data-root", help="dataset root (default: the run's data_root)")
    ev.add_argument("--split", default="val", help="split to evaluate (default val)")
    ev.add_argument("--model", help="model name, needed for official checkpoints")
    ev.add_argument("--width", type=float, help="model width: official checkpoints (default 1.0); a kdlib checkpoint "
                                                "records its own and refuses another")
    ev.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    ev.add_argument("--flip", action="store_true", help="add horizontal-flip inference (off in the papers)")
    ev.add_argument("--scales", type=float, nargs="+", default=[1.0], help="inference scales (default 1.0)")
    ev.add_argument("--max-samples", type=int, help="evaluate only the first N images")
    ev.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ev.add_argument("--output", help="also write the metrics as JSON to this file")
    ev.set_defaults(func=_cmd_eval)


def _add_quick(sub: Any) -> None:
    """``kdlib quick``: the main job."""
    quick = sub.add_parser(
        "quick", help="the quick study: teacher, baseline and KD student on the built-in data (minutes on CPU)",
        description="Generate the built-in data if missing, train a small teacher, a baseline student and "
                    "distilled students, evaluate them, and write results/quick/*.csv and figures/quick/*. "
                    "Finished runs under --runs-root are reused and unfinished ones resumed.")
    quick.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides for every run")
    quick.add_argument("--methods", action=ListOption, default=["kd"], metavar="METHOD",
                       help="distillation methods to compare, e.g. kd cirkd or kd,cirkd (default kd)")
    quick.add_argument("--results-dir", default="results/quick", help="where the CSV tables go")
    quick.add_argument("--figures-dir", default="figures/quick", help="where the figures go")
    quick.add_argument("--runs-root", default="runs/quick", help="where the run directories go")
    quick.add_argument("--fresh", "--overwrite", dest="fresh", action="store_true",
                       help="retrain every run (default: reuse finished runs, resume interrupted ones)")
    quick.add_argument("--train-teacher", action="store_true",
                       help="train the teacher (~3 min on 2 cores) instead of installing the committed "
                            "results/quick/teacher when --runs-root holds no teacher yet")
    quick.add_argument("--quiet", action="store_true", help="no progress output")
    quick.set_defaults(func=_cmd_quick)


def _add_grid(sub: Any) -> None:
    """``kdlib grid``: a notebook over a grid of parameters (papermill)."""
    grid = sub.add_parser(
        "grid", help="run a parameterised notebook over a grid of values and seeds (papermill)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Expand the Cartesian product of --param values and --seeds, execute NOTEBOOK once per cell "
                    "through papermill into RESULTS_ROOT/<study>/<run-id>/ (executed notebook + metrics.json), "
                    "skip cells already done, keep going when a cell fails, and write one tidy table "
                    "RESULTS_ROOT/<study>/runs.csv (one row per run: parameters, seed, metrics, per-class IoU, "
                    "wall time). Exit status 1 if any cell failed.",
        epilog="examples:\n  kdlib grid notebooks/train_config.py --param method=none,kd --seeds 0,1,2 --jobs 2\n"
               "  kdlib grid notebooks/train_config.py --param 'extra=method_options.temperature=1,"
               "method_options.temperature=4'\n"
               "  kdlib grid notebooks/cirkd_table1.py --param preset=cityscapes --param imagenet_dir=pretrained "
               "--param 'seeds=\"0,1,2\"' --executor slurm --gpus-per-cell 8 --slurm slurm_partition=gpu")
    grid.add_argument("notebook", help="notebook (.ipynb or jupytext .py) with a cell tagged 'parameters'")
    grid.add_argument("--param", action="append", default=[], metavar="KEY=V1,V2",
                      help="a notebook parameter and its values (YAML; commas inside [] are kept); repeatable")
    grid.add_argument("--seeds", action=ListOption, item_type=int, metavar="SEED", help="seeds (0 1 2 or 0,1,2): one cell per seed for a notebook with a seed parameter "
                                      "(train_config), the notebook's own seeds parameter otherwise (default: 0, "
                                      "or the notebook's default)")
    grid.add_argument("--jobs", type=int, default=1, help="cells run at once on this machine (default 1)")
    grid.add_argument("--results-root", default="results", help="where study folders go (default results)")
    grid.add_argument("--study", help="study folder name (default: the notebook's name)")
    grid.add_argument("--executor", default="local", choices=["local", "slurm", "submitit-local"],
                      help="local processes (default), a Slurm job array via submitit, or submitit's local "
                           "executor")
    grid.add_argument("--slurm", action="append", metavar="KEY=VALUE",
                      help="submitit/Slurm parameter, e.g. slurm_partition=gpu, gpus_per_node=8; repeatable")
    grid.add_argument("--gpus-per-cell", type=int, metavar="N",
                      help="N GPUs for every cell: passes nproc_per_node=N to the notebook (its runs train with "
                           "torchrun) and, with --executor slurm, asks Slurm for N GPUs and one task per cell")
    grid.add_argument("--quiet", action="store_true", help="no progress bar")
    grid.set_defaults(func=_cmd_grid)


def _add_plan(sub: Any) -> None:
    """``kdlib plan``: the runs a notebook would make."""
    plan = sub.add_parser(
        "plan", help="list every training run a notebook would make, resolved and checked; trains nothing",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Execute NOTEBOOK with its parameters in planning mode: every run it would train is resolved "
                    "(preset < method paper defaults < overrides), checked (names, method options, the ImageNet "
                    "file of each student, GPUs for nproc_per_node) and printed as one JSON object per line: "
                    "{run_id, run_dir, nproc_per_node, status (new / resumable / finished), config}, where config "
                    "is what the run's config.yaml will hold. Needs neither the datasets nor the teachers; writes "
                    "nothing. A summary (runs, iterations to train, GPU-hours with --seconds-per-iteration) goes "
                    "to stderr. Several values of a --param plan every combination, as kdlib grid would run them.",
        epilog="examples:\n  kdlib plan notebooks/cirkd_table1.py --param preset=cityscapes "
               "--param imagenet_dir=pretrained --param teacher_checkpoint=deeplabv3_resnet101_citys_best_model.pth "
               "--param 'seeds=\"0,1,2\"'\n  kdlib plan notebooks/cirkd_table2.py --param preset=camvid --param "
               "imagenet_dir=pretrained --param nproc_per_node=8 --seconds-per-iteration 0.6 | jq .run_id")
    plan.add_argument("notebook", help="notebook (.ipynb or jupytext .py) with a cell tagged 'parameters'")
    plan.add_argument("--param", action="append", default=[], metavar="KEY=V1,V2",
                      help="a notebook parameter and its value(s), as for kdlib grid; repeatable")
    plan.add_argument("--seconds-per-iteration", type=float, metavar="S",
                      help="wall seconds per training iteration of one run, to estimate GPU-hours "
                           "(iterations x S x nproc_per_node)")
    plan.set_defaults(func=_cmd_plan)


def _add_proxy(sub: Any) -> None:
    """``kdlib proxy``: the proxy study."""
    proxy = sub.add_parser(
        "proxy", help="the proxy study: every table and ablation of both papers on the built-in data (hours)",
        description="Train the proxy teacher (DeepLabV3-R101, once), then run every table, ablation and figure "
                    "notebook of both papers on the built-in data with `kdlib grid`: training cells --jobs at a "
                    "time into runs/proxy/, then one final cell per table that reads the runs and writes "
                    "results/proxy/<step>/ (executed notebook, runs.csv, summary.csv) and figures/proxy/<step>/. "
                    "Resumable: rerun the same command after an interruption.")
    proxy.add_argument("steps", nargs="*", metavar="step", help="only these steps (default: all; --list names them)")
    proxy.add_argument("--jobs", type=int, default=2, help="training cells at once (default 2: one per core)")
    proxy.add_argument("--dry-run", action="store_true", help="print the kdlib grid commands, run nothing")
    proxy.add_argument("--list", action="store_true", help="list the steps and exit")
    proxy.add_argument("--report", action="store_true",
                       help="train nothing: render results/proxy/tables.md (every table, gains with Welch 95%% "
                            "intervals, cost, wall time) from the committed results/proxy/**")
    proxy.add_argument("--redraw", action="store_true",
                       help="train nothing: re-execute every committed step's final cell from the committed "
                            "results/proxy/**/runs.csv (figures, tables, executed notebooks; each run keeps its "
                            "commit), e.g. after a change to the figure code; afdcd_table5 (timings) is skipped, and "
                            "fig_* unless the seed-0 main runs' weights are under runs/proxy/main")
    proxy.add_argument("--train-teacher", action="store_true",
                       help="train the R101 teacher (~27 min on 2 cores) instead of starting from the committed "
                            "results/proxy/teacher/ (used when runs/proxy/teacher does not exist yet)")
    proxy.add_argument("--verify", action="store_true",
                       help="train nothing: compare the mIoU of every run present under runs/proxy with the committed "
                            "results/proxy/**/runs.csv (exit 1 on a mismatch)")
    proxy.add_argument("--status", action="store_true",
                       help="train nothing: where the why steps stand under runs/proxy (runs done per setting, "
                            "interrupted runs and the iteration they resume from, each setting's own teacher), "
                            "e.g. before resuming a study that spans sessions")
    proxy.add_argument("--ship", action="store_true",
                       help="train nothing: copy every finished run under runs/proxy/main and runs/proxy/why_* "
                            "(config, metrics, log; no weights) to results/proxy/shipped_runs/ to be committed, so "
                            "that a study spanning sessions or clones resumes there without training them again "
                            "(`kdlib proxy` installs them; --verify does not count them as reproduced)")
    proxy.add_argument("--quiet", action="store_true", help="no progress output")
    proxy.set_defaults(func=_cmd_proxy)


def _add_data(sub: Any) -> None:
    """``kdlib data``: generate / draw / verify datasets."""
    data = sub.add_parser("data", help="generate the built-in dataset, plot samples, or verify a dataset",
                          description="Dataset utilities.")
    data_sub = data.add_subparsers(dest="data_command", metavar="action", required=True)
    gen = data_sub.add_parser("generate", help="write synthetic_streets (CamVid layout) to ROOT",
                              description="Write the built-in procedural dataset synthetic_streets in the "
                                          "official CamVid layout (deterministic from --seed).")
    gen.add_argument("root", help="output folder")
    gen.add_argument("--preset", default="quick", help="size preset: quick or proxy (default quick)")
    gen.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    gen.add_argument("--num-train", type=int, help="override the number of train images")
    gen.add_argument("--num-val", type=int, help="override the number of val images")
    gen.add_argument("--num-test", type=int, help="override the number of test images")
    gen.add_argument("--size", metavar="HxW", help="override the image size")
    gen.add_argument("--difficulty", type=float, help="0..1: colour overlap, noise and clutter")
    gen.add_argument("--workers", type=int, default=1, help="render in this many processes (same files; default 1)")
    gen.add_argument("--overwrite", action="store_true",
                     help="replace a synthetic_streets dataset in ROOT that was generated with other options")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")
    smp = data_sub.add_parser(
        "samples", help="save a grid of built-in samples with their colour-coded labels",
        description="Save a figure of image / colour-coded label pairs with a class legend. Without --root, "
                    "the first N images of a synthetic_streets preset are generated into a temporary folder "
                    "(the same bytes as in the full preset); with --root, samples are read from that "
                    "CamVid-layout folder.",
        epilog="example (the README figure): kdlib data samples --out figures/synthetic_streets_samples.png "
               "--preset proxy --indices 0 1 5 6 7 11 13 15")
    smp.add_argument("--out", "--output", dest="out",
                     help="output image file, replaced if it exists; the suffix picks the format (default: a new "
                          "file figures/synthetic_streets_samples-N.png, never the README's figure)")
    smp.add_argument("--root", help="read samples from this dataset folder instead of generating them")
    smp.add_argument("--preset", default="proxy", help="synthetic_streets preset to draw from (default proxy)")
    smp.add_argument("--seed", type=int, default=0, help="generation seed (default 0)")
    smp.add_argument("--split", default="train", help="split to show (default train)")
    smp.add_argument("-n", "--n", type=int, default=8, help="number of samples (default 8)")
    smp.add_argument("--indices", action=ListOption, item_type=int, metavar="I",
                     help="show these samples instead of the first N")
    smp.add_argument("--columns", type=int, default=4, help="image/label pairs per row (default 4)")
    smp.add_argument("--title", help="figure title")
    ver = data_sub.add_parser("verify", help="check a dataset on disk: counts, label values, sizes",
                              description="Read every sample of a split and report counts, label value "
                                          "statistics and problems (exit status 1 if any).")
    ver.add_argument("dataset", help="dataset name, e.g. cityscapes")
    ver.add_argument("root", help="dataset root in its official layout")
    ver.add_argument("--split", default="val", help="split to check (default val)")
    data.set_defaults(func=_cmd_data)


def build_parser(with_registries: bool = False) -> argparse.ArgumentParser:
    """The ``kdlib`` parser; ``with_registries`` adds the registered names to the help texts (imports torch)."""
    parser = OneLineParser(
        prog="kdlib",
        description="Knowledge distillation for semantic segmentation (CIRKD, Af-DCD and baselines).",
        epilog="Run 'kdlib <command> --help' for the options of a command.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="command", parser_class=OneLineParser)

    _add_info(sub)
    _add_train(sub)
    _add_eval(sub)
    _add_quick(sub)
    _add_grid(sub)
    _add_plan(sub)
    _add_proxy(sub)
    _add_data(sub)
    for command in sub.choices.values():   # global options work after the command too (kdlib train ... --debug)
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                             help="show full tracebacks instead of one-line errors")
    if with_registries:
        parser.epilog = f"{registries_text()}\n\n{parser.epilog}"
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        for name in ("train", "quick", "grid", "plan"):
            command = sub.choices[name]
            command.epilog = f"{command.epilog or ''}\n\n{registries_text()}".strip()
            command.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def _version() -> str:
    from kdlib import __version__

    return f"kdlib {__version__}"


def registries_text() -> str:
    """The registered methods, models, datasets and presets (for ``--help``)."""
    import kdlib.data  # noqa: F401  (registers the datasets)
    import kdlib.methods  # noqa: F401
    import kdlib.models  # noqa: F401
    from kdlib.engine.recipes import PRESETS
    from kdlib.registry import DATASETS, METHODS, MODELS

    return "\n".join([
        "registered names:",
        f"  methods:  none (the student alone), {', '.join(METHODS.names())}",
        f"  models:   {', '.join(MODELS.names())}",
        f"  datasets: {', '.join(DATASETS.names())}",
        f"  presets:  {', '.join(sorted(PRESETS))}"])


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(with_registries="-h" in argv or "--help" in argv or not argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except EXPECTED_ERRORS as exc:
        if args.debug:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"kdlib: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("kdlib: interrupted", file=sys.stderr)
        return 130
