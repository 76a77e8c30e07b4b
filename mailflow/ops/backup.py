"""`mailflow backup --out FILE`: a consistent copy of everything mailflow keeps (cases, raw
mail, attachments, outbox, audit trail: all in the database) while it runs.

SQLite: the online backup API copies the pages under a read transaction, so a running
`serve` goes on writing and the copy is one moment's state. PostgreSQL: `pg_dump` (custom
format, for `pg_restore`). Either way the copy is written beside FILE and renamed, so FILE is
never half a backup."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from mailflow import db


class BackupError(Exception):
    pass


def backup(url: str, out: Path) -> str:
    """Write the backup to `out`; returns how (for the one line the CLI prints)."""
    url = db.normalise_url(url)
    out = out.resolve()
    if not out.parent.is_dir():
        raise BackupError(f"{out.parent}: no such folder")
    tmp = out.with_name(f".{out.name}.partial")
    try:
        if url.startswith("sqlite:///"):
            how = _sqlite(Path(url.removeprefix("sqlite:///")), tmp)
        elif url.startswith("postgresql"):
            how = _postgresql(url, tmp)
        else:
            raise BackupError(f"cannot back up {url.split(':', 1)[0]} databases")
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return how


def _sqlite(path: Path, tmp: Path) -> str:
    if not path.exists():
        raise BackupError(f"{path}: no database here (run `mailflow init`)")
    src = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    dst = sqlite3.connect(tmp)
    try:
        with dst:
            src.backup(dst, pages=1024)  # in steps: writers wait for a step, not the whole copy
        check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"the copy failed its integrity check: {check}")
    finally:
        dst.close()
        src.close()
    return "SQLite online backup"


def _schemas(url: str) -> list[str]:
    """The search_path the URL's `options` set, if any (libpq's -c search_path=...)."""
    for options in parse_qs(urlsplit(url).query).get("options", []):
        found = re.search(r"-c\s*search_path=([^\s]+)", options)
        if found:
            return [n.strip().strip('"') for n in found.group(1).split(",") if n.strip()]
    return []


def _postgresql(url: str, tmp: Path) -> str:
    pg_dump = shutil.which("pg_dump")
    if not pg_dump:
        raise BackupError("pg_dump is not installed (apt-get install postgresql-client)")
    libpq_url = url.replace("postgresql+psycopg://", "postgresql://", 1)
    # A council kept in its own schema of a shared database (`options=-csearch_path=NAME`)
    # is dumped alone: pg_dump would otherwise take every schema, the other councils' too.
    only = [f"--schema={name}" for name in _schemas(libpq_url)]
    done = subprocess.run([pg_dump, "--format=custom", "--no-owner", f"--file={tmp}", *only,
                           f"--dbname={libpq_url}"], capture_output=True, text=True)
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {done.stderr.strip().splitlines()[-1:]}")
    return "pg_dump --format=custom (restore with pg_restore)"
