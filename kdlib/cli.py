"""Command line: ``kdlib <command> --help`` explains every command and option.

Errors caused by bad input (missing files, wrong class counts, unknown names) are printed as one line
``kdlib: error: ...`` with exit status 2; ``--debug`` shows the full traceback instead.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable, Dict, List, Optional

EXPECTED_ERRORS = (ValueError, FileNotFoundError, KeyError, FileExistsError, NotADirectoryError)


def _cmd_info(args: argparse.Namespace) -> int:
    from kdlib.info import PAPER_SETTINGS, complexity_table, format_table

    settings = PAPER_SETTINGS
    if args.size:
        h, w = (int(v) for v in args.size.lower().split("x"))
        settings = (("custom", h, w, args.num_classes),)
    rows = complexity_table(args.models or None, settings)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kdlib",
        description="Knowledge distillation for semantic segmentation (CIRKD, Af-DCD and baselines).",
        epilog="Run 'kdlib <command> --help' for the options of a command.")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks instead of one-line errors")
    sub = parser.add_subparsers(dest="command", metavar="command")

    info = sub.add_parser(
        "info", help="params / FLOPs / true multiply-adds of every model at the papers' input sizes",
        description="Print params, the papers' FLOPs (official counting rule) and true multiply-adds of "
                    "every model at the input sizes of CIRKD Tables 1-3, next to the papers' numbers.")
    info.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    info.add_argument("--models", nargs="+", metavar="NAME", help="only these models (default: all)")
    info.add_argument("--size", metavar="HxW", help="count at this input size instead of the papers' sizes")
    info.add_argument("--num-classes", type=int, default=19, help="classes when --size is given (default 19)")
    info.set_defaults(func=_cmd_info)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
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
