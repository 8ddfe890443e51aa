"""Import customers from a file: checked lines applied in batches, each batch committed alone.

A batch costs a fixed handful of statements whatever its size: one SELECT (locking the
customers it changes on PostgreSQL, in user_id order like `identity.lock_customers`), one
INSERT … ON CONFLICT (user_id) DO NOTHING for the new customers, one UPDATE for the changed
ones, one INSERT marking both for the segment rounds (`customer_profile_changes`), one read
of their consent ledger and one INSERT of consent records. A line that
changes nothing writes nothing (no `updated_at` bump, no consent record), so the same file
twice changes nothing the second time, and an import cut off halfway can simply be run again.

Profile fields and traits are applied exactly as an `identify` applies them
(`identity.apply_traits`): the same normalised values, the same time zone inference. Consent
follows the ledger's rules plus one for imports: an import never turns an opt-out back into
an opt-in unless the line says (`consent_at`) that the customer opted in after that opt-out;
otherwise the cell is rejected with the reason, and the rest of the line still applies
(docs/customers.md, "Consent columns").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any

import sqlalchemy as sa
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from orchestrator.clock import utc
from orchestrator.customers.consent import OPTED_IN, OPTED_OUT
from orchestrator.customers.identity import TYPED_TRAITS, apply_traits
from orchestrator.customers.import_files import Format, ImportLine, Reject, read_lines
from orchestrator.customers.timezones import TimezoneSource
from orchestrator.segments.membership import mark_profiles_changed
from orchestrator.storage.feedback_models import Consent
from orchestrator.storage.models import Customer
from orchestrator.storage.queries import any_of, insert_many_returning, is_postgresql, update_many

BATCH_LINES = 1000
KEPT_REJECTS = 100  # the report keeps this many; the count and `on_reject` see them all
PROFILE = ("email", "phone", "whatsapp", "locale", "timezone", "timezone_source", "traits")


@dataclass
class ImportReport:
    file: str
    dry_run: bool
    lines: int = 0  # data lines read (blank lines are not counted)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected_lines: int = 0  # lines not applied at all
    consents_recorded: int = 0
    rejects: list[Reject] = field(default_factory=list)  # the first KEPT_REJECTS
    reject_count: int = 0  # every reject, including consent cells refused on lines that applied


@dataclass(frozen=True)
class ImportSource:
    """Who imports what, for the consent evidence."""

    file: str
    imported_at: datetime
    dry_run: bool = False


async def import_customers(
    sessions,
    stream: IO[bytes],
    fmt: Format,
    source: ImportSource,
    on_reject: Callable[[Reject], None] | None = None,
    on_progress: Callable[[ImportReport], None] | None = None,
    batch_lines: int = BATCH_LINES,
) -> ImportReport:
    """Read `stream` to the end, applying it batch by batch; `ImportFileError` if it cannot be read at all."""
    report = ImportReport(file=source.file, dry_run=source.dry_run)

    def rejected(reject: Reject) -> None:
        report.reject_count += 1
        if len(report.rejects) < KEPT_REJECTS:
            report.rejects.append(reject)
        if on_reject:
            on_reject(reject)

    batch: list[ImportLine] = []
    for checked in read_lines(stream, fmt):
        report.lines += 1
        if isinstance(checked, list):
            report.rejected_lines += 1
            for reject in checked:
                rejected(reject)
        else:
            batch.append(checked)
        if len(batch) >= batch_lines:
            await _apply_committed(sessions, batch, source, report, rejected)
            batch = []
            if on_progress:
                on_progress(report)
    if batch:
        await _apply_committed(sessions, batch, source, report, rejected)
    if on_progress:
        on_progress(report)
    return report


async def _apply_committed(sessions, batch, source, report, rejected) -> None:
    async with sessions() as session, session.begin():
        await apply_batch(session, batch, source, report, rejected)


async def apply_batch(
    session: AsyncSession,
    batch: list[ImportLine],
    source: ImportSource,
    report: ImportReport,
    rejected: Callable[[Reject], None],
) -> None:
    now = source.imported_at
    by_user: dict[str, list[ImportLine]] = {}
    for line in batch:  # a userId twice in a batch: its lines apply in file order
        by_user.setdefault(line.user_id, []).append(line)
    existing = await _existing(session, set(by_user))
    new_rows, changed_rows = [], []
    ids: dict[str, int] = {}
    for user_id, lines in by_user.items():
        row = existing.get(user_id)
        if row is not None and all(_holds(row, line.traits) for line in lines):
            ids[user_id] = row.id  # the common case of a re-run, without the time zone inference
            report.unchanged += 1
            continue
        customer = _customer(row, user_id, now)
        before = _profile(customer)
        for line in lines:
            apply_traits(customer, line.traits, now)
        if row is None:
            new_rows.append(customer)
        elif _profile(customer) != before:
            changed_rows.append(customer)
            ids[user_id] = row.id
        else:
            ids[user_id] = row.id
            report.unchanged += 1
    report.updated += len(changed_rows)
    if not source.dry_run:
        inserted = await insert_many_returning(
            session,
            Customer,
            [dict(user_id=c.user_id, created_at=now, updated_at=now, **_profile_row(c)) for c in new_rows],
            ["user_id"],
            Customer.user_id,
        )
        ids.update(dict(inserted))
        report.created += len(inserted)
        raced = {c.user_id for c in new_rows} - ids.keys()
        if raced:  # created meanwhile (an identify): apply their lines over what is there now
            lines = [line for user_id in sorted(raced) for line in by_user.pop(user_id)]
            await apply_batch(session, lines, source, report, rejected)
        await update_many(
            session,
            Customer.__table__,
            "id",
            [dict(id=ids[c.user_id], updated_at=now, **_profile_row(c)) for c in changed_rows],
        )
        # No event says these changed: the segment rounds re-evaluate them from this queue.
        touched = [customer_id for _, customer_id in inserted] + [ids[c.user_id] for c in changed_rows]
        await mark_profiles_changed(session, touched, now)
    else:
        report.created += len(new_rows)
    await _record_consents(session, by_user, ids, source, report, rejected)


async def _existing(session: AsyncSession, user_ids: set[str]) -> dict[str, sa.Row]:
    query = (
        select(Customer.id, Customer.user_id, *(getattr(Customer, name) for name in PROFILE))
        .where(any_of(session, col(Customer.user_id), user_ids))
        .order_by(col(Customer.user_id))
    )
    if is_postgresql(session):  # as identity.lock_customers: an identify of the same customer waits its turn
        query = query.with_for_update(key_share=True)
    return {row.user_id: row for row in (await session.exec(query)).all()}


class _Profile:
    """What `identity.apply_traits` changes on a customer, without the cost of building a
    table model per line (a third of the import's time when it was a `Customer`)."""

    __slots__ = ("user_id", "updated_at", *PROFILE)

    def __init__(self, user_id: str, values: dict[str, Any]) -> None:
        self.user_id, self.updated_at = user_id, None
        for name in PROFILE:
            setattr(self, name, values.get(name))


def _customer(row: sa.Row | None, user_id: str, now: datetime) -> _Profile:
    """A detached customer to apply traits to, as `identify` does."""
    if row is None:
        return _Profile(user_id, {"traits": {}})
    return _Profile(user_id, {name: getattr(row, name) for name in PROFILE})


def _holds(row: sa.Row, traits: dict[str, Any]) -> bool:
    """The customer already has every one of these traits, and the profile fields they set."""
    stored = row.traits
    if not all(name in stored and stored[name] == value for name, value in traits.items()):
        return False
    if "timezone" in traits and row.timezone_source != TimezoneSource.trait:
        return False
    return all(getattr(row, name) == traits[name] for name in TYPED_TRAITS if name in traits)


def _profile(customer: _Profile) -> tuple:
    return tuple(getattr(customer, name) for name in PROFILE)


def _profile_row(customer: _Profile) -> dict[str, Any]:
    return {name: getattr(customer, name) for name in PROFILE}


async def _latest_consents(session: AsyncSession, customer_ids: Iterable[int]) -> dict[tuple[int, str], Consent]:
    records = (
        await session.exec(
            select(Consent)
            .where(any_of(session, col(Consent.customer_id), set(customer_ids)))
            .order_by(col(Consent.id))
        )
    ).all()
    return {(record.customer_id, record.channel): record for record in records}  # later records override


async def _record_consents(session, by_user, ids, source: ImportSource, report, rejected) -> None:
    wanted = {user_id: lines for user_id, lines in by_user.items() if any(line.consents for line in lines)}
    if not wanted:
        return
    latest = await _latest_consents(session, {ids[u] for u in wanted if u in ids})
    records = []
    for user_id, lines in wanted.items():
        customer_id = ids.get(user_id)  # None only in a dry run, for a customer it would create
        for line in lines:
            for channel, (status, value) in line.consents.items():
                current = latest.get((customer_id, channel)) if customer_id is not None else None
                refusal = _consent_refusal(current, status, line)
                if refusal:
                    rejected(Reject(line.line, f"consent_{channel}", refusal))
                    continue
                if current is not None and current.status == status:
                    continue
                evidence = {"file": source.file, "line": line.line, "imported_at": source.imported_at.isoformat()}
                evidence["value"] = value
                if line.consent_at:
                    evidence["consent_at"] = line.consent_at.isoformat()
                record = Consent(
                    customer_id=customer_id or 0,
                    channel=channel,
                    status=status,
                    source="import",
                    evidence=evidence,
                    recorded_at=source.imported_at,
                )
                latest[(customer_id, channel)] = record
                records.append(record)
    report.consents_recorded += len(records)
    if records and not source.dry_run:
        session.add_all(records)
        await session.flush()


def _consent_refusal(current: Consent | None, status: str, line: ImportLine) -> str | None:
    """Why this import must not change the customer's consent: an opt-in over a later opt-out."""
    if status != OPTED_IN or current is None or current.status != OPTED_OUT:
        return None
    opted_out_at = utc(current.recorded_at)
    if line.consent_at is not None and line.consent_at > opted_out_at:
        return None
    said = f"consent_at {line.consent_at.isoformat()}" if line.consent_at else "no consent_at"
    return (
        f"the customer opted out on {opted_out_at.isoformat()} ({current.source}) and this line gives {said}: "
        "an import re-subscribes only with a consent_at later than the opt-out"
    )
