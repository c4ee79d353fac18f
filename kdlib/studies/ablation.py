"""Loss-term ablations: one student, one method, its terms switched on and off (CIRKD Table 4, Af-DCD's).

A *variant* names the active terms, ``+``-joined, always starting with ``ce`` (the student's task loss, on in
every run): ``ce`` is the student trained alone (method ``none``); ``ce+kd+batch_p2p`` trains the ablated
method with ``kd`` and ``batch_p2p`` at the method's paper weights for the dataset
(:func:`kdlib.engine.recipes.method_defaults`) and every other term at weight 0 (not computed). So
``ce+kd`` runs the ablated method with only its ``kd`` term — not the separate ``kd`` method — and the rows
differ in their terms only. Variants are written in canonical order (``ce``, then the method's ``terms``
order), which is also the order of ``kdlib.paper_numbers`` ``variant`` column.

A term whose paper weight is 0 (Af-DCD's ``sc`` / ``cc``: described in the paper, never released, no
published weight) takes, when included, the weight of the term named in :data:`ZERO_WEIGHT_FALLBACK`
(Af-DCD: the Omni-Contrasting ``ctr`` weight, the same kind of loss); pass ``weights`` to choose others.

Each ablation notebook is its parameters plus one call of :func:`reproduce_ablation`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import pandas as pd


@dataclass(frozen=True)
class AblationSpec:
    method: str                    # the ablated method (its registered terms are switched)
    student: str                   # the paper's student
    variants: Tuple[str, ...]      # default rows
    title: str
    paper_csv: Optional[str] = None  # kdlib/paper_numbers/<paper_csv>.csv; None: no confirmed paper numbers
    split: str = "val"


ABLATIONS: Dict[str, AblationSpec] = {
    "cirkd_table4": AblationSpec(
        "cirkd", "deeplabv3_mobilenetv2",
        ("ce", "ce+kd", "ce+kd+batch_p2p", "ce+kd+memory_p2p", "ce+kd+memory_p2r", "ce+kd+memory_p2p+memory_p2r",
         "ce+kd+batch_p2p+memory_p2p+memory_p2r"),
        "CIRKD Table 4: loss terms, Cityscapes val mIoU", paper_csv="cirkd_table4"),
    # Af-DCD Table 3(a)(b): L_fd / L_Af-DCD alone and together, then SC / CC / SC+CC / OC (= ctr). Its numbers
    # are UNCONFIRMED (docs/reference.md §1.2) and absent from kdlib.paper_numbers: ours only.
    "afdcd_loss_terms": AblationSpec(
        "afdcd", "deeplabv3_resnet18",
        ("ce", "ce+kd", "ce+kd+fd", "ce+kd+ctr", "ce+kd+fd+sc", "ce+kd+fd+cc", "ce+kd+fd+sc+cc", "ce+kd+fd+ctr"),
        "Af-DCD loss-term ablation: mIoU"),
}

BASELINE = "ce"
ZERO_WEIGHT_FALLBACK: Dict[str, Dict[str, str]] = {"afdcd": {"sc": "ctr", "cc": "ctr"}}


def method_terms(method: str) -> Tuple[str, ...]:
    """The registered loss terms of ``method`` (e.g. CIRKD: ``kd, batch_p2p, memory_p2p, memory_p2r``)."""
    import kdlib.methods  # noqa: F401  (registers the methods)
    from kdlib.registry import METHODS

    return tuple(METHODS.get(method).terms)


def parse_variant(variant: str, method: str) -> List[str]:
    """``"ce+batch_p2p+kd"`` → ``["kd", "batch_p2p"]``: the method's terms of a variant, in the method's order.

    Raises ``ValueError`` when ``ce`` is missing, a term is unknown to ``method`` or repeated.
    """
    parts = [p.strip() for p in str(variant).split("+") if p.strip()]
    terms = method_terms(method)
    if BASELINE not in parts:
        raise ValueError(f"variant {variant!r}: every variant starts with {BASELINE!r} (the student's task loss)")
    unknown = [p for p in parts if p != BASELINE and p not in terms]
    if unknown:
        raise ValueError(f"variant {variant!r}: {method} has no term(s) {unknown}; its terms are {list(terms)}")
    if len(set(parts)) != len(parts):
        raise ValueError(f"variant {variant!r} repeats a term")
    return [t for t in terms if t in parts]


def canonical_variant(variant: str, method: str) -> str:
    """The variant's name in canonical order (``ce`` first, then the method's terms order)."""
    return "+".join([BASELINE, *parse_variant(variant, method)])


def variant_overrides(variant: str, method: str, dataset: str,
                      weights: Optional[Mapping[str, float]] = None) -> Dict[str, Any]:
    """kdlib overrides of one variant: ``{"method": "none"}`` for ``ce``, else the method and all its weights.

    Included terms get ``weights[term]`` if given, else the paper weight for ``dataset``, else (paper weight 0)
    the weight of :data:`ZERO_WEIGHT_FALLBACK`'s term; omitted terms get 0. Raises ``ValueError`` when an
    included term would still have weight 0.
    """
    from kdlib.engine.recipes import method_defaults

    included = parse_variant(variant, method)
    if not included:
        return {"method": "none"}
    paper = dict(method_defaults(method, dataset).get("loss_weights", {}))
    given = dict(weights or {})
    fallback = ZERO_WEIGHT_FALLBACK.get(method, {})
    loss_weights: Dict[str, float] = {}
    for term in method_terms(method):
        if term not in included:
            loss_weights[term] = 0.0
            continue
        weight = float(given.get(term, paper.get(term, 0.0)))
        if weight == 0 and term in fallback:
            weight = float(given.get(fallback[term], paper.get(fallback[term], 0.0)))
        if weight == 0:
            raise ValueError(f"variant {variant!r}: term {term!r} of {method} has no non-zero weight for "
                             f"{dataset}; pass weights={{{term!r}: ...}}")
        loss_weights[term] = weight
    return {"method": method, "loss_weights": loss_weights}


def paper_ablation_rows(name: str) -> pd.DataFrame:
    """The paper's mIoU rows of ablation ``name`` (one per variant); empty when it has no confirmed numbers."""
    from kdlib.paper_numbers import RESULT_COLUMNS, paper_table

    spec = ABLATIONS[name]
    if spec.paper_csv is None:
        return pd.DataFrame(columns=list(RESULT_COLUMNS))
    paper = paper_table(spec.paper_csv)
    keep = (paper["split"] == spec.split) & (paper["metric"] == "miou") & (paper["variant"] != "")
    return paper[keep].reset_index(drop=True)


