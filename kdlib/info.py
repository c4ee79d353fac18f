"""The model complexity table printed by ``kdlib info``: ours next to the papers' numbers."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from kdlib import paper_numbers

# (setting name, H, W, K): the input sizes at which the papers report FLOPs
PAPER_SETTINGS = (("cityscapes", 1024, 2048, 19), ("camvid", 360, 480, 11), ("voc", 512, 512, 21))
#: The table at PAPER_SETTINGS for every registered model, counted once (``kdlib info --recount`` rewrites it;
#: tests/test_complexity.py checks it equals a fresh count), so that ``kdlib info`` answers in a second.
TABLE_FILE = Path(__file__).resolve().parent / "models" / "complexity_table.json"


def complexity_table(models: Optional[Sequence[str]] = None, settings: Sequence[tuple] = PAPER_SETTINGS,
                     recount: bool = False) -> List[Dict[str, object]]:
    """One row per (setting, model): params, official FLOPs, true MACs, and the paper's figures if any.

    At the papers' settings the rows come from :data:`TABLE_FILE` unless ``recount``; otherwise models are built
    on the ``meta`` device (nothing allocated) and counted, which takes seconds per model.
    """
    if not recount and tuple(settings) == PAPER_SETTINGS and TABLE_FILE.is_file():
        rows = json.loads(TABLE_FILE.read_text())
        if models:
            from kdlib.registry import did_you_mean

            known = {r["model"] for r in rows}
            for name in models:
                if name not in known:
                    raise ValueError(f"unknown model {name!r}{did_you_mean(name, known)}; models: "
                                     f"{', '.join(sorted(known))}")
            rows = [r for r in rows if r["model"] in models]
        return rows
    import torch

    from kdlib.models import MODELS, build_model, complexity

    paper = {(r["dataset"], r["model"]): r for r in paper_numbers.load("complexity")}
    rows: List[Dict[str, object]] = []
    for setting, h, w, k in settings:
        for name in models or MODELS.names():
            with torch.device("meta"):
                model = build_model(name, k)
            c = complexity(model, (1, 3, h, w))
            ref = paper.get((setting, name), {})
            rows.append({
                "setting": setting, "input": f"{h}x{w}", "num_classes": k, "model": name,
                "params": c.params, "flops": c.flops, "macs": c.macs,
                "paper_params_M": float(ref["params_M"]) if ref else None,
                "paper_flops_G": float(ref["flops_G"]) if ref else None,
                "paper_flops_reproducible": (ref.get("reproducible") == "yes") if ref else None,
            })
    return rows


def write_table_file(path: Path = TABLE_FILE) -> Path:
    """Count every registered model at the papers' settings and write :data:`TABLE_FILE` (``--recount``)."""
    from kdlib.atomic import write_text

    return write_text(path, json.dumps(complexity_table(recount=True), indent=1) + "\n")


def format_table(rows: List[Dict[str, object]]) -> str:
    """Human-readable table (M params, G FLOPs) with the paper's numbers alongside."""
    header = (f"{'setting':<11} {'input':<10} {'K':>3}  {'model':<22} {'params':>8} {'FLOPs':>9} "
              f"{'true MACs':>10}  {'paper params':>12} {'paper FLOPs':>11}")
    lines = [header, "-" * len(header)]
    notes = set()
    for r in rows:
        pp = f"{r['paper_params_M']:.1f}M" if r["paper_params_M"] is not None else "-"
        pf = f"{r['paper_flops_G']:.1f}G" if r["paper_flops_G"] is not None else "-"
        if r["paper_flops_reproducible"] is False:
            pf += "*"
            notes.add("* CIRKD Table 3 (VOC) FLOPs are not reproducible at any input size with the official "
                      "counting rule; ours are at 512x512.")
        lines.append(f"{r['setting']:<11} {r['input']:<10} {r['num_classes']:>3}  {r['model']:<22} "
                     f"{r['params'] / 1e6:>7.2f}M {r['flops'] / 1e9:>8.2f}G {r['macs'] / 1e9:>9.2f}G  "
                     f"{pp:>12} {pf:>11}")
    lines.append("")
    lines.append("FLOPs: the papers' count (multiply-adds of Conv2d/Linear, output sizes computed ignoring "
                 "dilation, as the official counter does). True MACs: the same layers with real output sizes.")
    lines.extend(sorted(notes))
    return "\n".join(lines)
