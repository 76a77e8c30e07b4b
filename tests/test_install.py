"""`pip install .` (not editable) gives a mailflow that works from any folder: the wheel ships
the templates and the migrations. Built once per run, installed into a fresh venv, and the
loop run there from a folder that is not the checkout; plus the council's own templates.

Building needs setuptools>=68 (from the venv, or PyPI through pip's build isolation): where it
cannot be had the wheel tests are skipped with the reason, and under CI=true they fail."""

from __future__ import annotations

import os
import shutil
import signal
import smtplib
import sqlite3
import subprocess
import sys
import sysconfig
import zipfile
from email.message import EmailMessage
from importlib.metadata import version
from pathlib import Path

import pytest

from mailflow import settings
from mailflow.app import App
from tests.conftest import CI, COUNCIL, ROOT, run_cli
from tests.mail import CASEWORK, JANE, outlook_forward, read_sent, wire
from tests.test_serve import free_port, listening, wait_for

NOW = "2026-11-23T10:00:00+00:00"  # a Monday in working hours
OWN_ACK = "Subject: Your case {{ case.reference }} is with us\nWe have your case.\n"


def council(folder: Path, extra: str = "") -> Path:
    """A council config in `folder`, its database and maildir beside it (relative paths)."""
    folder.mkdir(parents=True, exist_ok=True)
    text = COUNCIL.format(db_url="sqlite:///mailflow.db")
    path = folder / "mailflow.toml"
    path.write_text(text.replace('secret = "test-secret"\n', f'secret = "test-secret"\n{extra}'))
    return path


def own_templates(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "acknowledgement.txt").write_text(OWN_ACK)


# -- the [council] templates key (in this process, no wheel) ------------------------------


def test_council_templates_are_searched_first(tmp_path: Path) -> None:
    own_templates(tmp_path / "own")
    app = App(settings.load(council(tmp_path, 'templates = "own"\n')))
    assert app.settings.templates_dir == tmp_path / "own"
    assert app.templates.get_template("acknowledgement.txt").filename == str(
        tmp_path / "own" / "acknowledgement.txt")
    ack = app.templates.get_template("acknowledgement.txt").render(case={"reference": "CW-1"})
    assert ack.startswith("Subject: Your case CW-1 is with us")
    # What the council does not override comes from the shipped folder.
    shipped = Path(app.templates.get_template("request.txt").filename or "")
    assert shipped.parent != tmp_path / "own" and shipped.name == "request.txt"


def test_templates_dir_is_still_read(tmp_path: Path) -> None:
    own_templates(tmp_path / "own")
    path = council(tmp_path)
    path.write_text(path.read_text() + '\n[templates]\ndir = "own"\n')
    assert settings.load(path).templates_dir == tmp_path / "own"
    path.write_text(path.read_text().replace("[council]\n", '[council]\ntemplates = "own"\n'))
    with pytest.raises(settings.ConfigError) as err:
        settings.load(path)
    assert err.value.problems == [
        "templates.dir: the older name of council.templates; set only council.templates"]


def test_a_missing_template_folder_is_a_config_error(tmp_path: Path) -> None:
    path = council(tmp_path, 'templates = "ours"\n')
    done = run_cli(path, "check")
    assert done.returncode == 78
    assert done.stderr.strip() == f"{path}: council.templates: no folder {tmp_path / 'ours'}"


# -- the wheel, installed into a fresh venv -----------------------------------------------


def _unavailable(reason: str) -> None:
    if CI:
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=600,
                          cwd=cwd, env=_clean_env())


def _clean_env() -> dict[str, str]:
    drop = ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items()
            if not k.startswith("MAILFLOW_") and k not in drop}


