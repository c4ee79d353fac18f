"""The why study (kdlib.studies.why): its experiments are well formed, its statistics equal hand-computed Welch
intervals, and its notebook runs an experiment end to end."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
from notebook_runner import execute

from kdlib.studies import why


def test_every_experiment_has_one_main_setting_and_known_contrasts():
    for exp in why.EXPERIMENTS.values():
        assert sum(v.main for v in exp.variants) == 1, exp.name
        names = {v.name for v in exp.variants}
        assert all(a in names and b in names for a, b in exp.contrasts), exp.name
        assert "none" in exp.methods and exp.prediction and exp.hypothesis
    main = why.EXPERIMENTS["schedule"].variants[0]
    assert why.variant_root(main, "runs/x", "runs/proxy/main") == Path("runs/proxy/main")
    assert why.variant_root(why.EXPERIMENTS["schedule"].variants[1], "runs/x", "runs/proxy/main") == \
        Path("runs/x/iterations-1600")
    with pytest.raises(ValueError, match="did you mean schedule"):
        why.experiment("schedul")


def _runs() -> pd.DataFrame:
    rows = []
    for seed, (base, main_cirkd, released) in enumerate([(30, 32, 35), (31, 33, 36), (32, 34, 37)]):
        rows += [{"variant": "corrected", "x": None, "student": "s", "method": "none", "seed": seed, "miou": base / 100},
                 {"variant": "corrected", "x": None, "student": "s", "method": "cirkd", "seed": seed,
                  "miou": main_cirkd / 100},
                 {"variant": "released", "x": None, "student": "s", "method": "cirkd", "seed": seed,
                  "miou": released / 100}]
    return pd.DataFrame(rows)


def test_gains_and_contrasts_are_welch_intervals_by_hand():
    # both sides: 3 values, variance 1 -> se^2 = 2/3, Welch dof = (2/3)^2 / (2 * (1/3)^2 / 2) = 4,
    # t_{0.975, 4} = 2.7764451; half-width = 2.7764451 * sqrt(2/3) = 2.2669...
    half = 2.7764451051977987 * math.sqrt(2 / 3)
    gains = why.gains_by_variant(_runs(), "pixel_queue").set_index(["variant", "method"])
    assert gains.loc[("corrected", "cirkd"), "gain_pct"] == pytest.approx(2.0)
    assert gains.loc[("corrected", "cirkd"), "gain_ci_pct"] == pytest.approx(half, rel=1e-6)
    # the released variant trains no baseline: its gain is over the main setting's
    assert gains.loc[("released", "cirkd"), "gain_pct"] == pytest.approx(5.0)
    assert gains.loc[("released", "cirkd"), "baseline_variant"] == "corrected"
    assert math.isnan(gains.loc[("corrected", "none"), "gain_pct"])
    effects = why.effects_table(_runs(), "pixel_queue")
    assert len(effects) == 1 and effects.loc[0, "difference_pct"] == pytest.approx(3.0)
    assert effects.loc[0, "difference_ci_pct"] == pytest.approx(half, rel=1e-6) and bool(effects.loc[0, "resolved"])


def test_the_why_notebook_runs_an_experiment(tmp_path, tiny_data_and_teacher):
    extra, teacher = tiny_data_and_teacher
    out, figures = tmp_path / "out", tmp_path / "figures"
    execute("why.py", {"experiment": "pixel_queue", "preset": "quick", "seeds": "0,1", "extra": extra,
                       "students": "deeplabv3_resnet18",
                       "teacher_checkpoint": str(teacher), "runs_root": str(tmp_path / "runs"),
                       "output_dir": str(out), "figures_dir": str(figures)})
    runs = pd.read_csv(out / "runs.csv")
    # corrected: (none, cirkd) x 2 seeds; released: cirkd x 2 seeds (one student of the two)
    assert len(runs) == 6 and set(runs["variant"]) == {"corrected", "released"}
    assert runs["git_commit"].notna().all() and runs["miou_pct"].between(0, 100).all()
    released = runs[runs["variant"] == "released"]["run_dir"]
    assert all("/released/" in d for d in released)
    effects = pd.read_csv(out / "effects.csv")
    assert list(effects["student"]) == ["deeplabv3_resnet18"] and list(effects["n"]) == [2]
    assert (figures / "why_pixel_queue.png").stat().st_size > 1000


def test_gain_differences_across_settings_with_their_own_baselines():
    """map_size-like: both settings train their own baseline, so the contrast is a difference of gains over four
    groups: (x - bx) - (y - by); by hand with n = 3 and variance 1 everywhere: se^2 = 4/3, dof = (4/3)^2 /
    (4 * (1/3)^2 / 2) = 8, half-width t_{0.975, 8} sqrt(4/3) = 2.306004 * 1.154701."""
    rows = []
    for seed, (b_small, m_small, b_large, m_large) in enumerate([(30, 31, 40, 44), (31, 32, 41, 45), (32, 33, 42, 46)]):
        for variant, method, value in (("maps-8x16", "none", b_small), ("maps-8x16", "cirkd", m_small),
                                       ("maps-16x32", "none", b_large), ("maps-16x32", "cirkd", m_large)):
            rows.append({"variant": variant, "x": None, "student": "s", "method": method, "seed": seed,
                         "miou": value / 100})
    effects = why.effects_table(pd.DataFrame(rows), "map_size")
    assert len(effects) == 1
    assert effects.loc[0, "difference_pct"] == pytest.approx(13.0)           # mIoU: other data, not the question
    assert effects.loc[0, "gain_difference_pct"] == pytest.approx(4.0 - 1.0)  # the gain grew by 3 points
    assert effects.loc[0, "gain_difference_ci_pct"] == pytest.approx(2.306004135 * math.sqrt(4 / 3), rel=1e-6)
    assert math.isnan(why.welch_combination([(1, [1.0]), (-1, [2.0, 3.0])])[1])   # one seed: no interval


def test_between_method_change_contrasts_cancel_the_baselines_by_hand():
    """Four groups (a and b in both settings), n = 3 each with variance 1 except b at 16 x 32 (variance 4):
    se^2 = (1 + 1 + 1 + 4) / 3 = 7/3; Welch dof = (7/3)^2 / ((3 * (1/3)^2 + (4/3)^2) / 2) = 49/9 / (19/18)
    = 98/19. Gains (baseline means 30 and 41): KD 32 - 30 = 2 -> 41 - 41 = 0, a change of -2; CIRKD 2 -> 45 - 41
    = 4, a change of +2; so KD's change minus CIRKD's = -4. The baseline, however noisy, cancels."""
    from kdlib.report.tables import t_quantile

    rows = []
    per_seed = {("maps-8x16", "none"): (30, 50, 10), ("maps-8x16", "cirkd"): (31, 32, 33),
                ("maps-8x16", "kd"): (31, 32, 33), ("maps-16x32", "none"): (40, 41, 42),
                ("maps-16x32", "cirkd"): (44, 45, 46), ("maps-16x32", "kd"): (39, 41, 43)}
    for (variant, method), values in per_seed.items():
        rows += [{"variant": variant, "x": None, "student": "s", "method": method, "seed": seed, "miou": v / 100}
                 for seed, v in enumerate(values)]
    pairs = why.method_change_contrasts(pd.DataFrame(rows), "map_size")
    assert len(pairs) == 1
    row = pairs.iloc[0]
    assert (row["method"], row["other"], row["variant"], row["reference"]) == ("kd", "cirkd", "maps-16x32",
                                                                                "maps-8x16")
    assert row["change_difference_pct"] == pytest.approx(-4.0)       # kd first: the experiment's method order
    assert row["change_difference_ci_pct"] == pytest.approx(t_quantile(0.975, 98 / 19) * math.sqrt(7 / 3),
                                                            rel=1e-9)
    assert row["change_difference_ci_pct"] == pytest.approx(3.90, abs=0.01)   # t(0.975, 5.16) = 2.55
    assert bool(row["resolved"])                                               # 4 > 3.90


def _write_summary(results: Path, experiment: str, rows, effects=None) -> None:
    folder = results / f"why_{experiment}" / "cell"
    folder.mkdir(parents=True)
    pd.DataFrame(rows).to_csv(folder / "summary.csv", index=False)
    if effects is not None:
        pd.DataFrame(effects).to_csv(folder / "effects.csv", index=False)


def _gain(variant, method, gain, ci, base="paper_weights", student="deeplabv3_resnet18", n=3):
    return {"student": student, "variant": variant, "x": None, "method": method, "n": n, "miou_pct": 30.0,
            "miou_ci_pct": 1.0, "baseline_variant": base, "gain_pct": gain, "gain_ci_pct": ci}


def test_the_overview_puts_every_setting_beside_the_main_one_once(tmp_path):
    from kdlib.report.proxy_report import why_overview
    from kdlib.report.why_report import MAIN_LABEL, all_effects, plot_regime_gains, regime_gains

    _write_summary(tmp_path, "loss_scale", [
        _gain("paper_weights", "none", float("nan"), float("nan"), base=""),
        _gain("paper_weights", "cirkd", 0.3, 2.1), _gain("paper_weights", "afdcd", -0.5, 0.9),
        _gain("paper_shapes", "afdcd", 1.5, 0.7), _gain("tau-0.7", "afdcd", 0.8, 1.2)],
        effects=[{"student": "deeplabv3_resnet18", "method": "afdcd", "variant": "paper_shapes",
                  "reference": "paper_weights", "n": 3, "n_reference": 3, "difference_pct": 2.0,
                  "difference_ci_pct": 1.1, "gain_difference_pct": 2.0, "gain_difference_ci_pct": 1.1,
                  "resolved": True}])
    _write_summary(tmp_path, "pixel_queue", [          # its main CIRKD row is the same main run: shown once
        _gain("corrected", "cirkd", 0.3, 2.1, base="corrected"), _gain("released", "cirkd", 0.1, 1.0, base="corrected")])
    table = regime_gains(tmp_path)
    assert list(zip(table["setting"], table["method"], table["gain_pct"])) == [
        (MAIN_LABEL, "cirkd", 0.3), (MAIN_LABEL, "afdcd", -0.5),
        ("weights rescaled to the run's shapes", "afdcd", 1.5), ("Af-DCD tau = 0.7", "afdcd", 0.8),
        ("released pixel queue", "cirkd", 0.1)]
    assert set(table["baseline_setting"]) == {MAIN_LABEL}
    effects = all_effects(tmp_path)
    assert list(effects["experiment"]) == ["loss_scale"] and effects["gain_difference_pct"].iloc[0] == 2.0
    text = "\n".join(why_overview(tmp_path))
    assert "Af-DCD tau = 0.7" in text and "| loss_scale |" in text
    written = plot_regime_gains(table, tmp_path / "why_gains")
    assert all(p.is_file() and p.stat().st_size > 1000 for p in written)
    assert regime_gains(tmp_path / "nothing").empty and why_overview(tmp_path / "nothing") == []


def test_figure_titles_name_every_setting_crop(monkeypatch, tmp_path):
    """The map-size figure compares 64 x 128 and 128 x 256 crops: its title names both, not the preset's alone."""
    from kdlib.figures import why_plots

    titles = []
    monkeypatch.setattr(why_plots, "plot_effects", lambda gains, effects, path, title, **kw: titles.append(title))
    monkeypatch.setattr(why_plots, "plot_gain_vs_x", lambda gains, path, title, *a, **kw: titles.append(title))
    rows = [{"variant": v, "x": None, "student": "s", "method": m, "seed": seed, "miou": (30 + seed) / 100}
            for v in ("maps-8x16", "maps-16x32") for m in ("none", "kd") for seed in range(2)]
    why.write_experiment(pd.DataFrame(rows), "map_size", None, tmp_path, preset="proxy")
    why.write_experiment(_runs(), "pixel_queue", None, tmp_path, preset="proxy")
    assert titles[0].endswith("proxy preset, 64x128 / 128x256 crops")
    assert titles[1].endswith("proxy preset, 64x128 crops")
