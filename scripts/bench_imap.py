"""Benchmark the IMAP receiver: messages per second from a Dovecot mailbox into mailflow.

Starts its own Dovecot (as the tests do, tests/dovecot.py), appends 2,000 realistic messages
(members' Outlook forwards, some with a photo attached, and officers' replies tagged with
their case; 2-40 KB each) and empties the mailbox into a fresh database, as
`mailflow poll --once` does:

- storing: fetch + spool + move to the processed folder (`Receiver.once()`);
- end-to-end: the same, then every message through the pipeline (cases opened, replies
  filed, the mail they cause queued in the outbox).

Each round uses a fresh mailbox and a fresh database; the medians of the rounds are printed.

    .venv/bin/python scripts/bench_imap.py                     # SQLite, 2,000 messages, 3 rounds
    .venv/bin/python scripts/bench_imap.py --url postgresql://postgres@127.0.0.1:5432/test
    .venv/bin/python scripts/bench_imap.py --messages 40 --rounds 1   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, text
from sqlmodel import select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailflow import clock, db, models, settings  # noqa: E402
from mailflow.app import App  # noqa: E402
from mailflow.inbound import imap, pipeline  # noqa: E402
from tests.conftest import COUNCIL  # noqa: E402
from tests.dovecot import PASSWORD, Dovecot  # noqa: E402

NOW = clock.parse("2026-11-20T10:00:00Z")  # a Friday: references are CW-2026-…
MEMBERS = ["Cllr Jane Smith <jane.smith@council.example>",
           "Cllr Tom Brown <tom.brown@council.example>"]
SERVICES = {"Roads": ("roads.enquiries@council.example", "pothole on the road"),
            "Waste": ("waste@council.example", "bins not collected")}
# Neutral words: the service is chosen by the words in SERVICES, as routing would read them.
WORDS = ("the outside number week council again since morning car neighbours children school "
         "bus stop corner dark broken water drain green brown please could you help residents "
         "worried safety report still nothing happened months ago").split()


def prose(rng: random.Random, size: int) -> str:
    """Sentences of about `size` characters, in paragraphs."""
    out, n = [], 0
    while n < size:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 20)))
        out.append(sentence.capitalize() + ".")
        n += len(sentence) + 2
        if rng.random() < 0.2:
            out.append("\n\n")
    return " ".join(out).replace(" \n\n ", "\n\n")


def forward(rng: random.Random, i: int, service: str, size: int) -> EmailMessage:
    member = rng.choice(MEMBERS)
    constituent = f"Resident {i} <resident{i}@example.org>"
    subject = f"{SERVICES[service][1].capitalize()} at {i} Main Street"
    attach = rng.random() < 0.4 and size > 12_000  # a phone photo makes a big forward
    body = prose(rng, 1_500 if attach else size - 1_000)
    msg = _message(member, f"FW: {subject}", f"Can you look into this please?\n\nThanks\n\n"
                   f"________________________________\nFrom: {constituent}\n"
                   f"Sent: 19 November 2026 18:04\nTo: {member}\nSubject: {subject}\n\n"
                   f"Dear Councillor,\n\n{SERVICES[service][1].capitalize()}. {body}\n\n"
                   f"Resident {i}\n")
    if attach:
        photo = rng.randbytes(int((size - 3_000) * 3 / 4))
        msg.add_attachment(photo, maintype="image", subtype="jpeg", filename=f"IMG_{i}.jpg")
    return msg


def reply(rng: random.Random, case_number: int, service: str, size: int) -> EmailMessage:
    contact = SERVICES[service][0]
    text_ = (f"Thank you for your enquiry. {prose(rng, size - 1_200)}\n\nKind regards\n"
             f"{service} Officer\n01506 000000\n\n> Please see the request below.\n")
    return _message(f"{service} Officer <{contact}>",
                    f"RE: [CW-2026-{case_number:05d}] Request from your councillor", text_)


def _message(sender: str, subject: str, body: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "casework@council.example", subject
    msg["Date"] = "Fri, 20 Nov 2026 09:15:00 +0000"
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@mail.example>"
    msg.set_content(body)
    return msg


def mailbox_messages(n: int, seed: int) -> list[bytes]:
    """About 70 % forwards and 30 % replies, each reply after the forward of its case."""
    rng = random.Random(seed)
    out: list[bytes] = []
    cases: list[str] = []  # service of case number k+1, in order of the forwards
    for i in range(n):
        size = int(rng.uniform(2_000, 40_000))
        if cases and rng.random() < 0.3:
            k = rng.randrange(len(cases))
            msg = reply(rng, k + 1, cases[k], size)
        else:
            service = rng.choice(list(SERVICES))
            cases.append(service)
            msg = forward(rng, i, service, size)
        out.append(msg.as_bytes(policy=SMTP))
    return out


def fresh_database(folder: Path, url: str | None, n: int) -> str:
    if not url:
        return f"sqlite:///{folder}/round{n}.db"
    schema = f"bench_imap_{uuid.uuid4().hex[:8]}"
    with create_engine(db.normalise_url(url), isolation_level="AUTOCOMMIT").connect() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in url else "?"
    return f"{db.normalise_url(url)}{sep}options={quote('-csearch_path=' + schema)}"


def one_round(server: Dovecot, folder: Path, url: str | None, n: int, raws: list[bytes]
              ) -> dict[str, float]:
    box = server.mailbox(n)
    for i in range(0, len(raws), 200):  # MULTIAPPEND in batches
        box.append(*raws[i:i + 200])
    config = folder / f"round{n}.toml"
    config.write_text(COUNCIL.format(db_url=fresh_database(folder, url, n)) + f"""