def _ordered(table: pd.DataFrame, variants: Sequence[str]) -> pd.DataFrame:
    """Rows in ``variants`` order (first occurrence counts), then any others in their order."""
    rank: Dict[str, int] = {}
    for v in variants:
        rank.setdefault(v, len(rank))
    key = [rank.get(v, len(rank) + i) for i, v in enumerate(table["variant"])]
    return table.assign(_key=key).sort_values("_key", kind="stable").drop(columns="_key").reset_index(drop=True)


def reproduce_ablation(name: str, preset: str, student: str, variants: Sequence[str], seeds: Sequence[int],
                       output_dir: os.PathLike, figures_dir: Optional[os.PathLike] = None,
                       common: Optional[Mapping[str, Any]] = None, weights: Optional[Mapping[str, float]] = None,
                       progress: bool = True, runs_root: Optional[os.PathLike] = None,
                       imagenet_dir: Optional[os.PathLike] = None, nproc_per_node: int = 1
                       ) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """Train (or reuse) every variant × seed, compare with the paper's ablation rows; return (table, runs).

    * On the paper's dataset (e.g. ``preset="cityscapes"`` for CIRKD Table 4): our mean ± 95 % CI vs the
      reported mIoU per (student, variant) — :func:`kdlib.report.tables.compare_with_paper`.
    * Elsewhere (the built-in data): our gain over the ``ce`` row beside the paper's gain over its ``ce`` row,
      per variant (the paper's student may differ from ours there; its rows we did not run are kept).
    * Without paper numbers (Af-DCD): our mean, CI and gain over ``ce`` only.

    ``common``'s ``loss_weights`` (if any) choose the included terms' weights, as ``weights`` does.
    ``runs_root`` (default ``output_dir/runs``) holds the runs; notebooks may share one. ``imagenet_dir`` and
    ``nproc_per_node``: as in :func:`kdlib.studies.study.run_study`.
    Writes ``output_dir/runs.csv`` (with ``variant``, ``method`` and the ``loss_weights`` of each run),
    ``output_dir/summary.csv``, ``output_dir/metrics.json`` and ``figures_dir/miou.{png,pdf}`` (bars per variant).
    """
    from kdlib.studies.notebook import save_metrics
    from kdlib.figures.plots import plot_miou
    from kdlib.studies.study import run_study, study_runs_root
    from kdlib.report.tables import gains_over_baseline, summarize_seeds, table_vs_paper
    from kdlib.engine.config import resolve_config

    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; known: {', '.join(ABLATIONS)}")
    spec = ABLATIONS[name]
    common = dict(common or {})
    weights = {**dict(common.pop("loss_weights", None) or {}), **dict(weights or {})}
    dataset = resolve_config(preset, common).dataset
    variants = list(dict.fromkeys(canonical_variant(v, spec.method) for v in variants))
    overrides = [{"student": student, **variant_overrides(v, spec.method, dataset, weights)} for v in variants]
    params = [{"student": student, "variant": v} for v in variants]
    output_dir = Path(output_dir)
    runs = run_study(preset, overrides, seeds, study_runs_root(output_dir, runs_root), common, progress=progress,
                     params=params, imagenet_dir=imagenet_dir, nproc_per_node=nproc_per_node)
    by_variant = dict(zip(variants, overrides))
    runs.insert(2, "method", runs["variant"].map(lambda v: by_variant[v]["method"]))
    runs.insert(3, "loss_weights", runs["variant"].map(lambda v: str(by_variant[v].get("loss_weights", {}))))
    summary = summarize_seeds(runs, by=["student", "variant"])

    paper = paper_ablation_rows(name)
    paper_dataset = str(paper["dataset"].iloc[0]) if len(paper) else ""
    if len(paper) == 0:
        table = gains_over_baseline(summary.assign(mean=100 * summary["mean"], ci=100 * summary["ci"]),
                                    by=["student", "variant"], method_column="variant", baseline=BASELINE)
        table = table.rename(columns={"mean": f"ours mIoU ({dataset})", "ci": "ours ±95% CI",
                                      "gain": "ours gain"}).drop(columns="std")
    elif dataset == paper_dataset:
        table = table_vs_paper(summary, paper, dataset, on=("student", "variant"), baseline=BASELINE,
                               baseline_column="variant", keep_unmatched_ours=True)
    else:  # one student per ablation: the paper's gains are set beside ours by variant
        table = table_vs_paper(summary, paper, dataset, on=("variant",), baseline=BASELINE,
                               baseline_column="variant")
        table["student"] = table["student"].fillna(student)
        table = table[["student", *[c for c in table.columns if c != "student"]]]
    table = _ordered(table, [*variants, *paper["variant"]])
    from kdlib.studies.reproduce import with_final_model

    table = with_final_model(table, runs, ["student", "variant"])

    output_dir.mkdir(parents=True, exist_ok=True)
    runs.to_csv(output_dir / "runs.csv", index=False)
    table.to_csv(output_dir / "summary.csv", index=False)
    if figures_dir:  # None or "" (a notebook parameter): no figure
        bars = _ordered(summary, variants).rename(columns={"mean": "miou"})
        from kdlib.display import model_label
        from kdlib.studies.study import setting_text

        width = resolve_config(preset, common).student_width
        plot_miou(bars, Path(figures_dir) / "miou", label="variant",
                  title=f"{spec.title.split(':')[0]} ({setting_text(preset, common)}): {model_label(student, width)}")
    save_metrics(output_dir, {"ablation": name, "method": spec.method, "student": student, "dataset": dataset,
                              "paper_dataset": paper_dataset or None, "rows": table.to_dict(orient="records")})
    return table, runs


__all__ = ["ABLATIONS", "AblationSpec", "BASELINE", "ZERO_WEIGHT_FALLBACK", "canonical_variant", "method_terms",
           "paper_ablation_rows", "parse_variant", "reproduce_ablation", "variant_overrides"]
