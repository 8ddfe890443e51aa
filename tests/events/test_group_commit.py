"""Group commit: concurrent calls share a transaction, and nobody shares a failure."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.events.group_commit import GroupCommit


class Recorder:
    """A commit function that remembers its groups; items named "bad" make a group fail."""

    def __init__(self, delay: float = 0.01) -> None:
        self.groups: list[list[str]] = []
        self.delay = delay

    async def __call__(self, items: list[str]) -> list[str]:
        await asyncio.sleep(self.delay)  # a transaction's round trips
        if "bad" in items:
            raise ValueError(f"cannot store {items}")
        self.groups.append(list(items))
        return [f"stored {item}" for item in items]


async def test_an_idle_committer_commits_a_lone_call_at_once():
    commit = Recorder()
    intake = GroupCommit(commit)
    assert await intake.submit("a") == "stored a"
    assert commit.groups == [["a"]]


async def test_calls_arriving_during_a_commit_share_the_next_one_and_each_gets_its_own_result():
    commit = Recorder()
    intake = GroupCommit(commit, concurrency=1)
    results = await asyncio.gather(*(intake.submit(f"e{i}") for i in range(100)))
    assert results == [f"stored e{i}" for i in range(100)]
    assert sorted(item for group in commit.groups for item in group) == sorted(f"e{i}" for i in range(100))
    assert len(commit.groups) < 10  # 100 calls, a handful of transactions


async def test_groups_never_exceed_the_maximum_and_keep_arrival_order():
    commit = Recorder()
    intake = GroupCommit(commit, max_group=7, concurrency=1)
    await asyncio.gather(*(intake.submit(f"{i:03}") for i in range(50)))
    assert max(len(group) for group in commit.groups) == 7
    assert [item for group in commit.groups for item in group] == [f"{i:03}" for i in range(50)]


async def test_a_failing_call_fails_alone_and_the_rest_of_its_group_is_committed():
    commit = Recorder()
    intake = GroupCommit(commit, concurrency=1)
    outcomes = await asyncio.gather(*(intake.submit(item) for item in ["a", "b", "bad", "c"]), return_exceptions=True)
    assert outcomes[:2] == ["stored a", "stored b"] and outcomes[3] == "stored c"
    assert isinstance(outcomes[2], ValueError)
    assert sorted(item for group in commit.groups for item in group) == ["a", "b", "c"]


async def test_a_caller_that_goes_away_does_not_stop_the_others():
    commit = Recorder(delay=0.05)
    intake = GroupCommit(commit, concurrency=1)
    first = asyncio.create_task(intake.submit("first"))
    await asyncio.sleep(0)  # "first" is in flight
    leaving = asyncio.create_task(intake.submit("leaving"))
    staying = asyncio.create_task(intake.submit("staying"))
    await asyncio.sleep(0)
    leaving.cancel()
    assert await first == "stored first" and await staying == "stored staying"
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert ["leaving", "staying"] in commit.groups  # its commit stands: the caller just never heard


async def test_aclose_waits_for_what_was_submitted():
    commit = Recorder(delay=0.05)
    intake = GroupCommit(commit)
    pending = [asyncio.create_task(intake.submit(f"e{i}")) for i in range(5)]
    await asyncio.sleep(0)
    await intake.aclose()
    assert all(task.done() for task in pending)
    assert sorted(item for group in commit.groups for item in group) == [f"e{i}" for i in range(5)]
