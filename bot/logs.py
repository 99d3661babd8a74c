"""Logging for the bot: the token never reaches a log line, httpx does not log every URL."""

from __future__ import annotations

import logging

REDACTED = "<token>"


class RedactToken(logging.Filter):
    """Replace the bot token in messages, arguments and tracebacks (httpx errors carry URLs)."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record in place; never drops it."""
        if not self.token:
            return True
        message = record.getMessage()
        if self.token in message:
            record.msg, record.args = message.replace(self.token, REDACTED), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and self.token in record.exc_text:
            record.exc_text = record.exc_text.replace(self.token, REDACTED)
        return True


def protect(handler: logging.Handler, token: str) -> logging.Handler:
    """Add the redaction filter to `handler` (filters on handlers see every propagated record)."""
    handler.addFilter(RedactToken(token))
    return handler


def configure(token: str, level: int = logging.INFO) -> None:
    """Root logging for `python -m bot`: one redacting stderr handler; httpx and PTB quieter."""
    handler = protect(logging.StreamHandler(), token)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    # httpx logs every request URL, which contains the token, at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
