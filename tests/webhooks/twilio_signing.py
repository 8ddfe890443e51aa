"""Sign requests exactly as Twilio does, for the webhook tests."""

from __future__ import annotations

import hashlib

from twilio.request_validator import RequestValidator

from orchestrator.channels.configure import twilio_auth_token


async def post_signed(
    client, runtime, path: str, form: dict, *, token: str | None = None, signature: str | None = None
):
    url = runtime.settings.public_base_url + path
    token = token or twilio_auth_token(runtime.settings)
    headers = {}
    if signature is not False:
        headers["X-Twilio-Signature"] = signature or RequestValidator(token).compute_signature(url, form)
    return await client.post(path, data=form, headers=headers)


def twilio_sid(label: str) -> str:
    """A message SID of Twilio's shape (SM + 32 hex digits), the same for the same label."""
    return label if len(label) == 34 else "SM" + hashlib.md5(label.encode()).hexdigest()


def inbound_form(sid: str, sender: str, body: str, to: str = "+15005550006") -> dict:
    sid = twilio_sid(sid)
    return {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": "AC" + "0" * 32,
        "From": sender,
        "To": to,
        "Body": body,
        "NumMedia": "0",
    }
