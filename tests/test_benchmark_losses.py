"""Smoke test of benchmarks/losses.py: its kdlib-vs-naive-reference agreement checks at a tiny scale (no timing)."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "losses.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("kdlib_bench_losses", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def tiny(bench):
    return bench.Config(device=torch.device("cpu"), batch=3, h=16, w=32, scale=1 / 16)


def test_every_case_agrees_with_the_naive_reference(bench, tiny):
    x = bench._inputs(tiny)
    for name in bench.CASES:
        bench.check_case(tiny, name, rtol=1e-4, x=x)


def test_pixel_queue_bug_mode_agrees(bench, tiny):
    bug = bench.Config(device=tiny.device, batch=tiny.batch, h=tiny.h, w=tiny.w, scale=tiny.scale,
                       pixel_queue_bug=True)
    bench.check_case(bug, "cirkd_enqueue")
    bench.check_case(bug, "cirkd_memory")


def test_check_detects_a_wrong_value(bench, tiny, monkeypatch):
    right = bench.ref.kd
    monkeypatch.setattr(bench.ref, "kd", lambda *a, **k: right(*a, **k) * 1.001)
    with pytest.raises(AssertionError):
        bench.check_case(tiny, "kd")


def test_cli_check_only_and_table_output(bench, tmp_path):
    out = tmp_path / "t.md"
    rows = bench.main(["--device", "cpu", "--batch", "2", "--size", "8", "16", "--scale", "0.0625",
                       "--only", "kd", "at", "--repeats", "1", "--warmup", "0", "--min-time", "0",
                       "--out", str(out)])
    assert [r.method for r in rows] == ["kd", "at"]
    text = out.read_text()
    assert "ratio ref/kdlib" in text and "| kd | kd |" in text


def test_timing_interleaves_the_two_sides(bench):
    calls = []
    sides = [bench.Side(run=lambda: calls.append("k") or {}, leaves=[]),
             bench.Side(run=lambda: calls.append("r") or {}, leaves=[])]
    times = bench.time_sides(sides, False, torch.device("cpu"), warmup=1, repeats=3)
    assert len(times) == 2 and all(t >= 0 for t in times)
    assert calls == ["k", "r"] + ["k", "r"] * 3     # warm-up of each, then alternating timed steps


def test_cirkd_memory_table_gets_the_gemm_floor_note(bench, tmp_path):
    out = tmp_path / "t.md"
    bench.main(["--device", "cpu", "--batch", "2", "--size", "8", "16", "--scale", "0.0625",
                "--only", "cirkd_memory", "--repeats", "1", "--warmup", "0", "--min-time", "0", "--out", str(out)])
    text = out.read_text()
    # 0.9 * 2 * 8 * 16 = 230 anchors; d = 32 (teacher = 2 x the student's 16); K_p = 256 and K_r = 64 scaled
    # sizes -> (256 // 19 + 1) * 19 = 266 and (64 // 19 + 1) * 19 = 76 contrast rows
    assert "3 products of (230 x 32) with (32 x 266) and 3 with (32 x 76)" in text
    assert "no exact implementation can be more than" in text
