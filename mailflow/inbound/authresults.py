"""RFC 8601 `Authentication-Results`: did an MTA the council trusts authenticate the sender?

Only headers whose authserv-id is in `[authentication] trusted_authserv_ids` count; anyone can
write the header, so the rest are ignored. An MTA prepends its header, so the trusted ones are
read from the top of the message down to the first `Received` below them: one further down
arrived with the message (RFC 8601 section 5 asks MTAs to delete those; not all do). For each
method the topmost trusted result wins.

The verdict is for the `From` domain: `dmarc=pass`, or `dkim`/`spf` `pass` whose domain is
aligned with it (relaxed: one is the other or a parent of it), authenticates; `dmarc=fail`, or
(without a DMARC result) an aligned `dkim`/`spf` `fail`, fails. Where DMARC was evaluated its
result decides: it already combines SPF and DKIM with alignment.

Written here rather than taken from `authres` (PyPI; last release 2019): the part mailflow
needs is a tokenizer for comments, quoted strings and `;`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

METHODS = ("dmarc", "dkim", "spf")


@dataclass(frozen=True)
class Result:
    method: str  # dmarc | dkim | spf | arc | ...
    result: str  # pass | fail | softfail | none | neutral | temperror | permerror | ...
    props: dict[str, str] = field(default_factory=dict)  # header.from, header.d, smtp.mailfrom

    def domain(self) -> str:
        """The domain this result is about."""
        key = {"dmarc": "header.from", "dkim": "header.d", "spf": "smtp.mailfrom"}.get(
            self.method, "")
        value = self.props.get(key) or (self.props.get("smtp.helo", "")
                                        if self.method == "spf" else "")
        return value.strip("<>").rpartition("@")[2].lower().rstrip(".")

    def __str__(self) -> str:
        props = " ".join(f"{k}={v}" for k, v in self.props.items())
        return f"{self.method}={self.result}" + (f" {props}" if props else "")


@dataclass(frozen=True)
class Header:
    authserv_id: str  # lower-cased; "" when the header has none (Microsoft 365 omits it)
    results: tuple[Result, ...]


@dataclass(frozen=True)
class Verdict:
    state: str  # pass | fail | none
    why: str = ""
    by: str = ""  # the authserv-id whose result decided

    @property
    def passed(self) -> bool:
        return self.state == "pass"

    @property
    def failed(self) -> bool:
        return self.state == "fail"


NONE = Verdict("none", "no Authentication-Results from a trusted host")


def _strip_comments(text: str) -> str:
    """Remove (nested) comments, keeping quoted strings as they are."""
    out, depth, quoted, escape = [], 0, False, False
    for ch in text:
        if escape:
            escape = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\":
            escape = True
            if depth == 0:
                out.append(ch)
            continue
        if quoted:
            out.append(ch)
            quoted = ch != '"'
        elif ch == '"' and depth == 0:
            out.append(ch)
            quoted = True
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _split(text: str, sep: str) -> list[str]:
    """Split on `sep` outside quoted strings."""
    parts, cur, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


_PAIR = re.compile(r'([\w.+-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;"]*)')
_METHOD = re.compile(r"^\s*([\w-]+)\s*(?:/\s*\d+)?\s*=\s*([\w-]+)", re.ASCII)


def parse(value: str) -> Header:
    """One header's value. Never raises: what cannot be read is left out."""
    clauses = _split(_strip_comments(" ".join(value.split())), ";")
    head = clauses[0].strip()
    if _METHOD.match(head):  # no authserv-id: Microsoft 365 writes `spf=pass ...; dkim=...`
        authserv_id, rest = "", clauses
    else:
        authserv_id, rest = (head.split() or [""])[0].lower(), clauses[1:]
    results = []
    for clause in rest:
        m = _METHOD.match(clause)
        if not m:
            continue
        props = {k.lower(): v.strip('"') for k, v in _PAIR.findall(clause[m.end():])}
        results.append(Result(m.group(1).lower(), m.group(2).lower(), props))
    return Header(authserv_id, tuple(results))


def trusted_headers(raw_items: Iterable[tuple[str, str]], trusted: Iterable[str]
                    ) -> list[Header]:
    """The trusted hosts' headers at the top of the message, topmost first."""
    ids = {t.strip().lower() for t in trusted if t.strip()}
    found: list[Header] = []
    if not ids:
        return found
    for name, value in raw_items:
        name = name.strip().lower()
        if name == "received" and found:
            break  # a hop below the trusted MTA: what follows came with the message
        if name != "authentication-results":
            continue
        h = parse(str(value))
        if h.authserv_id in ids:
            found.append(h)
    return found


def aligned(domain: str, from_domain: str) -> bool:
    """Relaxed alignment without the public suffix list: one domain is the other or a parent
    of it, and the shorter has at least two labels (so `example` or `uk` never aligns)."""
    a, b = domain.lower().rstrip("."), from_domain.lower().rstrip(".")
    if not a or not b:
        return False
    short, long_ = sorted((a, b), key=len)
    return short.count(".") >= 1 and (long_ == short or long_.endswith("." + short))


def verdict(headers: list[Header], from_domain: str | None) -> Verdict:
    """pass, fail or none for the From domain, from the trusted headers (topmost first)."""
    if not headers or not from_domain:
        return NONE
    top: dict[str, tuple[str, list[Result]]] = {}  # method -> (authserv-id, its results)
    for h in headers:
        for method in METHODS:
            rs = [r for r in h.results if r.method == method]
            if rs and method not in top:
                top[method] = (h.authserv_id, rs)
    if "dmarc" in top:
        by, rs = top["dmarc"]
        for r in rs:
            if r.domain() and r.domain() != from_domain:
                continue  # a result about another From than the one we read
            if r.result == "pass":
                return Verdict("pass", str(r), by)
            if r.result == "fail":
                return Verdict("fail", str(r), by)
    failed = passed = None
    for method in ("dkim", "spf"):
        by, rs = top.get(method, ("", []))
        for r in rs:
            if not aligned(r.domain(), from_domain):
                continue
            if r.result == "fail" and failed is None:
                failed = Verdict("fail", str(r), by)
            elif r.result == "pass" and passed is None:
                passed = Verdict("pass", str(r), by)
    return failed or passed or Verdict("none", "no aligned pass or fail from a trusted host")


def check(raw_items: Iterable[tuple[str, str]], trusted: Iterable[str],
          from_address: str | None) -> Verdict:
    domain = (from_address or "").rpartition("@")[2].lower() or None
    return verdict(trusted_headers(raw_items, trusted), domain)
