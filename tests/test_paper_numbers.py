"""The papers' reported numbers as data: hand spot-checks against docs/reference.md §1, schema and consistency checks."""
import pandas as pd
import pytest

from kdlib import paper_numbers as pn
from kdlib.paper_numbers import paper_results, paper_table

R101, R18, MB, PSP = "deeplabv3_resnet101", "deeplabv3_resnet18", "deeplabv3_mobilenetv2", "pspnet_resnet18"


def _one(table: str, **where) -> float:
    frame = paper_table(table)
    where.setdefault("metric", "miou")
    where.setdefault("variant", "")
    for column, value in where.items():
        frame = frame[frame[column] == value]
    assert len(frame) == 1, (table, where, frame)
    return float(frame["value"].iloc[0])


# ------------------------------------------------------------------- values typed by hand from docs/reference.md §1
@pytest.mark.parametrize("table,where,expected", [
    # CIRKD Table 1 (Cityscapes)
    ("cirkd_table1", dict(split="val", student=R101, method="none"), 78.07),
    ("cirkd_table1", dict(split="test", student=R101, method="none"), 77.46),
    ("cirkd_table1", dict(split="val", student=R18, method="none"), 74.21),
    ("cirkd_table1", dict(split="val", student=R18, method="cirkd"), 76.38),
    ("cirkd_table1", dict(split="test", student=R18, method="cirkd"), 75.05),
    ("cirkd_table1", dict(split="val", student=R18, method="cwd"), 75.55),
    ("cirkd_table1", dict(split="val", student=R18, method="none", variant="no_imagenet_init"), 65.17),
    ("cirkd_table1", dict(split="test", student=R18, method="cirkd", variant="no_imagenet_init"), 68.22),
    ("cirkd_table1", dict(split="val", student=MB, method="ifvd"), 73.50),
    ("cirkd_table1", dict(split="test", student=PSP, method="skd"), 72.95),
    ("cirkd_table1", dict(split="val", student=PSP, method="cirkd"), 74.73),
    # CIRKD Tables 2-4
    ("cirkd_table2", dict(split="test", student=R101, method="none"), 69.84),
    ("cirkd_table2", dict(student=PSP, method="cirkd"), 68.65),
    ("cirkd_table2", dict(student=R18, method="ifvd"), 67.28),
    ("cirkd_table3", dict(split="val", student=R101, method="none"), 77.67),
    ("cirkd_table3", dict(student=PSP, method="skd"), 74.07),
    ("cirkd_table3", dict(student=R18, method="cirkd"), 74.50),
    ("cirkd_table4", dict(variant="ce"), 73.12),
    ("cirkd_table4", dict(variant="ce+kd"), 74.26),
    ("cirkd_table4", dict(variant="ce+kd+memory_p2r"), 74.94),
    ("cirkd_table4", dict(variant="ce+kd+batch_p2p+memory_p2p+memory_p2r"), 75.42),
    # CIRKD README
    ("cirkd_readme", dict(dataset="ade20k", student=R18, method="cirkd"), 35.41),
    ("cirkd_readme", dict(dataset="coco_stuff_164k", student=R101, method="none"), 38.71),
    ("cirkd_readme", dict(dataset="cityscapes", student=MB, method="dsd"), 74.11),
    ("cirkd_readme", dict(dataset="cityscapes", student="segformer_mit_b0", method="cirkd"), 76.92),
    ("cirkd_readme", dict(dataset="cityscapes", student="segformer_mit_b4", method="none"), 81.23),
    # Af-DCD main tables
    ("afdcd_cityscapes", dict(student=R18, method="afdcd"), 77.03),
    ("afdcd_cityscapes", dict(student=MB, method="afdcd"), 76.38),
    ("afdcd_cityscapes", dict(student=MB, method="afdcd", variant="released_checkpoint"), 76.43),
    ("afdcd_cityscapes", dict(student=R18, method="maskd"), 77.00),
    ("afdcd_cityscapes", dict(student=MB, method="maskd"), 75.26),
    ("afdcd_cityscapes", dict(student=R101, method="none"), 78.07),
    ("afdcd_ade20k", dict(student=R18, method="afdcd"), 36.21),
    ("afdcd_ade20k", dict(student=R18, method="kd"), 34.88),
    ("afdcd_coco_stuff", dict(student=R18, method="afdcd"), 34.02),
    ("afdcd_coco_stuff", dict(student=R18, method="kd"), 32.88),
    ("afdcd_voc", dict(student=R18, method="afdcd"), 76.25),
    ("afdcd_voc", dict(student=PSP, method="afdcd"), 76.14),
    ("afdcd_camvid", dict(student=R18, method="afdcd"), 69.27),
    ("afdcd_camvid", dict(student=PSP, method="afdcd"), 69.48),
    ("afdcd_abstract", dict(dataset="cityscapes", student=MB, metric="miou_gain"), 3.26),
    ("afdcd_abstract", dict(dataset="coco_stuff_164k", metric="miou_gain"), 1.42),
    ("afdcd_table5", dict(method="afdcd", metric="gpu_memory_gb"), 7.94),
    ("afdcd_table5", dict(method="cirkd", metric="gpu_memory_gb"), 10.09),
    ("afdcd_table5", dict(method="afdcd", metric="train_time_h"), 4.23),
    ("afdcd_table5", dict(method="cirkd", metric="train_time_h"), 4.34),
])
def test_spot_values(table, where, expected):
    assert _one(table, **where) == pytest.approx(expected, abs=1e-9)


