"""Two-way conversations: threads, automated replies, agents, WhatsApp's window, NPS."""

from __future__ import annotations

from sqlmodel import select

from orchestrator.channels.base import Channel
from orchestrator.storage.feedback_models import NpsResponse
from tests.api.test_launch_journeys import DAY, HOUR, advance, identify, messages_of, outbox, track
from tests.webhooks.twilio_signing import inbound_form, post_signed

INBOUND = "/webhooks/twilio/inbound"


async def test_faq_answered_automatically_in_the_customers_locale(client, runtime):
    await identify(client, "eva", phone="+34600000002", locale="es")
    answer = await post_signed(client, runtime, INBOUND, inbound_form("SM10", "+34600000002", "¿Cuál es el HORARIO?"))
    assert "de lunes a viernes" in answer.text
    [conversation] = (await client.get("/v1/conversations")).json()["items"]
    assert (conversation["user_id"], conversation["status"]) == ("eva", "open")
    thread = (await client.get(f"/v1/conversations/{conversation['id']}")).json()
    assert [(m["direction"], m["source"]) for m in thread["messages"]] == [
        ("inbound", "auto_reply"),
        ("outbound", "auto reply: opening-hours"),
    ]


async def test_no_automatic_answer_after_an_opt_out(client, runtime):
    await identify(client, "mei", phone="+886912000001", locale="zh-Hant", sms_opt_in=True)
    await post_signed(client, runtime, INBOUND, inbound_form("SM15", "+886912000001", "退訂"))
    question = await post_signed(client, runtime, INBOUND, inbound_form("SM16", "+886912000001", "營業時間?"))
    assert question.status_code == 200 and "<Message>" not in question.text
    [conversation] = (await client.get("/v1/conversations")).json()["items"]
    thread = (await client.get(f"/v1/conversations/{conversation['id']}")).json()
    assert [m["direction"] for m in thread["messages"]] == ["inbound"]  # no outbound auto reply recorded
    refused = await client.post(f"/v1/conversations/{conversation['id']}/messages", json={"body": "Hi!"})
    assert refused.status_code == 409  # the same rule for agents and for automatic answers


async def test_unmatched_message_waits_for_an_agent_who_replies(client, runtime, drain):
    await identify(client, "tom", phone="+14155550155", sms_opt_in=True)
    silent = await post_signed(client, runtime, INBOUND, inbound_form("SM11", "+14155550155", "Where is my parcel?"))
    assert "<Message>" not in silent.text
    waiting = (await client.get("/v1/conversations", params={"status": "waiting_for_agent"})).json()
    [conversation] = waiting["items"]
    reply = await client.post(
        f"/v1/conversations/{conversation['id']}/messages", json={"body": "It ships tomorrow!", "agent": "nora"}
    )
    assert reply.status_code == 202, reply.text
    await drain()
    [sent] = outbox(runtime, Channel.sms)
    assert (sent.to, sent.body) == ("+14155550155", "It ships tomorrow!")
    thread = (await client.get(f"/v1/conversations/{conversation['id']}")).json()
    assert thread["status"] == "answered"
    assert [(m["direction"], m["body"], m["status"]) for m in thread["messages"]] == [
        ("inbound", "Where is my parcel?", None),
        ("outbound", "It ships tomorrow!", "sent"),
    ]


async def test_agent_cannot_text_someone_who_said_stop(client, runtime):
    await identify(client, "ian", phone="+14155550166", sms_opt_in=True)
    await post_signed(client, runtime, INBOUND, inbound_form("SM12", "+14155550166", "hello?"))
    await post_signed(client, runtime, INBOUND, inbound_form("SM13", "+14155550166", "STOP"))
    [conversation] = (await client.get("/v1/conversations")).json()["items"]
    refused = await client.post(f"/v1/conversations/{conversation['id']}/messages", json={"body": "Hi!"})
    assert refused.status_code == 409 and "opted out" in refused.json()["detail"]


