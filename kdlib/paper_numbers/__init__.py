"""Numbers reported by the papers, kept as data (CSV files beside this module).

``complexity.csv``: Params / FLOPs of CIRKD Tables 1-3 (FLOPs are the papers' multiply-accumulate
counts; ``reproducible=no`` marks the VOC Table 3 FLOPs, which no input size reproduces, SPEC.md §2.7).
"""
from __future__ import annotations

import csv
from importlib import resources
from typing import Dict, List


def load(name: str) -> List[Dict[str, str]]:
    """Rows of ``kdlib/paper_numbers/<name>.csv`` as dicts of strings."""
    text = resources.files(__name__).joinpath(f"{name}.csv").read_text()
    return list(csv.DictReader(text.splitlines()))
