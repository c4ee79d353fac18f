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
    wanted = {r.replace(" ", "") for r in project["dependencies"]}   # the runtime install; tests add [test]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    listed = {r.replace(" ", "") for r in pip_section if not r.startswith("-e")}
    assert listed == wanted
    assert "python=3.11" in env["dependencies"]
    assert "-e ." in pip_section


def _constraints() -> dict:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return {_name(line): line.split("==", 1)[1] for line in lines if "==" in line and not line.startswith("#")}


def test_ranges_in_pyproject_exact_versions_in_constraints_used_by_make_and_ci():
    deps = {_name(r): r.replace(" ", "") for r in _pyproject()["dependencies"]}
    assert deps["torch"] == "torch>=2.3,<3" and deps["torchvision"] == "torchvision>=0.18"
    assert not any("==" in r for r in deps.values())     # exact versions live in constraints.txt only
    pins = _constraints()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    test_deps = [_name(r) for r in _pyproject()["optional-dependencies"]["test"]]
    assert set(deps) | set(test_deps) <= set(pins), set(deps) | set(test_deps) - set(pins)
    assert "-c constraints.txt" in (ROOT / "Makefile").read_text()


def test_what_kdlib_imports_is_declared():
    """Every third-party module imported under kdlib/ is a declared dependency (scipy was once missing)."""
    import ast
    import sys

    declared = {_name(r) for r in _pyproject()["dependencies"]} | {"yaml", "pil", "sklearn", "jupyter-client",
                                                                   "traitlets", "ipython", "nbformat", "submitit"}
    aliases = {"yaml": "pyyaml", "PIL": "pillow", "sklearn": "scikit-learn", "IPython": "ipython",
               "jupyter_client": "jupyter-client"}
    imported = set()
    for path in (ROOT / "kdlib").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else [])
            imported.update(n.split(".")[0] for n in names)
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m not in ("kdlib", "__future__")}
    missing = {m for m in third_party if aliases.get(m, m).lower().replace("_", "-") not in declared}
    assert not missing, missing


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