[imap]
host = "127.0.0.1"
port = {server.port}
tls = "none"
username = "{box.user}"
password = "{PASSWORD}"
""")
    app = App(settings.load(config))
    db.upgrade(app.url)
    app.start(clock.now())  # the directory, synchronised
    start = time.perf_counter()
    counts = imap.Receiver(app).once()
    stored_s = time.perf_counter() - start
    processed = pipeline.drain(app, NOW)
    total_s = time.perf_counter() - start
    assert counts == imap.Counts(stored=len(raws)), counts
    assert processed == len(raws) and box.count("INBOX") == 0
    with app.session() as s:
        outcomes = Counter(s.exec(select(models.RawMessage.disposition)))
    db.engine(app.url).dispose()
    return {"store_s": stored_s, "total_s": total_s, **{f"n_{k}": v for k, v in
                                                         sorted(outcomes.items())}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--url", help="PostgreSQL URL (a fresh schema per round); default SQLite")
    args = p.parse_args()
    clock.pin(NOW)
    raws = mailbox_messages(args.messages, seed=42)
    sizes = sorted(len(r) for r in raws)
    print(f"{len(raws)} messages, {sizes[0] // 1024}-{sizes[-1] // 1024} KB "
          f"(median {statistics.median(sizes) / 1024:.1f} KB), "
          f"{sum(sizes) / 2**20:.1f} MB in all", flush=True)
    server = Dovecot()
    rounds = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-imap-") as tmp:
            for n in range(1, args.rounds + 1):
                r = one_round(server, Path(tmp), args.url, n, raws)
                rounds.append(r)
                print(f"round {n}: stored in {r['store_s']:.1f} s "
                      f"({len(raws) / r['store_s']:.0f} msg/s), end-to-end {r['total_s']:.1f} s "
                      f"({len(raws) / r['total_s']:.1f} msg/s); "
                      + ", ".join(f"{k[2:]} {v}" for k, v in r.items() if k.startswith("n_")),
                      flush=True)
    finally:
        server.stop()
    store = statistics.median(r["store_s"] for r in rounds)
    total = statistics.median(r["total_s"] for r in rounds)
    print(json.dumps({"messages": len(raws), "rounds": len(rounds),
                      "database": "postgresql" if args.url else "sqlite",
                      "store_msgs_per_s": round(len(raws) / store, 1),
                      "end_to_end_msgs_per_s": round(len(raws) / total, 1),
                      "store_median_s": round(store, 2), "end_to_end_median_s": round(total, 2)}))


if __name__ == "__main__":
    main()
