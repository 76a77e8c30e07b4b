"""Score the PyPI library `email-forward-parser` (a port of a JavaScript parser's tables) on
tests/corpus/forwards/, beside mailflow's own engine, with the same three forward rows as
scripts/corpus_accuracy.py. The library is not a dependency: install it by hand to measure
(`pip install "email-forward-parser<0.2"`: 0.2.x needs Python 3.14).

Two ways of calling it: as shipped (its client reads the message: text/plain only), and
wrapped (given mailflow's text of the body, HTML converted, and the subject).

Usage: python scripts/forward_library.py [-v]
"""

from __future__ import annotations

import json
import sys
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from mailflow.inbound.text import body_text

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "corpus" / "forwards"


def library_answer(raw: bytes, wrapped: bool) -> tuple[bool, str | None]:
    """(is it a forward?, the original sender's address) as the library sees it."""
    from emailforwardparser import forward_parser
    from emailforwardparser.client import EmailParserClient

    try:
        text = raw.decode("utf-8", "replace")
        client = EmailParserClient()
        if wrapped:
            msg = message_from_bytes(raw, policy=policy.default)
            inner = next((p.get_payload()[0] for p in msg.walk() if p.get_content_type() in (
                "message/rfc822", "message/global") and isinstance(p.get_payload(), list)), None)
            if inner is not None:  # its own reading of an attached message's headers
                meta = client._get_message_metadata(inner)  # noqa: SLF001
                return True, (meta.from_.address or "").lower() or None
            md = forward_parser.get_forwarded_metadata(body_text(msg).strip(),
                                                       str(msg.get("Subject", "")).strip())
        else:
            md = client.get_original_metadata(text)
            if not md.forwarded and client._get_eml_attachment(  # noqa: SLF001
                    client._parse_message(text)):  # noqa: SLF001
                return True, (md.email.from_.address or "").lower() or None
        return md.forwarded, (md.email.from_.address or "").lower() or None
    except Exception:  # noqa: BLE001 - a crash is a wrong answer, not the end of the run
        return False, None


def main(argv: list[str]) -> int:
    rows: dict[str, dict[str, Any]] = {}
    for mode in ("as shipped", "wrapped"):
        en = [0, 0]
        every = [0, 0]
        is_fwd = [0, 0]
        misses = []
        for path in sorted(CORPUS.glob("*.eml")):
            want = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
            forwarded, address = library_answer(path.read_bytes(), mode == "wrapped")
            right_kind = forwarded == want["is_forward"]
            is_fwd[0] += right_kind
            is_fwd[1] += 1
            if want["is_forward"]:
                ok = right_kind and address == want["sender_address"]
                every[0] += ok
                every[1] += 1
                if want.get("language", "en") == "en":
                    en[0] += ok
                    en[1] += 1
                if not ok:
                    misses.append(f"{path.name}: {address}")
            elif not right_kind:
                misses.append(f"{path.name}: taken for a forward")
        rows[mode] = {"forward_sender_en": en, "forward_sender_all": every,
                      "is_forward": is_fwd, "misses": misses}
    for mode, r in rows.items():
        print(f"email-forward-parser, {mode}:")
        for key in ("forward_sender_en", "forward_sender_all", "is_forward"):
            good, total = r[key]
            print(f"  {key}: {good}/{total} ({good / total:.1%})")
        if "-v" in argv:
            for miss in r["misses"]:
                print(f"    {miss}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
