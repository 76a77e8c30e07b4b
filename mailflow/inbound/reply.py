"""The visible text of a message: what its author wrote, without quoted history or boilerplate.

Removes, in order: quoted history (">" lines, attribution lines, Outlook header blocks and
separators in many languages: reply_forms.py), then what the one signature rule says goes
(signature.py). A forward inside a reply is history too: its headers and text stay in the raw
message, not in the visible text.

Inline answers (the author answered between the quoted lines): each answer keeps the quoted
paragraph directly above it, the question it answers, prefixed with "> "; the rest of the
quote goes. A bottom-posted reply (one quote, then the answer) keeps the answer only.
Heuristic by nature: when in doubt it keeps text rather than dropping it.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mailflow.inbound import signature
from mailflow.inbound.reply_forms import (
    QUOTED,
    RULE,
    attribution_length,
    header_block_at,
    header_label,
    separator_at,
)

_BLANK_RUNS = re.compile(r"\n{3,}")
_QUOTED_BLANK = re.compile(r"^[ \t>]*$")
# A line with text that is not quoted: what an answer between quoted lines needs. Searched
# in the lines joined after a newline each: a pattern that starts with a literal lets the
# regex engine skip to the next line, where `^` with MULTILINE is tried at every character.
_UNQUOTED_TEXT = re.compile(r"\n(?![ \t]*>)[^\n]*\S")


@lru_cache(maxsize=16)  # classification, understanding and reply kinds ask of the same text
def visible_text(body: str) -> str:
    """What the author of a message wrote, without quoted history, signature or disclaimer.

    A message with no quote comes back essentially unchanged (bar signature and disclaimer).
    Never returns "" when the input had any unquoted text: it then falls back to the first
    paragraph of unquoted text that is not an attribution or separator.
    """
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    original = [line.rstrip() for line in body.split("\n")]
    kept = _drop_history(signature.drop_banner(original))
    kept = signature.drop_signature(kept)
    kept = signature.drop_disclaimers(kept)
    kept = signature.trim_sign_off(kept)
    text = _tidy(_drop_trailing_rules(kept))
    return text or _first_block(original)


# -- quoted history ------------------------------------------------------------------------


def _drop_history(lines: list[str]) -> list[str]:
    cut = _history_start(lines)
    head, tail = lines[:cut], lines[cut:]
    skip = attribution_length(tail, 0)
    if skip == 0 and tail and separator_at(tail, 0) and not QUOTED.match(tail[0]):
        # "-----------" then an attribution: both are history.
        nxt = next((j for j in range(1, len(tail)) if tail[j].strip()), len(tail))
        skip = nxt + attribution_length(tail, nxt)
    answered = _answers_below(tail[skip:])
    return head + ([""] + answered if answered else [])


def _history_start(lines: list[str]) -> int:
    """Index of the first line of quoted history, or len(lines) when there is none."""
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        if QUOTED.match(line) or attribution_length(lines, i) or header_block_at(lines, i) \
                or separator_at(lines, i):
            return i
    return len(lines)


def _answers_below(tail: list[str]) -> list[str]:
    """The author's text below or between quoted lines: [] when the history is all quote.

    Runs of quoted lines alternate with runs of answers. One quote then one answer is a
    bottom-posted reply: the answer alone. Otherwise each answer keeps the last quoted
    paragraph above it (what it answers); a quote after the last answer goes."""
    start = 0
    while start < len(tail) and (not tail[start].strip() or header_label(tail[start])
                                 or (start == 0 and separator_at(tail, 0))):
        start += 1  # an Outlook header block above quoted lines
    if start == len(tail) or not QUOTED.match(tail[start]):
        return []  # unquoted history (an Outlook block): nothing of ours below
    if not _UNQUOTED_TEXT.search("\n" + "\n".join(tail[start:])):
        return []  # all quote (one pattern over the text, not a loop over its lines)
    runs: list[tuple[bool, list[str]]] = []  # (quoted, lines)
    for line in tail[start:]:
        quoted = bool(QUOTED.match(line))
        if not line.strip() and runs:
            runs[-1][1].append(line)  # blank lines belong to the run they follow
            continue
        if runs and runs[-1][0] == quoted:
            runs[-1][1].append(line)
        else:
            runs.append((quoted, [line]))
    answers = [i for i, (quoted, run) in enumerate(runs) if not quoted and _is_answer(run)]
    if not answers:
        return []
    if len(answers) == 1 and answers[0] == len(runs) - 1 and len(runs) == 2:
        return runs[-1][1]  # bottom-posted
    out: list[str] = []
    for i in answers:
        quote = runs[i - 1][1] if i > 0 and runs[i - 1][0] else []
        question, dropped = _last_paragraph(quote)
        if out and dropped:
            out.append("")  # where quoted lines were dropped, a paragraph break
        out += question + runs[i][1]
    return out


def _is_answer(run: list[str]) -> bool:
    """Unquoted lines that are the author's: not just a signature or device line, and not
    the start of more history (an attribution or header block)."""
    for i, line in enumerate(run):
        if not line.strip():
            continue
        if attribution_length(run, i) or header_block_at(run, i) or separator_at(run, i):
            return False
        if signature.is_delimiter(line):
            return False
        if not signature.is_device_line(line):
            return True
    return False


def _last_paragraph(run: list[str]) -> tuple[list[str], bool]:
    """The last paragraph of a quoted run (the quoted lines after its last blank quoted line,
    and the blank lines below them, as they stand), and whether lines above it were dropped."""
    start = 0
    for i, line in enumerate(run):
        if line.strip() and _QUOTED_BLANK.match(line):
            start = i + 1
    while start < len(run) and not run[start].strip():
        start += 1
    return run[start:], start > 0


# -- output --------------------------------------------------------------------------------


def _drop_trailing_rules(lines: list[str]) -> list[str]:
    """A row of dashes or underscores left at the end (above a cut history) goes."""
    end = len(lines)
    while end and (not lines[end - 1].strip() or RULE.match(lines[end - 1])):
        end -= 1
    return lines[:end]


def _tidy(lines: list[str]) -> str:
    return _BLANK_RUNS.sub("\n\n", "\n".join(lines)).strip()


def _first_block(lines: list[str]) -> str:
    """The first paragraph of the author's unquoted text: the fallback when everything else
    was dropped (never an attribution line or a separator)."""
    para: list[str] = []
    for i, line in enumerate(lines):
        if not line.strip():
            if para:
                break
            continue
        if QUOTED.match(line) or attribution_length(lines, i) or RULE.match(line) \
                or separator_at(lines, i):
            if para:
                break
            continue
        para.append(line)
    if para:
        return "\n".join(para).strip()
    return next((line.strip() for line in lines if line.strip() and not QUOTED.match(line)),
                "")
