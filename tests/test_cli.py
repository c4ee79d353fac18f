"""CLI: `kdlib info` prints the complexity table (text and JSON); errors are one clear line."""
import json
import subprocess
import sys

from kdlib.cli import main


def test_info_json_reports_paper_and_ours(capsys):
    assert main(["info", "--json", "--models", "deeplabv3_resnet18"]) == 0
    rows = json.loads(capsys.readouterr().out)
    city = next(r for r in rows if r["setting"] == "cityscapes")
    assert city["params"] == 13_607_974
    assert round(city["flops"] / 1e9, 1) == 572.0 == city["paper_flops_G"]
    voc = next(r for r in rows if r["setting"] == "voc")
    assert voc["paper_flops_reproducible"] is False


def test_info_table_is_readable(capsys):
    assert main(["info", "--models", "deeplabv3_mobilenetv2", "--size", "512x1024", "--num-classes", "19"]) == 0
    out = capsys.readouterr().out
    assert "deeplabv3_mobilenetv2" in out and "FLOPs" in out and "true MACs" in out


def test_unknown_model_is_one_line_error(capsys):
    assert main(["info", "--models", "segformer_b9"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("kdlib: error: unknown model 'segformer_b9'") and "\n" not in err


def test_python_dash_m_entry_point_and_help():
    out = subprocess.run([sys.executable, "-m", "kdlib", "--help"], capture_output=True, text=True, check=True)
    assert "info" in out.stdout
