"""A new user's mistakes: each one is one ``kdlib: error: ...`` line and exit status 2, decided before anything
is trained or written (issue 17, "Mistakes that give tracebacks instead of one line")."""
from __future__ import annotations

from pathlib import Path

import pytest

from kdlib.cli import main

REPO = Path(__file__).resolve().parents[1]


def one_line_error(capsys, argv) -> str:
    """Run the CLI; assert exit status 2, one stderr line, nothing on stdout; return the line."""
    try:
        rc = main(argv)
    except SystemExit as exc:   # argparse's own checks (bad list values) exit through OneLineParser.error
        rc = exc.code
    out, err = capsys.readouterr()
    assert rc == 2, (argv, out, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("kdlib: error: "), err
    assert "Traceback" not in err and out == ""
    return lines[0]


@pytest.mark.parametrize("override, expected", [
    ("iterations=abc", "iterations must be an integer, got 'abc'"),
    ("crop_size=64", "crop_size must be a list of 2 integers, e.g. [64,128], got 64"),
    ("crop_size=[64,0]", "crop_size must be two positive integers"),
    ("lr=fast", "lr must be a number, got 'fast'"),
    ("batch_size=2.5", "batch_size must be an integer, got 2.5"),
    ("aux=maybe", "aux must be true or false, got 'maybe'"),
    ("methd=kd", "unknown config field(s): methd (did you mean method?); `kdlib train --help` lists the fields"),
    ("student=resnet18x", "unknown model 'resnet18x'"),
    ("method=cirdk", "unknown method 'cirdk'; did you mean cirkd?"),
])
def test_train_print_config_validates_every_field(capsys, override, expected):
    line = one_line_error(capsys, ["train", "--preset", "quick", override, "--print-config"])
    assert expected in line


def test_unknown_and_malformed_method_options(capsys):
    line = one_line_error(capsys, ["train", "--preset", "quick", "method=kd", "method_options.temprature=4",
                                   "--print-config"])
    assert "kd has no option(s) temprature (did you mean temperature?)" in line
    line = one_line_error(capsys, ["train", "--preset", "quick", "method=kd", "method_options=4", "--print-config"])
    assert "method_options must be a mapping" in line and "got 4" in line


def test_malformed_config_file(capsys, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: [0.1,\n  momentum")
    line = one_line_error(capsys, ["train", "--preset", "quick", "--config", str(bad), "--print-config"])
    assert f"{bad} is not valid YAML (line 2" in line
    line = one_line_error(capsys, ["train", "--config", str(tmp_path / "missing.yaml"), "--print-config"])
    assert "missing.yaml not found" in line


def test_info_size_must_be_h_x_w(capsys):
    assert "size must be HxW, e.g. 128x256, got '512'" in one_line_error(capsys, ["info", "--size", "512"])


def test_grid_refuses_a_parameter_typo_and_bad_seeds_before_running_a_cell(capsys, tmp_path):
    notebook = str(REPO / "notebooks" / "train_config.py")
    line = one_line_error(capsys, ["grid", notebook, "--param", "methd=kd", "--results-root", str(tmp_path)])
    assert "has no parameter 'methd' (did you mean method?)" in line
    line = one_line_error(capsys, ["grid", notebook, "--seeds", "0,x", "--results-root", str(tmp_path)])
    assert "--seeds takes integers separated by spaces or commas" in line
    assert not any(tmp_path.iterdir())


def test_dataset_error_names_the_cli_spelling(capsys, tmp_path):
    rc = main(["train", "--preset", "quick", "dataset=cityscapes", f"data_root={tmp_path / 'nowhere'}",
               "iterations=1", f"--run-dir={tmp_path / 'run'}", "--quiet"])
    err = capsys.readouterr().err
    first = err.splitlines()[0]   # the line; the official layout follows it
    assert rc == 2 and "data_root=<folder>" in first and "--data-root" in first and " root=<" not in first
    assert not (tmp_path / "run").exists()


def test_a_teacher_width_the_checkpoint_does_not_have_is_refused(capsys, tmp_path, tiny_data_and_teacher):
    extra, teacher = tiny_data_and_teacher
    args = [a for a in extra.split() if not a.startswith("teacher_width")]
    line = one_line_error(capsys, ["train", "--preset", "quick", *args, "method=kd", f"teacher_checkpoint={teacher}",
                                   "teacher_width=0.25", f"--run-dir={tmp_path / 'run'}", "--quiet"])
    assert "at width 0.125, but teacher_width=0.25 was asked for: set teacher_width=0.125" in line
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def _tree(folder: Path) -> set:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts
            and ".ipynb_checkpoints" not in p.parts}


def test_a_notebook_started_in_notebooks_finds_the_default_teacher_and_writes_nothing_there(tmp_path,
                                                                                            tiny_data_and_teacher):
    """JupyterLab starts the kernel in notebooks/: the notebook still resolves runs/quick/teacher (installed from
    the committed results/quick/teacher in a fresh clone) against the project root, and writes nothing there."""
    import jupytext
    import papermill as pm

    extra, _ = tiny_data_and_teacher
    student_only = " ".join(a for a in extra.split() if not a.startswith("teacher_width"))
    before = _tree(REPO / "notebooks")
    out = tmp_path / "cell"
    nb = jupytext.read(REPO / "notebooks" / "train_config.py")
    pm.execute_notebook(nb, str(tmp_path / "executed.ipynb"), kernel_name="python3", progress_bar=False,
                        cwd=str(REPO / "notebooks"),
                        parameters={"method": "kd", "extra": student_only, "output_dir": str(out)})
    import json

    metrics = json.loads((out / "metrics.json").read_text())
    assert 0.0 <= metrics["miou"] <= 1.0
    config = (out / "run" / "config.yaml").read_text()
    assert "teacher_checkpoint: runs/quick/teacher" in config and (REPO / "runs" / "quick" / "teacher" / "best.pt").is_file()
    assert _tree(REPO / "notebooks") == before


# ------------------------------------------------------------------------------------------- CLI conventions
def test_version_and_global_options_after_the_command(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.startswith("kdlib 0.")
    with pytest.raises(ValueError, match="iterations must be an integer"):   # --debug: the traceback, not a line
        main(["train", "--preset", "quick", "iterations=abc", "--print-config", "--debug"])


def test_list_options_take_spaces_or_commas():
    from kdlib.cli import build_parser

    parser = build_parser()
    for argv in (["--seeds", "0", "1", "2"], ["--seeds", "0,1,2"], ["--seeds", "0,1", "2"]):
        assert parser.parse_args(["grid", "nb.py", *argv]).seeds == [0, 1, 2]
    assert parser.parse_args(["quick", "--methods", "kd,cirkd"]).methods == ["kd", "cirkd"]
    assert parser.parse_args(["quick", "--methods", "kd", "cirkd"]).methods == ["kd", "cirkd"]
    assert parser.parse_args(["quick", "--overwrite"]).fresh is True   # one name per concept, as kdlib train
    assert parser.parse_args(["data", "samples", "--output", "x.png"]).out == "x.png"


def test_help_lists_the_registered_names(capsys):
    for argv in (["--help"], ["train", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = capsys.readouterr().out
        assert "methods:  none (the student alone), afdcd, at, cirkd" in out and "synthetic_streets" in out
        assert "deeplabv3_resnet18" in out and "presets:" in out and "quick" in out


def test_info_reads_its_stored_table_without_importing_torch():
    import subprocess
    import sys

    code = ("import sys, contextlib, io; import kdlib.cli as c\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out: rc = c.main(['info'])\n"
            "print(rc, 'torch' in sys.modules, 'deeplabv3_resnet18' in out.getvalue())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.stdout.split() == ["0", "False", "True"], result.stderr


def test_data_samples_never_overwrites_unless_told(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    figure = tmp_path / "figures" / "synthetic_streets_samples.png"
    figure.parent.mkdir()
    figure.write_bytes(b"the README figure")
    assert main(["data", "samples", "--preset", "tiny", "-n", "2", "--columns", "2"]) == 0
    assert figure.read_bytes() == b"the README figure"
    assert (tmp_path / "figures" / "synthetic_streets_samples-1.png").stat().st_size > 1000
    assert main(["data", "samples", "--preset", "tiny", "-n", "2", "--columns", "2", "--out", str(figure)]) == 0
    assert figure.read_bytes() != b"the README figure"   # told: replaced
