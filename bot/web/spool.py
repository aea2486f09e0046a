"""The inbound spool: verified webhooks that could not be stored wait here, on local disk, for the database.

Twilio does not redeliver messaging webhooks, so an inbound message answered 503 during a database
outage is lost. Instead the webhook appends the parsed message to an append-only file (one line per
record, with its length and CRC-32, written with one `write` and fsync'd) and answers 200. When the
database is back the records are handed to the engine in the order they arrived, each once, by
`SpoolReplayer` (a small thread in each web process, started when something is spooled) or by
`lastmile spool replay`. Each keeps its provider id, so a redelivery still finds it a duplicate.

Files in the spool directory:
- `inbound.spool`: the live file webhooks append to (under `.append.lock`);
- `inbound-<ns>.segment`: the live file, renamed when a replay starts (appends go to a new live file);
- `inbound-<ns>.segment.done`: ids of that segment's records already handed to the engine (fsync'd
  after each), so a replay interrupted by a crash or a new outage resumes after the last one;
- `rejected.spool`: records the engine refused for another reason than an outage (a bug, bad data):
  kept for a person to look at, never retried by themselves.
A segment is deleted once all its records are done (compaction). A record cut short by a crash (no
final newline, wrong length or CRC) is skipped and counted.
"""

from __future__ import annotations

import base64
import fcntl
import json
import logging
import os
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bot.core.messages import Inbound, Location, Media

logger = logging.getLogger(__name__)

MAGIC = b"LMS1"
LIVE = "inbound.spool"
REJECTED = "rejected.spool"


class SpoolError(OSError):
    """The spool could not be written (disk full, read-only): the webhook must not answer 200."""


# --- records ---------------------------------------------------------------------------------------
def inbound_to_dict(inbound: Inbound) -> dict[str, Any]:
    data = asdict(inbound)
    data["received_at"] = inbound.received_at.isoformat() if inbound.received_at else None
    return data


def inbound_from_dict(data: dict[str, Any]) -> Inbound:
    data = dict(data)
    data["media"] = [Media(**m) for m in data.get("media") or []]
    data["location"] = Location(**data["location"]) if data.get("location") else None
    data["received_at"] = datetime.fromisoformat(data["received_at"]) if data.get("received_at") else None
    return Inbound(**data)


def encode_record(record: dict[str, Any]) -> bytes:
    """`LMS1 <length> <crc32> <base64 of the JSON>\\n`: base64 keeps the record on one line whatever
    the message holds, the length and CRC tell a complete record from a torn or damaged one."""
    payload = base64.b64encode(json.dumps(record, separators=(",", ":")).encode())
    return b"%s %d %08x %s\n" % (MAGIC, len(payload), zlib.crc32(payload), payload)


def decode_record(line: bytes) -> dict[str, Any] | None:
    parts = line.rstrip(b"\n").split(b" ")
    if len(parts) != 4 or parts[0] != MAGIC:
        return None
    try:
        length, crc = int(parts[1]), int(parts[2], 16)
    except ValueError:
        return None
    payload = parts[3]
    if len(payload) != length or zlib.crc32(payload) != crc:
        return None
    try:
        record = json.loads(base64.b64decode(payload, validate=True))
    except ValueError:
        return None
    return record if isinstance(record, dict) and "id" in record and "inbound" in record else None


