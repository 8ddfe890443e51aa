"""Group commit: many concurrent single calls share one transaction.

A lone Track call costs a transaction: a connection checkout, half a dozen round trips and
a commit (a WAL flush). Under load most of that is per transaction, not per event, so calls
that arrive while a transaction is in flight wait for the next one and commit together
with it. Nobody waits on a timer: an idle service commits a call at once, and a busy one
makes bigger groups by itself. Each caller still answers only after the commit that holds
its call, so the guarantee "2xx only after commit" is unchanged.

A group is all or nothing like a batch, but callers did not ask to share a fate: when a
group fails, each of its calls is committed alone, so one bad call fails only itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger("orchestrator.ingest")

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """`await submit(item)` returns what `commit(group)` returned for that item, once the
    group's transaction has committed. `commit` must return one result per item, in order."""

    def __init__(
        self, commit: Callable[[list[Item]], Awaitable[list[Result]]], *, max_group: int = 500, concurrency: int = 2
    ) -> None:
        self._commit = commit
        self._max_group = max_group
        self._concurrency = concurrency  # transactions in flight at once, per process
        self._pending: deque[tuple[Item, asyncio.Future]] = deque()
        self._committers: set[asyncio.Task] = set()

    async def submit(self, item: Item) -> Result:
        future = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if len(self._committers) < self._concurrency:
            # Committers live only while there is work, so an idle process holds no tasks.
            task = asyncio.create_task(self._drain())
            self._committers.add(task)
            task.add_done_callback(self._committers.discard)
        return await future

    async def aclose(self) -> None:
        """Wait for what was submitted to be committed (or to fail)."""
        while self._committers:
            await asyncio.gather(*self._committers, return_exceptions=True)

    async def _drain(self) -> None:
        while self._pending:
            group = [self._pending.popleft() for _ in range(min(len(self._pending), self._max_group))]
            await self._commit_group(group)

    async def _commit_group(self, group: list[tuple[Item, asyncio.Future]]) -> None:
        try:
            results = await self._commit([item for item, _ in group])
        except Exception as error:
            if len(group) == 1:
                _settle(group[0][1], error=error)
                return
            log.warning("a group of %d calls failed (%s); committing each alone", len(group), error)
            for member in group:
                await self._commit_group([member])
            return
        except BaseException:  # cancelled: the process is stopping
            for _, future in group:
                future.cancel()
            raise
        for (_, future), result in zip(group, results, strict=True):
            _settle(future, result=result)


def _settle(future: asyncio.Future, *, result=None, error: BaseException | None = None) -> None:
    if future.done():  # the caller went away (client disconnected); the commit stands
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)
