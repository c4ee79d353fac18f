"""The proxy report's tables (kdlib.report.proxy_report): Welch gains checked by hand, rendering from files."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from kdlib.report import proxy_report as pr
from kdlib.studies.proxy import STEPS, verify_runs


def test_welch_interval_matches_a_hand_computed_case():
    # x = 1,2,3 and y = 0,1,2: both variances 1, se^2 = 1/3 + 1/3, dof = (2/3)^2 / (2 * (1/3)^2 / 2) = 4
    diff, half = pr.welch_interval([1, 2, 3], [0, 1, 2])
    assert diff == pytest.approx(1.0)
    assert half == pytest.approx(2.7764451052 * math.sqrt(2 / 3), rel=1e-8)   # t_{0.975, 4} = 2.7764451052


def test_welch_interval_unequal_variances_and_degenerate_cases():
    x, y = [10.0, 12.0, 14.0, 16.0], [1.0, 1.5, 2.0]
    vx, vy = 20 / 3 / 4, 0.25 / 3                   # sample variances 20/3 and 0.25, over n
    dof = (vx + vy) ** 2 / (vx ** 2 / 3 + vy ** 2 / 2)
    from scipy import stats

    diff, half = pr.welch_interval(x, y)
    assert diff == pytest.approx(13.0 - 1.5)
    assert half == pytest.approx(stats.t.ppf(0.975, dof) * math.sqrt(vx + vy))
    assert pr.welch_interval([1.0, 1.0], [0.0, 0.0]) == (1.0, 0.0)
    d, h = pr.welch_interval([2.0], [0.0, 1.0])
    assert d == pytest.approx(1.5) and math.isnan(h)


def _runs() -> pd.DataFrame:
    rows = []
    for student, base in (("r18", 0.30), ("psp", 0.20)):
        for method, delta in (("none", 0.0), ("kd", 0.01), ("cwd", 0.03)):
            for seed, noise in enumerate((-0.002, 0.0, 0.002)):
                rows.append({"student": student, "method": method, "seed": seed,
                             "miou": base + delta + (noise if method != "cwd" else 0.0),
                             "wall_time_s": 10.0 * (1 + len(method)), "peak_memory_mb": 100.0 + seed,
                             "run_dir": f"runs/{student}-{method}-{seed}"})
    return pd.DataFrame(rows)


def test_gains_table_means_intervals_and_significance():
    table = pr.gains_table(_runs(), order=["none", "cwd", "kd"]).set_index(["student", "method"])
    assert list(table.loc["r18"].index) == ["none", "cwd", "kd"]
    row = table.loc[("r18", "kd")]
    assert row["n"] == 3 and row["mIoU"] == pytest.approx(31.0)
    assert row["±CI"] == pytest.approx(4.302652730 * 0.2 / math.sqrt(3), rel=1e-7)   # t_{0.975,2} * s / sqrt(n)
    assert row["gain"] == pytest.approx(1.0)
    assert row["gain ±CI"] == pytest.approx(2.7764451052 * math.sqrt(2 * 0.04 / 3), rel=1e-7)
    assert row["significant"] == "yes"            # 1.0 > 0.65
    cwd = table.loc[("psp", "cwd")]
    assert cwd["gain"] == pytest.approx(3.0) and cwd["significant"] == "yes"
    assert table.loc[("psp", "none"), "significant"] == "" and math.isnan(table.loc[("psp", "none"), "gain"])


def _write_step(root, step, runs, summary):
    folder = root / step / "run-x"
    folder.mkdir(parents=True)
    runs.to_csv(folder / "runs.csv", index=False)
    summary.to_csv(folder / "summary.csv", index=False)


def test_report_renders_table_steps_with_paper_gains_and_cost(tmp_path):
    runs = _runs()
    summary = pd.DataFrame({"student": ["r18", "r18", "r18"], "method": ["none", "kd", "cwd"],
                            "paper mIoU (cityscapes)": [74.0, 75.5, 75.9], "paper gain": [0.0, 1.5, 1.9]})
    _write_step(tmp_path, "cirkd_table1", runs, summary)
    pd.DataFrame({"step": ["teacher", "main_runs", "main_runs"], "wall_time_s": [60.0, 120.0, 60.0]}).to_csv(
        tmp_path / "timing.csv", index=False)
    table = pr.table_step("cirkd_table1", tmp_path).set_index(["student", "method"])
    assert table.loc[("r18", "KD"), "paper gain"] == pytest.approx(1.5)
    assert math.isnan(table.loc[("psp", "KD"), "paper gain"])          # the paper has no such row
    cost = pr.cost_table(tmp_path).set_index(["student", "method"])
    assert cost.loc[("r18", "CWD"), "wall time (s)"] == pytest.approx(40.0)
    assert cost.loc[("r18", "CWD"), "peak RSS (MB)"] == pytest.approx(101.0)
    timing = pr.timing_table(tmp_path).set_index("step")
    assert timing.loc["main_runs", "invocations"] == 2 and timing.loc["main_runs", "wall_time_min"] == 3.0
    headline = pr.headline_table(tmp_path).set_index(["student", "method"])
    assert headline.loc[("r18", "cwd"), "gain"] == pytest.approx(3.0)
    assert headline.loc[("r18", "cwd"), "paper gain"] == pytest.approx(1.9)
    path = pr.write_report(STEPS, tmp_path, figures=tmp_path / "figures")
    assert (tmp_path / "figures" / "headline_gains.png").stat().st_size > 1000
    assert (tmp_path / "figures" / "headline_gains.pdf").is_file()
    text = path.read_text()
    assert "## Headline" in text
    assert "## cirkd_table1" in text and "| r18 | KD | 3 | 31.00 |" in text
    assert "## cirkd_table2" in text and "(not run yet)" in text
    assert "Total recorded: 4.0 min." in text
    assert not list(tmp_path.glob("*.tmp"))


def test_proxy_report_cli_writes_tables_md(tmp_path):
    done = subprocess.run([sys.executable, "-m", "kdlib", "proxy", "--report"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "results" / "proxy" / "tables.md").is_file()
    assert "tables written to" in done.stdout


def test_sweep_step_rows_are_relative_to_the_paper_default(tmp_path):
    summary = pd.DataFrame({"sweep": ["cirkd_tau"] * 3, "student": ["mbv2"] * 3,
                            "contrast_temperature": [0.05, 0.1, 0.2], "n": [1, 1, 1],
                            "miou_pct": [15.5, 19.5, 19.0], "std_pct": [float("nan")] * 3,
                            "ci95_pct": [float("nan")] * 3, "wall_time_s": [70.0, 75.0, 80.0],
                            "peak_memory_mb": [1.0, 1.0, 1.0], "paper_default": [False, True, False],
                            "setting": ["a", "b", "c"]})
    runs = pd.DataFrame({"sweep": ["cirkd_tau"], "miou": [0.2]})
    _write_step(tmp_path, "cirkd_fig7", runs, summary)
    table = pr.sweep_step("cirkd_fig7", tmp_path)
    assert list(table["value"]) == ["0.05", "0.1 (default)", "0.2"]
    assert list(table["vs default"]) == pytest.approx([-4.0, 0.0, -0.5])
    queue = summary.assign(sweep="cirkd_pixel_queue", contrast_temperature=[10000.0, 20000.0, 40000.0])
    queue = queue.rename(columns={"contrast_temperature": "pixel_memory_size"})
    _write_step(tmp_path, "cirkd_fig6", runs, queue)
    assert list(pr.sweep_step("cirkd_fig6", tmp_path)["value"]) == ["10000", "20000 (default)", "40000"]


def test_verify_runs_compares_committed_and_local_metrics(tmp_path):
    import json

    runs = _runs().head(3).copy()
    runs["run_dir"] = [str(tmp_path / "runs" / f"r{i}") for i in range(3)]
    _write_step(tmp_path / "results", "cirkd_table1", runs, pd.DataFrame({"student": [], "method": []}))
    for i, miou in ((0, runs["miou"].iloc[0]), (1, runs["miou"].iloc[1] + 0.01)):   # r2: not trained here
        (tmp_path / "runs" / f"r{i}").mkdir(parents=True)
        (tmp_path / "runs" / f"r{i}" / "metrics.json").write_text(json.dumps({"miou": float(miou)}))
    checked = verify_runs(tmp_path / "results").set_index("run_dir")
    assert len(checked) == 2
    assert bool(checked.loc[str(tmp_path / "runs" / "r0"), "match"])
    assert not bool(checked.loc[str(tmp_path / "runs" / "r1"), "match"])
    assert checked.loc[str(tmp_path / "runs" / "r1"), "local"] == pytest.approx(100 * runs["miou"].iloc[1] + 1.0)


def test_gains_vs_all_papers_has_one_column_per_paper_table(tmp_path):
    runs = _runs()
    cs = pd.DataFrame({"student": ["r18", "r18"], "method": ["kd", "cwd"], "paper mIoU (cityscapes)": [75.5, 75.9],
                       "paper gain": [1.5, 1.9]})
    voc = cs.assign(**{"paper gain": [0.3, 0.8]}).rename(columns={"paper mIoU (cityscapes)": "paper mIoU (voc)"})
    _write_step(tmp_path, "cirkd_table1", runs, cs)
    _write_step(tmp_path, "cirkd_table3", runs, voc)
    wide = pr.gains_vs_all_papers(tmp_path).set_index(["student", "method"])
    assert wide.loc[("r18", "CWD"), "CIRKD CS"] == pytest.approx(1.9)
    assert wide.loc[("r18", "CWD"), "CIRKD VOC"] == pytest.approx(0.8)
    assert wide.loc[("r18", "CWD"), "gain"] == pytest.approx(3.0)
    assert "CIRKD CamVid" not in wide.columns


def _checked(committed, local, spread):
    return pd.DataFrame({"step": "s", "run_dir": [f"r{i}" for i in range(len(local))], "committed": committed,
                         "local": local, "match": [abs(a - b) < 1e-7 for a, b in zip(committed, local)],
                         "spread": spread,
                         "within_spread": [abs(a - b) <= s for a, b, s in zip(committed, local, spread)]})


def test_verification_is_exact_on_the_same_machine_kind_and_within_the_seed_spread_elsewhere():
    from kdlib.studies.proxy import verification_verdict

    # synthetic numbers: run 0 exact, run 1 off by 0.3 pp inside a 0.5 pp spread, run 2 off by 0.8 pp
    checked = _checked([31.0, 32.0, 33.0], [31.0, 32.3, 33.0], [0.5, 0.5, 0.5])
    ok, lines = verification_verdict(checked, "AMD EPYC / AVX512", "AMD EPYC / AVX512")
    assert not ok and "must match exactly" in lines[0] and "MISMATCH r1" in lines[1]
    ok, lines = verification_verdict(checked, "AMD EPYC / AVX512", "Intel Xeon / AVX2")
    assert ok and "inside the committed seed spread" in lines[0] and "(2 reproduce exactly)" in lines[0]
    far = _checked([31.0, 32.0], [31.0, 32.8], [0.5, 0.5])
    ok, lines = verification_verdict(far, None, "Intel Xeon / AVX2")
    assert not ok and "not recorded" in lines[0] and "OUTSIDE r1" in lines[1]
    ok, _ = verification_verdict(_checked([31.0], [31.0], [0.5]), "AMD EPYC / AVX512", "AMD EPYC / AVX512")
    assert ok


def test_verify_runs_measures_the_committed_seed_spread(tmp_path):
    import json

    runs = pd.DataFrame({"student": "r18", "method": ["none"] * 3 + ["kd"], "seed": [0, 1, 2, 0],
                         "miou": [0.30, 0.32, 0.31, 0.33]})
    runs["run_dir"] = [str(tmp_path / "runs" / f"student-r18_method-{m}_seed-{s}")
                       for m, s in zip(runs["method"], runs["seed"])]
    _write_step(tmp_path / "results", "cirkd_table1", runs, pd.DataFrame({"student": [], "method": []}))
    for run_dir, local in ((runs["run_dir"][1], 0.325), (runs["run_dir"][3], 0.34)):
        Path(run_dir).mkdir(parents=True)
        (Path(run_dir) / "metrics.json").write_text(json.dumps({"miou": local}))
    checked = verify_runs(tmp_path / "results").set_index("run_dir")
    none1, kd0 = checked.loc[runs["run_dir"][1]], checked.loc[runs["run_dir"][3]]
    assert none1["spread"] == pytest.approx(2.0) and bool(none1["within_spread"]) and not bool(none1["match"])
    # kd has one seed: the median range of the multi-seed configurations (2.0 pp); 1.0 pp off is inside
    assert kd0["spread"] == pytest.approx(2.0) and bool(kd0["within_spread"])
