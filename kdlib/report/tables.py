"""Result tables: our runs summarised over seeds, next to the papers' numbers (pure pandas).

Typical notebook use::

    runs = pd.read_csv("results/<study>/runs.csv")
    runs = runs[runs["status"] == "ok"]
    ours = summarize_seeds(runs, by=["dataset", "student", "method"], metric="miou")
    paper = paper_table("cirkd_table1").query("split == 'val' and variant == ''")
    print(format_comparison(compare_with_paper(ours, paper, on=["dataset", "student", "method"])))

kdlib stores mIoU as a fraction in [0, 1] and the papers print percent, so :func:`compare_with_paper`
multiplies our numbers by ``ours_scale = 100`` by default; differences are in percentage points.
"""
from __future__ import annotations

import math
from typing import Iterable, List, Optional, Sequence

import numpy as np
import pandas as pd

SUMMARY_COLUMNS = ("n", "mean", "std", "ci")


def t_quantile(q: float, dof: int) -> float:
    """Quantile ``q`` of Student's t distribution with ``dof`` degrees of freedom (scipy)."""
    from scipy import stats  # scipy comes with scikit-learn, a kdlib dependency

    return float(stats.t.ppf(q, dof))


def summarize_seeds(runs: pd.DataFrame, by: Sequence[str], metric: str = "miou",
                    confidence: float = 0.95) -> pd.DataFrame:
    """Mean, standard deviation and confidence-interval half-width of ``metric`` over seeds.

    Args:
        runs: one row per run (e.g. a study's ``runs.csv``); rows whose ``metric`` is NaN (failed or
            unfinished runs) are ignored — filter on ``status`` beforehand if needed.
        by: columns identifying one configuration; every other varying column (seed, run id …) is
            averaged over. Groups are kept even when a ``by`` value is NaN.
        metric: the column to summarise.
        confidence: two-sided level of the interval (0.95: 95 % CI).

    Returns:
        One row per group: the ``by`` columns, then ``n`` (runs with a value), ``mean``, ``std`` (sample
        standard deviation, ddof = 1; NaN when n < 2) and ``ci`` (half-width
        ``t_{(1+confidence)/2, n-1} · std / sqrt(n)``; NaN when n < 2). ``frame.attrs["confidence"]`` and
        ``frame.attrs["metric"]`` record the settings.
    """
    by = list(by)
    missing = [c for c in [*by, metric] if c not in runs.columns]
    if missing:
        raise KeyError(f"columns not in runs: {missing}")
    valid = runs[by + [metric]].copy()
    valid[metric] = pd.to_numeric(valid[metric], errors="coerce")
    valid = valid[valid[metric].notna()]
    grouped = valid.groupby(by, dropna=False, sort=True)[metric]
    out = grouped.agg(n="count", mean="mean", std=lambda s: s.std(ddof=1)).reset_index()
    q = 0.5 + confidence / 2.0
    out["ci"] = [t_quantile(q, int(n) - 1) * sd / math.sqrt(n) if n >= 2 else np.nan
                 for n, sd in zip(out["n"], out["std"])]
    out["n"] = out["n"].astype(int)
    out.attrs.update(confidence=confidence, metric=metric)
    return out


def _normalise_keys(frame: pd.DataFrame, on: Sequence[str]) -> pd.DataFrame:
    """Text key columns with NaN → ``""`` (the paper tables use ``""`` for "no teacher")."""
    frame = frame.copy()
    for column in on:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            frame[column] = frame[column].astype(object).where(frame[column].notna(), "").astype(str)
    return frame


