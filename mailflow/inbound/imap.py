"""The IMAP receiver (imapclient): fetches messages from a mailbox folder into the spool.

It only moves bytes, like the SMTP receiver. Each message is stored and committed, then moved
to the processed folder (or flagged), then handed to the pipeline. UIDVALIDITY and the last
UID done are kept in the database (`ImapState`), so a restart neither misses nor repeats a
message: a stop between the commit and the move fetches that message once more, and the
spool recognises it. A message that cannot be fetched or is over the size limit goes to the
failed folder and to the holding pen, with the reason.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.header import decode_header, make_header
from typing import Any

from imapclient import IMAPClient

from mailflow import clock, db, metrics, models
from mailflow.app import App
from mailflow.inbound import spool
from mailflow.oauth2 import TOKEN_MARGIN, Tokens

log = logging.getLogger(__name__)

FLAG = b"$Mailflow"  # marks a message done when there is no processed folder
CHUNK, CHUNK_BYTES = 50, 8 * 1024 * 1024  # fetched in one round trip, then stored one by one
BACKOFF_FIRST, BACKOFF_MAX = 1.0, 300.0


@dataclass
class Counts:
    stored: int = 0
    duplicates: int = 0
    failed: int = 0


class Receiver:
    """One mailbox folder. `run` keeps fetching until `stop`; `once` is one pass (cron)."""

    def __init__(self, app: App, on_stored: Callable[[int], object] = lambda _id: None, *,
                 sleep: Callable[[float], object] | None = None,
                 now: Callable[[], datetime] = clock.now):
        self.app = app
        self.cfg = app.settings.imap
        self.on_stored = on_stored
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.sleep = sleep or self.stopping.wait  # injectable: tests move time, not wait
        self.now = now
        self.tokens = Tokens(self.cfg.oauth2) if self.cfg.oauth2 else None
        self.max_size = self.cfg.max_message_size or app.settings.smtp.max_message_size
        self.where = f"{self.cfg.username}@{self.cfg.host}:{self.cfg.port_number}/{self.cfg.folder}"

    # -- the loop --------------------------------------------------------------------------
    def run(self) -> None:
        """Fetch, wait for mail (IDLE, or poll), repeat; reconnect with backoff, saying why."""
        delay = BACKOFF_FIRST
        while not self.stopping.is_set():
            try:
                client = self.connect()
                try:
                    while not self.stopping.is_set():
                        self.fetch(client)
                        delay = BACKOFF_FIRST
                        if not self._wait(client):
                            log.info("IMAP %s: logging in again with a fresh token", self.where)
                            break
                finally:
                    _close(client)
            except Exception as e:  # noqa: BLE001 - whatever broke, try again later
                if self.stopping.is_set():
                    break
                log.warning("IMAP %s: %s; connecting again in %.0f s", self.where, why(e), delay)
                self.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)

    def start(self) -> None:
        self.thread = threading.Thread(target=self.run, name="imap", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        """Within about a second when idle; a batch being stored is finished first."""
        self.stopping.set()
        if self.thread:
            self.thread.join(timeout=60)

    def once(self) -> Counts:
        client = self.connect()
        try:
            return self.fetch(client)
        finally:
            _close(client)

    # -- the connection --------------------------------------------------------------------
    def connect(self) -> IMAPClient:
        cfg = self.cfg
        context = ssl.create_default_context()
        if cfg.ca_file:  # besides the system's CAs
            context.load_verify_locations(cafile=str(self.app.settings.resolve(cfg.ca_file)))
        client = IMAPClient(cfg.host, port=cfg.port_number, ssl=cfg.tls == "ssl",
                            ssl_context=context, timeout=60)
        try:
            if cfg.tls == "starttls":
                client.starttls(context)
            if self.tokens:
                client.oauth2_login(cfg.username, self.tokens.get())
            else:
                client.login(cfg.username, cfg.secret)
            for folder in (cfg.processed_folder, cfg.failed_folder):
                if folder and not client.folder_exists(folder):
                    client.create_folder(folder)
                    log.info("IMAP %s: created the folder %s", self.where, folder)
        except BaseException:
            _close(client)
            raise
        return client

    def _wait(self, client: IMAPClient) -> bool:
        """Until there may be new mail. False: log in again first (the token is expiring)."""
        if self.tokens and self.tokens.expiring():
            return False
        if not (self.cfg.idle and client.has_capability("IDLE")):
            self.sleep(self.cfg.poll_seconds)
            return True
        end = time.monotonic() + self.cfg.idle_seconds
        if self.tokens and self.tokens.expires_at:
            end = min(end, self.tokens.expires_at - TOKEN_MARGIN)
        client.idle()
        while not self.stopping.is_set() and time.monotonic() < end:  # a stop within 1 s
            if responses := client.idle_check(timeout=1):
                bye = [r for r in responses if r and r[0] == b"BYE"]
                if bye:  # the server's own words say more than the EOF that follows
                    raise ConnectionError("the server closed the connection: " + " ".join(
                        x.decode("utf-8", "replace") for x in bye[0][1:] if isinstance(x, bytes)))
                break
        client.idle_done()  # not after an error: that connection is closed, not reused
        return True

    # -- one pass --------------------------------------------------------------------------
    def fetch(self, client: IMAPClient) -> Counts:
        """Everything new in the folder: stored, moved (or flagged), handed on."""
        counts = Counts()
        uidvalidity = client.select_folder(self.cfg.folder)[b"UIDVALIDITY"]
        last = self._last_uid(uidvalidity)
        criteria: list[Any] = ["UID", f"{last + 1}:*"]
        if not self.cfg.processed_folder:
            criteria += ["UNKEYWORD", FLAG]
        uids = sorted(u for u in client.search(criteria) if u > last)
        if uids:
            log.info("IMAP %s: %d new message(s)", self.where, len(uids))
        sizes = {u: d[b"RFC822.SIZE"] for u, d in client.fetch(uids, ["RFC822.SIZE"]).items()
                 } if uids else {}
        chunk: list[int] = []
        for uid in (u for u in uids if u in sizes):  # else gone since (another node took it)
            if self.stopping.is_set():  # what is left is fetched at the next start
                return counts
            too_big = sizes[uid] > self.max_size
            if chunk and (too_big or len(chunk) == CHUNK
                          or sum(sizes[u] for u in chunk) + sizes[uid] > CHUNK_BYTES):
                self._take(client, chunk, uidvalidity, counts)  # in UID order: see _remember
                chunk = []
            if too_big:
                self._fail(client, uid, f"{sizes[uid]} bytes, over the limit of "
                                        f"{self.max_size} bytes", counts)
                metrics.RECEIVED.labels("imap", "too_big").inc()
                self._remember(uidvalidity, uid)
            else:
                chunk.append(uid)
        if chunk:
            self._take(client, chunk, uidvalidity, counts)
        metrics.IMAP_LAST_SUCCESS.set(time.time())
        return counts

    def _take(self, client: IMAPClient, uids: list[int], uidvalidity: int,
              counts: Counts) -> None:
        try:
            bodies = client.fetch(uids, ["BODY.PEEK[]"])
        except IMAPClient.AbortError:
            raise
        except IMAPClient.Error as e:  # one unreadable message fails the whole FETCH
            if len(uids) == 1:
                self._fail(client, uids[0], f"cannot be fetched: {e}", counts)
                self._remember(uidvalidity, uids[0])
            else:
                for uid in uids:
                    self._take(client, [uid], uidvalidity, counts)
            return
        stored: list[tuple[int, int, bool]] = []
        with db.session(self.app.url) as session:
            for uid in uids:
                raw = bodies.get(uid, {}).get(b"BODY[]")
                if uid in bodies and raw is None:
                    self._fail(client, uid, "the server sent no body", counts)
                elif raw is not None:  # one commit each: a fault keeps what came before it
                    [(raw_id, duplicate)] = spool.store(
                        session, [spool.Incoming(raw, "imap")], self.now())
                    stored.append((uid, raw_id, duplicate))
                    counts.duplicates += duplicate
                    counts.stored += not duplicate
        # Only now, with every message committed, do they leave the folder.
        self._done(client, [uid for uid, _, _ in stored], self.cfg.processed_folder)
        self._remember(uidvalidity, uids[-1])
        for _, raw_id, duplicate in stored:
            if not duplicate:
                self.on_stored(raw_id)

    def _fail(self, client: IMAPClient, uid: int, reason: str, counts: Counts) -> None:
        """Off to the failed folder, after the holding pen has the reason: nothing is lost."""
        folder = self.cfg.failed_folder
        env = client.fetch([uid], ["ENVELOPE"]).get(uid, {}).get(b"ENVELOPE")
        sender, subject = _sender_subject(env)
        text = f"IMAP {self.cfg.folder} UID {uid}: {reason}; moved to the folder {folder}"
        log.warning("%s: %s", self.where, text)
        with self.app.session() as s:
            s.add(models.Holding(kind="failed", reason=text[:1000], sender=sender,
                                 subject=subject, created_at=self.now()))
            s.commit()
        self._done(client, [uid], folder)
        counts.failed += 1

    def _done(self, client: IMAPClient, uids: list[int], folder: str) -> None:
        if not uids:
            return
        if not folder:
            client.add_flags(uids, [b"\\Seen", FLAG])
        elif client.has_capability("MOVE"):
            client.move(uids, folder)
        else:  # RFC 6851's fallback; UID EXPUNGE touches only these messages
            client.copy(uids, folder)
            client.add_flags(uids, [b"\\Deleted"])
            client.expunge(uids if client.has_capability("UIDPLUS") else None)

    # -- where we got to -------------------------------------------------------------------
    def _key(self) -> tuple[str, str, str]:
        return (self.cfg.host or "", self.cfg.username or "", self.cfg.folder)

    def _last_uid(self, uidvalidity: int) -> int:
        with self.app.session() as s:
            row = s.get(models.ImapState, self._key())
        if row and row.uidvalidity == uidvalidity:
            return row.last_uid
        if row:
            log.warning("IMAP %s: UIDVALIDITY changed from %s to %s: reading the whole folder "
                        "again (the spool recognises what it already has)", self.where,
                        row.uidvalidity, uidvalidity)
        self._remember(uidvalidity, 0)
        return 0

    def _remember(self, uidvalidity: int, uid: int) -> None:
        """Every message up to `uid` is done (stored or failed): so they go in UID order."""
        host, username, folder = self._key()
        with self.app.session() as s:
            row = s.get(models.ImapState, self._key()) or models.ImapState(
                host=host, username=username, folder=folder, uidvalidity=uidvalidity,
                last_uid=0, updated_at=self.now())
            if row.uidvalidity != uidvalidity:
                row.uidvalidity, row.last_uid = uidvalidity, 0
            row.last_uid, row.updated_at = max(row.last_uid, uid), self.now()
            s.add(row)
            s.commit()


def _close(client: IMAPClient) -> None:
    try:
        client.logout()
    except Exception:  # noqa: BLE001 - the connection is already gone
        try:
            client.shutdown()
        except Exception:  # noqa: BLE001, S110
            pass


def why(e: BaseException) -> str:
    """A reason in words for the log: what failed and the server's or the system's answer."""
    text = str(e).strip() or "no details"
    return f"{type(e).__name__}: {text}"


def _sender_subject(env: Any) -> tuple[str | None, str | None]:
    if env is None:
        return None, None
    sender = None
    if env.from_:
        a = env.from_[0]
        sender = f"{(a.mailbox or b'').decode('ascii', 'replace')}@" \
                 f"{(a.host or b'').decode('ascii', 'replace')}".lower()
    subject = None
    if env.subject:
        try:
            subject = str(make_header(decode_header(env.subject.decode("utf-8", "replace"))))
        except Exception:  # noqa: BLE001 - a broken encoded word: keep it as it came
            subject = env.subject.decode("utf-8", "replace")
    return sender, subject
