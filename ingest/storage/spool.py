"""The write-ahead spool: line-protocol batches on local disk while InfluxDB cannot take them.

Layout of a spool directory:

    LOCK                  flock()ed by the one ingestor that owns the spool
    cursor                "<segment> <offset>": where replay resumes (written atomically)
    0000000000000001.seg  segments of records, replayed in file-name then offset order
    corrupt/              segments that failed their checksum away from the tail

A record is a 12-byte header (magic, body length, CRC-32 of the body) and the body (lines joined
by newlines). `append` returns only after the record is fsync()ed, because the caller
acknowledges the batch's MQTT messages right after: once the broker forgets them, the disk copy is
the only one. The cursor is not fsync()ed: after a crash it may point at an older record, which
is then written again. Points are idempotent in InfluxDB (same series and time overwrite), so a
replayed record costs a write, never a duplicate.

A full disk is a state, not a crash: an append that finds no space (ENOSPC, EDQUOT) or any other
write error cuts the segment back to its last whole record and raises `SpoolUnwritable`, and the
writer waits and tries again. Replay needs no free space for its bookkeeping: the cursor is a
fixed-width line rewritten in place (no temporary file, no new block), and a cursor that cannot be
saved at all costs a replayed record after a crash, never a lost one.

A crash can leave the last record half written. It was never acknowledged (the broker redelivers
its messages), so opening the spool truncates it.

The methods are blocking (file I/O, fsync); the writer calls them through `asyncio.to_thread`. An
append (writer task) and a peek/commit (replay task) may run at the same time in two threads, so
the shared counters sit behind a lock.
"""

from __future__ import annotations

import errno
import fcntl
import io
import logging
import os
import threading
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ingest.storage._segments import (
    CURSOR_WIDTH,
    HEADER,
    MAGIC,
    SUFFIX,
    cursor_line,
    scan,
    segment_name,
)
from ingest.storage.files import private

log = logging.getLogger(__name__)


class SpoolFull(Exception):
    """The record would take the spool over its size bound."""


class SpoolLocked(Exception):
    """Another process owns this spool directory."""


class SpoolUnwritable(Exception):
    """The disk refused a record (no space, quota, I/O error); nothing of it was kept."""

    def __init__(self, message: str, no_space: bool) -> None:
        super().__init__(message)
        self.no_space = no_space


# Errors that mean "no room on this filesystem": they pass when space is freed.
_NO_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


@dataclass(frozen=True, slots=True)
class DiskSpace:
    """The spool filesystem's size and what an unprivileged writer may still use of it."""

    free_bytes: int
    total_bytes: int


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    segment: int
    offset: int
    end: int
    body: bytes


