"""kdlib.report.tables: seed summaries (hand-computed), comparison with the papers, markdown."""
import math

import numpy as np
import pandas as pd
import pytest

from kdlib.report.tables import (compare_with_paper, format_comparison, markdown_table, summarize_seeds,
                                   t_quantile)
from kdlib.paper_numbers import paper_table


def _runs():
    return pd.DataFrame({
        "dataset": ["cityscapes"] * 6,
        "student": ["deeplabv3_resnet18"] * 3 + ["deeplabv3_resnet18"] * 2 + ["pspnet_resnet18"],
        "method": ["none"] * 3 + ["cirkd"] * 2 + ["none"],
        "teacher": [np.nan] * 3 + ["deeplabv3_resnet101"] * 2 + [np.nan],
        "seed": [0, 1, 2, 0, 1, 0],
        "miou": [0.01, 0.02, 0.03, 0.7700, 0.7600, 0.7000],
    })


def test_t_quantiles_known_values():
    assert t_quantile(0.975, 2) == pytest.approx(4.302653, abs=1e-6)
    assert t_quantile(0.975, 1) == pytest.approx(12.706205, abs=1e-6)
    assert t_quantile(0.975, 10_000) == pytest.approx(1.959964, abs=1e-3)


def test_summarize_hand_computed():
    runs = pd.DataFrame({"method": ["a", "a", "a"], "miou": [1.0, 2.0, 3.0]})
    s = summarize_seeds(runs, by=["method"])
    assert list(s.columns) == ["method", "n", "mean", "std", "ci"]
    row = s.iloc[0]
    assert row["n"] == 3
    assert row["mean"] == pytest.approx(2.0)
    assert row["std"] == pytest.approx(1.0)                      # sample std, ddof = 1
    assert row["ci"] == pytest.approx(4.302653 / math.sqrt(3), abs=1e-6)
    assert row["ci"] == pytest.approx(2.48414, abs=1e-5)         # t_{0.975,2} · 1 / √3 = 4.302653 / 1.732051
    assert s.attrs == {"confidence": 0.95, "metric": "miou"}


def test_summarize_groups_single_seed_and_nan():
    runs = _runs()
    runs.loc[len(runs)] = ["cityscapes", "pspnet_resnet18", "none", np.nan, 1, np.nan]  # failed run: ignored
    s = summarize_seeds(runs, by=["student", "method", "teacher"]).set_index(["student", "method"])
    assert s.loc[("deeplabv3_resnet18", "none"), "n"] == 3
    cirkd = s.loc[("deeplabv3_resnet18", "cirkd")]
    assert cirkd["mean"] == pytest.approx(0.765)
    assert cirkd["std"] == pytest.approx(math.sqrt(0.00005))
    assert cirkd["ci"] == pytest.approx(12.706205 * math.sqrt(0.00005) / math.sqrt(2), abs=1e-6)
    psp = s.loc[("pspnet_resnet18", "none")]
    assert psp["n"] == 1 and psp["mean"] == pytest.approx(0.70)
    assert math.isnan(psp["std"]) and math.isnan(psp["ci"])


def test_summarize_other_confidence_and_missing_column():
    runs = pd.DataFrame({"m": ["a"] * 3, "x": [1.0, 2.0, 3.0]})
    s = summarize_seeds(runs, by=["m"], metric="x", confidence=0.90)
    assert s["ci"].iloc[0] == pytest.approx(2.919986 / math.sqrt(3), abs=1e-6)  # t_{0.95,2}
    with pytest.raises(KeyError):
        summarize_seeds(runs, by=["m"], metric="miou")


