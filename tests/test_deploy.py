"""deploy/: the systemd unit is as hardened as we say (systemd-analyze security below 2.0),
and every mailflow command the units and examples run exists with those arguments."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from mailflow import cli
from tests.conftest import CI, ROOT

DEPLOY = ROOT / "deploy"


def test_the_serve_unit_scores_below_2(tmp_path: Path) -> None:
    if not shutil.which("systemd-analyze"):
        if CI:
            pytest.fail("CI=true but systemd-analyze is not installed")
        pytest.skip("systemd-analyze is not installed")
    done = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager",
                           str(DEPLOY / "systemd" / "mailflow.service")],
                          capture_output=True, text=True)
    found = re.search(r"Overall exposure level for mailflow\.service: ([\d.]+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) < 2.0


def _commands() -> list[list[str]]:
    """The argument lists after `mailflow` in every unit and example."""
    out = []
    for path in DEPLOY.rglob("*"):
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0] if not line.lstrip().startswith("ExecStart") else line
            m = re.search(r"bin/mailflow (.+?)(?:'|$)", line)
            if m:
                args = shlex.split(m.group(1).replace("$(date +%%a)", "Mon"))
                out.append(args)
    return out


def test_every_command_in_deploy_parses() -> None:
    commands = _commands()
    assert {"serve", "init", "tick", "ingest", "backup"} <= {
        next(a for a in c if not a.startswith("-") and not a.startswith("/")) for c in commands}
    for args in commands:
        cli.parser().parse_args(args)  # SystemExit(64) on anything it does not know