def compare_with_paper(ours: pd.DataFrame, paper: pd.DataFrame, on: Sequence[str], ours_scale: float = 100.0,
                       value: str = "value", keep_unmatched_ours: bool = False) -> pd.DataFrame:
    """Our seed summary next to the paper's number, with the difference in percentage points.

    Args:
        ours: output of :func:`summarize_seeds` (columns ``on`` + ``n, mean, std, ci``), one row per key.
        paper: paper rows (e.g. :func:`kdlib.paper_numbers.paper_table`, filtered to one split / metric),
            one row per key — select beforehand so that ``on`` identifies a row.
        on: join columns present in both. Text keys are compared as strings with NaN read as ``""``.
        ours_scale: factor applied to our mean, std and CI before comparing (100: kdlib's fractions →
            percent; use 1 when ``ours`` is already in the paper's unit).
        value: the paper's value column.
        keep_unmatched_ours: also keep our rows the paper has no number for (paper columns NaN).

    Returns:
        Paper rows in their order (rows without a run of ours kept, with NaN), columns ``on`` +
        ``reported, n, mean, std, ci, diff`` where ``reported`` is the paper's value and
        ``diff = mean − reported`` (positive: ours above the paper),
        then the paper's other columns (``paper``, ``table``, ``note``, ``source`` …) that are not join keys.
    """
    on = list(on)
    for name, frame in (("ours", ours), ("paper", paper)):
        missing = [c for c in on if c not in frame.columns]
        if missing:
            raise KeyError(f"join columns not in {name}: {missing}")
    ours_n = _normalise_keys(ours, on)
    paper_n = _normalise_keys(paper, on)
    for name, frame in (("ours", ours_n), ("paper", paper_n)):
        dup = frame.duplicated(on, keep=False)
        if dup.any():
            raise ValueError(f"{name} has several rows per key {on}; filter it first:\n"
                             f"{frame.loc[dup, on].drop_duplicates().to_string(index=False)}")
    stats_cols = [c for c in SUMMARY_COLUMNS if c in ours_n.columns]
    left = ours_n[on + stats_cols].copy()
    for column in ("mean", "std", "ci"):
        if column in left.columns:
            left[column] = left[column].astype(float) * ours_scale
    extra = [c for c in paper_n.columns
             if c not in on and c != value and c not in SUMMARY_COLUMNS and c not in ("reported", "diff")]
    right = paper_n[on + [value] + extra].rename(columns={value: "reported"})
    right["_order"] = np.arange(len(right))
    merged = right.merge(left, on=on, how="outer" if keep_unmatched_ours else "left", validate="one_to_one")
    merged = merged.sort_values("_order", na_position="last", kind="stable").drop(columns="_order")
    merged["diff"] = merged["mean"] - merged["reported"] if "mean" in merged.columns else np.nan
    ordered = on + ["reported"] + stats_cols + ["diff"] + extra
    out = merged[ordered].reset_index(drop=True)
    if "n" in out.columns:
        out["n"] = out["n"].fillna(0).astype(int)
    return out


