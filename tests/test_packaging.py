"""Packaging: pyproject.toml and environment.yml name the same dependencies; torch is pinned."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_environment_yml_matches_pyproject():
    project = _pyproject()
    wanted = {r.replace(" ", "") for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {r.replace(" ", "") for r in pip_section if not r.startswith("-e")}
    assert listed == wanted
    assert "python=3.11" in env["dependencies"]
    assert "-e ." in pip_section


def test_torch_is_pinned_exactly():
    deps = {_name(r): r for r in _pyproject()["dependencies"]}
    assert deps["torch"].replace(" ", "") == "torch==2.14.1"
    assert deps["torchvision"].replace(" ", "") == "torchvision==0.29.1"


def test_readme_names_the_two_commands_and_ci_calls_make_test():
    readme = (ROOT / "README.md").read_text()
    assert "make quick" in readme and "make test" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M)


def test_top_level_layout_is_tracked():
    import subprocess

    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    if not tracked:  # not a git checkout (e.g. an sdist): check the folders exist
        tracked = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*") if p.is_file()]
    tops = {path.split("/")[0] for path in tracked}
    for name in ("kdlib", "notebooks", "results", "figures", "tests", "benchmarks", "environment.yml",
                 "pyproject.toml", "README.md", "Makefile", ".ci"):
        assert name in tops, f"{name} missing from the repository"


def test_makefile_quick_runs_the_quick_study():
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^quick:.*\n\t\$\(BIN\)/kdlib quick\b", makefile, flags=re.M)
