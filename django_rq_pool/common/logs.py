"""Log format for the master and its workers: time, level, pid, queue list, message; secrets masked."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

from django_rq_pool.config.redact import redact_text

LOG_FORMAT = "%(asctime)s %(levelname)-7s [%(process)d] [%(queues)s] %(name)s: %(message)s"
POOL_LOGGERS = ("django_rq_pool", "rq")

_label = "master"


class _QueueLabel(logging.Filter):
    """Stamp each record with the queue list of the process that wrote it; mask any Redis secret in it.

    Also attached to handlers that Django's LOGGING configured, whose formatters are not ours.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.queues = _label
        try:
            message = record.getMessage()
        except Exception:
            return True  # a malformed record: the handler's emit reports it, logging never raises
        shown = redact_text(message)
        if shown != message:
            record.msg, record.args = shown, None
        return True


class RedactingFormatter(logging.Formatter):
    """The pool's format, with secrets masked in the whole text (a traceback may quote a URL too)."""

    def format(self, record: logging.LogRecord) -> str:
        return redact_text(super().format(record))


def set_process_label(label: str) -> None:
    """Name the queue list shown in this process's log lines (``master`` in the master)."""
    global _label
    _label = label


def level_for_verbosity(verbosity: int) -> int:
    return {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)


def configure_logging(level: int, stream: TextIO | None = None, log_file: logging.Handler | None = None) -> None:
    """Attach one handler to the pool's and rq's loggers unless Django's LOGGING already did.

    A log file (``--log-file``) always takes the pool's and rq's loggers; when Django's LOGGING
    configured no root handler it takes the root logger too, so jobs' own loggers land there.
    A record that finds no handler at all (a job's own logger when nothing is configured) goes
    to stderr in the pool's format (:func:`last_resort`).
    """
    logging.lastResort = last_resort(stream or sys.stderr)
    handler = _in_pool_format(log_file or logging.StreamHandler(stream or sys.stderr))
    if log_file is not None:
        _attach_log_file(level, handler)
        return
    for name in POOL_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not logger.handlers and not logging.getLogger().handlers:
            logger.addHandler(handler)
        else:
            for existing in logger.handlers or logging.getLogger().handlers:
                existing.addFilter(_QueueLabel())


def last_resort(stream: TextIO) -> logging.Handler:
    """Python's handler of last resort (stderr, WARNING and up, for records no handler takes), in our format.

    Python's own writes the bare message: without it a job's ``getLogger("app").warning(...)``
    would carry no time, pid or queue list. Only records that find no handler reach it, so a
    line is never written twice, whatever handlers the app configured.
    """
    return _in_pool_format(logging.StreamHandler(stream), logging.WARNING)


def _in_pool_format(handler: logging.Handler, level: int = logging.NOTSET) -> logging.Handler:
    handler.setLevel(level)
    handler.setFormatter(RedactingFormatter(LOG_FORMAT))
    handler.addFilter(_QueueLabel())
    return handler


def _attach_log_file(level: int, handler: logging.Handler) -> None:
    root = logging.getLogger()
    own_root = not root.handlers
    if own_root:
        root.addHandler(handler)
    for name in POOL_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not own_root:
            logger.addHandler(handler)
            logger.propagate = False