def test_counts_per_file():
    counts = {name: len(paper_table(name)) for name in pn.RESULT_TABLES}
    assert counts == {"cirkd_table1": 42, "cirkd_table2": 11, "cirkd_table3": 11, "cirkd_table4": 7,
                      "cirkd_readme": 15, "afdcd_cityscapes": 16, "afdcd_ade20k": 5, "afdcd_coco_stuff": 5,
                      "afdcd_voc": 13, "afdcd_camvid": 13, "afdcd_abstract": 7, "afdcd_table5": 4}
    assert paper_results(paper="cirkd").shape[0] == 86
    assert paper_results(paper="afdcd").shape[0] == 63


# ------------------------------------------------------------------- schema
def test_schema_and_names():
    assert set(pn.RESULT_TABLES) | {"complexity"} == set(pn.names())
    for name in pn.RESULT_TABLES:
        frame = paper_table(name)
        assert tuple(frame.columns) == pn.RESULT_COLUMNS, name
        assert frame["value"].dtype == "float64"
        assert frame["value"].notna().all(), name
        assert not frame.duplicated(list(pn.KEY_COLUMNS)).any(), name
        for column in ("paper", "table", "dataset", "split", "student", "method", "metric", "source"):
            assert (frame[column] != "").all(), (name, column)
        assert frame["paper"].isin(pn.PAPERS).all()
        assert frame["dataset"].isin(pn.DATASETS).all()
        assert frame["split"].isin(pn.SPLITS).all()
        assert frame["student"].isin(pn.MODELS).all()
        assert frame["method"].isin(pn.METHODS).all()
        assert frame["metric"].isin(pn.METRICS).all()
        # a model trained alone has no teacher; every distilled row names one
        assert ((frame["method"] == "none") == (frame["teacher"] == "")).all(), name
        assert frame.loc[frame["teacher"] != "", "teacher"].isin(pn.MODELS).all()
        assert name.split("_")[0] == frame["paper"].iloc[0]


def test_names_match_kdlib_registries():
    import kdlib.data  # noqa: F401  (registers datasets)
    import kdlib.methods  # noqa: F401  (registers methods)
    import kdlib.models  # noqa: F401  (registers models)
    from kdlib.registry import DATASETS, METHODS, MODELS

    results = paper_results()
    assert set(results["dataset"]) <= set(DATASETS.names())
    cnn = results[~results["student"].str.startswith("segformer")]
    assert set(cnn["student"]) | set(cnn.loc[cnn["teacher"] != "", "teacher"]) <= set(MODELS.names())
    implemented = set(results["method"]) - {"none", "dsd", "maskd"}  # dsd, maskd: reported numbers only
    assert implemented <= set(METHODS.names())


