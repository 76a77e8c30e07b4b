"""The thread key the spool stores with each message: the case reference its headers name, by
the same evidence as matching (inbound/match.py), strongest first: a Message-ID we sent in
`In-Reply-To`/`References` (ours are `<cw-2026-00042.<20 hex>@…>`), a plus-address
(`casework+cw-2026-00042.<token>@…`), the subject tag (`[CW-2026-00042]`).

It proves nothing and decides nothing: it only orders. Pipeline workers take the messages of
one key one at a time, in the order they were stored (inbound/claiming.py), so two replies
to one case are never processed at once. Read from the raw header bytes without settings,
so every receiver's store computes it on its hot path for a few microseconds; a message
naming no reference (a new forward) has none and is never held back."""

from __future__ import annotations

import re
from email.header import decode_header

_REF = r"([a-z]{1,12})[-\s]?([0-9]{4})[-\s]?([0-9]{1,7})"
_OUR_ID = re.compile(rf"<{_REF}\.[0-9a-f]{{20}}@", re.I)
_PLUS = re.compile(rf"\+{_REF}\.[a-z0-9]+@", re.I)
_TAG = re.compile(rf"\[\s*{_REF}\s*\]", re.I)
_FIELD = re.compile(rb"^(in-reply-to|references|to|cc|delivered-to|x-original-to|subject)"
                    rb"[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.I | re.M)


def _key(m: re.Match[str] | None) -> str | None:
    # `CW-2026-00042`, `cw202642` and `CW-2026-42` are one key.
    return f"{m.group(1).upper()}-{m.group(2)}-{int(m.group(3))}" if m else None


def of(head: bytes, envelope_to: list[str] | None = None) -> str | None:
    """The key of a message from its header block (and the envelope recipients), or None.
    Never raises: a key is an aid to ordering, never a reason to refuse a message."""
    try:
        return _of(head, envelope_to)
    except Exception:  # noqa: BLE001
        return None


def _of(head: bytes, envelope_to: list[str] | None) -> str | None:
    fields: dict[str, list[str]] = {}
    for name, value in _FIELD.findall(head[:65536]):
        text = re.sub(r"\r?\n[ \t]", " ", value.decode("latin-1"))
        fields.setdefault(name.decode().lower(), []).append(text)
    refs = " ".join(fields.get("references", []))
    ids = [*fields.get("in-reply-to", []), *reversed(re.findall(r"<[^>]*>", refs))]
    for value in ids:
        if key := _key(_OUR_ID.search(value)):
            return key
    for value in [*fields.get("to", []), *fields.get("cc", []), *fields.get("delivered-to", []),
                  *fields.get("x-original-to", []), *(envelope_to or [])]:
        if key := _key(_PLUS.search(value)):
            return key
    for value in fields.get("subject", [])[:1]:
        return _key(_TAG.search(_decoded(value)))
    return None


def _decoded(value: str) -> str:
    if "=?" not in value:
        return value
    try:
        return "".join(part.decode(charset or "latin-1", "replace") if isinstance(part, bytes)
                       else part for part, charset in decode_header(value))
    except Exception:  # noqa: BLE001 - a broken encoded word or charset: the text as it came
        return value
