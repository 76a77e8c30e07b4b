"""A case typed by a member (at a surgery, offline): the constituent from labelled lines.

Labels in any case and common wording (`Name`, `Constituent`, `Constituent name`,
`Resident`, `Address`, `Postcode`, `Phone`, `Tel`, `Tel no`, `Mobile`, `Email`, …) with `:`
or ` - `; an address runs over the lines below its label up to the next label or a blank
line; a UK postcode is recognised anywhere in the text and kept with the address.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Each wording a member types, and the field it fills.
_LABELS: dict[str, tuple[str, ...]] = {
    "name": ("constituent name", "constituent's name", "resident name", "resident's name",
             "full name", "name of constituent", "constituent", "resident", "name"),
    "address": ("constituent address", "constituent's address", "home address",
                "postal address", "address"),
    "postcode": ("post code", "postcode"),
    "phone": ("telephone number", "telephone no", "telephone", "phone number", "phone no",
              "phone", "tel number", "tel no", "tel", "mobile number", "mobile no", "mobile",
              "mob", "contact number", "contact no", "landline"),
    "email": ("email address", "e-mail address", "email", "e-mail"),
}
_FIELD_OF = {w: f for f, words in _LABELS.items() for w in words}
_WORDING = "|".join(sorted((re.escape(w).replace(r"\ ", r"\s+") for w in _FIELD_OF),
                           key=len, reverse=True))
# `Tel no.: …`, `**Name:** …`, `Address - …`: the value may start on the line below.
_LINE = re.compile(
    rf"^[ \t>*_-]*(?P<label>{_WORDING})\.?[ \t]*[*_]*(?:[ \t]*:|[ \t]+[-\u2013]|[-\u2013][ \t])"
    r"[*_ \t]*(?P<value>.*)$", re.IGNORECASE)
# A UK postcode: `EH49 7AB`, `eh49 7ab`, `SW1A1AA` (without the space only in capitals).
_POSTCODE = re.compile(
    r"\b(?:(?P<out>[A-Z]{1,2}\d[A-Z\d]?) ?(?P<in>\d[ABD-HJLNP-UW-Z]{2})"
    r"|(?i:(?P<out2>[A-Z]{1,2}\d[A-Z\d]?) (?P<in2>\d[ABD-HJLNP-UW-Z]{2})))\b")
_EMAIL = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")


@dataclass
class Typed:
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    address: str | None = None
    text: str = ""  # the message without the labelled lines


def postcode(text: str) -> str | None:
    """The first UK postcode in `text`, written the standard way (`EH49 7AB`)."""
    m = _POSTCODE.search(text)
    if m is None:
        return None
    out, inward = m.group("out") or m.group("out2"), m.group("in") or m.group("in2")
    return f"{out} {inward}".upper()


def typed_case(body: str) -> Typed:
    found: dict[str, str] = {}
    kept: list[str] = []
    lines = body.splitlines()
    i = 0
    while i < len(lines):
        m = _LINE.match(lines[i])
        if m is None:
            kept.append(lines[i])
            i += 1
            continue
        field = _FIELD_OF[" ".join(m.group("label").lower().split())]
        value = [m.group("value").strip()] if m.group("value").strip() else []
        i += 1
        if field == "address":  # the lines below, up to the next label or a blank line
            while i < len(lines) and lines[i].strip() and not _LINE.match(lines[i]):
                value.append(lines[i].strip().strip(","))
                i += 1
        text = ", ".join(v.rstrip(",") for v in value if v)
        if text and field == "phone" and found.get("phone") and text not in found["phone"]:
            found["phone"] += f"; {text}"  # a landline and a mobile: keep both
        elif text:
            found.setdefault(field, text)
    email = found.get("email")
    if email:
        m = _EMAIL.search(email)
        email = m.group(0).lower() if m else None
    address = found.get("address")
    code = postcode(found.get("postcode", "")) or postcode(address or "") or postcode(body)
    if code and (address is None or postcode(address) != code):
        address = f"{address}, {code}" if address else code
    return Typed(found.get("name"), email, found.get("phone"), address, "\n".join(kept).strip())
