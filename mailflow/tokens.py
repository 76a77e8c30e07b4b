"""Signed reply addresses: casework+<ref>.<token>@domain.

The token is an HMAC over the request, written in Crockford's base32 so that an officer who
retypes the address can confuse l/1/i and o/0 and upper/lower case without breaking it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford: no i, l, o, u
_FORGIVE = str.maketrans({"i": "1", "l": "1", "o": "0", "u": "v"})
TOKEN_LENGTH = 10


def token(secret: str, reference: str, request_id: int) -> str:
    mac = hmac.new(secret.encode(), f"{reference.upper()}:{request_id}".encode(), hashlib.sha256)
    n = int.from_bytes(mac.digest()[:8], "big")
    return "".join(_ALPHABET[(n >> (5 * i)) & 31] for i in range(TOKEN_LENGTH))


def reply_address(casework_address: str, reference: str, tok: str) -> str:
    local, _, domain = casework_address.partition("@")
    return f"{local}+{reference.lower()}.{tok}@{domain}"


def normalise_token(raw: str) -> str:
    return raw.strip().lower().translate(_FORGIVE)


def normalise_reference(raw: str, prefix: str) -> str | None:
    """`cw-2026-000042`, `CW2026-42`, `cw-2o26-0oo42` -> `CW-2026-00042`."""
    raw = raw.strip().upper()
    if not raw.startswith(prefix.upper()):
        return None
    digits = raw[len(prefix):].translate(str.maketrans({"O": "0", "L": "1", "I": "1"}))
    m = re.fullmatch(r"-?(\d{4})-?(\d{1,7})", digits)
    if not m:
        return None
    return format_reference(prefix, int(m.group(1)), int(m.group(2)))


def format_reference(prefix: str, year: int, number: int) -> str:
    return f"{prefix}-{year}-{number:05d}"


def parse_plus_address(address: str, casework_address: str, prefix: str) -> tuple[str, str] | None:
    """(reference, token) from a recipient address, or None when it is not one of ours."""
    local, _, domain = address.strip().lower().partition("@")
    ours_local, _, ours_domain = casework_address.lower().partition("@")
    base, plus, detail = local.partition("+")
    if domain != ours_domain or base != ours_local or not plus:
        return None
    ref, dot, tok = detail.rpartition(".")
    reference = normalise_reference(ref, prefix) if dot else None
    if not reference or not tok:
        return None
    return reference, normalise_token(tok)


def verify(secrets: Sequence[str], reference: str, request_id: int, offered: str) -> bool:
    """Signed with any of `secrets` (the current one, then those rotated out)."""
    offered = normalise_token(offered)
    return any([hmac.compare_digest(token(s, reference, request_id), offered)  # all compared
                for s in secrets])


# -- digests: casework+digest-<id>.<token>@domain ---------------------------------------------
# A digest's own reply address, so that a reply to it is known for one (and never opens a
# case). The token signs the digest's id; it names no case, so it proves nothing about one.
def digest_token(secret: str, digest_id: int) -> str:
    return token(secret, "DIGEST", digest_id)


def digest_address(casework_address: str, digest_id: int, tok: str) -> str:
    local, _, domain = casework_address.partition("@")
    return f"{local}+digest-{digest_id}.{tok}@{domain}"


def parse_digest_address(address: str, casework_address: str) -> tuple[int, str] | None:
    """(digest id, token) from a recipient address, or None when it is no digest address."""
    local, _, domain = address.strip().lower().partition("@")
    ours_local, _, ours_domain = casework_address.lower().partition("@")
    m = re.fullmatch(r"([^+]+)\+digest-(\d{1,12})\.(\w+)", local)
    if not m or domain != ours_domain or m.group(1) != ours_local:
        return None
    return int(m.group(2)), normalise_token(m.group(3))
