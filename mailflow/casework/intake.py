"""A case typed by a member (at a surgery, offline): the constituent from labelled lines."""

from __future__ import annotations

import re
from dataclasses import dataclass

_FIELD = re.compile(
    r"^[ \t>*]*(name|constituent|email|e-mail|phone|tel|telephone|mobile|address)"
    r"[ \t]*[:\-][ \t]*(.+)$",
    re.IGNORECASE | re.MULTILINE,
)
_KEYS = {"constituent": "name", "e-mail": "email", "tel": "phone", "telephone": "phone",
         "mobile": "phone"}


@dataclass
class Typed:
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    address: str | None = None
    text: str = ""  # the message without the labelled lines


def typed_case(body: str) -> Typed:
    found: dict[str, str] = {}
    for m in _FIELD.finditer(body):
        key = _KEYS.get(m.group(1).lower(), m.group(1).lower())
        found.setdefault(key, m.group(2).strip())
    email = found.get("email")
    if email:
        m = re.search(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+", email)
        email = m.group(0).lower() if m else None
    text = _FIELD.sub("", body).strip()
    return Typed(found.get("name"), email, found.get("phone"), found.get("address"), text)