def build_wheel(out: Path) -> Path:
    """The wheel from a copy of the sources pip needs, so the checkout gets no build/ folder."""
    src = out / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src)
    junk = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("mailflow", "templates", "alembic"):
        shutil.copytree(ROOT / name, src / name, ignore=junk)
    # Offline when this venv has a new enough setuptools; else pip fetches one to build with.
    offline = ["--no-build-isolation"] if int(version("setuptools").split(".")[0]) >= 68 else []
    done = _run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *offline,
                "-w", out / "dist", src)
    if done.returncode != 0:
        missing = [ln.strip() for ln in done.stderr.splitlines()
                   if "No matching distribution found for setuptools" in ln]
        if missing:
            _unavailable(f"cannot build the wheel, no setuptools>=68 here or from PyPI: "
                         f"{missing[0]}")
        pytest.fail(f"the wheel does not build:\n{done.stderr}")
    [wheel] = (out / "dist").glob("mailflow-*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel. Its dependencies come from this test venv through a
    .pth line (what --system-site-packages does for a system Python), which does not run
    this venv's own .pth files, so the editable mailflow of the checkout is not seen."""
    root = tmp_path_factory.mktemp("venv")
    done = _run(sys.executable, "-m", "venv", "--without-pip", root)
    if done.returncode != 0:
        _unavailable(f"cannot make a venv: {done.stderr.strip()}")
    python = root / "bin" / "python"
    site = Path(_run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])")
                .stdout.strip())
    ours = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "deps.pth").write_text("".join(f"{p}\n" for p in ours))
    done = _run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
                "--no-index", wheel)
    assert done.returncode == 0, done.stderr
    return root


def mailflow(venv: Path, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed `mailflow` command, run from the config's folder (not the checkout)."""
    return _run(venv / "bin" / "mailflow", "--config", config, *args, cwd=config.parent)


def test_the_wheel_holds_every_module_and_the_shipped_folders(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "mailflow").rglob("*.py")}
    assert modules - names == set(), "add the missing packages to pyproject.toml"
    shipped = {f"mailflow/_templates/{p.relative_to(ROOT / 'templates').as_posix()}"
               for p in (ROOT / "templates").rglob("*") if p.is_file()}  # web/ too
    shipped |= {f"mailflow/_alembic/{p.relative_to(ROOT / 'alembic').as_posix()}"
                for p in (ROOT / "alembic").rglob("*") if p.is_file() and p.suffix != ".pyc"}
    assert shipped - names == set()


def test_the_loop_runs_from_the_installed_wheel(venv: Path, tmp_path: Path) -> None:
    where = _run(venv / "bin" / "python", "-c",
                 "import mailflow.resources as r; print(r.__file__, r.TEMPLATES, r.MIGRATIONS)",
                 cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    assert all(Path(p).is_relative_to(venv) for p in where.stdout.split()), where.stdout

    config = council(tmp_path / "council", 'templates = "own"\n')
    own_templates(config.parent / "own")
    forward = tmp_path / "forward.eml"
    forward.write_bytes(wire(outlook_forward()))
    for args in (("init",), ("ingest", str(forward), "--now", NOW, "--json"),
                 ("tick", "--now", NOW)):
        done = mailflow(venv, config, *args)
        assert done.returncode == 0, f"mailflow {args[0]}: {done.stderr}"

    sent = {m["X-Mailflow-Kind"]: m for m in read_sent(config.parent / "sent")}
    assert {"acknowledgement", "request"} <= set(sent)  # a Monday at 10: digests too
    # The council's own acknowledgement; the request from the templates the wheel ships.
    assert sent["acknowledgement"]["Subject"] == "Your case CW-2026-00001 is with us"
    assert sent["request"]["Subject"].startswith("[CW-2026-00001]")
    assert sent["request"].get_body(("html",)) is not None


def test_serve_runs_from_the_installed_wheel(venv: Path, tmp_path: Path) -> None:
    config = council(tmp_path / "council")
    assert mailflow(venv, config, "init").returncode == 0
    port = free_port()
    proc = subprocess.Popen([venv / "bin" / "mailflow", "--config", config, "serve",
                             "--port", str(port)], cwd=config.parent, env=_clean_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        wait_for("serve to listen", lambda: listening(port, proc))
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            assert smtp.sendmail(JANE, [CASEWORK], wire(outlook_forward())) == {}
        # serve runs on the wall clock and sends its own outbox every second ([scheduler]).
        ack = wait_for("the acknowledgement", lambda: _sent(config.parent / "sent"))
        assert isinstance(ack, EmailMessage) and "Case opened" in str(ack["Subject"])
        with sqlite3.connect(config.parent / "mailflow.db") as db:
            assert db.execute("SELECT count(*) FROM 'case'").fetchone() == (1,)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _sent(folder: Path) -> EmailMessage | None:
    return next((m for m in read_sent(folder) if m["X-Mailflow-Kind"] == "acknowledgement"),
                None)
