"""The disk spool on real files: order, bounds, restarts, torn and corrupt records."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.storage.deadletter import DeadLetters
from ingest.storage.spool import Spool, SpoolFull, SpoolLocked, SpoolUnwritable
from tests.helpers import small_tmpfs


def drain(spool: Spool) -> list[bytes]:
    out = []
    while (record := spool.peek()) is not None:
        out.append(record.body)
        spool.commit(record)
    return out


def test_fifo_across_segments_and_cleanup(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 20, segment_bytes=4096).open()
    bodies = [f"energy,device=em-{i} power_w={i} {i}".encode() * 40 for i in range(50)]
    for body in bodies:
        spool.append(body)
    assert len(list(tmp_path.glob("*.seg"))) > 5
    assert spool.pending_records == 50
    assert drain(spool) == bodies
    assert spool.empty
    assert spool.pending_bytes == 0
    assert list(tmp_path.glob("*.seg")) == []
    spool.append(b"after")
    assert drain(spool) == [b"after"]
    spool.close()


def test_survives_restart_mid_replay(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=4096).open()
    for i in range(30):
        spool.append(b"x" * 300 + str(i).encode())
    for _ in range(12):
        record = spool.peek()
        assert record is not None
        spool.commit(record)
    spool.close()
    again = Spool(tmp_path, segment_bytes=4096).open()
    assert again.pending_records == 18
    again.append(b"new")
    assert drain(again) == [b"x" * 300 + str(i).encode() for i in range(12, 30)] + [b"new"]
    again.close()


def test_torn_tail_is_truncated(tmp_path: Path) -> None:
    spool = Spool(tmp_path).open()
    spool.append(b"one")
    spool.append(b"two")
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    data = segment.read_bytes()
    segment.write_bytes(data[:-2])  # a crash in the middle of the second append
    again = Spool(tmp_path).open()
    assert again.pending_records == 1
    again.append(b"three")
    assert drain(again) == [b"one", b"three"]
    again.close()


def test_corrupt_record_before_the_tail_is_kept_for_inspection(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spool = Spool(tmp_path, segment_bytes=4096).open()
    for i in range(20):
        spool.append(bytes([65 + i]) * 500)
    spool.close()
    first = sorted(tmp_path.glob("*.seg"))[0]
    data = bytearray(first.read_bytes())
    data[12 + 500 + 12 + 10] ^= 0xFF  # inside the second record's body
    first.write_bytes(bytes(data))
    again = Spool(tmp_path, segment_bytes=4096).open()
    assert "checksum mismatch" in caplog.text
    assert (tmp_path / "corrupt" / first.name).exists()
    got = drain(again)
    assert got[0] == b"A" * 500  # the record before the damage is still replayed
    assert got[-1] == bytes([65 + 19]) * 500
    again.close()


def test_bound_refuses_and_then_has_room_again(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1 << 16).open()
    body = b"y" * 10_000
    stored = 0
    while spool.has_room(len(body)):
        spool.append(body)
        stored += 1
    assert stored == 6
    with pytest.raises(SpoolFull, match="bound"):
        spool.append(body)
    assert spool.full is False
    record = spool.peek()
    assert record is not None
    spool.commit(record)
    spool.append(body)
    assert spool.pending_records == 6
    spool.close()


def test_one_owner_at_a_time(tmp_path: Path) -> None:
    spool = Spool(tmp_path).open()
    with pytest.raises(SpoolLocked, match="KERA_SPOOL_DIR"):
        Spool(tmp_path).open()
    spool.close()
    Spool(tmp_path).open().close()


ops = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.binary(min_size=0, max_size=3000)),
        st.tuples(st.just("replay"), st.integers(1, 5)),
        st.tuples(st.just("reopen"), st.none()),
    ),
    max_size=40,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops)
def test_behaves_like_a_queue(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, bytes | int | None]]
) -> None:
    directory = tmp_path_factory.mktemp("spool")
    model: deque[bytes] = deque()
    spool = Spool(directory, max_bytes=1 << 20, segment_bytes=4096).open()
    for op, arg in steps:
        if op == "append":
            assert isinstance(arg, bytes)
            spool.append(arg)
            model.append(arg)
        elif op == "replay":
            assert isinstance(arg, int)
            for _ in range(arg):
                record = spool.peek()
                if not model:
                    assert record is None
                    break
                assert record is not None
                assert record.body == model.popleft()
                spool.commit(record)
        else:
            spool.close()
            spool = Spool(directory, max_bytes=1 << 20, segment_bytes=4096).open()
        assert spool.pending_records == len(model)
        assert spool.pending_bytes == sum(12 + len(b) for b in model)
    assert drain(spool) == list(model)
    spool.close()


def test_dead_letters_rotate_and_count(tmp_path: Path) -> None:
    dead = DeadLetters(tmp_path, max_bytes=1 << 16)
    for i in range(3000):
        dead.add([f"energy power_w={i} {i}"], "HTTP 400: bad")
    current = [json.loads(line) for line in dead.path.read_text().splitlines()]
    older = dead.path.with_name("dead-letters.jsonl.1").read_text().splitlines()
    assert current[-1]["line"] == "energy power_w=2999 2999"
    assert current[-1]["detail"] == "HTTP 400: bad"
    assert current[-1]["reason"] == "influx_refused"
    assert dead.count == 3000
    assert len(current) + len(older) + dead.discarded_by_rotation == 3000
    assert dead.discarded_by_rotation > 0


def test_has_room_is_the_one_test_for_refusal(tmp_path: Path) -> None:
    """A writer refused for a large record waits until exactly that record fits: the spool
    says so with the same test it refuses with, so the full state cannot flap."""
    spool = Spool(tmp_path, max_bytes=1 << 16, segment_bytes=4096).open()
    try:
        small = b"x" * 1000
        while spool.has_room(spool.record_size(small)):
            spool.append(small)
        big = b"y" * 8000
        assert not spool.has_room(spool.record_size(big))
        with pytest.raises(SpoolFull):
            spool.append(big)
        # Room for a small record again is not room for the waiting big one.
        spool.commit(spool.peek())  # type: ignore[arg-type]
        assert not spool.full
        assert not spool.has_room(spool.record_size(big))
        while not spool.has_room(spool.record_size(big)):
            spool.commit(spool.peek())  # type: ignore[arg-type]
        spool.append(big)
    finally:
        spool.close()


def test_full_disk_refuses_whole_records_and_replay_needs_no_space(tmp_path: Path) -> None:
    """A real 256 KiB filesystem fills: the refused record leaves nothing behind, every record
    taken before is replayed in order on the still-full disk (the cursor is rewritten in place),
    also across a restart, and once drained the spool takes records again (issue 26)."""
    with small_tmpfs(tmp_path / "disk", "256k") as disk:
        spool = Spool(disk / "spool").open()
        bodies: list[bytes] = []
        refused = None
        while refused is None:
            body = f"energy,device=em-{len(bodies)} power_w=1".encode() * 30
            try:
                spool.append(body)
            except SpoolUnwritable as exc:
                refused = exc
            else:
                bodies.append(body)
        assert refused.no_space
        assert "no space left" in str(refused)
        assert str(disk / "spool") in str(refused)
        assert spool.pending_records == len(bodies) > 100
        space = spool.disk_space()
        assert space is not None
        assert space.free_bytes < 4096

        half = len(bodies) // 2
        for _ in range(half):
            record = spool.peek()
            assert record is not None
            spool.commit(record)
        assert spool.cursor_errors == 0
        spool.close()

        again = Spool(disk / "spool").open()  # a restart on the full disk
        assert again.pending_records == len(bodies) - half
        assert drain(again) == bodies[half:]
        assert again.cursor_errors == 0
        again.append(b"after")  # the drained segments were deleted: room again
        assert drain(again) == [b"after"]
        again.close()


def test_spool_files_are_private(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool").open()
    spool.append(b"energy power_w=1")
    spool.close()
    assert (tmp_path / "spool").stat().st_mode & 0o777 == 0o700
    for path in (tmp_path / "spool").iterdir():
        assert path.stat().st_mode & 0o077 == 0, path
    dead = DeadLetters(tmp_path / "spool")
    dead.add(["energy power_w=x"], "HTTP 400")
    assert dead.path.stat().st_mode & 0o777 == 0o600


def test_a_batch_of_dead_letters_keeps_the_bound_per_line(tmp_path: Path) -> None:
    """One large batch rotates line by line: the file never passes its bound by a batch."""
    bound = 1 << 14
    dead = DeadLetters(tmp_path, max_bytes=bound)
    dead.add([f"energy power_w={i} {i}" for i in range(2000)], "HTTP 400: bad")
    lines = dead.path.read_bytes().splitlines(keepends=True)
    assert dead.path.stat().st_size <= bound
    older = dead.path.with_name("dead-letters.jsonl.1")
    assert older.stat().st_size <= bound
    assert json.loads(lines[-1])["line"] == "energy power_w=1999 1999"
    kept = len(lines) + len(older.read_bytes().splitlines())
    assert kept + dead.discarded_by_rotation == 2000
