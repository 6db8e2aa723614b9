"""`agw --help` and `agw dev-idp --help`: every command is listed and each command's help shows its options."""
from __future__ import annotations

import pytest

from agw.cli import main


def help_text(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_lists_every_command(capsys):
    out = help_text(["--help"], capsys)
    for command in ("run", "check", "dev-idp"):
        assert command in out


def test_dev_idp_help_shows_its_options(capsys):
    out = help_text(["dev-idp", "--help"], capsys)
    assert out.startswith("usage: agw dev-idp")
    for option in ("--host", "--port", "--issuer", "--user", "--audience"):
        assert option in out


def test_run_help_shows_its_options(capsys):
    out = help_text(["run", "--help"], capsys)
    for option in ("--file", "--workers", "--admin", "--access-log", "--watch"):
        assert option in out
    assert "With no -f, agw run starts a self-contained demo" in " ".join(out.split())
