"""Whether a customer may be sent marketing on a channel.

SMS and WhatsApp need an opt-in; e-mail is opt-out. Until the consent ledger lands, the
state comes from identify traits (`sms_opt_in`, `whatsapp_opt_in`, `email_opt_out`).
"""

from __future__ import annotations

from typing import Any

OPT_IN_CHANNELS = {"sms": "sms_opt_in", "whatsapp": "whatsapp_opt_in"}


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "yes", "1", "y", "on"}
    return bool(value)


def consent_refusal(traits: dict[str, Any], channel: str) -> str | None:
    """None when marketing may go out on `channel`, else the reason it may not."""
    if channel in OPT_IN_CHANNELS:
        if not _truthy(traits.get(OPT_IN_CHANNELS[channel])):
            return f"no {channel} opt-in"
        return None
    if channel == "email" and _truthy(traits.get("email_opt_out")):
        return "email opted out"
    return None


def has_consent(traits: dict[str, Any], channel: str) -> bool:
    return consent_refusal(traits, channel) is None