def test_plausible_ranges():
    results = paper_results()
    by_metric = {m: results.loc[results["metric"] == m, "value"] for m in pn.METRICS}
    assert by_metric["miou"].between(30, 90).all()       # all reported mIoU are 32.60 … 81.23 %
    assert by_metric["miou_gain"].between(0, 5).all()
    assert by_metric["gpu_memory_gb"].between(1, 48).all()
    assert by_metric["train_time_h"].between(0.5, 48).all()
    # two decimals as printed
    assert ((results["value"] * 100).round(6) % 1 == 0).all()


def test_markers_are_kept():
    notes = paper_results()["note"]
    assert notes.str.contains("UNCONFIRMED").sum() >= 10
    t5 = paper_table("afdcd_table5")
    assert t5["note"].str.contains("UNCONFIRMED").all()
    assert paper_table("afdcd_cityscapes").query("method == 'maskd'")["note"].str.contains("UNCONFIRMED").all()
    assert paper_table("cirkd_table1").query("student == @R101")["note"].eq("teacher").all()


# ------------------------------------------------------------------- internal consistency of the reported numbers
def test_afdcd_copies_of_cirkd_numbers_agree():
    keys = ["dataset", "split", "student", "method"]
    cirkd = pd.concat([paper_table(n) for n in ("cirkd_table1", "cirkd_table2", "cirkd_table3", "cirkd_readme")])
    cirkd = cirkd[cirkd["variant"] == ""].set_index(keys)["value"]
    afdcd = paper_results(("afdcd_cityscapes", "afdcd_ade20k", "afdcd_coco_stuff", "afdcd_voc", "afdcd_camvid"))
    copied = afdcd[afdcd["method"].isin(["none", "skd", "ifvd", "cwd", "cirkd"])].set_index(keys)["value"]
    assert len(copied) == 39  # 11 Cityscapes + 3 ADE20K + 3 COCO + 11 VOC + 11 CamVid
    pd.testing.assert_series_equal(copied, cirkd.reindex(copied.index), check_names=False)


def test_afdcd_abstract_gains_match_the_tables():
    main = paper_results(("afdcd_cityscapes", "afdcd_ade20k", "afdcd_coco_stuff", "afdcd_voc", "afdcd_camvid"))
    main = main[main["variant"] == ""].set_index(["dataset", "student", "method"])["value"]
    gains = paper_table("afdcd_abstract").query("metric == 'miou_gain'")
    assert len(gains) == 5
    for row in gains.itertuples():
        expected = main[(row.dataset, row.student, "afdcd")] - main[(row.dataset, row.student, "none")]
        assert row.value == pytest.approx(expected, abs=1e-9)
        # the headline gain is the best student of that dataset
        students = main.xs("afdcd", level="method").xs(row.dataset, level="dataset").index
        best = max(main[(row.dataset, s, "afdcd")] - main[(row.dataset, s, "none")] for s in students)
        assert row.value == pytest.approx(best, abs=1e-9)
    absolute = paper_table("afdcd_abstract").query("metric == 'miou'").set_index("student")["value"]
    assert absolute.to_dict() == {R18: 77.03, MB: 76.38}


def test_cirkd_table4_ends_equal_table1_mbv2():
    t1 = paper_table("cirkd_table1").query("split == 'val' and student == @MB and variant == ''")
    t1 = t1.set_index("method")["value"]
    t4 = paper_table("cirkd_table4").set_index("variant")["value"]
    assert t4["ce"] == t1["none"] == 73.12
    assert t4["ce+kd+batch_p2p+memory_p2p+memory_p2r"] == t1["cirkd"] == 75.42
    assert (paper_table("cirkd_table4")["student"] == MB).all()


def test_cirkd_is_best_in_its_own_tables():
    for name in ("cirkd_table1", "cirkd_table2", "cirkd_table3"):
        frame = paper_table(name)
        frame = frame[frame["student"] != R101]
        for _, group in frame.groupby(["split", "student", "variant"]):
            best = group.loc[group["value"].idxmax(), "method"]
            assert best == "cirkd", (name, group)


def test_complexity_table_still_typed():
    frame = paper_table("complexity")
    assert frame["params_M"].dtype == "float64" and frame["height"].dtype == "int64"
    assert frame.query("model == @R101 and dataset == 'cityscapes'")["flops_G"].item() == 2371.7
    assert pn.load("cirkd_table1")[0]["value"] == "78.07"
