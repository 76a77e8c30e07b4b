"""`[logging] format`: plain text lines, or one JSON object per line for journald and log
shippers. Both go to stderr (systemd's journal takes it from there).

A JSON line has `time`, `level`, `logger`, `event` (the message's fixed template, so lines
about the same thing group together whatever their values), `message`, and `case` /
`message_id` / `job` when the logging call passed them (`extra={"case": ref}`). Log calls
keep bodies and tokens out of their text; at INFO they name no person's address."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FIELDS = ("case", "message_id", "job")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": str(record.msg),
            "message": record.getMessage(),
        }
        line |= {k: getattr(record, k) for k in FIELDS if getattr(record, k, None) is not None}
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(level: int) -> None:
    """Before the config file is read: text to stderr at `level`."""
    logging.basicConfig(level=level, format=TEXT)
    # Alembic names each of its plugins at INFO on every start: noise, not news.
    logging.getLogger("alembic.runtime.plugins").setLevel(max(level, logging.WARNING))


def apply(fmt: str) -> None:
    """Once the config file is read: its `[logging] format` for every handler of the root."""
    formatter = JsonFormatter() if fmt == "json" else logging.Formatter(TEXT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
