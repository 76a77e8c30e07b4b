"""Text from outside on one line, safe to store, show and write into a header: used by the
reading of inbound mail (subjects, names) and by the composing of outbound mail alike."""

from __future__ import annotations

import unicodedata

# Bidi overrides, embeddings, isolates and marks: they make a subject read other than it is.
BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LINE_CATEGORIES = ("Cc", "Zl", "Zp")  # controls (CR, LF, NUL, NEL, …) and Unicode separators


def one_line(text: str | None) -> str:
    """Text on one line: controls, CR, LF and Unicode line separators become spaces, bidi
    controls go, lone surrogates become U+FFFD, whitespace runs become one space."""
    text = (text or "").encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    text = "".join(" " if unicodedata.category(c) in _LINE_CATEGORIES else c
                   for c in text if c not in BIDI)
    return " ".join(text.split())
