"""Customer imports (CSV and JSON Lines) on both databases: values checked like identify
traits, every rejected line reported, the same file twice a no-op, consent in the ledger."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import timedelta

import pytest
from sqlmodel import col, func, select

from orchestrator.auth.keys import create_key
from orchestrator.cli.main import main
from orchestrator.config import get_settings
from orchestrator.customers.consent import record_consent
from orchestrator.customers.import_files import ImportFileError, Reject
from orchestrator.customers.imports import ImportSource, import_customers
from orchestrator.storage.feedback_models import Consent
from orchestrator.storage.models import Customer
from tests.conftest import _reset

PEOPLE_CSV = """userId,email,phone,locale,timezone,consent_sms,consent_email,size
ann,Ann@Example.COM,+1 415 555 0123,fr_ca,,opted_in,,M
bob,bob@example.com,,,Europe/Paris,,false,L
"""


async def run_import(runtime, text: str, fmt: str = "csv", *, name: str = "people.csv", dry_run=False, **kwargs):
    rejects: list[Reject] = []
    source = ImportSource(file=name, imported_at=runtime.clock.now(), dry_run=dry_run)
    report = await import_customers(
        runtime.sessions, io.BytesIO(text.encode()), fmt, source, on_reject=rejects.append, **kwargs
    )
    return report, rejects


async def customers(runtime) -> dict[str, Customer]:
    async with runtime.sessions() as session:
        return {c.user_id: c for c in (await session.exec(select(Customer))).all()}


async def consents(runtime) -> list[Consent]:
    async with runtime.sessions() as session:
        return list((await session.exec(select(Consent).order_by(col(Consent.id)))).all())


async def test_a_csv_file_creates_customers_as_identify_would(runtime):
    report, rejects = await run_import(runtime, PEOPLE_CSV)
    assert rejects == [] and (report.lines, report.created, report.updated) == (2, 2, 0)
    found = await customers(runtime)
    ann = found["ann"]
    # the identify validators: e-mail normalised, phone in E.164, locale cased, zone from the number
    assert (ann.email, ann.phone, ann.locale) == ("Ann@example.com", "+14155550123", "fr-CA")
    assert (ann.timezone, ann.timezone_source) == ("America/Los_Angeles", "phone")
    assert ann.traits["size"] == "M" and "consent_sms" not in ann.traits
    assert found["bob"].timezone == "Europe/Paris" and found["bob"].traits["size"] == "L"


async def test_a_jsonl_file_keeps_typed_traits(runtime):
    lines = [
        {"userId": "cat", "email": "cat@example.com", "vip": True, "orders": 3, "address": {"city": "Lyon"}},
        {"userId": "dan", "whatsapp": "whatsapp:+34600000001", "consent_whatsapp": "opted_in"},
    ]
    report, rejects = await run_import(runtime, "\n".join(json.dumps(x) for x in lines) + "\n\n", "jsonl")
    assert rejects == [] and report.created == 2
    found = await customers(runtime)
    assert found["cat"].traits["vip"] is True and found["cat"].traits["address"] == {"city": "Lyon"}
    assert found["dan"].whatsapp == "+34600000001"
    [consent] = await consents(runtime)
    assert (consent.channel, consent.status) == ("whatsapp", "opted_in")


async def test_every_rejected_line_is_reported_with_its_line_column_and_reason(runtime):
    text = (
        "userId,email,phone,locale,timezone,consent_sms\n"
        "ok1,ok1@example.com,,,,\n"
        '"multi",a@example.com,,,,"opted_in"\n'
        ",nobody@example.com,,,,\n"  # line 4: no userId
        "bad,not-an-email,+1,xx-!!,Mars/Base,maybe\n"  # line 5: five bad cells
        '"quoted\nacross lines",ok@example.com,,,,\n'  # lines 6-7, one record
        "short,x@example.com\n"  # line 8: too few values
        "ok2,,+442071838750,,,\n"
    )
    report, rejects = await run_import(runtime, text)
    assert (report.lines, report.rejected_lines, report.created) == (7, 3, 4)
    by_line = {}
    for reject in rejects:
        by_line.setdefault(reject.line, {})[reject.column] = reject.reason
    assert by_line[4] == {"userId": "required"}
    assert set(by_line[5]) == {"email", "phone", "locale", "timezone", "consent_sms"}
    assert "e-mail" in by_line[5]["email"] and "IANA" in by_line[5]["timezone"]
    assert "E.164" in by_line[5]["phone"] and "maybe" in by_line[5]["consent_sms"]
    assert by_line[8] == {None: "2 values for 6 columns"}
    assert report.reject_count == len(rejects) == 7
    assert {"ok1", "multi", "quoted\nacross lines", "ok2"} == set(await customers(runtime))


async def test_jsonl_rejects_name_their_line(runtime):
    text = '{"userId": "a"}\nnot json\n[1, 2]\n{"userId": 7}\n{"userId": "b", "sms_opt_in": true}\n'
    report, rejects = await run_import(runtime, text, "jsonl")
    assert [(r.line, r.column) for r in rejects] == [(2, None), (3, None), (4, "userId"), (5, None)]
    assert "consent_sms" in rejects[3].reason
    assert report.created == 1


async def test_a_file_without_a_userid_column_is_refused_whole(runtime):
    with pytest.raises(ImportFileError, match="no userId column"):
        await run_import(runtime, "email\nx@example.com\n")
    assert await customers(runtime) == {}


async def test_the_same_file_twice_changes_nothing(runtime):
    await run_import(runtime, PEOPLE_CSV)
    before = {u: (c.updated_at, c.traits) for u, c in (await customers(runtime)).items()}
    ledger = len(await consents(runtime))
    assert ledger == 2  # ann's SMS opt-in, bob's e-mail opt-out
    runtime.clock.advance(timedelta(hours=1))
    report, rejects = await run_import(runtime, PEOPLE_CSV)
    assert rejects == [] and (report.created, report.updated, report.unchanged) == (0, 0, 2)
    assert report.consents_recorded == 0 and len(await consents(runtime)) == ledger
    assert {u: (c.updated_at, c.traits) for u, c in (await customers(runtime)).items()} == before


async def test_a_changed_value_updates_that_customer_only(runtime):
    await run_import(runtime, PEOPLE_CSV)
    before = await customers(runtime)
    runtime.clock.advance(timedelta(hours=1))
    report, _ = await run_import(runtime, PEOPLE_CSV.replace(",L\n", ",XL\n"))
    assert (report.updated, report.unchanged) == (1, 1)
    after = await customers(runtime)
    assert after["bob"].traits["size"] == "XL" and after["bob"].updated_at > before["bob"].updated_at
    assert after["ann"].updated_at == before["ann"].updated_at


async def test_many_batches_and_a_user_twice(runtime):
    rows = [f"u{i},u{i}@example.com,{i}" for i in range(2500)] + ["u5,u5@example.com,again"]
    report, rejects = await run_import(runtime, "userId,email,n\n" + "\n".join(rows) + "\n", batch_lines=1000)
    assert rejects == [] and report.created == 2500 and report.lines == 2501
    found = await customers(runtime)
    assert len(found) == 2500 and found["u5"].traits["n"] == "again"


async def test_a_dry_run_counts_and_writes_nothing(runtime):
    report, rejects = await run_import(runtime, PEOPLE_CSV, dry_run=True)
    assert rejects == [] and report.dry_run and report.created == 2 and report.consents_recorded == 2
    assert await customers(runtime) == {} and await consents(runtime) == []


async def test_consent_columns_are_recorded_with_their_evidence(runtime):
    await run_import(runtime, PEOPLE_CSV, name="crm-export.csv")
    ann_sms, bob_email = await consents(runtime)
    assert (ann_sms.channel, ann_sms.status, ann_sms.source) == ("sms", "opted_in", "import")
    assert ann_sms.evidence == {
        "file": "crm-export.csv",
        "line": 2,
        "imported_at": runtime.clock.now().isoformat(),
        "value": "opted_in",
    }
    assert (bob_email.channel, bob_email.status, bob_email.evidence["line"]) == ("email", "opted_out", 3)


async def test_an_import_never_silently_overrides_a_later_opt_out(runtime):
    await run_import(runtime, "userId,phone\nann,+14155550123\n")
    async with runtime.sessions() as session, session.begin():
        ann = (await session.exec(select(Customer))).one()
        await record_consent(session, ann.id, "sms", "opted_out", "sms_keyword", runtime.clock.now(), {"body": "STOP"})
    opted_out_at = runtime.clock.now()
    runtime.clock.advance(timedelta(days=1))
    older = (opted_out_at - timedelta(days=30)).isoformat()
    report, rejects = await run_import(runtime, f"userId,consent_sms,consent_at\nann,opted_in,{older}\n")
    [reject] = rejects
    assert (reject.line, reject.column) == (2, "consent_sms") and "opted out on" in reject.reason
    _, rejects = await run_import(runtime, "userId,consent_sms,size\nann,true,S\n")  # no consent_at: not either
    assert len(rejects) == 1 and (await customers(runtime))["ann"].traits["size"] == "S"  # the rest applied
    assert [c.status for c in await consents(runtime)] == ["opted_out"]
    later = (opted_out_at + timedelta(hours=2)).isoformat()
    _, rejects = await run_import(runtime, f"userId,consent_sms,consent_at\nann,opted_in,{later}\n")
    assert rejects == []
    ledger = await consents(runtime)
    assert [c.status for c in ledger] == ["opted_out", "opted_in"]
    assert ledger[-1].evidence["consent_at"].startswith(later[:19])


# --- the API --------------------------------------------------------------------------------


async def test_an_upload_imports_csv_and_jsonl(client, runtime):
    answer = await client.post(
        "/v1/customers/import?file_name=crm.csv", content=PEOPLE_CSV, headers={"Content-Type": "text/csv"}
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["created"], body["reject_count"], body["file"]) == (2, 0, "crm.csv")
    jsonl = '{"userId": "cat", "email": "nope"}\n{"userId": "dan", "locale": "de"}\n'
    answer = await client.post(
        "/v1/customers/import?dry_run=true", content=jsonl, headers={"Content-Type": "application/x-ndjson"}
    )
    body = answer.json()
    assert body["dry_run"] and body["created"] == 1 and body["rejected_lines"] == 1
    assert body["rejects"] == [{"line": 1, "column": "email", "reason": body["rejects"][0]["reason"]}]
    assert "cat" not in await customers(runtime) and "dan" not in await customers(runtime)


async def test_an_upload_answers_a_bounded_list_of_rejects_and_their_count(client):
    text = "userId,email\n" + "".join(f"u{i},bad\n" for i in range(250))
    body = (await client.post("/v1/customers/import", content=text, headers={"Content-Type": "text/csv"})).json()
    assert body["reject_count"] == 250 and len(body["rejects"]) == 100 and body["rejects"][0]["line"] == 2


async def test_an_upload_larger_than_the_api_body_limit_is_streamed(client, runtime):
    rows = "".join(f"user-{i:06d},user{i}@example.com,{'x' * 40}\n" for i in range(3000))
    text = "userId,email,note\n" + rows
    assert len(text) > runtime.settings.max_body_bytes
    body = (await client.post("/v1/customers/import", content=text, headers={"Content-Type": "text/csv"})).json()
    assert body["created"] == 3000


async def test_an_upload_over_the_import_limit_is_refused(client, runtime):
    runtime.settings.max_import_bytes = 1000
    text = "userId\n" + "".join(f"u{i:05d}\n" for i in range(500))
    answer = await client.post("/v1/customers/import", content=text, headers={"Content-Type": "text/csv"})
    assert answer.status_code == 413 and "1000 bytes" in answer.json()["detail"]
    assert await customers(runtime) == {}


async def test_an_upload_names_what_is_wrong_with_it(client):
    wrong_type = await client.post("/v1/customers/import", content="{}", headers={"Content-Type": "application/json"})
    assert wrong_type.status_code == 415 and "text/csv" in wrong_type.json()["detail"]
    no_user = await client.post("/v1/customers/import", content="email\na@b.c\n", headers={"Content-Type": "text/csv"})
    assert no_user.status_code == 422 and "userId" in no_user.json()["detail"]


async def test_marketers_import_and_ops_may_not(client, runtime):
    async with runtime.sessions() as session, session.begin():
        marketer = (await create_key(session, "mia", "marketer", runtime.clock.now())).key
        ops = (await create_key(session, "oz", "ops", runtime.clock.now())).key
    upload = dict(content=PEOPLE_CSV, headers={"Content-Type": "text/csv"})
    ok = await client.post(
        "/v1/customers/import", **{**upload, "headers": {**upload["headers"], "X-API-Key": marketer}}
    )
    assert ok.status_code == 200
    refused = await client.post(
        "/v1/customers/import", **{**upload, "headers": {**upload["headers"], "X-API-Key": ops}}
    )
    assert refused.status_code == 403 and "admin or marketer" in refused.json()["detail"]


async def test_the_customer_list_pages_through_imported_customers(client, runtime):
    await run_import(runtime, "userId\n" + "".join(f"p{i:03d}\n" for i in range(120)))
    seen, cursor = [], None
    while True:
        page = (
            await client.get("/v1/customers", params={"limit": 50, **({"cursor": cursor} if cursor else {})})
        ).json()
        seen += [c["user_id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 120


# --- the command line -----------------------------------------------------------------------


def test_the_command_imports_and_writes_every_reject(database_url, tmp_path, monkeypatch, capsys):
    asyncio.run(_reset(database_url))
    monkeypatch.setenv("DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        people = tmp_path / "people.csv"
        people.write_text(PEOPLE_CSV + "eve,not-mail,,,,,,\n")
        rejects = tmp_path / "rejects.csv"
        assert main(["customers", "import", str(people), "--rejects", str(rejects)]) == 1
        assert list(csv.reader(rejects.open())) == [
            ["line", "column", "reason"],
            ["4", "email", "not a valid e-mail address: An email address must have an @-sign."],
        ]
        err = capsys.readouterr().err
        assert "2 customers created" in err and "1 lines rejected" in err
        assert main(["customers", "import", str(people), "--dry-run"]) == 1
        assert "0 customers would be created" in capsys.readouterr().err
        assert main(["customers", "export", "ann"]) == 0
        assert json.loads(capsys.readouterr().out)["customer"]["email"] == "Ann@example.com"
        assert main(["customers", "erase", "ann"]) == 0
        assert "2 addresses kept only as hashes" in capsys.readouterr().err
        assert main(["customers", "export", "ann"]) == 1
    finally:
        get_settings.cache_clear()


async def test_imported_rows_count(runtime):
    """A guard against counting by the report alone: the table agrees."""
    await run_import(runtime, PEOPLE_CSV)
    async with runtime.sessions() as session:
        assert (await session.exec(select(func.count()).select_from(Customer))).one() == 2


async def test_a_customer_created_meanwhile_gets_the_lines_applied_over_it(runtime, monkeypatch):
    """Between the batch's read and its INSERT an identify may create the same userId: the
    INSERT skips it (ON CONFLICT), and its lines are applied to the row that is there."""
    from orchestrator.customers import imports

    await run_import(runtime, "userId,size\nann,M\n")
    real_existing, calls = imports._existing, []

    async def blind_first_time(session, user_ids):
        calls.append(user_ids)
        return {} if len(calls) == 1 else await real_existing(session, user_ids)

    monkeypatch.setattr(imports, "_existing", blind_first_time)
    report, rejects = await run_import(runtime, "userId,size,consent_sms\nann,L,opted_in\nbob,S,\n")
    assert rejects == [] and (report.created, report.updated) == (1, 1) and len(calls) == 2
    found = await customers(runtime)
    assert found["ann"].traits["size"] == "L" and found["bob"].traits["size"] == "S"
    assert [(c.customer_id, c.status) for c in await consents(runtime)] == [(found["ann"].id, "opted_in")]
