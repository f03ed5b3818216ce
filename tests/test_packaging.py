"""The installed package: console script, `python -m`, and screens/styles inside the package."""

import importlib.util
import site
import subprocess
import sys
from pathlib import Path
from typing import Any

import ecmptui


def test_screens_and_styles_live_inside_the_package() -> None:
    assert importlib.util.find_spec("ecmptui.screens") is not None
    assert importlib.util.find_spec("ecmptui.styles") is not None
    for sp in site.getsitepackages():
        assert not (Path(sp) / "screens").exists(), f"top-level screens in {sp}"
        assert not (Path(sp) / "styles").exists(), f"top-level styles in {sp}"


def test_python_m_and_console_script_agree(tmp_path: Path) -> None:
    by_module = subprocess.run(
        [sys.executable, "-m", "ecmptui", "--version"], cwd=tmp_path, capture_output=True, text=True
    )
    script = Path(sys.executable).with_name("ecmptui")
    by_script = subprocess.run(
        [str(script), "--version"], cwd=tmp_path, capture_output=True, text=True
    )
    assert by_module.returncode == 0 and by_script.returncode == 0
    assert by_module.stdout.strip() == by_script.stdout.strip() == f"ecmptui {ecmptui.__version__}"


def test_unknown_subcommand_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ecmptui", "frobnicate"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "invalid choice" in proc.stderr and "Traceback" not in proc.stderr


def test_the_headless_commands_never_load_textual(tmp_path: Path) -> None:
    """The core is usable without the TUI: the CLI, its headless commands' modules and the
    drills import neither Textual nor the screens."""
    code = (
        "import sys\n"
        "import ecmptui.cli as cli\n"
        "cli.build_parser().parse_args(['status'])\n"
        "import ecmptui.deployment.status, ecmptui.deployment.provision\n"
        "import ecmptui.deployment.operate, ecmptui.deployment.static\n"
        "import ecmptui.traffic.drill, ecmptui.traffic.probe, ecmptui.cockpit\n"
        "import ecmptui.lab.control, ecmptui.serve.ssh, ecmptui.serve.feed\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'textual'\n"
        "             or m.startswith('ecmptui.screens') or m == 'ecmptui.app')\n"
        "print(','.join(bad))\n"
    )
    assert loaded(code, tmp_path) == ""


def loaded(code: str, cwd: Any) -> str:
    """What `code`, run in a fresh interpreter, prints about the modules it loaded."""
    proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_the_dashboard_loads_no_network_client_library(tmp_path: Path) -> None:
    """The dashboard (and a served session's app) starts without asyncssh, packet-python,
    requests or httpx: they load when first used, which keeps start-up and memory small."""
    code = (
        "import sys\n"
        "import ecmptui.cli, ecmptui.app, ecmptui.serve.client\n"
        "heavy = {'asyncssh', 'packet', 'requests', 'httpx'}\n"
        "print(','.join(sorted({m.split('.')[0] for m in sys.modules} & heavy)))\n"
    )
    assert loaded(code, tmp_path) == ""


def test_lab_image_prune_removes_only_stale_images(tmp_path: Path) -> None:
    from ecmptui.lab import image

    current = tmp_path / image.image("server").path.name
    stale = [
        tmp_path / "debian12-server-0123456789ab",
        tmp_path / "debian12-plain-aaaaaaaaaaaa.building-123",
    ]
    unrelated = tmp_path / "something-else"
    for d in (current, *stale, unrelated):
        (d / "rootfs").mkdir(parents=True)
    proc = subprocess.run(
        [sys.executable, "-m", "ecmptui", "lab", "image", "--prune"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "ECMPTUI_IMAGE_ROOT": str(tmp_path)},
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(proc.stdout.split()) == sorted(["removed", "removed", *map(str, stale)])
    assert current.exists() and unrelated.exists()
    assert not any(p.exists() for p in stale)


def test_every_package_of_the_checkout_is_installed() -> None:
    """A new folder under ecmptui/ that pyproject's package list forgets would be missing
    from a user's (non-editable) install while the checkout works."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    listed = set(
        tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    import os

    found = {  # screens/ and styles/ are linked in: follow the links
        ".".join(Path(d).relative_to(root).parts)
        for d, _, files in os.walk(root / "ecmptui", followlinks=True)
        if "__init__.py" in files
    }
    assert found == listed
    for name in found:  # and the installed package has each of them
        assert importlib.util.find_spec(name) is not None, name
