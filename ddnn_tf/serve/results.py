"""The gateway's answers: delivered as they are made, forgotten after a bounded window.

:class:`AnswerLog` numbers every answer and hands it at once to every subscriber,
:class:`RoundLedger` knows which samples of the recent rounds were answered (so a
retried round is answered exactly once), and :class:`Journal` keeps both on disk across
restarts; each is bounded by the window (specified in ``docs/operations.md``). Nothing
here imports a web framework: the gateway's app and the MQTT bridge read it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import deque
from collections.abc import Iterable, Sequence
from pathlib import Path

from ddnn_tf.errors import ConfigError, FormatError

__all__ = [
    "ANSWER_FIELDS",
    "AnswerLog",
    "Journal",
    "RoundLedger",
    "Subscriber",
    "is_answer",
    "restore",
    "sse_event",
]

#: The JSON types of an answer's fields as the stream and the answers topic carry them
#: (after ``seq``, an int).
_ANSWER_TYPES = {
    "sample": int,
    "exit": int,
    "prediction": int,
    "degraded": bool,
    "local_presence": int,
    "cloud_presence": int,
    "t_done": (int, float),
    "payload_bytes": list,
}
#: The fields of one answer, in the order ``GET /v1/results`` lists them.
ANSWER_FIELDS = tuple(_ANSWER_TYPES)


def is_answer(doc) -> bool:
    """Whether ``doc`` (parsed JSON) is an answer: every field there, of its type.

    >>> is_answer({"seq": 1, "sample": 0, "exit": 0, "prediction": 3, "degraded": False,
    ...            "local_presence": 63, "cloud_presence": 0, "t_done": 1.5,
    ...            "payload_bytes": [5] * 6}), is_answer({"seq": "1"})
    (True, False)
    """
    return isinstance(doc, dict) and all(
        isinstance(doc.get(k), t) and (t is bool or not isinstance(doc[k], bool))
        for k, t in {"seq": int, **_ANSWER_TYPES}.items()
    )


#: Answers a subscriber may fall behind by before it is told it lagged and cut off.
SUBSCRIBER_BACKLOG = 65536
#: Seconds between keep-alive comments on an idle result stream.
KEEPALIVE_S = 15.0


def sse_event(seq: int, data: bytes, event: str = "answer") -> bytes:
    """One server-sent event: ``id: SEQ``, ``event: NAME``, ``data: JSON`` and a blank line."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, event.encode(), data)


class Subscriber:
    """A live reader of the answers: the encoded answers not yet read, in order.

    ``lagged`` is set (and nothing more is queued) when it falls ``limit`` answers behind;
    its reader then reconnects with the last ``seq`` it read.
    """

    def __init__(self, limit: int = SUBSCRIBER_BACKLOG) -> None:
        self.items: deque[tuple[int, bytes]] = deque()
        self.limit = limit
        self.lagged = False
        self.ready = asyncio.Event()

    def push(self, seq: int, data: bytes) -> None:
        if self.lagged:
            return
        if len(self.items) >= self.limit:
            self.lagged = True
        else:
            self.items.append((seq, data))
        self.ready.set()

    def take(self, most: int = 512) -> list[tuple[int, bytes]]:
        out = [self.items.popleft() for _ in range(min(most, len(self.items)))]
        if not self.items:
            self.ready.clear()
        return out


