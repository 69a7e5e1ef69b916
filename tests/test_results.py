"""ddnn_tf.serve.results and the gateway's answer window: bounded, delivered, exactly once.

The in-process gateway runs the committed model with T = 1 (every sample exits at the
local aggregator, so no cloud is needed) and takes rounds from six in-process devices
sending the real summaries of real test samples; its memory must stay bounded however
many rounds go through, every answer must reach a subscriber once, and a retried round
must not be answered again.
"""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from conftest import DEFAULT_MODEL

from ddnn_tf.errors import ConfigError, FormatError
from ddnn_tf.serve.results import AnswerLog, Journal, RoundLedger, restore

MODEL = DEFAULT_MODEL


def _row(sample: int) -> list:
    return [sample, 0, 3, False, 63, 0, 1.5, [5] * 6]


# ------------------------------------------------------------------------------ units
def test_answer_log_keeps_a_window_and_resumes_subscribers():
    log = AnswerLog(8, ("local", "cloud"))
    early, missed = log.subscribe(0)
    assert missed == 0
    log.add([_row(s) for s in range(20)])
    assert log.answered == 20 and len(log.recent) == 8 and log.oldest == 13
    assert [seq for seq, _ in early.take(100)] == list(range(1, 21))  # live: all of them
    late, missed = log.subscribe(5)  # asks for 6.. but only 13.. are kept
    assert missed == 7 and [seq for seq, _ in late.take(100)] == list(range(13, 21))
    live, missed = log.subscribe(None)
    assert missed == 0 and live.take() == []
    doc = json.loads(log.since(19)[0][1])
    assert doc == {
        "seq": 20,
        "sample": 19,
        "exit": 0,
        "prediction": 3,
        "degraded": False,
        "local_presence": 63,
        "cloud_presence": 0,
        "t_done": 1.5,
        "payload_bytes": [5] * 6,
        "exit_name": "local",
    }
    with pytest.raises(ConfigError, match="window"):
        AnswerLog(0, ("local",))


def test_a_subscriber_that_falls_behind_is_told_so():
    log = AnswerLog(100, ("local", "cloud"))
    sub, _ = log.subscribe(None)
    sub.limit = 5
    log.add([_row(s) for s in range(9)])
    assert sub.lagged and len(sub.items) == 5  # it reconnects with the last seq it read


def test_round_ledger_refuses_starts_outside_its_window_and_forgets_old_rounds():
    ledger = RoundLedger(64, 4)
    assert ledger.check(64 * 1000) is None  # a fresh gateway takes any round
    ledger.open(640)
    assert "multiple of the round length 64" in ledger.check(650)
    assert "within 4 rounds of round 640 (from 384 to 896)" in ledger.check(960)
    assert ledger.check(384) is None and ledger.check(896) is None
    assert ledger.check(320) is not None
    for start in range(0, 64 * 100, 64):
        ledger.mark(start + 3)
        ledger.finish(start)
    assert ledger.answered(64 * 99 + 3) and not ledger.answered(64 * 99 + 4)
    assert not ledger.answered(3) and not ledger.finished(0)  # forgotten: refused instead
    assert len(ledger) <= 2 * 5


