"""Enquiry types and the response target that follows from them.

The type comes from `#type`, else from keywords in the member's note (`[casework]
type_keywords`), else `direct`. A complaint follows the complaint target: the service's
`complaint_response_days`, else `[complaints] response_days`, else the service's own target.
"""

from __future__ import annotations

import re

from mailflow.settings import ENQUIRY_TYPES, Settings

TYPES = ENQUIRY_TYPES
DEFAULT = "direct"


def detect_type(settings: Settings, note: str) -> tuple[str, str]:
    """(type, why) from the member's note; the first type whose keyword appears wins."""
    text = note.casefold()
    for kind, words in settings.casework.type_keywords.items():
        for w in words:
            if re.search(rf"\b{re.escape(w.casefold())}\b", text):
                return kind, f"the member's note says {w!r}"
    return DEFAULT, "no type keyword in the member's note"
