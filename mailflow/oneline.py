"""Text from outside on one line, safe to store, show and write into a header: used by the
reading of inbound mail (subjects, names) and by the composing of outbound mail alike."""

from __future__ import annotations

import re

# Bidi overrides, embeddings, isolates and marks: they make a subject read other than it is.
BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Every character of the Unicode categories Cc (controls: CR, LF, NUL, NEL, …), Zl and Zp
# (line and paragraph separators). Cc is closed by Unicode's stability policy, and Zl and Zp
# each hold one character, so a character class matches them without asking unicodedata
# about each character (a loop over the text cost more than the rest of a subject's reading).
_LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NO_BIDI = {ord(c): None for c in BIDI}


def one_line(text: str | None) -> str:
    """Text on one line: controls, CR, LF and Unicode line separators become spaces, bidi
    controls go, lone surrogates become U+FFFD, whitespace runs become one space."""
    text = text or ""
    if not text.isascii():  # ASCII has no surrogates and no bidi controls
        text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
        text = text.translate(_NO_BIDI)
    return " ".join(_LINE_BREAKING.sub(" ", text).split())