def test_journal_round_trip_compaction_and_refusals(tmp_path):
    path = tmp_path / "gw.journal"
    journal = Journal(path, "m" * 64, 64, 16)
    log, ledger = AnswerLog(16, ("local", "cloud"), journal), RoundLedger(64, 2)
    for start in range(0, 64 * 3, 64):
        rows = [_row(s) for s in range(start, start + 20)]
        for row in rows:
            ledger.mark(row[0])
        log.add(rows)
        ledger.finish(start)
        journal.finished(start)
        if journal.due():
            journal.compact(log, ledger.finished_rounds())
    journal.close()
    lines = path.read_bytes().splitlines()
    assert len(lines) < 1 + 2 * 16 + 4  # bounded by twice the window
    with open(path, "ab") as f:
        f.write(b'{"seq": 99, "answ')  # a line cut by a kill
    again = Journal(path, "m" * 64, 64, 16)
    log2, ledger2 = AnswerLog(16, ("local", "cloud"), again), RoundLedger(64, 2)
    restore(log2, ledger2, again)
    assert log2.next_seq == log.next_seq == 61
    assert [seq for seq, _ in log2.since(0)] == [seq for seq, _ in log.since(0)]
    assert ledger2.answered(128 + 19) and ledger2.finished(128)
    log2.add([_row(64 * 3)])  # written where the cut line was: the next start reads it
    again.finished(64 * 3)
    again.close()
    third = Journal(path, "m" * 64, 64, 16)
    log3, ledger3 = AnswerLog(16, ("local", "cloud"), third), RoundLedger(64, 2)
    restore(log3, ledger3, third)
    assert log3.next_seq == 62 and ledger3.answered(64 * 3) and ledger3.finished(64 * 3)
    third.close()
    with open(path, "ab") as f:
        f.write(b'{"finished": 256}')  # a whole line cut before its newline
    fourth = Journal(path, "m" * 64, 64, 16)
    fourth.finished(320)
    fourth.close()
    assert Journal(path, "m" * 64, 64, 16).loaded_finished[-2:] == [256, 320]
    with pytest.raises(ConfigError, match="was written for model"):
        Journal(path, "x" * 64, 64, 16)
    with pytest.raises(ConfigError, match="batch 64, not 32"):
        Journal(path, "m" * 64, 32, 16)
    bad = tmp_path / "other.txt"
    bad.write_text("hello\n")
    with pytest.raises(FormatError, match="not a gateway journal"):
        Journal(bad, "m" * 64, 64, 16)


# ------------------------------------------------------------------------------ gateway
@pytest.fixture(scope="module")
def rounds():
    """The real encoded summaries of the first 64 test samples, per device."""
    from ddnn_tf.core.comm import encode_summaries
    from ddnn_tf.data import load_dataset
    from ddnn_tf.runtime import Hierarchy

    h = Hierarchy(MODEL)
    test = load_dataset("fmnist6").test.subset(slice(0, 64))
    out = []
    for d, x in enumerate(test.x):
        summary = h.tiers[f"device_{d}"]({"image": x})["summary"]
        out.append(encode_summaries(summary, h.summary_encoding).tobytes())
    return out


def _headers(model: str, d: int, **extra: str) -> dict:
    from ddnn_tf.serve.wire import SUMMARY_TYPE

    return {
        "X-DDNN-Model": model,
        "X-DDNN-Device": str(d),
        "Content-Type": SUMMARY_TYPE,
        "Authorization": "Bearer t",
        **extra,
    }