@dataclass
class ReplayResult:
    replayed: int = 0  # handed to the engine and stored
    duplicates: int = 0  # already stored (a redelivery, or replayed before a crash)
    rejected: int = 0  # refused for another reason than an outage: moved to rejected.spool
    damaged: int = 0  # torn or corrupt lines skipped
    outage: bool = False  # stopped because the database is still (or again) unreachable
    busy: bool = False  # another process or thread is replaying
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Spool:
    """An append-only, fsync'd spool of inbound messages in `directory`, shared by every process
    of one server (file locks coordinate them)."""

    def __init__(self, directory: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.directory = Path(directory)
        self.fsync = fsync
        self.live = self.directory / LIVE

    # --- writing ---------------------------------------------------------------------------------
    def append(self, inbound: Inbound) -> str:
        """Store one inbound message durably; returns the record id. Raises SpoolError."""
        record_id = uuid.uuid4().hex
        record = {"id": record_id, "spooled_at": datetime.now(UTC).isoformat(), "inbound": inbound_to_dict(inbound)}
        line = encode_record(record)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            with self._lock(".append.lock"):
                created = not self.live.exists()
                fd = os.open(self.live, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                try:
                    size = os.fstat(fd).st_size
                    if size and _last_byte(self.live, size) != b"\n":
                        line = b"\n" + line  # a torn record from a crash: start ours on a fresh line
                    _write_all(fd, line)
                    if self.fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                if created and self.fsync:
                    _fsync_dir(self.directory)
        except OSError as exc:
            raise SpoolError(f"cannot write the spool in {self.directory}: {exc.strerror or exc}") from exc
        return record_id

    # --- reading ---------------------------------------------------------------------------------
    def pending(self) -> bool:
        """Is anything waiting to be replayed? (cheap: a stat and a directory listing)"""
        try:
            if self.live.stat().st_size > 0:
                return True
        except OSError:  # no spool yet, or an unusable path (append will say so)
            pass
        return bool(self.segments())

    def segments(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob("inbound-*.segment"))

    def status(self) -> dict[str, Any]:
        waiting = damaged = 0
        # Under the append lock: a replayer rotating the live file into a segment between our listing of the
        # segments and our read of the live file would otherwise hide its records (seen as a flaky count).
        with self._lock(".append.lock"):
            for path in [*self.segments(), self.live]:
                done = _done_ids(path)
                for record in _records(path):
                    if record is None:
                        damaged += 1
                    elif record["id"] not in done:
                        waiting += 1
        rejected = sum(1 for r in _records(self.directory / REJECTED) if r is not None)
        return {"directory": str(self.directory), "waiting": waiting, "damaged": damaged, "rejected": rejected}

    # --- replaying -------------------------------------------------------------------------------
    def replay(self, handle: Callable[[Inbound], Any], is_outage: Callable[[BaseException], bool]) -> ReplayResult:
        """Hand every waiting record to `handle`, oldest first, each once; stop at the first outage.

        `handle` returns normally when the message is stored (or found a duplicate: an object with a
        true `duplicate` attribute); an exception for which `is_outage` is true stops the replay with
        the record still waiting; any other exception moves the record to rejected.spool.
        """
        result = ReplayResult()
        if not self.pending():
            return result
        with self._lock(".replay.lock", blocking=False) as locked:
            if not locked:
                result.busy = True
                return result
            for _round in range(100):  # webhooks may keep appending while we replay
                self._rotate()
                segments = self.segments()
                if not segments:
                    break
                for segment in segments:
                    if not self._replay_segment(segment, handle, is_outage, result):
                        return result
        return result

    def _rotate(self) -> None:
        """The live file becomes a segment; new appends start a new live file."""
        with self._lock(".append.lock"):
            try:
                if self.live.stat().st_size == 0:
                    return
            except FileNotFoundError:
                return
            self.live.rename(self.directory / f"inbound-{time.time_ns():020d}.segment")
            if self.fsync:
                _fsync_dir(self.directory)

    def _replay_segment(self, segment: Path, handle: Callable[[Inbound], Any],
                        is_outage: Callable[[BaseException], bool], result: ReplayResult) -> bool:
        done = _done_ids(segment)
        done_path = segment.with_name(segment.name + ".done")
        with open(done_path, "a", encoding="ascii") as marks:
            for record in _records(segment):
                if record is None:
                    result.damaged += 1
                    continue
                if record["id"] in done:
                    continue
                try:
                    outcome = handle(inbound_from_dict(record["inbound"]))
                except Exception as exc:
                    if is_outage(exc):
                        result.outage = True
                        return False
                    logger.error("spooled %s message refused (%s): kept in %s", record["inbound"].get("channel"),
                                 exc.__class__.__name__, REJECTED)
                    result.errors.append(exc.__class__.__name__)
                    self._reject(record, exc)
                    result.rejected += 1
                else:
                    if getattr(outcome, "duplicate", False):
                        result.duplicates += 1
                    else:
                        result.replayed += 1
                marks.write(record["id"] + "\n")
                marks.flush()
                if self.fsync:
                    os.fsync(marks.fileno())
                done.add(record["id"])
        segment.unlink()
        done_path.unlink(missing_ok=True)
        if self.fsync:
            _fsync_dir(self.directory)
        return True

    def _reject(self, record: dict[str, Any], exc: BaseException) -> None:
        record = {**record, "error": exc.__class__.__name__}
        fd = os.open(self.directory / REJECTED, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            _write_all(fd, encode_record(record))
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    @contextmanager
    def _lock(self, name: str, *, blocking: bool = True) -> Iterator[bool]:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / name, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _records(path: Path) -> Iterator[dict[str, Any] | None]:
    """Each complete line's record, None for a damaged one; a last line without its newline (a write
    cut short) is skipped."""
    try:
        with open(path, "rb") as file:
            for line in file:
                if not line.strip():
                    continue
                if not line.endswith(b"\n"):
                    yield None
                    return
                yield decode_record(line)
    except FileNotFoundError:
        return


def _done_ids(segment: Path) -> set[str]:
    try:
        text = segment.with_name(segment.name + ".done").read_text(encoding="ascii", errors="replace")
    except FileNotFoundError:
        return set()
    return {line for line in text.splitlines() if len(line) == 32}


def _last_byte(path: Path, size: int) -> bytes:
    with open(path, "rb") as file:
        file.seek(size - 1)
        return file.read(1)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the replayer thread ---------------------------------------------------------------------------
class SpoolReplayer:
    """Replays the spool from a thread of the web process while something waits in it, then exits.

    Started (again) by `ensure_running` whenever a webhook spools a message or finds the spool
    pending; each process of a gunicorn server has its own, and the replay lock lets one work at a
    time. Retries every `interval` seconds while the database is down.
    """

    def __init__(self, spool: Spool, handle: Callable[[Inbound], Any], is_outage: Callable[[BaseException], bool],
                 *, interval: float = 1.0) -> None:
        self.spool, self.handle, self.is_outage, self.interval = spool, handle, is_outage, interval
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()

    def ensure_running(self) -> None:
        with self._lock:
            if self._pid != os.getpid():  # forked: the parent's thread does not exist here
                self._pid, self._thread = os.getpid(), None
            if self._thread is not None and self._thread.is_alive():
                self._wake.set()
                return
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="spool-replayer", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                result = self.spool.replay(self.handle, self.is_outage)
            except Exception:  # never let the thread die with messages waiting
                logger.exception("spool replay failed")
                result = ReplayResult(outage=True)
            if result.replayed or result.duplicates or result.rejected:
                logger.info("spool replayed %d messages (%d duplicates, %d rejected)",
                            result.replayed, result.duplicates, result.rejected)
            if not self.spool.pending():
                with self._lock:  # exit, unless a webhook spooled something meanwhile
                    if not self.spool.pending():
                        self._thread = None
                        return
            self._wake.wait(self.interval)
            self._wake.clear()
