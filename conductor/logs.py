"""Logging for the `conductor` command: conductor's own short lines, and the client libraries
quiet unless something is wrong.

kafka-python logs some messages at WARNING or ERROR on a healthy run: a step of its IO loop
that took over 0.1 s (a busy machine), a group leader without a new topic's metadata yet
(another rebalance follows by itself), and a socket race when a consumer closes. The
Elasticsearch client marks a node dead and alive again at WARNING, which the worker's own
outage lines already say. They are shown at DEBUG; everything else a library logs at WARNING or
above stays as it is.

`--log-format json` writes one JSON object per line instead, for log shippers. Under systemd,
with stderr going to the journal, text lines carry no time (the journal stamps each one) and
start with their syslog priority, `<3>` for an error, which journald reads (SyslogLevelPrefix=).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import IO

import orjson

LOG_FORMAT = "%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s"
JOURNAL_FORMAT = "%(levelname)s [%(process)d] %(name)s: %(message)s"
SYSLOG_PRIORITIES = ((logging.CRITICAL, 2), (logging.ERROR, 3), (logging.WARNING, 4), (logging.INFO, 6))
FORMATS = ("text", "json")

NOISE = (
    ("elastic_transport.node_pool", ""),  # a node marked dead or alive: the worker's own line says so
    ("kafka.net.selector", "It is blocking the event loop"),
    ("kafka.coordinator.assignors", "No partition metadata for topic"),
    ("kafka.cluster", "Metadata refresh: failed Cancelled"),
    # A transaction's first write to a partition is verified by the broker (KIP-890); while it
    # checks, the write is answered NotEnoughReplicas and retried, then goes through.
    ("kafka.producer.sender", "Unable to verify the partition has been added to the transaction"),
    # The aggregator's consumer and admin meet its output and internal topics before they exist.
    ("kafka.cluster", "not found in cluster metadata"),
    # Offsets asked for while another member's transaction holds some: asked again later.
    ("kafka.coordinator.consumer", "UnstableOffsetCommitError"),
)


def _noise(record: logging.LogRecord) -> bool:
    name, message = record.name, record.getMessage()
    if any(name.startswith(logger) and text in message for logger, text in NOISE):
        return True
    # A consumer closing while its IO thread still reads: the socket is already gone.
    error = record.exc_info[1] if record.exc_info else None
    return name == "kafka.net.transport" and isinstance(error, AttributeError) and "recv" in str(error)


class LibraryNoise(logging.Filter):
    """Shows the messages above at DEBUG: dropped unless the level is DEBUG."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG and _noise(record):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return self.level <= logging.DEBUG
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ms), level, logger, pid, message, and exception
    (the formatted traceback) when the record has one."""

    def format(self, record: logging.LogRecord) -> str:
        created = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry = {
            "time": f"{created}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(entry).decode()
        except orjson.JSONEncodeError:  # a lone surrogate, from bytes decoded with surrogateescape
            return orjson.dumps({key: _utf8(value) for key, value in entry.items()}).decode()


class JournalFormatter(logging.Formatter):
    """JOURNAL_FORMAT, each line of it (a traceback's too) prefixed with the record's syslog
    priority, so that journald files every line at the record's level."""

    def __init__(self) -> None:
        super().__init__(JOURNAL_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def syslog_priority(levelno: int) -> int:
    """crit 2, err 3, warning 4, info 6, debug 7 (syslog(3)), for Python's levels and any between."""
    return next((priority for level, priority in SYSLOG_PRIORITIES if levelno >= level), 7)


def to_journal(stream: IO[str]) -> bool:
    """True when `stream` (stderr) is journald's: systemd sets $JOURNAL_STREAM to its device:inode."""
    try:
        device, inode = (int(part) for part in os.environ.get("JOURNAL_STREAM", "").split(":"))
        status = os.fstat(stream.fileno())
    except (ValueError, OSError):  # unset, malformed, or a stream without a descriptor
        return False
    return (status.st_dev, status.st_ino) == (device, inode)


def _utf8(value: object) -> object:
    return value.encode(errors="replace").decode() if isinstance(value, str) else value


def configure(level_name: str, log_format: str = "text") -> None:
    """Log to stderr at `level_name`, as text lines or (`log_format` "json") JSON lines."""
    level = logging.getLevelName(level_name.upper())
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(JournalFormatter() if to_journal(sys.stderr) else logging.Formatter(LOG_FORMAT))
    handler.addFilter(LibraryNoise(level))
    logging.basicConfig(level=level, handlers=[handler])
    # The clients' INFO lines are their own chatter; their warnings and errors still show.
    for library in ("kafka", "elastic_transport", "cassandra"):
        logging.getLogger(library).setLevel(max(logging.WARNING, level))