def test_gateway_memory_is_bounded_and_every_answer_is_streamed_once(rounds, tmp_path):
    from ddnn_tf.serve.gateway import create_gateway_app

    window, batch, n_rounds = 256, 64, 40
    app = create_gateway_app(
        MODEL,
        cloud="http://127.0.0.1:9",  # never called: T = 1 answers every sample locally
        token="t",
        threshold=1.0,
        batch=batch,
        window=window,
        journal=tmp_path / "gw.journal",
    )
    gw = app.state.gateway

    async def go():
        await gw.start()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            joins = await asyncio.gather(  # held until all six joined
                *[c.post("/v1/join", headers=_headers(gw.model, d)) for d in range(6)]
            )
            assert all(r.status_code == 200 for r in joins)
            sub, _ = gw.log.subscribe(0)
            sizes = []
            for k in range(n_rounds):
                start = str(k * batch)
                answers = await asyncio.gather(
                    *[
                        c.post(
                            "/v1/summary",
                            content=rounds[d],
                            headers=_headers(gw.model, d, **{"X-DDNN-Start": start}),
                        )
                        for d in range(6)
                    ]
                )
                assert all(r.status_code == 200 and r.content == b"\0" * 8 for r in answers)
                sizes.append((len(gw.log.recent), len(gw.ledger), len(gw.rounds)))
            # a retried round (a device that lost its response) is not answered again
            again = await c.post(
                "/v1/summary",
                content=rounds[0],
                headers=_headers(gw.model, 0, **{"X-DDNN-Start": str((n_rounds - 1) * batch)}),
            )
            assert again.status_code == 200 and again.content == b"\0" * 8
            results = (await c.get("/v1/results", headers=_headers(gw.model, 0))).json()
            progress = (await c.get("/v1/progress", headers=_headers(gw.model, 0))).json()
            return sub.take(10**6), sizes, results, progress

    got, sizes, results, progress = asyncio.run(go())
    total = n_rounds * batch
    assert progress["answered"] == total and progress["kept"] == window
    assert len(results["results"]) == window and results["answered"] == total
    assert [r[0] for r in results["results"]] == list(range(total - window, total))
    assert max(s[0] for s in sizes) == window  # the window, never more
    assert max(s[1] for s in sizes) <= 2 * (window // batch + 1)
    assert max(s[2] for s in sizes) <= 1
    assert [seq for seq, _ in got] == list(range(1, total + 1))  # each answer once, in order
    samples = [json.loads(data)["sample"] for _, data in got]
    assert samples == list(range(total))
    lines = (tmp_path / "gw.journal").read_bytes().splitlines()
    assert len(lines) <= 1 + 2 * window + 2 * (window // batch + 1) + n_rounds * 2


@pytest.mark.parametrize(
    ("header", "value", "why"),
    [
        ("X-DDNN-Device", "0_1", "ASCII digits"),
        ("X-DDNN-Device", "+1", "ASCII digits"),
        ("X-DDNN-Device", "\u0663", "ASCII digits"),  # an Arabic-Indic 3
        ("X-DDNN-Device", "6", "in [0, 6)"),
        ("X-DDNN-Start", str(10**30), "ASCII digits"),
        ("X-DDNN-Start", "1_000", "ASCII digits"),
        ("X-DDNN-Start", "100", "multiple of the round length 64"),
        ("X-DDNN-Start", str(64 * 10**6), "within 4 rounds of round 0"),
    ],
)
def test_gateway_refuses_header_integers_that_are_not_plain_ascii(rounds, header, value, why):
    from ddnn_tf.serve.gateway import create_gateway_app

    app = create_gateway_app(
        MODEL, cloud="http://127.0.0.1:9", token="t", threshold=1.0, batch=64, window=256
    )
    gw = app.state.gateway

    async def go():
        await gw.start()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
            await asyncio.gather(
                *[c.post("/v1/join", headers=_headers(gw.model, d)) for d in range(6)]
            )
            ok = await asyncio.gather(  # round 0 opens the window
                *[
                    c.post(
                        "/v1/summary",
                        content=rounds[d],
                        headers=_headers(gw.model, d, **{"X-DDNN-Start": "0"}),
                    )
                    for d in range(6)
                ]
            )
            assert all(r.status_code == 200 for r in ok)
            headers = _headers(gw.model, 0, **{"X-DDNN-Start": "64"})
            headers[header] = value.encode()  # as the bytes on the wire (UTF-8)
            bad = await c.post("/v1/summary", content=rounds[0], headers=headers)
            still = await c.get("/v1/progress", headers=_headers(gw.model, 0))
            return bad, still

    bad, still = asyncio.run(go())
    assert bad.status_code == 400, bad.text
    error = bad.json()["error"]
    assert error["code"] == "bad_header" and why in error["message"]
    assert still.status_code == 200 and still.json()["answered"] == 64


def test_answer_stream_resumes_after_the_last_answer_read():
    """``GET /v1/answers`` (server-sent events) on a real uvicorn server, read by the
    collector ``deploy`` uses: the kept answers after ``after``, then live ones; a
    subscriber asking for answers no longer kept is told how many it missed."""
    import threading
    import time

    import uvicorn

    from ddnn_tf.serve.collect import StreamCollector
    from ddnn_tf.serve.gateway import create_gateway_app
    from ddnn_tf.serve.run_server import bind

    app = create_gateway_app(MODEL, cloud="http://127.0.0.1:9", threshold=1.0, window=128)
    gw = app.state.gateway
    gw.log.add([_row(s) for s in range(200)])
    sock = bind("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    resumed = StreamCollector(url, None, after=150)
    behind = StreamCollector(url, None, after=10)
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        resumed.start(), behind.start()
        assert resumed.wait_for(50, 30) and behind.wait_for(128, 30)
        gw.loop.call_soon_threadsafe(gw.log.add, [_row(s) for s in range(200, 210)])
        assert resumed.wait_for(60, 30)
        bad = httpx.get(f"{url}/v1/answers", params={"after": "-1"}, timeout=10)
    finally:
        resumed.stop(timeout=1)
        behind.stop(timeout=1)
        server.should_exit = True
        thread.join(15)
    assert sorted(resumed.answers) == list(range(150, 210))
    assert [docs[0]["seq"] for _, docs in sorted(resumed.answers.items())] == list(range(151, 211))
    assert resumed.duplicates == 0 and resumed.gaps == 0
    assert behind.gaps == 62 and min(behind.answers) == 72  # 73.. kept of 11.. asked
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_request"