class Spool:
    """A bounded, crash-safe FIFO of byte records in a directory."""

    def __init__(
        self,
        directory: Path,
        max_bytes: int = 1 << 30,
        segment_bytes: int = 16 << 20,
        fsync: bool = True,
    ) -> None:
        self.directory = directory
        # Bound on the bytes waiting for replay. Disk use can exceed it by up to one segment,
        # because a segment is deleted only once all its records are replayed.
        self.max_bytes = max_bytes
        self.segment_bytes = max(4096, min(segment_bytes, max_bytes // 4))
        self._fsync = fsync
        # _wlock serialises appends with the replay side's segment deletion; _lock guards the
        # counters and the segment list, and is only ever taken inside _wlock, never around it.
        self._wlock = threading.Lock()
        self._lock = threading.Lock()
        self._lock_file: BinaryIO | None = None
        self._segments: list[int] = []
        self._write: io.FileIO | None = None
        self._write_seq = 0
        self._write_size = 0
        self._read: BinaryIO | None = None
        self._read_seq = 0
        self._cursor = (1, 0)
        self._cursor_fd: int | None = None
        self.cursor_errors = 0
        self.pending_bytes = 0
        self.pending_records = 0
        self.appended_records = 0
        self.replayed_records = 0

    # -- opening --------------------------------------------------------------------------------

    def open(self) -> Spool:
        # Owner-only: the spool holds a site's readings, dead letters and alert state.
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock = open(self.directory / "LOCK", "a+b", opener=private)  # noqa: SIM115 (held open)
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise SpoolLocked(
                f"spool {self.directory} is in use by another ingestor; give each instance its "
                "own KERA_SPOOL_DIR"
            ) from None
        try:
            # Only for a person looking: who holds the lock. The flock is what counts, so a full
            # disk must not stop the start here.
            lock.truncate(0)
            lock.write(f"{os.getpid()}\n".encode())
            lock.flush()
        except OSError as exc:
            log.warning("spool %s: cannot note the owner's pid in LOCK (%s)", self.directory, exc)
        self._lock_file = lock
        self._recover()
        try:
            # Now, while there may be room: later saves rewrite it in place.
            self._cursor_fd = self._open_cursor()
        except OSError as exc:
            log.warning("spool %s: cannot prepare the replay cursor (%s)", self.directory, exc)
        return self

    def _recover(self) -> None:
        seqs = sorted(int(p.stem) for p in self.directory.glob(f"*{SUFFIX}") if p.stem.isdigit())
        cur_seq, cur_off = self._load_cursor()
        for seq in seqs:
            if seq < cur_seq:
                # Fully replayed before a crash that came between cursor and delete.
                (self.directory / segment_name(seq)).unlink()
        seqs = [s for s in seqs if s >= cur_seq]
        if not seqs or seqs[0] != cur_seq:
            cur_off = 0
        for i, seq in enumerate(seqs):
            path = self.directory / segment_name(seq)
            start = cur_off if i == 0 else 0
            records, good, size = scan(path, start)
            if good < size:
                if i == len(seqs) - 1:
                    log.warning(
                        "spool %s: dropping a torn record at the end (%d bytes); it was never "
                        "acknowledged, so the broker redelivers its readings",
                        path.name,
                        size - good,
                    )
                    with path.open("r+b") as f:
                        f.truncate(good)
                        os.fsync(f.fileno())
                else:
                    # Acknowledged data is unreadable: keep the file for an operator and say so.
                    corrupt = self.directory / "corrupt"
                    corrupt.mkdir(exist_ok=True)
                    log.error(
                        "spool %s: checksum mismatch at byte %d of %d; %d bytes after it moved "
                        "to %s for inspection",
                        path.name,
                        good,
                        size,
                        size - good,
                        corrupt,
                    )
                    os.replace(path, corrupt / path.name)
                    # The readable records before the damage are still replayed, from a copy.
                    self._salvage(corrupt / path.name, start, records, seq)
                    if i == 0:
                        cur_off = 0
            self.pending_records += records
            self.pending_bytes += good - start
        self._segments = sorted(
            int(p.stem) for p in self.directory.glob(f"*{SUFFIX}") if p.stem.isdigit()
        )
        if self._segments and self._segments[0] == cur_seq:
            self._cursor = (cur_seq, cur_off)
        elif self._segments:
            self._cursor = (self._segments[0], 0)
        else:
            # Numbers only grow, so a stale cursor can never point into a new segment.
            self._cursor = (cur_seq + 1, 0)
        if self.pending_records:
            log.info(
                "spool %s: %d records (%d bytes) waiting for replay",
                self.directory,
                self.pending_records,
                self.pending_bytes,
            )

    def _salvage(self, src: Path, start: int, records: int, seq: int) -> None:
        """Copy the readable records before a corrupt spot back into the segment's place."""
        with src.open("rb") as f, (self.directory / segment_name(seq)).open("wb") as out:
            f.seek(start)
            for _ in range(records):
                header = f.read(HEADER.size)
                length = HEADER.unpack(header)[1]
                out.write(header + f.read(length))
            out.flush()
            os.fsync(out.fileno())

    def _load_cursor(self) -> tuple[int, int]:
        try:
            line = (self.directory / "cursor").read_bytes()
        except FileNotFoundError:
            return 1, 0
        fields = line.split()
        if len(fields) in (2, 3) and fields[0].isdigit() and fields[1].isdigit():
            seq, offset = int(fields[0]), int(fields[1])
            # An older version wrote "seq offset", atomically renamed; this one adds a checksum.
            if len(fields) == 2 or cursor_line(seq, offset).split() == fields:
                return seq, offset
        # Replaying from the first segment writes some records twice, which InfluxDB collapses
        # (same series and time); a wrong offset could lose them.
        log.warning("spool cursor unreadable (%r); replaying from the first segment", fields)
        return 1, 0

    def close(self) -> None:
        with self._wlock:
            for f in (self._write, self._read):
                if f is not None:
                    f.close()
            self._write = self._read = None
            if self._cursor_fd is not None:
                os.close(self._cursor_fd)
                self._cursor_fd = None
            if self._lock_file is not None:
                self._lock_file.close()  # releases the flock
                self._lock_file = None

    # -- writing --------------------------------------------------------------------------------

    @property
    def empty(self) -> bool:
        return self.pending_records == 0

    @property
    def full(self) -> bool:
        return self.pending_bytes >= self.max_bytes

    def has_room(self, size: int) -> bool:
        """Whether a record of `size` bytes (header included) would be taken now: the one test
        for refusing a record, so that a refused writer waits on exactly what refused it. A
        record larger than the whole bound fits an empty spool, or it could never be stored."""
        return not self.pending_records or self.pending_bytes + size <= self.max_bytes

    @staticmethod
    def record_size(body: bytes) -> int:
        return HEADER.size + len(body)

    def disk_space(self) -> DiskSpace | None:
        """Free and total bytes of the spool's filesystem (one statvfs call), None if unknown."""
        try:
            st = os.statvfs(self.directory)
        except OSError:
            return None
        return DiskSpace(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize)

    def append(self, body: bytes) -> None:
        """Store one record durably, or raise SpoolFull (the bound) or SpoolUnwritable (the
        disk); after either, the spool is as it was before the call."""
        size = self.record_size(body)
        with self._wlock:
            with self._lock:
                if not self.has_room(size):
                    raise SpoolFull(
                        f"spool holds {self.pending_bytes} bytes; {size} more would pass the "
                        f"{self.max_bytes}-byte bound"
                    )
            try:
                f = self._writable(size)
                data = HEADER.pack(MAGIC, len(body), zlib.crc32(body)) + body
                view = memoryview(data)
                while view:  # unbuffered: a short write is possible, a lost one is not
                    written = f.write(view)
                    view = view[written or 0 :]
                if self._fsync:
                    os.fsync(f.fileno())
            except OSError as exc:
                self._undo_partial_append()
                no_space = exc.errno in _NO_SPACE
                what = "no space left" if no_space else f"write error ({exc.strerror or exc})"
                space = self.disk_space()
                free = f"; {space.free_bytes} bytes free" if space is not None else ""
                raise SpoolUnwritable(
                    f"{what} for a {size}-byte record in {self.directory}{free}", no_space
                ) from exc
            self._write_size += size
            with self._lock:
                self.pending_records += 1
                self.pending_bytes += size
                self.appended_records += 1

    def _undo_partial_append(self) -> None:
        """Cut the write segment back to its last whole record: what a refused write left would
        read as a torn tail, and later records would land after it."""
        f = self._write
        if f is None:
            return
        try:
            os.ftruncate(f.fileno(), self._write_size)
            f.seek(self._write_size)
        except OSError as exc:  # shrinking needs no space; if even that fails, reopen later
            log.error("spool: cannot cut a refused record back (%s)", exc)
            f.close()
            self._write = None

    def _writable(self, size: int) -> io.FileIO:
        if self._write is not None:
            if self._write_size + size <= self.segment_bytes:
                return self._write
            self._write.close()
            self._write = None
        with self._lock:
            segments = self._segments
            if not segments:
                seq = max(self._cursor[0], self._write_seq + 1)
            elif self._write_seq != segments[-1]:
                # After a restart: keep filling the last segment while it has room.
                seq = segments[-1]
                existing = (self.directory / segment_name(seq)).stat().st_size
                if existing + size > self.segment_bytes:
                    seq += 1
            else:
                seq = segments[-1] + 1
        # Unbuffered, so that a refused write leaves nothing in a buffer to be flushed later.
        f = io.FileIO(self.directory / segment_name(seq), "ab", opener=private)
        self._write_size = f.seek(0, os.SEEK_END)
        with self._lock:
            if seq not in self._segments:
                self._segments.append(seq)
        self._fsync_dir()
        self._write = f
        self._write_seq = seq
        return f

    def _fsync_dir(self) -> None:
        if not self._fsync:
            return
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    # -- replaying ------------------------------------------------------------------------------

    def peek(self) -> SpoolRecord | None:
        """The oldest record not yet committed, or None."""
        with self._lock:
            if not self.pending_records:
                return None
            seq, off = self._cursor
        while True:
            f = self._reader(seq)
            f.seek(off)
            header = f.read(HEADER.size)
            if len(header) == HEADER.size:
                magic, length, crc = HEADER.unpack(header)
                body = f.read(length)
                if magic != MAGIC or len(body) < length or zlib.crc32(body) != crc:
                    raise OSError(f"spool segment {seq} unreadable at byte {off}")
                return SpoolRecord(seq, off, off + HEADER.size + length, body)
            # End of this segment: everything in it is replayed, move on.
            with self._lock:
                later = [s for s in self._segments if s > seq]
            if not later:
                raise OSError(f"spool says {self.pending_records} records wait but none found")
            self._finish_segment(seq)
            seq, off = later[0], 0
            with self._lock:
                self._cursor = (seq, 0)

    def _reader(self, seq: int) -> BinaryIO:
        if self._read is None or self._read_seq != seq:
            if self._read is not None:
                self._read.close()
            self._read = (self.directory / segment_name(seq)).open("rb")
            self._read_seq = seq
        return self._read

    def commit(self, record: SpoolRecord) -> None:
        """Mark `record` (the one `peek` returned) as stored in InfluxDB."""
        with self._lock:
            self._cursor = (record.segment, record.end)
            self.pending_records -= 1
            self.pending_bytes -= record.end - record.offset
            self.replayed_records += 1
            drained = self.pending_records == 0
        self._save_cursor(record.segment, record.end)
        if drained:
            self._reset()

    def _finish_segment(self, seq: int) -> None:
        with self._wlock:
            if seq == self._write_seq and self._write is not None:
                return  # still being appended to
            with self._lock:
                if seq in self._segments:
                    self._segments.remove(seq)
            if self._read is not None and self._read_seq == seq:
                self._read.close()
                self._read = None
            (self.directory / segment_name(seq)).unlink(missing_ok=True)

    def _reset(self) -> None:
        """Everything is replayed: delete the segments so the next outage starts a fresh one."""
        with self._wlock:
            with self._lock:
                if self.pending_records:
                    return  # an append landed since the commit
                segments, self._segments = self._segments, []
                next_seq = max([*segments, self._cursor[0], self._write_seq]) + 1
                self._cursor = (next_seq, 0)
            for f in (self._write, self._read):
                if f is not None:
                    f.close()
            self._write = self._read = None
            self._write_size = 0
            for seq in segments:
                (self.directory / segment_name(seq)).unlink(missing_ok=True)
            self._save_cursor(next_seq, 0)

    def _save_cursor(self, seq: int, offset: int) -> None:
        """Rewrite the cursor line in place: fixed width, so it takes no new block on a full
        disk, with a checksum, so a torn line is noticed and replay starts over instead. A
        cursor that cannot be saved is logged: after a crash, records are written again."""
        try:
            if self._cursor_fd is None:
                self._cursor_fd = self._open_cursor()
            os.pwrite(self._cursor_fd, cursor_line(seq, offset), 0)
        except OSError as exc:
            self.cursor_errors += 1
            if self.cursor_errors == 1 or self.cursor_errors % 1000 == 0:
                log.error(
                    "spool %s: cannot save the replay cursor (%s, %d times); after a crash "
                    "the records since the last saved one are written again",
                    self.directory,
                    exc,
                    self.cursor_errors,
                )

    def _open_cursor(self) -> int:
        path = self.directory / "cursor"
        try:
            if path.stat().st_size == CURSOR_WIDTH:
                return os.open(path, os.O_RDWR)
        except FileNotFoundError:
            pass
        # New, or an older version's short line: write a full-width one once, atomically.
        tmp = self.directory / "cursor.tmp"
        with open(tmp, "wb", opener=private) as f:
            f.write(cursor_line(*self._cursor))
        os.replace(tmp, path)
        return os.open(path, os.O_RDWR)