def test_compare_difference_sign_scale_and_unmatched_paper_rows():
    ours = pd.DataFrame({"student": ["s1", "s2"], "method": ["none", "none"], "n": [3, 1],
                         "mean": [0.7500, 0.7000], "std": [0.01, np.nan], "ci": [0.02, np.nan]})
    paper = pd.DataFrame({"student": ["s1", "s2", "s3"], "method": ["none"] * 3,
                          "value": [74.00, 71.00, 60.00], "note": ["", "x", ""]})
    c = compare_with_paper(ours, paper, on=["student", "method"])
    assert list(c.columns) == ["student", "method", "reported", "n", "mean", "std", "ci", "diff", "note"]
    assert list(c["student"]) == ["s1", "s2", "s3"]              # paper order, all paper rows kept
    assert c.loc[0, "mean"] == pytest.approx(75.0) and c.loc[0, "ci"] == pytest.approx(2.0)
    assert c.loc[0, "diff"] == pytest.approx(+1.0)               # ours above the paper: positive
    assert c.loc[1, "diff"] == pytest.approx(-1.0)               # ours below the paper: negative
    assert c.loc[2, "n"] == 0 and math.isnan(c.loc[2, "mean"]) and math.isnan(c.loc[2, "diff"])
    assert c.loc[1, "note"] == "x"
    # already in percent
    c1 = compare_with_paper(ours.assign(mean=[75.0, 70.0]), paper, on=["student", "method"], ours_scale=1.0)
    assert list(c1["diff"].iloc[:2]) == pytest.approx([1.0, -1.0])


def test_compare_keep_unmatched_ours_and_duplicate_keys():
    ours = pd.DataFrame({"student": ["s1", "s9"], "n": [1, 1], "mean": [0.5, 0.6], "std": [np.nan] * 2,
                         "ci": [np.nan] * 2})
    paper = pd.DataFrame({"student": ["s1"], "value": [49.0]})
    c = compare_with_paper(ours, paper, on=["student"], keep_unmatched_ours=True)
    assert list(c["student"]) == ["s1", "s9"]
    assert math.isnan(c.loc[1, "reported"]) and c.loc[1, "mean"] == pytest.approx(60.0)
    with pytest.raises(ValueError, match="several rows per key"):
        compare_with_paper(ours, pd.DataFrame({"student": ["s1", "s1"], "value": [1.0, 2.0]}), on=["student"])


def test_compare_with_real_paper_table_and_nan_teacher():
    ours = summarize_seeds(_runs(), by=["dataset", "student", "method", "teacher"])
    paper = paper_table("cirkd_table1").query("split == 'val' and variant == ''")
    c = compare_with_paper(ours, paper, on=["dataset", "student", "method", "teacher"])
    assert len(c) == len(paper) == 16  # teacher + 3 students × 5 methods
    c = c.set_index(["student", "method"])
    # our NaN teacher of a baseline run joins the paper's "" (no teacher)
    psp = c.loc[("pspnet_resnet18", "none")]
    assert psp["n"] == 1 and psp["diff"] == pytest.approx(70.0 - 72.55)
    cirkd = c.loc[("deeplabv3_resnet18", "cirkd")]
    assert cirkd["reported"] == 76.38 and cirkd["diff"] == pytest.approx(76.5 - 76.38)
    assert c.loc[("deeplabv3_resnet18", "skd"), "n"] == 0
    assert (c["paper"] == "cirkd").all() and (c["table"] == "Table 1").all()


def test_format_comparison_markdown():
    ours = pd.DataFrame({"student": ["s1", "s2"], "n": [3, 1], "mean": [0.75, 0.70], "std": [0.01, np.nan],
                         "ci": [0.02484, np.nan]})
    paper = pd.DataFrame({"student": ["s1", "s2", "s3"], "value": [74.0, 71.5, 60.0], "note": ["a|b", "", ""]})
    text = format_comparison(compare_with_paper(ours, paper, on=["student"]))
    lines = text.splitlines()
    assert lines[0] == "| student | ours | paper | Δ (pp) |"
    assert lines[2] == "| s1 | 75.00 ± 2.48 (n=3) | 74.00 | +1.00 |"
    assert lines[3] == "| s2 | 70.00 (n=1) | 71.50 | -1.50 |"
    assert lines[4] == "| s3 | – | 60.00 | – |"
    assert len(lines) == 5


def test_markdown_table_generic():
    frame = pd.DataFrame({"name": ["a|b", "c"], "n": [1, 2], "x": [1.23456, np.nan]})
    assert markdown_table(frame, digits=3).splitlines() == [
        "| name | n | x |", "| --- | ---: | ---: |", "| a\\|b | 1 | 1.235 |", "| c | 2 | – |"]
