"""The accuracy table of issue 12, scored on the committed corpus through `inspect --json`:
the forward rows must meet their targets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "corpus_accuracy.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300, check=False)


def test_forward_figures_meet_the_targets() -> None:
    done = _run("--json")
    assert done.returncode == 0, done.stderr
    rows = {r["key"]: r for r in json.loads(done.stdout)}
    assert rows["forward_sender_en"]["total"] >= 40
    assert rows["forward_sender_all"]["total"] >= 150
    assert rows["forward_sender_en"]["share"] >= 0.97, rows["forward_sender_en"]["misses"]
    assert rows["forward_sender_all"]["share"] >= 0.92, rows["forward_sender_all"]["misses"]
    assert rows["is_forward"]["share"] >= 0.97, rows["is_forward"]["misses"]
    # Look-alikes are scored too: a corpus of forwards only could not fail "is it a forward?".
    assert rows["is_forward"]["total"] - rows["forward_sender_all"]["total"] >= 15


def test_the_table_names_every_row() -> None:
    done = _run()
    assert done.returncode == 0, done.stderr
    for what in ("original sender of an English-language forward",
                 "original sender of a forward, all languages", "all fields right",
                 '"is this a forward?" answered right', "visible text of a reply, exactly",
                 "delivery report recognised as a bounce", "failed address of a bounce"):
        assert what in done.stdout


def test_a_missing_folder_is_not_applicable(tmp_path: Path) -> None:
    done = _run("--json", "--corpus", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert all(r["share"] is None and r["total"] == 0 for r in json.loads(done.stdout))
    assert "n/a" in _run("--corpus", str(tmp_path)).stdout
