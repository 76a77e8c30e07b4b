"""Forgiving name matching for commands and imports: case, spacing and punctuation do not
matter, and a unique prefix is enough (`#service env` means Environmental Health)."""

from __future__ import annotations

import re
from collections.abc import Iterable


def squash(value: str) -> str:
    return re.sub(r"[^0-9a-z]+", "", value.casefold())


def match(value: str, choices: Iterable[str], what: str = "name") -> tuple[str | None, str]:
    """(the choice, "") or (None, why not): unknown, or a prefix of several choices."""
    options = list(dict.fromkeys(choices))
    key = squash(value)
    if not key:
        return None, f"no {what} given; choose one of {_list(options)}"
    exact = [c for c in options if squash(c) == key]
    if exact:
        return exact[0], ""
    found = [c for c in options if squash(c).startswith(key)]
    if not found:  # a prefix of any word: `#service health`
        found = [c for c in options
                 if any(squash(w).startswith(key) for w in re.split(r"[\s/&,-]+", c))]
    if len(found) == 1:
        return found[0], ""
    if found:
        return None, f"{what} {value.strip()!r} could be {_list(found, 'or')}; say which"
    return None, f"unknown {what} {value.strip()!r}; choose one of {_list(options)}"


def _list(items: list[str], last: str = "or") -> str:
    if len(items) <= 1:
        return "".join(items) or "(none configured)"
    return ", ".join(items[:-1]) + f" {last} " + items[-1]
