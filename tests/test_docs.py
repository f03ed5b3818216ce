"""The README's commands are the ones CI runs."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command() -> None:
    ci_lines = [
        ln.strip()
        for ln in (ROOT / ".ci/run").read_text().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    command = ci_lines[-1]
    readme = (ROOT / "README.md").read_text()
    assert command in readme.splitlines()
    assert "bash .ci/setup --test &&" in command  # with what only the tests use


def test_readme_names_every_lab_command() -> None:
    readme = (ROOT / "README.md").read_text()
    for cmd in ("ecmptui lab up", "ecmptui lab status", "ecmptui lab down"):
        assert cmd in readme


def _commands(path: Path) -> list[list[str]]:
    """Every `ecmptui ...` command in the fenced code blocks of a document."""
    import shlex

    out, fenced = [], False
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
            continue
        text = line.strip().removeprefix("$ ")
        if fenced and (text == "ecmptui" or text.startswith("ecmptui ")):  # not output
            for sep in ("|", ">", "&&", "&", "#"):
                text = text.split(sep)[0]
            out.append(shlex.split(text)[1:])
    return out


def test_every_documented_command_parses() -> None:
    from ecmptui.cli import build_parser

    docs = [ROOT / "docs" / "runbook.md", ROOT / "docs" / "flows.md", ROOT / "README.md"]
    commands = [c for d in docs for c in _commands(d)]
    assert len(commands) >= 20
    for argv in commands:
        try:
            build_parser().parse_args(argv)
        except SystemExit as exc:
            raise AssertionError(f"documented command does not parse: ecmptui {argv}") from exc


def test_every_subcommand_is_in_the_readme_reference() -> None:
    from ecmptui.cli import build_parser

    readme = (ROOT / "README.md").read_text()
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert isinstance(sub.choices, dict)
    for name in sub.choices:
        assert f"`ecmptui {name}" in readme, name
