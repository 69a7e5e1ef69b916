"""Gather concurrent requests into one interpreter call.

A :class:`MicroBatcher` has one worker (an interpreter is not thread safe): the requests
that queued while it was busy run together (up to ``max_batch`` samples), so the batch
grows with the load and a lone request never waits for company. A small batch (up to
``inline`` samples) runs on the event loop itself, as handing a call of a few hundred
microseconds to a thread costs more than the call; a larger one runs in the worker's
thread, so the loop goes on reading requests meanwhile.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any

__all__ = ["MicroBatcher"]


class MicroBatcher:
    """Run ``fn`` on the concatenation of concurrent requests.

    Args:
        fn: called in the worker thread with a list of request items; returns one result
            per item (same order). It may raise: every request of that batch gets the error.
        size: ``size(item)`` = samples in an item (to cap a batch at ``max_batch``).
        inline: batches of at most this many samples run on the event loop (0: none).
        max_batch: most samples per call (a single larger item still runs alone).

    Example:
        >>> import asyncio
        >>> async def three_requests():
        ...     batcher = MicroBatcher(lambda items: [x * 2 for x in items])
        ...     try:
        ...         return await asyncio.gather(*(batcher.submit(x) for x in (1, 2, 3)))
        ...     finally:
        ...         batcher.close()
        >>> asyncio.run(three_requests())
        [2, 4, 6]
    """

    def __init__(
        self,
        fn: Callable[[list[Any]], list[Any]],
        *,
        size: Callable[[Any], int] = lambda _: 1,
        max_batch: int = 1024,
        inline: int = 64,
    ) -> None:
        self.fn = fn
        self.size = size
        self.max_batch = int(max_batch)
        self.inline = int(inline)
        self._queue: asyncio.Queue | None = None
        self._task: asyncio.Task | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="batcher")
        self.calls = 0

    async def submit(self, item: Any) -> Any:
        """Queue ``item`` and wait for its result."""
        if self._task is None or self._task.done():
            self._queue = asyncio.Queue()
            self._task = asyncio.get_running_loop().create_task(self._worker())
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((item, future))  # the queue has no bound
        return await future

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue
        carry = None
        while True:
            first = carry if carry is not None else await queue.get()
            carry = None
            batch, total = [first], self.size(first[0])
            while not queue.empty():
                nxt = queue.get_nowait()
                if total + self.size(nxt[0]) > self.max_batch:
                    carry = nxt
                    break
                batch.append(nxt)
                total += self.size(nxt[0])
            batch = [(item, fut) for item, fut in batch if not fut.cancelled()]
            if not batch:
                continue
            items = [item for item, _ in batch]
            try:
                if total <= self.inline:
                    results = self.fn(items)
                else:
                    results = await loop.run_in_executor(self._pool, self.fn, items)
            except Exception as err:  # noqa: BLE001  (every waiter of this batch gets it)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(err)
                continue
            self.calls += 1
            for (_, fut), result in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(result)

    def close(self) -> None:
        """Stop the worker and its thread."""
        if self._task is not None:
            self._task.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
