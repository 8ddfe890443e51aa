"""What the real Twilio answers to a Messages request, as data and pure functions.

Validation in Twilio's order with Twilio's error codes and texts, the test ("magic") numbers
and the Message resource shape. SMS segments are counted by `orchestrator.templating.sms`,
the one counter the engine, preview and this fake share, so what a template preview says a
body costs is what the fake bills. The server around it, with its state, callbacks and
admin endpoints, is `orchestrator.fakes.twilio`.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

from orchestrator.templating.sms import measure_sms
from orchestrator.vocabulary import WHATSAPP_PREFIX, bare_number

API_VERSION = "2010-04-01"
MAX_BODY_LENGTH = 1600


@dataclass(frozen=True)
class ApiError:
    http_status: int
    code: int
    message: str  # may name {to} and {from_}


@dataclass(frozen=True)
class DeliveryFailure:
    status: str
    error_code: int
    error_message: str


MAGIC_TO_ERRORS = {
    "+15005550001": ApiError(400, 21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": ApiError(
        400,
        21612,
        "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: {from_} via SMS.",
    ),
    "+15005550003": ApiError(
        400, 21408, "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}."
    ),
    "+15005550004": ApiError(400, 21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": ApiError(400, 21614, "'To' number is not a valid mobile number"),
    "+15005550429": ApiError(429, 20429, "Too Many Requests"),
    "+15005550500": ApiError(500, 20500, "An internal server error has occurred"),
}
WHATSAPP_OUTSIDE_WINDOW_TO = "+15005550016"
OUTSIDE_WINDOW_ERROR = ApiError(
    400,
    63016,
    "Failed to send freeform message because you are outside the allowed window. "
    "If you are using WhatsApp, please use a Message Template.",
)
MAGIC_FROM_ERRORS = {
    "+15005550001": ApiError(
        400, 21212, "The 'From' number {from_} is not a valid phone number, shortcode, or alphanumeric sender ID."
    ),
    "+15005550007": ApiError(
        400,
        21606,
        "The 'From' phone number provided ({from_}) is not a valid message-capable "
        "Twilio phone number for this destination.",
    ),
    "+15005550008": ApiError(400, 21611, "This 'From' number has exceeded the maximum number of queued messages"),
}
UNDELIVERED = DeliveryFailure("undelivered", 30003, "Unreachable destination handset")
FAILED = DeliveryFailure("failed", 30006, "Landline or unreachable carrier")
MAGIC_DELIVERY_FAILURES = {"+15005550030": UNDELIVERED, "+15005550060": FAILED}

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
SHORT_CODE = re.compile(r"^\d{5,6}$")
ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")


def error_body(error: ApiError, **names: str) -> dict[str, Any]:
    """Twilio's error JSON for the REST API."""
    return {
        "code": error.code,
        "message": error.message.format(**names),
        "more_info": f"https://www.twilio.com/docs/errors/{error.code}",
        "status": error.http_status,
    }


def billable_segments(to: str, body: str) -> int:
    """Segments Twilio bills for a message: a WhatsApp message is one message, however long;
    an SMS is billed per segment, and one with media only (no body) still as one."""
    if to.startswith(WHATSAPP_PREFIX):
        return 1
    return max(1, measure_sms(body).segments)


def new_sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def rfc2822(moment: datetime) -> str:
    return format_datetime(moment, usegmt=False)  # "Thu, 30 Jul 2015 20:12:31 +0000"


strip_channel = bare_number


def validate_create(params: dict[str, str], media_urls: list[str]) -> ApiError | None:
    """Twilio's checks, in Twilio's order, for the parameters our adapters send."""
    to, sender = params.get("To", ""), params.get("From", "")
    body, content_sid = params.get("Body", ""), params.get("ContentSid", "")
    if not to:
        return ApiError(400, 21604, "A 'To' phone number is required.")
    if not sender and not params.get("MessagingServiceSid"):
        return ApiError(400, 21603, "A 'From' phone number is required.")
    if not body and not content_sid and not media_urls:
        return ApiError(400, 21602, "Message body is required.")
    if sender and to.startswith(WHATSAPP_PREFIX) != sender.startswith(WHATSAPP_PREFIX):
        return ApiError(400, 21910, "Invalid From and To pair. From and To should be of the same channel")
    if len(body) > MAX_BODY_LENGTH:
        return ApiError(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
    if "ContentVariables" in params and not content_sid:
        return ApiError(400, 21654, "ContentSid Required")
    if content_sid and not CONTENT_SID.match(content_sid):
        return ApiError(400, 21655, "The ContentSid is Invalid.")
    if content_sid and not valid_content_variables(params.get("ContentVariables")):
        return ApiError(400, 21656, "The ContentVariables Parameter is invalid.")
    bare_from = strip_channel(sender)
    if bare_from in MAGIC_FROM_ERRORS:
        return MAGIC_FROM_ERRORS[bare_from]
    if sender and not (E164.match(bare_from) or SHORT_CODE.match(bare_from) or ALPHANUMERIC_SENDER.match(bare_from)):
        return MAGIC_FROM_ERRORS["+15005550001"]
    bare_to = strip_channel(to)
    if bare_to in MAGIC_TO_ERRORS:
        return MAGIC_TO_ERRORS[bare_to]
    if not E164.match(bare_to):
        return MAGIC_TO_ERRORS["+15005550001"]
    outside_window = bare_to == WHATSAPP_OUTSIDE_WINDOW_TO and to.startswith(WHATSAPP_PREFIX)
    if outside_window and not content_sid:
        return OUTSIDE_WINDOW_ERROR
    return None


def valid_content_variables(raw: str | None) -> bool:
    """A JSON object of non-empty string values, as Twilio's Content API demands."""
    if raw is None:
        return True
    try:
        variables = json.loads(raw)
    except ValueError:
        return False
    return isinstance(variables, dict) and all(isinstance(value, str) and value != "" for value in variables.values())


def new_message_resource(
    account_sid: str, params: dict[str, str], media_urls: list[str], price_unit: str
) -> dict[str, Any]:
    """The Message resource as Twilio returns it from a create (HTTP 201)."""
    sid = new_sid("SM")
    now = rfc2822(datetime.now(timezone.utc))
    service_sid = params.get("MessagingServiceSid")
    body = params.get("Body", "")
    segments = billable_segments(params["To"], body)
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}"
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": params.get("From") or None,
        "messaging_service_sid": service_sid,
        "num_media": str(len(media_urls)),
        # A Messaging Service has not picked a sender yet, so Twilio reports 0 segments.
        "num_segments": "0" if service_sid and not params.get("From") else str(segments),
        "price": None,
        "price_unit": price_unit,
        "sid": sid,
        # With a Messaging Service Twilio first answers `accepted`, then queues.
        "status": "accepted" if service_sid else "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": params["To"],
        "uri": f"{uri}.json",
    }
