"""Frozen golden values of every pure loss (regression guard; regenerate only on purpose, see the script)."""
import importlib.util
import json
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).with_name("golden")


def _load_script():
    spec = importlib.util.spec_from_file_location("kdlib_losses_golden", GOLDEN_DIR / "losses_golden.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_losses_match_frozen_golden_values():
    frozen = json.loads((GOLDEN_DIR / "losses.json").read_text())["values"]
    now = _load_script().compute()
    assert sorted(now) == sorted(frozen)
    for name, value in frozen.items():
        assert now[name] == pytest.approx(value, rel=1e-5, abs=1e-8), name
