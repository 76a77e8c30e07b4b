"""The config file: the documented shape loads; a bad file names the file, entry and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailflow import settings
from tests.conftest import COUNCIL, ROOT, run_cli


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "council.toml"
    p.write_text(text)
    return p


def test_sample_council_is_valid() -> None:
    s = settings.load(ROOT / "config" / "mailflow.toml")
    assert s.council.nation == "SCT"
    assert s.member_for("jane@home.example").email == "jane.smith@council.example"
    # Relative paths resolve against the config file's folder, not the working directory.
    assert s.maildir == (ROOT / "data" / "sent").resolve()
    assert s.database_url == "sqlite:///" + str((ROOT / "data" / "mailflow.db").resolve())


def test_environment_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings.load(write(tmp_path, COUNCIL.format(db_url="sqlite:///x.db")))
    assert s.database_url == f"sqlite:///{tmp_path / 'x.db'}"
    monkeypatch.setenv("MAILFLOW_DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("MAILFLOW_SECRET", "from-env")
    assert s.database_url == "postgresql://u@h/db"
    assert s.secret == "from-env"


def test_config_path_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = write(tmp_path, COUNCIL.format(db_url="sqlite:///x.db"))
    monkeypatch.setenv("MAILFLOW_CONFIG", str(p))
    assert settings.load().path == p.resolve()


def test_every_problem_is_named(tmp_path: Path) -> None:
    bad = (COUNCIL.format(db_url="sqlite:///x.db")
           .replace('nation = "SCT"', 'nation = "XYZ"')
           .replace('ward = "Bathgate"', 'ward = "Bathgat"')
           .replace('email = "tom.brown@council.example"', 'email = "jane@home.example"')
           .replace('contact = "waste@council.example"\n', ""))
    p = write(tmp_path, bad)
    with pytest.raises(settings.ConfigError) as err:
        settings.load(p)
    problems = err.value.problems
    assert "council.nation: unknown nation 'XYZ'; use one of ENG, SCT, WLS, NIR" in problems
    assert "services[2] (Waste).contact: is missing" in problems
    assert "members[2] (Cllr Tom Brown).ward: unknown ward 'Bathgat'" in problems
    assert any(p.startswith("members[2] (Cllr Tom Brown).email: address jane@home.example "
                            "is already used") for p in problems)
    assert str(err.value).startswith(str(p))


def test_bad_config_exits_non_zero_naming_the_field(tmp_path: Path) -> None:
    p = write(tmp_path, COUNCIL.format(db_url="sqlite:///x.db").replace(
        'response_days = 5', 'response_days = "soon"'))
    done = run_cli(p, "check")
    assert done.returncode == 78
    assert f"{p}: services[2] (Waste).response_days:" in done.stderr
    assert done.stdout == ""


def test_unreadable_files(tmp_path: Path) -> None:
    assert run_cli(tmp_path / "missing.toml", "check").stderr.strip().endswith("file not found")
    done = run_cli(write(tmp_path, "[council\n"), "check")
    assert done.returncode == 78 and "not valid TOML" in done.stderr


def test_check_prints_a_summary(tmp_path: Path) -> None:
    done = run_cli(write(tmp_path, COUNCIL.format(db_url="sqlite:///x.db")), "check")
    assert done.returncode == 0, done.stderr
    assert "Test Council" in done.stdout and "members:  2" in done.stdout
    assert "Roads: roads.enquiries@council.example, 10 working days" in done.stdout


def test_web_base_url_is_a_plain_web_address(tmp_path: Path) -> None:
    """It is written into every digest and acknowledgement: http(s), a host, no query."""
    good = COUNCIL.format(db_url="sqlite:///x.db").replace(
        "[web]\n", '[web]\nbase_url = "https://casework.council.example/mailflow/"\n')
    assert settings.load(write(tmp_path, good)).web.base_url == \
        "https://casework.council.example/mailflow/"
    for bad in ("javascript:alert(1)", "casework.council.example", "https://x.example/?a=b",
                "https:///nohost", "https://x.example/\\nX"):
        p = write(tmp_path, COUNCIL.format(db_url="sqlite:///x.db").replace(
            "[web]\n", f'[web]\nbase_url = "{bad}"\n'))
        with pytest.raises(settings.ConfigError) as err:
            settings.load(p)
        assert any(x.startswith("web.base_url: not an http or https address")
                   for x in err.value.problems), (bad, err.value.problems)