async def test_whatsapp_replies_only_inside_the_24_hour_window(client, runtime, drain):
    await identify(client, "ana", phone="+34600000003")
    await post_signed(
        client,
        runtime,
        INBOUND,
        inbound_form("SM14", "whatsapp:+34600000003", "Hola, una pregunta", to="whatsapp:+14155238886"),
    )
    [conversation] = (await client.get("/v1/conversations", params={"channel": "whatsapp"})).json()["items"]
    assert conversation["whatsapp_window_open"] is True
    inside = await client.post(f"/v1/conversations/{conversation['id']}/messages", json={"body": "¡Claro!"})
    assert inside.status_code == 202
    await drain()
    assert [m.body for m in outbox(runtime, Channel.whatsapp)] == ["¡Claro!"]
    await advance(client, 25 * HOUR)
    outside = await client.post(f"/v1/conversations/{conversation['id']}/messages", json={"body": "¿Sigues ahí?"})
    assert outside.status_code == 409 and "24-hour window" in outside.json()["detail"]


async def test_nps_survey_records_scores_and_answers_by_score(client, runtime, drain):
    for user, phone in (("pro", "+14155550181"), ("det", "+14155550182"), ("pas", "+14155550183")):
        await identify(client, user, phone=phone, sms_opt_in=True)
        await track(client, user, "Order Delivered")
    await drain()
    await advance(client, 7 * DAY)
    assert [m.body.startswith("How likely") for m in outbox(runtime, Channel.sms)] == [True] * 3
    await post_signed(client, runtime, INBOUND, inbound_form("SM20", "+14155550181", "10"))
    await post_signed(client, runtime, INBOUND, inbound_form("SM21", "+14155550182", "3"))
    await post_signed(client, runtime, INBOUND, inbound_form("SM22", "+14155550183", "8"))
    await advance(client, 60)
    async with runtime.sessions() as session:
        scores = sorted((await session.exec(select(NpsResponse.score))).all())
    assert scores == [3, 8, 10]
    bodies = {user: [m["body"] for m in await messages_of(client, user)] for user in ("pro", "det", "pas")}
    assert "review" in bodies["pro"][-1] and "contact you" in bodies["det"][-1] and len(bodies["pas"]) == 1
    statuses = {e["journey_id"]: e["status"] for e in (await client.get("/v1/customers/pas")).json()["enrollments"]}
    assert statuses["nps-survey"] == "completed"


async def test_nps_replies_with_words_around_the_score_are_recorded(client, runtime, drain):
    replies = {
        "ten": ("+14155550191", "10 super"),
        "three": ("+14155550192", "3, late delivery"),
        "nine": ("+14155550193", "9, great"),
        "slash": ("+14155550194", "9/10"),
        "word": ("+14155550195", "neuf"),
        "none": ("+14155550196", "thanks!"),
    }
    for user, (phone, _) in replies.items():
        await identify(client, user, phone=phone, sms_opt_in=True)
        await track(client, user, "Order Delivered")
    await drain()
    await advance(client, 7 * DAY)
    for index, (phone, body) in enumerate(replies.values()):
        await post_signed(client, runtime, INBOUND, inbound_form(f"SM3{index}", phone, body))
    await advance(client, 60)
    async with runtime.sessions() as session:
        scores = sorted((await session.exec(select(NpsResponse.score))).all())
    assert scores == [3, 9, 9, 9, 10]
    last = {user: (await messages_of(client, user))[-1]["template"] for user in replies}
    assert last["ten"] == last["nine"] == last["slash"] == last["word"] == "nps-thanks-promoter"
    assert last["three"] == "nps-thanks-detractor"
    timeline = (await client.get("/v1/customers/none/timeline")).json()["items"]
    [inbound] = [item for item in timeline if item["kind"] == "inbound"]
    assert "no score 0-10 in it" in inbound["summary"]


async def test_nps_question_unanswered_exits(client, runtime, drain):
    await identify(client, "mute", phone="+14155550184", sms_opt_in=True)
    await track(client, "mute", "Order Delivered")
    await drain()
    await advance(client, 7 * DAY)
    await advance(client, 3 * DAY)
    [enrollment] = (await client.get("/v1/customers/mute")).json()["enrollments"]
    assert (enrollment["status"], enrollment["exit_reason"]) == ("exited", "no answer")
