"""A real Dovecot IMAP server for the tests and scripts/bench_imap.py: an unprivileged
instance on 127.0.0.1 and a free port, in its own temporary folder. It starts with one
mailbox in use, `casework`, and 99 more (`casework1`...) for tests that share one server."""

from __future__ import annotations

import copy
import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from imapclient import IMAPClient

CONF = Path(__file__).with_name("dovecot.conf.in")
USER, PASSWORD = "casework", "secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_env() -> dict[str, str]:
    """The server keeps real time even when the suite runs under faketime: its master cleans
    its environment, loses libfaketime's offset, sees time move back a year and stops
    launching logins for three minutes."""
    return {k: v for k, v in os.environ.items()
            if k != "LD_PRELOAD" and not k.startswith("FAKETIME")}


class Dovecot:
    def __init__(self, extra: str = "") -> None:
        """`extra`: more configuration lines (e.g. an `imap_capability` without MOVE)."""
        if not shutil.which("dovecot"):
            raise FileNotFoundError("dovecot is not installed (apt-get install dovecot-imapd)")
        self.user = USER
        self.base = Path(tempfile.mkdtemp(prefix="mailflow-dovecot-"))
        self.base.chmod(0o755)  # the dovecot user must reach mail/ and users
        self.port = free_port()
        root = os.geteuid() == 0
        user = "dovecot" if root else pwd.getpwuid(os.geteuid()).pw_name
        group = "dovecot" if root else grp.getgrgid(os.getegid()).gr_name
        for d in ("run", "mail", "log"):
            (self.base / d).mkdir()
        if root:
            shutil.chown(self.base / "mail", user, group)
        # All made now: Dovecot may not notice a line added to the file in the same second.
        (self.base / "users").write_text("".join(
            f"{USER}{n or ''}:{{PLAIN}}{PASSWORD}\n" for n in range(100)))
        self.conf = self.base / "dovecot.conf"
        self.conf.write_text(CONF.read_text().replace("@BASE@", str(self.base))
                             .replace("@PORT@", str(self.port)).replace("@USER@", user)
                             .replace("@GROUP@", group) + extra + "\n")
        # Not a pipe: the master keeps our stdout and stderr open, and would never close one.
        with (self.base / "log" / "start.log").open("w") as out:
            code = subprocess.call(["dovecot", "-c", str(self.conf)], stdout=out, stderr=out,
                                   env=_server_env())
        if code != 0:
            raise RuntimeError(f"dovecot did not start: {self.log('start.log')}")
        deadline = time.monotonic() + 120  # generous: left as soon as one accepts
        while True:  # the master forks its listeners; wait until one accepts
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"dovecot did not listen: {self.log()}") from None
                time.sleep(0.05)

    def mailbox(self, n: int) -> Dovecot:
        """The same server, seen as the mailbox `casework<n>` (1-99)."""
        other = copy.copy(self)
        other.user = f"{USER}{n}"
        return other

    def log(self, name: str = "dovecot.log") -> str:
        path = self.base / "log" / name
        return path.read_text(errors="replace") if path.exists() else ""

    def client(self) -> IMAPClient:
        c = IMAPClient("127.0.0.1", port=self.port, ssl=False, timeout=30)
        c.login(self.user, PASSWORD)
        return c

    def append(self, *messages: bytes, folder: str = "INBOX") -> None:
        with self.client() as c:
            if not c.folder_exists(folder):
                c.create_folder(folder)
            if c.has_capability("MULTIAPPEND"):  # one round trip for many messages
                c.multiappend(folder, list(messages))
            else:
                for raw in messages:
                    c.append(folder, raw)

    def messages(self, folder: str) -> list[bytes]:
        """The raw messages in a folder, oldest first ([] when the folder does not exist)."""
        with self.client() as c:
            if not c.folder_exists(folder):
                return []
            c.select_folder(folder, readonly=True)
            fetched = c.fetch(c.search("ALL"), ["BODY.PEEK[]"])
            return [fetched[uid][b"BODY[]"] for uid in sorted(fetched)]

    def count(self, folder: str) -> int:
        with self.client() as c:
            return c.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"] \
                if c.folder_exists(folder) else 0

    def doveadm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["doveadm", "-c", str(self.conf), *args], capture_output=True,
                              text=True, timeout=30)

    def kick(self) -> None:
        """Drop every connection of the mailbox, as a server restart or a network fault would."""
        done = self.doveadm("kick", self.user)
        assert "kicked" in done.stdout and "no users" not in done.stdout, done

    def stop(self) -> None:
        pid_file = self.base / "run" / "master.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.05)
        shutil.rmtree(self.base, ignore_errors=True)
