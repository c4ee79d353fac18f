"""Loss-term ablations: variant → overrides mapping and the comparison with the paper's rows (no training)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from kdlib.studies.ablation import (ABLATIONS, canonical_variant, paper_ablation_rows, parse_variant,
                                     variant_overrides)
from kdlib.engine.recipes import method_defaults


def test_ce_is_the_student_alone():
    assert variant_overrides("ce", "cirkd", "cityscapes") == {"method": "none"}
    assert variant_overrides("ce", "afdcd", "ade20k") == {"method": "none"}


@pytest.mark.parametrize("dataset", ["cityscapes", "voc", "synthetic_streets"])
def test_cirkd_variants_keep_included_terms_at_paper_weights(dataset):
    paper = method_defaults("cirkd", dataset)["loss_weights"]
    out = variant_overrides("ce+kd+memory_p2r", "cirkd", dataset)
    assert out == {"method": "cirkd", "loss_weights": {"kd": paper["kd"], "batch_p2p": 0.0, "memory_p2p": 0.0,
                                                       "memory_p2r": paper["memory_p2r"]}}
    full = variant_overrides("ce+kd+batch_p2p+memory_p2p+memory_p2r", "cirkd", dataset)
    assert full["loss_weights"] == paper
    assert (full["loss_weights"]["memory_p2p"] == 0.01) == (dataset == "voc")


def test_afdcd_sc_cc_take_the_ctr_weight_and_weights_override():
    paper = method_defaults("afdcd", "ade20k")["loss_weights"]
    assert paper["sc"] == 0 and paper["cc"] == 0  # never released: no paper weight
    out = variant_overrides("ce+fd+sc+cc", "afdcd", "ade20k")["loss_weights"]
    assert out == {"kd": 0.0, "fd": paper["fd"], "ctr": 0.0, "sc": paper["ctr"], "cc": paper["ctr"]}
    out = variant_overrides("ce+kd+cc", "afdcd", "ade20k", weights={"cc": 0.5, "kd": 2.0})["loss_weights"]
    assert out == {"kd": 2.0, "fd": 0.0, "ctr": 0.0, "sc": 0.0, "cc": 0.5}


def test_variant_names_are_canonical_and_checked():
    assert parse_variant("ce+memory_p2p+kd", "cirkd") == ["kd", "memory_p2p"]
    assert canonical_variant(" ce + batch_p2p+kd ", "cirkd") == "ce+kd+batch_p2p"
    assert canonical_variant("fd+ce+ctr", "afdcd") == "ce+fd+ctr"
    with pytest.raises(ValueError, match="starts with 'ce'"):
        parse_variant("kd+batch_p2p", "cirkd")
    with pytest.raises(ValueError, match="no term"):
        parse_variant("ce+fd", "cirkd")
    with pytest.raises(ValueError, match="repeats"):
        parse_variant("ce+kd+kd", "cirkd")
    with pytest.raises(ValueError, match="no non-zero weight"):
        variant_overrides("ce+kd", "cirkd", "cityscapes", weights={"kd": 0.0})


def test_default_variants_are_canonical_and_match_the_paper():
    for spec in ABLATIONS.values():
        assert [canonical_variant(v, spec.method) for v in spec.variants] == list(spec.variants)
        assert spec.variants[0] == "ce"
    paper = paper_ablation_rows("cirkd_table4")
    assert list(paper["variant"]) == list(ABLATIONS["cirkd_table4"].variants)
    assert set(paper["student"]) == {ABLATIONS["cirkd_table4"].student}
    assert paper_ablation_rows("afdcd_loss_terms").empty  # UNCONFIRMED numbers are not stored


def test_table_vs_paper_by_variant_on_the_paper_dataset_and_on_proxy_data():
    from kdlib.report.tables import summarize_seeds, table_vs_paper

    paper = paper_ablation_rows("cirkd_table4")
    runs = pd.DataFrame({"student": "deeplabv3_mobilenetv2", "variant": ["ce", "ce", "ce+kd", "ce+kd", "ce+x"],
                         "seed": [0, 1, 0, 1, 0], "miou": [0.73, 0.74, 0.75, 0.76, 0.5]})
    summary = summarize_seeds(runs, by=["student", "variant"])
    same = table_vs_paper(summary, paper, "cityscapes", on=("student", "variant"), baseline="ce",
                          baseline_column="variant", keep_unmatched_ours=True).set_index("variant")
    assert same.loc["ce", "reported"] == 73.12 and same.loc["ce", "mean"] == pytest.approx(73.5)
    assert same.loc["ce+kd", "diff"] == pytest.approx(75.5 - 74.26) and same.loc["ce", "ci"] > 0
    assert np.isnan(same.loc["ce+x", "reported"]) and len(same) == 8  # ours kept, paper rows kept
    proxy = table_vs_paper(summary, paper, "synthetic_streets", on=("variant",), baseline="ce",
                           baseline_column="variant").set_index("variant")
    assert proxy.loc["ce+kd", "ours gain"] == pytest.approx(2.0)
    assert proxy.loc["ce+kd+memory_p2p", "paper gain"] == pytest.approx(75.11 - 73.12)
    assert np.isnan(proxy.loc["ce+kd+memory_p2p", "ours gain"])
