"""Build the channel registry from Settings: which adapter serves each channel.

With no provider credentials, Twilio and SendGrid adapters talk to the fakes bundled with
the service (mounted under /_fake/ by `orchestrator serve`), so the default configuration
exercises the real SDKs and wire formats without an account. Real credentials in the
environment are the only switch to the real providers.
"""

from __future__ import annotations

from orchestrator.channels.base import Channel, ChannelAdapter
from orchestrator.channels.registry import ChannelRegistry
from orchestrator.config import Settings
from orchestrator.fakes.credentials import (
    FAKE_SENDGRID_API_KEY,
    FAKE_SENDGRID_PATH,
    FAKE_TWILIO_ACCOUNT_SID,
    FAKE_TWILIO_PATH,
)

FAKE_TWILIO_FROM = "+15005550006"  # Twilio's magic "valid sender" number
TWILIO_SANDBOX_WHATSAPP_FROM = "+14155238886"


def _twilio_options(settings: Settings) -> dict:
    base = settings.public_base_url.rstrip("/")
    if settings.uses_fake_twilio:
        if settings.fake_twilio_auth_token is None:  # a constant here would let anyone sign "STOP"
            raise ValueError(
                "the fake Twilio's auth token is not set: build the settings with "
                "orchestrator.auth.service_secrets.with_service_secrets first"
            )
        credentials = dict(
            account_sid=FAKE_TWILIO_ACCOUNT_SID,
            auth_token=settings.fake_twilio_auth_token,
            api_base_url=settings.twilio_api_base_url or base + FAKE_TWILIO_PATH,
        )
    else:
        credentials = dict(
            account_sid=settings.twilio_account_sid,
            auth_token=settings.twilio_auth_token or "",
            api_base_url=settings.twilio_api_base_url,
        )
    return dict(
        credentials,
        status_callback_url=settings.twilio_status_callback_url,
        messaging_service_sid=settings.twilio_messaging_service_sid,
    )


def twilio_auth_token(settings: Settings) -> str:
    """The token that signs Twilio's webhooks to us (the fake's, until credentials are set)."""
    return _twilio_options(settings)["auth_token"]


def _sms(settings: Settings) -> ChannelAdapter:
    if settings.sms_provider == "local":
        from orchestrator.channels.local import LocalSmsAdapter

        return LocalSmsAdapter()
    from orchestrator.channels.twilio import TwilioSmsAdapter

    options = _twilio_options(settings)
    sender = settings.twilio_from_number or (None if options["messaging_service_sid"] else FAKE_TWILIO_FROM)
    return TwilioSmsAdapter(from_number=sender, **options)


def _whatsapp(settings: Settings) -> ChannelAdapter:
    if settings.whatsapp_provider == "local":
        from orchestrator.channels.local import LocalWhatsAppAdapter

        return LocalWhatsAppAdapter()
    from orchestrator.channels.twilio import TwilioWhatsAppAdapter

    options = _twilio_options(settings)
    return TwilioWhatsAppAdapter(from_number=settings.twilio_whatsapp_from or TWILIO_SANDBOX_WHATSAPP_FROM, **options)


def _email(settings: Settings) -> ChannelAdapter:
    if settings.email_provider == "local":
        from orchestrator.channels.local import LocalEmailAdapter

        return LocalEmailAdapter()
    if settings.email_provider == "smtp":
        from orchestrator.channels.smtp import SmtpEmailAdapter

        return SmtpEmailAdapter(
            host=settings.smtp_host,
            port=settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password,
            starttls=settings.smtp_starttls,
            use_tls=settings.smtp_use_tls,
            from_address=settings.email_from_address,
            from_name=settings.email_from_name,
        )
    from orchestrator.channels.sendgrid import SENDGRID_API_BASE_URL, SendGridEmailAdapter

    if settings.uses_fake_sendgrid:
        key, url = (
            FAKE_SENDGRID_API_KEY,
            settings.sendgrid_api_base_url or settings.public_base_url.rstrip("/") + FAKE_SENDGRID_PATH,
        )
    else:
        key, url = settings.sendgrid_api_key, settings.sendgrid_api_base_url or SENDGRID_API_BASE_URL
    return SendGridEmailAdapter(
        api_key=key, api_base_url=url, from_address=settings.email_from_address, from_name=settings.email_from_name
    )


def build_registry(settings: Settings) -> ChannelRegistry:
    return ChannelRegistry(
        {Channel.email: _email(settings), Channel.sms: _sms(settings), Channel.whatsapp: _whatsapp(settings)}
    )


def configured_rates(settings: Settings, registry: ChannelRegistry) -> dict[Channel, float | None]:
    """Messages per second per channel; None is unlimited."""
    explicit = {
        Channel.sms: settings.sms_rate_per_second,
        Channel.whatsapp: settings.whatsapp_rate_per_second,
        Channel.email: settings.email_rate_per_second,
    }
    fake = {
        Channel.sms: settings.uses_fake_twilio,
        Channel.whatsapp: settings.uses_fake_twilio,
        Channel.email: settings.uses_fake_sendgrid or settings.email_provider == "local",
    }
    rates: dict[Channel, float | None] = {}
    for adapter in registry:
        if explicit[adapter.channel] is not None:
            rates[adapter.channel] = explicit[adapter.channel]
        elif adapter.provider == "local" or fake[adapter.channel]:
            rates[adapter.channel] = None
        else:
            rates[adapter.channel] = adapter.default_rate_per_second
    return rates
