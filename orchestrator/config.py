"""All configuration in one pydantic-settings class; every field has a working default.

With no environment at all the service runs on SQLite with the local providers, so a new
user sees it work in one command. Variables are prefixed `ORCHESTRATOR_`, except
`DATABASE_URL`, which keeps the name every platform already sets.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Secrets that were once published as defaults (in this source, its docs or compose files):
# with real provider credentials the service refuses to start on one of these.
PUBLISHED_SECRET_KEYS = frozenset({"development-only-secret-key-change-me", "change-me", "changeme", "secret"})
# A secret of our own choosing must be at least this long to count as one with real providers.
MINIMUM_SECRET_KEY_LENGTH = 32


def _env(name: str) -> AliasChoices:
    """Providers' credentials keep the names their own SDKs and docs use."""
    return AliasChoices(name, f"ORCHESTRATOR_{name}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", extra="ignore")

    database_url: str = Field(
        default=f"sqlite:///{PROJECT_ROOT / 'var' / 'orchestrator.db'}",
        validation_alias=AliasChoices("DATABASE_URL", "ORCHESTRATOR_DATABASE_URL"),
    )
    # Upgrade the database schema to the newest migration at start-up (zero-config default).
    # With many processes, run `orchestrator migrate` once per deploy and set this to false.
    auto_migrate: bool = True
    journeys_dir: Path = PROJECT_ROOT / "journeys"
    templates_dir: Path = PROJECT_ROOT / "templates"
    reports_dir: Path = PROJECT_ROOT / "reports"  # scheduled KPI reports (docs/reports.md)
    broadcasts_dir: Path = PROJECT_ROOT / "broadcasts"  # one-off sends to an audience (docs/broadcasts.md)
    segments_dir: Path = PROJECT_ROOT / "segments"  # segments (docs/segments.md)
    # Marketing sends per customer, channel and local day/week (docs/frequency-caps.md); no file: uncapped.
    frequency_caps_file: Path = PROJECT_ROOT / "policies" / "frequency.yaml"
    default_locale: str = "en"

    host: str = "127.0.0.1"
    port: int = 8000
    # The address providers use to reach our webhooks; signatures are computed over it.
    # Defaults to http://host:port.
    public_base_url: str = ""

    # Simulated time: off by default. When on, the clock only moves through the admin API.
    simulated_clock: bool = False
    simulated_clock_start: str | None = None  # ISO-8601; defaults to the real time at start

    # Channels: which adapter serves each channel. With no provider credentials the Twilio
    # and SendGrid adapters talk to the fakes bundled with the service (mounted at /_fake/...).
    email_provider: Literal["sendgrid", "smtp", "local"] = "sendgrid"
    sms_provider: Literal["twilio", "local"] = "twilio"
    whatsapp_provider: Literal["twilio", "local"] = "twilio"

    twilio_account_sid: str | None = Field(default=None, validation_alias=_env("TWILIO_ACCOUNT_SID"))
    twilio_auth_token: str | None = Field(default=None, validation_alias=_env("TWILIO_AUTH_TOKEN"))
    twilio_from_number: str | None = Field(default=None, validation_alias=_env("TWILIO_FROM_NUMBER"))
    twilio_messaging_service_sid: str | None = Field(
        default=None, validation_alias=_env("TWILIO_MESSAGING_SERVICE_SID")
    )
    twilio_whatsapp_from: str | None = Field(default=None, validation_alias=_env("TWILIO_WHATSAPP_FROM"))
    twilio_api_base_url: str | None = None  # only to point the SDK somewhere other than Twilio or the bundled fake

    sendgrid_api_key: str | None = Field(default=None, validation_alias=_env("SENDGRID_API_KEY"))
    sendgrid_api_base_url: str | None = None
    # The Signed Event Webhook's verification key (base64 DER, as SendGrid shows it). Event
    # webhook calls without a valid ECDSA signature under it are refused with 403. Against the
    # bundled fake the key is the fake's own (generated, kept in the database).
    sendgrid_webhook_public_key: str | None = Field(default=None, validation_alias=_env("SENDGRID_WEBHOOK_PUBLIC_KEY"))
    # Off only on purpose (start-up warns): then anyone who can reach the webhook can post events.
    sendgrid_webhook_verify_signatures: bool = True
    # A signed call whose timestamp is further than this from our clock is refused (a replay).
    sendgrid_webhook_max_age_seconds: float = Field(default=600.0, gt=0)

    # /v1 needs an API key once any key exists; true demands one even before (production).
    require_api_keys: bool = False
    # Each API process remembers a valid key (and "no key exists yet") this long, instead of
    # asking the database on every request: a revocation or a first key counts within it.
    api_key_cache_seconds: float = 5.0

    # Signs tracking, click and unsubscribe links (HMAC-SHA256). Unset (the default), a random
    # one is generated on first start and kept in the database, shared by every process.
    secret_key: str | None = None
    # Keys the hashes of erased customers' addresses (docs/customers.md, "Erase"). Generated
    # and kept in the database like `secret_key`; unlike it, never rotate it: a new key
    # forgets every erased address.
    erasure_key: str | None = None
    # The bundled fakes' credentials: generated and kept in the database like `secret_key`
    # unless set here (a standalone fake then needs the same value: `--auth-token`).
    fake_twilio_auth_token: str | None = None
    # PEM of the ECDSA P-256 key the bundled fake SendGrid signs its events with.
    fake_sendgrid_signing_key: str | None = None
    # Open pixel and click redirects in HTML mail sent over SMTP (SendGrid tracks its own).
    email_tracking: bool = True
    # Tracked short links in marketing SMS and WhatsApp (docs/links.md). The base is where the
    # links point: a short domain of your own routed to this service keeps each link near 30
    # characters; unset, `public_base_url` is used.
    short_links: bool = True
    short_link_base_url: str = ""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 1025
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_starttls: Literal["auto", "always", "never"] = "auto"
    smtp_use_tls: bool = False

    email_from_address: str = "hello@orchestrator.local"
    email_from_name: str | None = "Orchestrator"

    # Send-rate limits shared by every worker: memory:// for one process, redis://host:6379
    # for many. Per-channel rates in messages per second; unset means the adapter's own
    # default with a real provider, and no limit against the bundled fakes.
    rate_limit_storage: str = "memory://"
    sms_rate_per_second: float | None = None
    whatsapp_rate_per_second: float | None = None
    email_rate_per_second: float | None = None

    # Inbound SMS/WhatsApp keywords (single word, case-insensitive), with localized ones.
    opt_out_keywords: list[str] = [
        "STOP",
        "STOPALL",
        "UNSUBSCRIBE",
        "CANCEL",
        "END",
        "QUIT",
        "REVOKE",
        "OPTOUT",
        "ARRET",
        "ARRÊT",
        "ALTO",
        "BAJA",
        "退訂",
        "取消訂閱",
    ]
    opt_in_keywords: list[str] = ["START", "YES", "UNSTOP", "OUI", "SI", "SÍ", "訂閱"]
    help_keywords: list[str] = ["HELP", "INFO", "AIDE", "AYUDA", "幫助"]
    # Their answers are templates: templates/keyword-opt-out, keyword-opt-in, keyword-help.
    auto_replies_file: Path = PROJECT_ROOT / "templates" / "auto-replies.yaml"

    # Settling ambiguous sends (docs/send-safety.md). A message claimed for sending longer ago
    # than `reconcile_after_seconds` was cut off (a crash, a lost answer): its provider is asked
    # about it. Keep it above the adapters' request timeouts (10 s).
    reconcile_after_seconds: float = 300.0
    # "Not found" proves nothing was sent only this long after the attempt: it covers a request
    # still in flight and the provider's own lag in listing a message it just accepted.
    reconcile_resend_after_seconds: float = 600.0
    reconcile_retry_seconds: float = 60.0  # ask again after an unreachable or too-early answer
    # A `sent` message with no final status this long after it left gets its status fetched
    # (a status callback may have been lost), then again at doubling ages, until it is final
    # or `reconcile_status_give_up_seconds` old.
    reconcile_status_after_seconds: float = 900.0
    reconcile_status_give_up_seconds: float = 3 * 86400.0
    reconcile_interval_seconds: float = 5.0  # how often each worker runs a round
    reconcile_batch_size: int = 100  # messages per round and kind, per worker
    reconcile_lookups_per_second: float = 20.0  # provider requests per worker, well below sends

    # How often each process re-reads journey versions and pause states from the database.
    catalog_refresh_seconds: float = 2.0

    # Render budget, per rendered text (body, subject, HTML part, string variable): past it
    # the message fails with the reason, so a runaway template cannot hang the process. An
    # ordinary template renders in well under a millisecond; an HTML newsletter is ~100 KB.
    render_max_seconds: float = Field(default=0.2, gt=0)
    render_max_chars: int = Field(default=250_000, gt=0)

    worker_poll_seconds: float = 1.0
    report_poll_seconds: float = 60.0  # how often a worker looks for reports due to be e-mailed
    broadcast_poll_seconds: float = Field(default=1.0, gt=0)  # how often a worker starts and feeds broadcasts
    broadcast_batch_size: int = Field(default=1000, ge=1)  # recipients made into messages per transaction
    # How often each worker brings the daily KPI rollups up to date (also once at start).
    # `GET /v1/kpis` only reads them, so whole days in a report are at most this old.
    kpi_rollup_refresh_seconds: float = Field(default=30.0, gt=0)
    # Segments (docs/segments.md): how often a worker re-evaluates the customers whose events
    # arrived since the last round, and how often a whole segment is swept (time windows).
    segment_refresh_seconds: float = Field(default=10.0, gt=0)
    segment_sweep_seconds: float = Field(default=3600.0, gt=0)
    # Website KPIs (docs/website-kpis.md): views of one visitor this far apart (or more) are two visits;
    # an order this long after a visit's last view still converts it.
    visit_gap_minutes: float = Field(default=30.0, gt=0)
    visit_conversion_window_minutes: float = Field(default=24 * 60.0, ge=0)
    # Our link redirects add utm_source=<this>, utm_medium, utm_campaign, utm_content and a
    # message reference to the landing URL (keys the link already has are kept); off: untouched.
    landing_utm: bool = True
    landing_utm_source: str = Field(default="orchestrator", min_length=1, max_length=255)
    # Websites whose pages may send events from the browser (analytics.js, docs/website-kpis.md):
    # origins such as "https://shop.example", or "*" for any. None by default.
    site_origins: list[str] = []
    # The secret a site's server signs its logged-in customers' userIds with (HMAC-SHA256,
    # sent as `context.userHash`); only a call carrying a valid one may change a customer's
    # contact addresses or consent from a page (events/site_identity.py). Never generated:
    # the site's server must know it. Unset, pages can never change them.
    # At least MINIMUM_SECRET_KEY_LENGTH characters, or the service refuses to start
    # (auth/service_secrets.py): the page shows a userId and its hash, enough to guess a short one offline.
    site_identity_secret: str | None = None
    # During a rotation, the secret being replaced: hashes under either are valid, so pages
    # rendered before the site's servers switched keep working. Unset it once they all have.
    site_identity_previous_secret: str | None = None
    worker_batch_size: int = 200
    max_batch_events: int = 1000
    # Body size limits (docs/api.md, "Limits"), checked while the body is read and on the
    # inflated size of a gzip body; 413 beyond them. Segment's own: 32 KB a call, 500 KB a batch.
    max_call_bytes: int = 32 * 1024  # one Segment call: /v1/track, /v1/identify, ..., and each call in a batch
    max_batch_bytes: int = 1024 * 1024  # /v1/batch
    max_body_bytes: int = 64 * 1024  # every other /v1/ route with a body (consents, replies, clock)
    max_request_bytes: int = 4 * 1024 * 1024  # provider webhooks
    # POST /v1/customers/import, streamed to a temporary file (never held in memory).
    max_import_bytes: int = 1024 * 1024 * 1024

    @model_validator(mode="after")
    def _empty_secrets_are_unset(self) -> Settings:
        for name in ("secret_key", "erasure_key", "fake_twilio_auth_token", "fake_sendgrid_signing_key"):
            if not getattr(self, name):  # `VAR=` (as compose's ${VAR:-} gives): generate one, never sign with ""
                setattr(self, name, None)
        return self

    @field_validator("site_identity_secret", "site_identity_previous_secret", mode="before")
    @classmethod
    def _empty_site_secret_is_unset(cls, secret: object) -> object:
        return secret or None  # `VAR=` (as compose's ${VAR:-} gives) is unset, as for the other secrets

    @property
    def site_identity_secrets(self) -> tuple[str, ...]:
        """The secrets a page's `context.userHash` may be signed with: the current one first."""
        return tuple(s for s in (self.site_identity_secret, self.site_identity_previous_secret) if s)

    @field_validator("site_origins")
    @classmethod
    def _origins_as_browsers_send_them(cls, origins: list[str]) -> list[str]:
        """A browser's `Origin` is scheme://host[:port], lower case, no path: compare like with like."""
        for origin in origins:
            parts = urlsplit(origin)
            if origin != "*" and (
                parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/") or parts.query
            ):
                raise ValueError(f"{origin!r} is not an origin: write it as https://shop.example (or * for any site)")
        return [origin if origin == "*" else origin.lower().rstrip("/") for origin in origins]

    @model_validator(mode="after")
    def _default_public_base_url(self) -> Settings:
        if not self.public_base_url:
            self.public_base_url = f"http://{self.host}:{self.port}"
        self.public_base_url = self.public_base_url.rstrip("/")
        return self

    @property
    def uses_fake_twilio(self) -> bool:
        return self.twilio_account_sid is None and "twilio" in (self.sms_provider, self.whatsapp_provider)

    @property
    def uses_fake_sendgrid(self) -> bool:
        return self.sendgrid_api_key is None and self.email_provider == "sendgrid"

    @property
    def uses_real_providers(self) -> bool:
        """Real Twilio or SendGrid credentials: a production deployment."""
        return self.twilio_account_sid is not None or self.sendgrid_api_key is not None

    @property
    def twilio_status_callback_url(self) -> str:
        return f"{self.public_base_url.rstrip('/')}/webhooks/twilio/status"


@lru_cache
def get_settings() -> Settings:
    return Settings()
