"""The installed package: console script, `python -m`, and screens/styles inside the package."""

import importlib.util
import site
import subprocess
import sys
from pathlib import Path

import ecmptui


def test_screens_and_styles_live_inside_the_package():
    assert importlib.util.find_spec("ecmptui.screens") is not None
    assert importlib.util.find_spec("ecmptui.styles") is not None
    for sp in site.getsitepackages():
        assert not (Path(sp) / "screens").exists(), f"top-level screens in {sp}"
        assert not (Path(sp) / "styles").exists(), f"top-level styles in {sp}"


def test_python_m_and_console_script_agree(tmp_path):
    by_module = subprocess.run([sys.executable, "-m", "ecmptui", "--version"], cwd=tmp_path,
                               capture_output=True, text=True)
    script = Path(sys.executable).with_name("ecmptui")
    by_script = subprocess.run([str(script), "--version"], cwd=tmp_path,
                               capture_output=True, text=True)
    assert by_module.returncode == 0 and by_script.returncode == 0
    assert by_module.stdout.strip() == by_script.stdout.strip() == f"ecmptui {ecmptui.__version__}"


def test_unknown_subcommand_is_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ecmptui", "frobnicate"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "invalid choice" in proc.stderr and "Traceback" not in proc.stderr