def _fmt(x: object, digits: int, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return str(x)
    if isinstance(x, (float, np.floating)):
        return f"{x:+.{digits}f}" if signed else f"{x:.{digits}f}"
    return str(x)


def markdown_table(frame: pd.DataFrame, digits: int = 2) -> str:
    """A GitHub-markdown table of ``frame`` (floats with ``digits`` decimals, NaN as "–"); no tabulate needed."""
    header = [str(c) for c in frame.columns]
    body = [[_fmt(v, digits).replace("|", "\\|") for v in row] for row in frame.itertuples(index=False)]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---:" if num else "---" for num in numeric) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines)


def format_comparison(table: pd.DataFrame, digits: int = 2, columns: Optional[Iterable[str]] = None) -> str:
    """Markdown of a :func:`compare_with_paper` result: ``ours`` "mean ± ci (n=k)", ``paper``, ``Δ (pp)``.

    ``columns`` selects the key / extra columns shown before the numbers (default: all non-number columns
    except ``paper``, ``table``, ``variant``, ``metric``, ``note`` and ``source``).
    """
    numbers = {"reported", "n", "mean", "std", "ci", "diff"}
    if columns is None:
        columns = [c for c in table.columns
                   if c not in numbers and c not in ("paper", "table", "variant", "metric", "note", "source")]
    columns = list(columns)

    def ours(row: pd.Series) -> str:
        n = int(row.get("n", 0) or 0)
        if n == 0 or pd.isna(row.get("mean")):
            return "–"
        text = _fmt(float(row["mean"]), digits)
        if n >= 2 and not pd.isna(row.get("ci")):
            text += f" ± {float(row['ci']):.{digits}f}"
        return f"{text} (n={n})"

    shown = table[columns].copy()
    shown["ours"] = [ours(r) for _, r in table.iterrows()]
    shown["paper"] = [_fmt(float(v), digits) if not pd.isna(v) else "–" for v in table["reported"]]
    shown["Δ (pp)"] = [_fmt(float(v), digits, signed=True) if not pd.isna(v) else "–" for v in table["diff"]]
    return markdown_table(shown, digits)


__all__ = ["compare_with_paper", "format_comparison", "markdown_table", "summarize_seeds", "t_quantile"]


def gains_over_baseline(summary: pd.DataFrame, by: Sequence[str], method_column: str = "method",
                        baseline: str = "none", value: str = "mean") -> pd.DataFrame:
    """Each configuration's ``value`` minus its baseline's (same ``by`` keys, ``method == baseline``).

    The comparable quantity across datasets: a proxy study cannot match the papers' absolute mIoU, but its
    gains over the student trained alone can be set beside the papers' gains. Adds a column ``gain``.
    """
    by = [c for c in by if c != method_column]
    base = summary[summary[method_column] == baseline][by + [value]].rename(columns={value: "_base"})
    if by:
        out = summary.merge(base, on=by, how="left")
    else:
        out = summary.assign(_base=float(base["_base"].iloc[0]) if len(base) else float("nan"))
    out["gain"] = out[value] - out["_base"]
    return out.drop(columns="_base")


def table_vs_paper(summary: pd.DataFrame, paper: pd.DataFrame, dataset: str,
                   on: Sequence[str] = ("student", "method"), baseline: str = "none",
                   baseline_column: str = "method", keep_unmatched_ours: bool = False) -> pd.DataFrame:
    """Our seed summary beside a paper table, in the comparable form for ``dataset``.

    * ``dataset`` is the paper's dataset: :func:`compare_with_paper` (our mean ± CI, the paper's number,
      the difference in pp);
    * otherwise (the built-in proxy data): absolute numbers are not comparable, so our **gain over the
      baseline** (``baseline_column == baseline``, same other keys) is set beside the paper's gain, with both
      absolute values for reference; the paper's rows we did not run are kept (our columns NaN).

    ``baseline_column`` is the key that names the baseline row (``"variant"`` with ``baseline="ce"`` for the
    loss-term ablations); ``keep_unmatched_ours`` also keeps, on the paper's dataset, our rows the paper has
    no number for.

    ``paper`` must hold one row per key (filter split / variant first); ``summary`` comes from
    :func:`summarize_seeds` (fractions, as kdlib stores mIoU).
    """
    on = list(on)
    paper_dataset = str(paper["dataset"].iloc[0]) if "dataset" in paper.columns and len(paper) else ""
    if dataset == paper_dataset:
        return compare_with_paper(summary, paper, on=on, keep_unmatched_ours=keep_unmatched_ours)
    ours = gains_over_baseline(summary.assign(mean=100 * summary["mean"], ci=100 * summary["ci"]), by=on,
                               method_column=baseline_column, baseline=baseline)
    theirs = gains_over_baseline(paper, by=on, method_column=baseline_column, value="value", baseline=baseline)
    for column in on:  # only the students (etc.) we ran; their other methods (e.g. MasKD) stay visible
        if column != baseline_column:
            theirs = theirs[theirs[column].isin(ours[column])]
    table = ours.merge(theirs[on + ["value", "gain"]], on=on, how="outer", suffixes=("", "_paper"), sort=False)
    table = table.rename(columns={"mean": f"ours mIoU ({dataset})", "ci": "ours ±95% CI", "gain": "ours gain",
                                  "value": f"paper mIoU ({paper_dataset})", "gain_paper": "paper gain"})
    if "n" in table.columns:  # the paper's rows we did not run: n = 0, as compare_with_paper writes
        table["n"] = table["n"].fillna(0).astype(int)
    return table.drop(columns=[c for c in ("std",) if c in table.columns])


def render_table(table: pd.DataFrame) -> str:
    """Markdown of :func:`table_vs_paper`'s result, whichever form it has."""
    return format_comparison(table) if "reported" in table.columns else markdown_table(table)
