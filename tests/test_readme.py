"""The README and docs/ cannot go stale silently.

* The quick-study table in README.md equals the committed results (results/quick/summary.csv and the teacher's
  metrics.json): every mIoU, pixel accuracy, iteration count and model width.
* The complexity table in docs/models-and-data.md equals the stored table that ``kdlib info`` prints.
* Every relative link and image in README.md and docs/*.md points to a file of the repository (not a git-ignored
  one), and every ``#anchor`` into a Markdown file names one of its headings.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


# --------------------------------------------------------------------------------------------------- Markdown helpers
def _without_code_blocks(text: str) -> List[str]:
    """The lines of ``text`` outside fenced code blocks (fence lines dropped)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def _cells(line: str) -> List[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _table_after_header(text: str, header_start: str) -> List[Dict[str, str]]:
    """The rows (dicts keyed by the header's cells) of the first table whose header line starts with
    ``header_start``."""
    lines = _without_code_blocks(text)
    starts = [i for i, line in enumerate(lines) if line.startswith(header_start)]
    assert starts, f"no table whose header starts with {header_start!r}"
    header = _cells(lines[starts[0]])
    assert set(lines[starts[0] + 1].replace("|", "").replace(" ", "")) <= set("-:"), "header without separator"
    rows = []
    for line in lines[starts[0] + 2:]:
        if not line.startswith("|"):
            break
        cells = _cells(line)
        assert len(cells) == len(header), line
        rows.append(dict(zip(header, cells)))
    return rows


# ------------------------------------------------------------------------------------------------ the quick study table
def _summary() -> Dict[str, Dict[str, str]]:
    with open(ROOT / "results" / "quick" / "summary.csv", newline="") as f:
        return {row["run"]: row for row in csv.DictReader(f)}


def test_readme_quick_table_equals_the_committed_summary():
    summary = _summary()
    rows = _table_after_header(README.read_text(), "| run | model |")
    assert [r["run"] for r in rows] == list(summary), "the README table names other runs than summary.csv"
    for row in rows:
        committed = summary[row["run"]]
        where = f"README quick table, run {row['run']!r}"
        assert row["mIoU (%)"] == f"{float(committed['miou_pct']):.2f}", where   # summary.csv is in percent
        assert row["pixel acc. (%)"] == f"{float(committed['pixel_acc_pct']):.2f}", where
        assert int(row["iterations"].replace(",", "")) == int(committed["iterations"]), where
        width = re.search(r"×\s*([0-9.]+)", row["model"])
        assert width and float(width.group(1)) == float(committed["width"]), where
        assert row["model"].lower().startswith("deeplabv3-r18") == (committed["model"] == "deeplabv3_resnet18"), where


def test_quick_summary_teacher_equals_its_metrics_json():
    """The teacher row of summary.csv (which the README shows) is the committed teacher run's own metrics."""
    teacher = _summary()["teacher"]
    metrics = json.loads((ROOT / "results" / "quick" / "teacher" / "metrics.json").read_text())
    assert float(teacher["miou_pct"]) == pytest.approx(100 * metrics["miou"], abs=1e-10)
    assert float(teacher["pixel_acc_pct"]) == pytest.approx(100 * metrics["pixel_acc"], abs=1e-10)
    assert teacher["git_commit"] and teacher["seed"] == "0" and teacher["started"].startswith("20")
    assert int(teacher["iterations"]) == metrics["iterations"]


# ------------------------------------------------------------------------------------------------ the complexity table
_MODEL_NAMES = {"DeepLabV3-R101": "deeplabv3_resnet101", "DeepLabV3-R18": "deeplabv3_resnet18",
                "PSPNet-R18": "pspnet_resnet18", "DeepLabV3-MBV2": "deeplabv3_mobilenetv2"}


def _ours_and_paper(cell: str):
    """``'61.12M (61.1M)'`` -> ``('61.12', '61.1')``; ``'(–)'`` or no parentheses -> paper ``None``."""
    match = re.fullmatch(r"([0-9.]+)[MG](?:\s*\(([0-9.]+)[MG]\s*\)|\s*\(–\))?", cell)
    assert match, cell
    return match.group(1), match.group(2)


def test_models_page_complexity_table_equals_the_stored_table():
    stored = json.loads((ROOT / "kdlib" / "models" / "complexity_table.json").read_text())
    entry = {(e["setting"], e["model"]): e for e in stored}
    rows = _table_after_header((ROOT / "docs" / "models-and-data.md").read_text(), "| model | params |")
    assert {r["model"] for r in rows} == set(_MODEL_NAMES)
    for row in rows:
        city, camvid = entry[("cityscapes", _MODEL_NAMES[row["model"]])], entry[("camvid", _MODEL_NAMES[row["model"]])]
        params, paper_params = _ours_and_paper(row["params"])
        assert params == f"{city['params'] / 1e6:.2f}", row
        assert float(paper_params) == city["paper_params_M"], row
        flops, paper_flops = _ours_and_paper(row["FLOPs 1024×2048, K=19 (paper)"])
        assert flops == f"{city['flops'] / 1e9:.2f}", row
        assert float(paper_flops) == city["paper_flops_G"], row
        assert _ours_and_paper(row["true MACs"])[0] == f"{city['macs'] / 1e9:.2f}", row
        flops, paper_flops = _ours_and_paper(row["FLOPs 360×480, K=11 (paper)"])
        assert flops == f"{camvid['flops'] / 1e9:.2f}", row
        assert (None if paper_flops is None else float(paper_flops)) == camvid["paper_flops_G"], row


# --------------------------------------------------------------------------------------------------------------- links
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _markdown_files() -> List[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def _relative_links(path: Path) -> List[str]:
    text = "\n".join(_without_code_blocks(path.read_text()))
    text = re.sub(r"`[^`\n]*`", "x", text)                    # code spans hold no links
    return [t for t in _LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t, flags=re.I)]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: its text lower-cased, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # a link in a heading keeps its text
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set:
    anchors, seen = set(), {}
    for line in _without_code_blocks(path.read_text()):
        match = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = _slug(match.group(1))
            count = seen.get(slug, 0)
            seen[slug] = count + 1
            anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_slugs_follow_github():
    assert _slug("What `make quick` produces") == "what-make-quick-produces"
    assert _slug("Loss weights and tensor sizes: `weight_scaling`") == "loss-weights-and-tensor-sizes-weight_scaling"
    assert _slug("The why study (in progress)") == "the-why-study-in-progress"


def _ignored_by_git(paths: List[Path]) -> set:
    if not paths or shutil.which("git") is None or not (ROOT / ".git").exists():
        return set()
    rel = [str(p.relative_to(ROOT)) for p in paths]        # ROOT and the targets are resolved paths
    out = subprocess.run(["git", "check-ignore", "--stdin"], cwd=ROOT, input="\n".join(rel),
                         capture_output=True, text=True).stdout
    return set(out.split())


@pytest.mark.parametrize("page", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_to_files_of_the_repository(page):
    links = _relative_links(page)
    problems, targets = [], []
    for link in links:
        target, _, anchor = link.partition("#")
        resolved = (page.parent / target).resolve() if target else page
        if ROOT not in (resolved, *resolved.parents):
            problems.append(f"{link}: outside the repository")
            continue
        if not resolved.exists():
            problems.append(f"{link}: {resolved.relative_to(ROOT)} does not exist")
            continue
        targets.append(resolved)
        if anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            problems.append(f"{link}: no heading #{anchor} in {resolved.relative_to(ROOT)}")
    for ignored in _ignored_by_git(targets):
        problems.append(f"{ignored}: ignored by git, so not part of a clone")
    assert not problems, f"{page.relative_to(ROOT)}:\n" + "\n".join(problems)


def test_readme_links_the_docs_pages():
    """The README's "Where next" list reaches every page of docs/."""
    linked = {(ROOT / t.partition("#")[0]).resolve() for t in _relative_links(README)}
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.resolve() not in linked]
    assert not missing, f"README.md does not link docs/{missing}"
