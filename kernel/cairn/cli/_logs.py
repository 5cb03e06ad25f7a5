"""``--log-format json``: one JSON object per log record on stderr, for log shippers."""

from __future__ import annotations

import json
import logging
import sys

__all__ = ["JsonFormatter", "configure_logging"]

#: Attributes every LogRecord has; anything else on a record came from ``extra=`` and is kept.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """A record as one line of JSON: ``ts``, ``level``, ``logger``, ``message``, the exception, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        import datetime as _dt

        from cairn.model import format_time

        out = {
            "ts": format_time(_dt.datetime.fromtimestamp(record.created, _dt.timezone.utc)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        return json.dumps(out, ensure_ascii=False, default=str)


def configure_logging(fmt: str, level: str = "warning") -> None:
    """Send log records to stderr as ``fmt`` (``json``); ``text`` keeps Python's default handling."""
    if fmt != "json":
        return
    handler = _JsonHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, _JsonHandler)]
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))


class _JsonHandler(logging.StreamHandler):  # type: ignore[type-arg]  # StreamHandler is generic only in typeshed
    """The handler ``--log-format json`` installs: found again by its class, so a second call replaces it."""
