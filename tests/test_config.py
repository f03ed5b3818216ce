"""Settings: TOML + environment + flags, and one-line errors naming file, key and reason."""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import run_cli
from ecmptui import config
from ecmptui.errors import EcmpError


def write(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "empty-config-home"))
    s = config.load(None, env={})  # no file in the (isolated) default place
    assert (s.target, s.lab, s.provision.nodes, s.source) == ("lab", "ecmp", 2, "<defaults>")
    assert s.read_only is None and s.token == ""


def test_file_env_and_flags_in_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        'target = "metal"\n[metal]\nproject_id = "p-1"\n'
        '[provision]\nnodes = 3\nmetro = "da"\nbfd = true\n',
    )
    s = config.load(path, env={"PACKET_AUTH_TOKEN": "tok-alias"}, nodes=5)
    assert (s.target, s.metal.project_id, s.provision.metro) == ("metal", "p-1", "da")
    assert s.provision.nodes == 5 and s.provision.bfd is True
    assert s.token == "tok-alias"
    s2 = config.load(path, env={"METAL_AUTH_TOKEN": "main", "PACKET_AUTH_TOKEN": "alias"})
    assert s2.token == "main"
    assert "main" not in repr(s2)


@pytest.mark.parametrize(
    "text,message",
    [
        ("[provision]\nnodez = 2\n", "provision.nodez: unknown key"),
        ("[provision]\nnodes = 17\n", "provision.nodes: must be 1-16, got 17"),
        ("[provision]\nnodes = 0\n", "provision.nodes: must be 1-16, got 0"),
        ("[provision]\nasn = 4294967295\n", "provision.asn: 4294967295 is not a usable AS number"),
        ('[provision]\nasn = "65000"\n', "provision.asn: expected int, got '65000'"),
        ('[provision]\neip = "203.0.113.300"\n', "provision.eip: '203.0.113.300' is not an IPv4"),
        ('target = "aws"\n', "target: must be one of lab, metal, static, got 'aws'"),
        ('colour = "blue"\n', "colour: unknown key"),
        ("[provision\n", "not valid TOML"),
        ('[provision]\nmd5 = "has space"\n', "provision.md5: must be 1-20 letters or digits"),
    ],
)
def test_invalid_values_name_file_key_and_reason(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(EcmpError) as err:
        config.load(path, env={})
    assert str(err.value).startswith(f"{path}: ")
    assert message in str(err.value)


def test_flag_errors_name_the_command_line(tmp_path: Path) -> None:
    with pytest.raises(EcmpError, match=r"^command line: provision.nodes: must be 1-16"):
        config.load(write(tmp_path, ""), env={}, nodes=40)


def test_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(EcmpError, match="config file not found"):
        config.load(tmp_path / "nope.toml", env={})


def test_cli_reports_config_errors_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[provision]\nnodes = 99\n")
    proc = run_cli("--config", str(path), "provision")
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"ecmptui: error: {path}: provision.nodes: must be 1-16, got 99")


def test_metal_target_without_token_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, 'target = "metal"\n[metal]\nproject_id = "p"\n')
    proc = run_cli(
        "--config", str(path), "status", env={"METAL_AUTH_TOKEN": "", "PACKET_AUTH_TOKEN": ""}
    )
    assert proc.returncode == 2
    assert "no API token: set METAL_AUTH_TOKEN" in proc.stderr


def test_the_environment_beats_the_file_and_every_command_reads_the_file(tmp_path: Path) -> None:
    """Regression (issue 22): a config file's `lab =` beat ECMPTUI_LAB, and `lab` commands
    ignored the file's `lab` altogether."""
    path = write(tmp_path, 'lab = "ecmpq"\n')
    assert config.load(path, env={"ECMPTUI_LAB": "ecmpw"}).lab == "ecmpw"
    assert config.load(path, env={}).lab == "ecmpq"
    env = {k: v for k, v in os.environ.items() if k != "ECMPTUI_LAB"}
    proc = subprocess.run(
        [sys.executable, "-m", "ecmptui", "--config", str(path), "lab", "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        cwd="/",
        timeout=60,
    )
    assert json.loads(proc.stdout)["name"] == "ecmpq", proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "ecmptui", "--config", str(path), "lab", "status", "--json"],
        capture_output=True,
        text=True,
        cwd="/",
        env={**env, "ECMPTUI_LAB": "ecmpw"},
        timeout=60,
    )
    assert json.loads(proc.stdout)["name"] == "ecmpw", proc.stderr


def test_a_drill_without_scenarios_runs_what_the_static_target_allows(tmp_path: Path) -> None:
    """Regression (issue 22): `drill` with no --scenario on a static target was refused."""
    from ecmptui import config
    from ecmptui.targets import open_deployment
    from ecmptui.traffic.drill import Drill

    cfg = tmp_path / "static.toml"
    cfg.write_text(
        'target = "static"\n[static]\neips = ["203.0.113.10"]\n'
        '[[static.nodes]]\nname = "n1"\nhost = "198.51.100.1"\n'
    )
    names = [sc.name for sc, _ in Drill(open_deployment(config.load(cfg, env={}))).plan(None)]
    assert names == ["withdraw", "shutdown", "remove-node", "add-node"]  # no lab faults
