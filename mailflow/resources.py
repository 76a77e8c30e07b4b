"""Where the shipped templates and migrations are, in a wheel and in a source checkout alike.

The repository keeps them in templates/ and alembic/ beside the package; the wheel ships the
same folders inside it as mailflow/_templates and mailflow/_alembic (pyproject.toml). Jinja2's
FileSystemLoader and Alembic's script_location both need a real folder, so this returns paths
rather than importlib.resources Traversables (a wheel is installed unpacked, never zipped).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _folder(shipped: str, checkout: str) -> Path:
    # An editable install or a run from the tree has no copy inside the package.
    inside = _PACKAGE / shipped
    return inside if inside.is_dir() else _PACKAGE.parent / checkout


TEMPLATES = _folder("_templates", "templates")
MIGRATIONS = _folder("_alembic", "alembic")