class AnswerLog:
    """Every answer once, numbered, to every subscriber; the last ``window`` kept.

    Args:
        window: how many recent answers are kept for subscribers that reconnect.
        exits: the model's exit names (an answer's ``exit`` is an index into them).
        journal: where answers are also written, or None.

    Example:
        >>> log = AnswerLog(2, ("local", "cloud"))
        >>> for s in range(3):
        ...     log.add([[s, 1, 4, False, 63, 63, 0.5, [23] * 6]])
        >>> log.next_seq, [seq for seq, _ in log.since(0)]
        (4, [2, 3])
    """

    def __init__(self, window: int, exits: Sequence[str], journal: Journal | None = None) -> None:
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ConfigError(f"expected a positive integer, got {window!r}.", argument="window")
        self.window = window
        self.exits = tuple(exits)
        self.recent: deque[tuple[int, bytes, list]] = deque(maxlen=window)
        self.next_seq = 1
        self.subscribers: set[Subscriber] = set()
        self.listeners: list = []  # callables(seq, data): the MQTT bridge
        self.journal = journal

    @property
    def answered(self) -> int:
        """Answers made so far (over restarts, with a journal)."""
        return self.next_seq - 1

    def encode(self, seq: int, row: Sequence) -> bytes:
        """The JSON of one answer as the stream and the answers topic carry it."""
        doc = dict(zip(ANSWER_FIELDS, row, strict=True))
        doc["exit_name"] = self.exits[doc["exit"]] if doc["exit"] >= 0 else None
        return _compact({"seq": seq, **doc})

    def add(self, rows: Iterable[Sequence], *, write: bool = True) -> None:
        """Number, keep, journal (unless ``write`` is false) and deliver answers."""
        rows = [list(r) for r in rows]
        if write and rows and self.journal is not None:  # on disk before anyone is told
            self.journal.answers(self.next_seq, rows)
        for row in rows:
            seq = self.next_seq
            self.next_seq += 1
            data = self.encode(seq, row)
            self.recent.append((seq, data, row))
            for sub in self.subscribers:
                sub.push(seq, data)
            for listener in self.listeners:
                listener(seq, data)

    def since(self, after: int) -> list[tuple[int, bytes]]:
        """The kept answers numbered above ``after``."""
        return [(seq, data) for seq, data, _ in self.recent if seq > after]

    @property
    def oldest(self) -> int:
        """The ``seq`` of the oldest kept answer (``next_seq`` when none is kept)."""
        return self.recent[0][0] if self.recent else self.next_seq

    def rows(self) -> list[list]:
        """The kept answers, as ``GET /v1/results`` rows, in sample order."""
        return sorted((row for _, _, row in self.recent), key=lambda r: r[0])

    def subscribe(self, after: int | None = None) -> tuple[Subscriber, int]:
        """A new subscriber, with the kept answers after ``after`` already queued.

        Returns:
            ``(subscriber, missed)``: ``missed`` answers after ``after`` are no longer
            kept (0 when ``after`` is None: live answers only).
        """
        sub = Subscriber()
        missed = 0
        if after is not None:
            missed = max(0, self.oldest - after - 1) if after < self.next_seq else 0
            for seq, data in self.since(after):
                sub.push(seq, data)
        self.subscribers.add(sub)
        return sub, missed

    async def stream(self, hello: dict, after: int | None):
        """The result stream's bytes for one subscriber resuming after ``after`` (its
        events are specified in docs/protocol.md); ``hello`` is its first event's data."""
        sub, missed = self.subscribe(after)
        try:
            hello = {**hello, "window": self.window, "oldest": self.oldest, "next": self.next_seq}
            yield b"retry: 1000\nevent: hello\ndata: " + _compact(hello) + b"\n\n"
            if missed:
                gap = {"missed": missed, "oldest": self.oldest}
                yield b"event: gap\ndata: " + _compact(gap) + b"\n\n"
            while True:
                if not sub.items:
                    if sub.lagged:
                        yield b"event: lagged\ndata: {}\n\n"
                        return
                    try:
                        await asyncio.wait_for(sub.ready.wait(), KEEPALIVE_S)
                    except TimeoutError:
                        yield b": keep-alive\n\n"
                    continue
                yield b"".join(sse_event(seq, data) for seq, data in sub.take())
        finally:
            self.subscribers.discard(sub)


def _compact(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":")).encode()


class RoundLedger:
    """Which recent rounds finished and which of their samples were answered.

    Rounds start at multiples of ``batch``; the ledger covers the rounds within
    ``rounds`` rounds of the newest one (``current``), and a round start outside that
    span (or not a multiple of ``batch``) is refused.

    Args:
        batch: the round length (samples).
        rounds: how many rounds behind (and ahead of) the newest one are accepted.

    Example:
        >>> ledger = RoundLedger(64, 4)
        >>> ledger.check(128), ledger.check(100)
        (None, 'expected a multiple of the round length 64, got 100')
        >>> ledger.open(128); ledger.check(1024)
        'expected a round start within 4 rounds of round 128 (from 0 to 384), got 1024'
    """

    def __init__(self, batch: int, rounds: int) -> None:
        self.batch = int(batch)
        self.rounds = int(rounds)
        self.current: int | None = None
        self._answered: dict[int, int] = {}  # start -> bitmask of the answered offsets
        self._finished: set[int] = set()

    def check(self, start: int) -> str | None:
        """Why ``start`` is refused, or None."""
        if start % self.batch:
            return f"expected a multiple of the round length {self.batch}, got {start}"
        if self.current is not None:
            span = self.rounds * self.batch
            low, high = max(0, self.current - span), self.current + span
            if not low <= start <= high:
                return (
                    f"expected a round start within {self.rounds} rounds of round "
                    f"{self.current} (from {low} to {high}), got {start}"
                )
        return None

    def open(self, start: int) -> None:
        """Note that round ``start`` is under way (the span follows the newest round)."""
        if self.current is None or start > self.current:
            self.current = start
            low = start - self.rounds * self.batch
            self._answered = {s: bits for s, bits in self._answered.items() if s >= low}
            self._finished = {s for s in self._finished if s >= low}

    def mark(self, sample: int) -> None:
        start = sample - sample % self.batch
        if start not in self._answered:
            self.open(start)
        self._answered[start] = self._answered.get(start, 0) | 1 << (sample - start)

    def answered(self, sample: int) -> bool:
        start = sample - sample % self.batch
        return bool(self._answered.get(start, 0) >> (sample - start) & 1)

    def finish(self, start: int) -> None:
        self._finished.add(start)
        self.open(start)

    def finished(self, start: int) -> bool:
        return start in self._finished

    def finished_rounds(self) -> list[int]:
        return sorted(self._finished)

    def __len__(self) -> int:
        return len(self._answered) + len(self._finished)


