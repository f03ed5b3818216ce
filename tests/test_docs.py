"""The README's commands are the ones CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    ci_lines = [ln.strip() for ln in (ROOT / ".ci/run").read_text().splitlines()
                if ln.strip() and not ln.lstrip().startswith("#")]
    command = ci_lines[-1]
    readme = (ROOT / "README.md").read_text()
    assert command in readme.splitlines()
    assert "bash .ci/setup &&" in command


def test_readme_names_every_lab_command():
    readme = (ROOT / "README.md").read_text()
    for cmd in ("ecmptui lab up", "ecmptui lab status", "ecmptui lab down"):
        assert cmd in readme
