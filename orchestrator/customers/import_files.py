"""Customer files (CSV or JSON Lines), read one line at a time and checked cell by cell.

A line becomes an `ImportLine` (what to apply) or a list of `Reject`s (line, column, why);
nothing is held beyond the current line, so a file of any length reads in constant memory.
Values are checked by the same validators as Segment `identify` traits
(`events/schemas.py`): e-mail, E.164 phone, locale, IANA time zone, storable JSON. The
format is documented in docs/customers.md.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Literal

from pydantic import TypeAdapter, ValidationError

from orchestrator.customers.consent import OPTED_IN, OPTED_OUT, TRAIT_CONSENTS
from orchestrator.events.schemas import Traits, UserId, as_utc
from orchestrator.vocabulary import Channel

Format = Literal["csv", "jsonl"]
FORMATS: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
USER_ID = "userId"
CONSENT_COLUMNS = {f"consent_{channel.value}": channel.value for channel in Channel}
CONSENT_AT = "consent_at"
CONSENT_VALUES = {
    "opted_in": OPTED_IN,
    "true": OPTED_IN,
    "yes": OPTED_IN,
    "opted_out": OPTED_OUT,
    "false": OPTED_OUT,
    "no": OPTED_OUT,
}
_USER_ID = TypeAdapter(UserId)
_MOMENT = TypeAdapter(datetime)


class ImportFileError(ValueError):
    """The file as a whole cannot be read (no userId column, not UTF-8, not CSV): nothing is imported."""


@dataclass(frozen=True)
class Reject:
    line: int
    column: str | None
    reason: str


@dataclass
class ImportLine:
    line: int
    user_id: str
    traits: dict[str, Any]  # as an identify would set them: profile fields normalised, the rest as given
    consents: dict[str, tuple[str, str]] = field(default_factory=dict)  # channel → (status, value as written)
    consent_at: datetime | None = None  # when the customer gave these consents, if the file says


def format_of(file_name: str, declared: str | None = None) -> Format:
    if declared:
        if declared not in FORMATS.values():
            raise ImportFileError(f"format must be csv or jsonl, not '{declared}'")
        return declared  # type: ignore[return-value]
    for suffix, fmt in FORMATS.items():
        if file_name.lower().endswith(suffix):
            return fmt
    raise ImportFileError(f"{file_name}: cannot tell the format from the name; say csv or jsonl")


def read_lines(stream: IO[bytes], fmt: Format) -> Iterator[ImportLine | list[Reject]]:
    """Each data line of `stream`, checked."""
    records = _csv_records(stream) if fmt == "csv" else _jsonl_records(stream)
    for line, record in records:
        yield record if isinstance(record, list) else check_record(line, record)


def _csv_records(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | list[Reject]]]:
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="strict", newline="")
    reader = csv.reader(text)
    try:
        header = next(reader, None)
        if header is None:
            raise ImportFileError("the file is empty: the first line names the columns (userId, email, ...)")
        _check_header(header)
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1  # a quoted value may span lines: report where the record began
            if not any(cells):
                continue  # a blank line
            if len(cells) != len(header):
                yield line, [Reject(line, None, f"{len(cells)} values for {len(header)} columns")]
                continue
            yield line, {name: value for name, value in zip(header, cells) if value != ""}
    except UnicodeDecodeError:
        raise ImportFileError(f"line {reader.line_num + 1}: not UTF-8 text") from None
    except csv.Error as error:
        raise ImportFileError(f"line {reader.line_num}: not CSV: {error}") from None
    finally:
        text.detach()  # the caller owns the stream


def _check_header(header: list[str]) -> None:
    if USER_ID not in header:
        raise ImportFileError(f"line 1: no {USER_ID} column; the columns are {', '.join(header) or 'none'}")
    seen = set()
    for name in header:
        if name in seen:
            raise ImportFileError(f"line 1: column '{name}' appears twice")
        seen.add(name)
        if name == "":
            raise ImportFileError("line 1: a column has no name")
        _check_column_name(name, line=1)


def _check_column_name(name: str, line: int) -> None:
    if name in TRAIT_CONSENTS:
        channel = TRAIT_CONSENTS[name][0]
        raise ImportFileError(
            f"line {line}: column '{name}': in an import, consent is a consent_{channel} column "
            "(opted_in or opted_out), recorded in the consent ledger with the line as evidence"
        )


def _jsonl_records(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | list[Reject]]]:
    decoder = codecs.getincrementaldecoder("utf-8")
    for line, raw in enumerate(stream, start=1):
        try:
            text = decoder().decode(raw, final=True)
        except UnicodeDecodeError:
            yield line, [Reject(line, None, "not UTF-8 text")]
            continue
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError as error:
            yield line, [Reject(line, None, f"not JSON: {error}")]
            continue
        if not isinstance(record, dict):
            yield line, [Reject(line, None, "each line is one JSON object")]
            continue
        try:
            for name in record:
                _check_column_name(name, line)
        except ImportFileError as error:
            yield line, [Reject(line, None, str(error).split(": ", 1)[1])]
            continue
        yield line, {name: value for name, value in record.items() if value is not None and value != ""}


def check_record(line: int, record: dict[str, Any]) -> ImportLine | list[Reject]:
    rejects: list[Reject] = []
    user_id = record.pop(USER_ID, None)
    try:
        user_id = _USER_ID.validate_python(user_id, strict=True)
    except ValidationError as error:
        reason = "required" if user_id is None else error.errors()[0]["msg"]
        rejects.append(Reject(line, USER_ID, reason))
    consents, consent_at = {}, None
    for column, channel in CONSENT_COLUMNS.items():
        if column in record:
            value = record.pop(column)
            status = CONSENT_VALUES.get(str(value).strip().lower()) if isinstance(value, (str, bool)) else None
            if status is None:
                rejects.append(Reject(line, column, f"'{value}' is not one of {', '.join(CONSENT_VALUES)}"))
            else:
                consents[channel] = (status, str(value))
    if CONSENT_AT in record:
        try:
            consent_at = as_utc(_MOMENT.validate_python(record.pop(CONSENT_AT)))
        except (ValidationError, ValueError):
            rejects.append(Reject(line, CONSENT_AT, "not an ISO-8601 time, e.g. 2026-03-01T09:30:00Z"))
    try:
        traits = Traits.model_validate(record).model_dump(exclude_none=True)
    except ValidationError as error:
        for problem in error.errors():
            column = ".".join(str(part) for part in problem["loc"]) or None
            rejects.append(Reject(line, column, problem["msg"].removeprefix("Value error, ")))
        traits = {}
    if rejects:
        return rejects
    return ImportLine(line, user_id, traits, consents, consent_at)
