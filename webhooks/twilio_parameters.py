"""Does a signed Twilio form have Twilio's shape? Refuse it if not.

`X-Twilio-Signature` is an HMAC over the URL followed by every key and value concatenated
in key order, with no separator. So characters can move across a key/value boundary and the
signature still holds: `{"MessageSid": "SM…", "NumMedia": "0"}` and `{"MessageSid":
"SM…NumMedia0"}` sign alike. Such a form carries a new MessageSid (deduplication misses it:
a captured START replays as a "new" message) or a key Twilio never sends. Twilio's own
values have strict shapes, so a form is taken only when every key is one Twilio sends (or a
numbered media key) and the identifiers, counts and addresses look like Twilio's.

Twilio says it may add parameters without notice; an unknown key is refused with its name
in the 403 (and logged), so it can be added to `KNOWN_KEYS` once it is seen.
"""

from __future__ import annotations

import logging
import re

log = logging.getLogger("orchestrator.webhooks.twilio")

# From Twilio's incoming message webhook and status callback references (SMS, MMS, WhatsApp).
KNOWN_KEYS = frozenset(
    {
        "AccountSid",
        "ApiVersion",
        "Body",
        "From",
        "To",
        "MessageSid",
        "SmsSid",
        "SmsMessageSid",
        "MessagingServiceSid",
        "NumMedia",
        "NumSegments",
        "SmsStatus",
        "MessageStatus",
        "ErrorCode",
        "ErrorMessage",
        "RawDlrDoneDate",
        "FromCity",
        "FromState",
        "FromZip",
        "FromCountry",
        "ToCity",
        "ToState",
        "ToZip",
        "ToCountry",
        "ProfileName",
        "WaId",
        "Forwarded",
        "FrequentlyForwarded",
        "ButtonText",
        "ButtonPayload",
        "MessageType",
        "Latitude",
        "Longitude",
        "Address",
        "Label",
        "ChannelMetadata",
        "ChannelPrefix",
        "ChannelInstallSid",
        "ChannelToAddress",
        "ChannelStatusMessage",
        "EventType",
        "StructuredMessage",
        "OptOutType",
        "OriginalRepliedMessageSender",
        "OriginalRepliedMessageSid",
        "ReferralBody",
        "ReferralHeadline",
        "ReferralSourceId",
        "ReferralSourceType",
        "ReferralSourceUrl",
        "ReferralMediaId",
        "ReferralMediaContentType",
        "ReferralMediaUrl",
        "ReferralNumMedia",
        "ReferralCtwaClid",
    }
)
NUMBERED_KEYS = re.compile(r"^(MediaUrl|MediaContentType)(0|[1-9][0-9]?)$")  # MediaUrl0 … MediaUrl99
MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-f]{32}$")
SHAPES = {
    "MessageSid": MESSAGE_SID,
    "SmsSid": MESSAGE_SID,
    "SmsMessageSid": MESSAGE_SID,
    "AccountSid": re.compile(r"^AC[0-9a-f]{32}$"),
    "MessagingServiceSid": re.compile(r"^MG[0-9a-f]{32}$"),
    "NumMedia": re.compile(r"^[0-9]{1,2}$"),
    "NumSegments": re.compile(r"^[0-9]{1,3}$"),
    "ErrorCode": re.compile(r"^[0-9]{0,6}$"),
    "ApiVersion": re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"),
    # A phone number, a short code, or a channel address such as whatsapp:+14155550100.
    "From": re.compile(r"^([a-z]+:)?\+?[0-9]{3,15}$"),
    "To": re.compile(r"^([a-z]+:)?\+?[0-9]{3,15}$"),
    "MessageStatus": re.compile(
        r"^(accepted|scheduled|queued|sending|sent|delivered|undelivered|failed|read|"
        r"receiving|received|canceled|partially_delivered)$"
    ),
    "SmsStatus": re.compile(r"^[a-z_]{1,32}$"),
}


def shape_problem(form: dict[str, str]) -> str | None:
    """Why this form is not one Twilio sends, or None when it has Twilio's shape."""
    for key in form:
        if key not in KNOWN_KEYS and not NUMBERED_KEYS.match(key):
            log.warning("Twilio webhook with an unknown parameter %r refused", key)
            return f"unknown parameter {key!r}"
    for key, shape in SHAPES.items():
        if key in form and not shape.match(form[key]):
            return f"{key} does not have Twilio's shape"
    if not ("MessageSid" in form or "SmsSid" in form):
        return "MessageSid is required"
    return None