class Journal:
    """The gateway's answers and finished rounds on disk, one JSON line each, rewritten
    with the window alone once it holds twice the window (the format and what survives a
    kill are on the Operations page).

    Args:
        path: the journal file (created when missing).
        model: the model id.
        batch: the round length.
        window: answers kept.
        fsync: sync every line to the disk.

    Raises:
        ConfigError: the file belongs to another model or round length.
        FormatError: the file is not a journal.
    """

    def __init__(
        self, path: str | Path, model: str, batch: int, window: int, *, fsync: bool = False
    ) -> None:
        self.path, self.window, self.fsync = Path(path), int(window), fsync
        self.header = {"journal": 1, "model": model, "batch": int(batch)}
        self.loaded: list[tuple[int, list]] = []  # (first seq, rows) read back
        self.loaded_finished: list[int] = []
        self._rows_written = 0
        if self.path.exists() and self.path.stat().st_size:
            self._read()
        self._file = open(self.path, "ab")  # noqa: SIM115  (open for the gateway's life)
        if not self.path.stat().st_size:
            self._write(self.header)

    def _read(self) -> None:
        data = self.path.read_bytes()
        lines = data.splitlines()
        try:
            header = json.loads(lines[0])
        except (ValueError, IndexError):
            raise FormatError(f"{self.path}: not a gateway journal (bad first line).") from None
        if not isinstance(header, dict) or header.get("journal") != 1:
            raise FormatError(f"{self.path}: not a gateway journal (no journal header).")
        for key in ("model", "batch"):
            if header.get(key) != self.header[key]:
                raise ConfigError(
                    f"{self.path} was written for {key} {header.get(key)!r}, not "
                    f"{self.header[key]!r}; give another journal file or remove it.",
                    argument="journal",
                )
        for number, line in enumerate(lines[1:], 2):
            try:
                entry = json.loads(line)
            except ValueError:
                if number == len(lines):  # a line cut by a kill: it was never acknowledged,
                    os.truncate(self.path, data.rindex(b"\n") + 1)  # and the next goes there
                    break
                raise FormatError(f"{self.path}, line {number}: not JSON.") from None
            if "answers" in entry:
                self.loaded.append((int(entry["seq"]), entry["answers"]))
                self._rows_written += len(entry["answers"])
            elif "finished" in entry:
                self.loaded_finished.append(int(entry["finished"]))
        else:
            if not data.endswith(b"\n"):  # a whole line but its newline: end it
                with open(self.path, "ab") as out:
                    out.write(b"\n")

    def _write(self, entry: dict) -> None:
        self._file.write(_compact(entry) + b"\n")
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())

    def answers(self, first: int, rows: list[list]) -> None:
        self._write({"seq": first, "answers": rows})
        self._rows_written += len(rows)

    def finished(self, start: int) -> None:
        self._write({"finished": start})

    def due(self) -> bool:
        """True when the file holds twice the window and should be compacted."""
        return self._rows_written >= 2 * self.window

    def compact(self, log: AnswerLog, finished: Iterable[int]) -> None:
        """Rewrite the file with the window's answers and the ledger's finished rounds."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as out:
            out.write(json.dumps(self.header).encode() + b"\n")
            for seq, _, row in log.recent:
                out.write(json.dumps({"seq": seq, "answers": [row]}).encode() + b"\n")
            for start in sorted(finished):
                out.write(json.dumps({"finished": start}).encode() + b"\n")
            out.flush()
            os.fsync(out.fileno())
        self._file.close()
        os.replace(tmp, self.path)
        self._file = open(self.path, "ab")  # noqa: SIM115
        self._rows_written = len(log.recent)

    def close(self) -> None:
        self._file.close()


def restore(log: AnswerLog, ledger: RoundLedger, journal: Journal) -> int:
    """Replay ``journal`` into ``log`` and ``ledger``; returns the answers read back."""
    count = 0
    for first, rows in journal.loaded:  # before anyone subscribed: nobody is told
        log.next_seq = first
        log.add(rows, write=False)
        for row in rows:
            ledger.mark(int(row[0]))
        count += len(rows)
    for start in journal.loaded_finished:
        ledger.finish(start)
    journal.loaded, journal.loaded_finished = [], []
    return count
