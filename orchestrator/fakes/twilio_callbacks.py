"""The fake Twilio's status callbacks: signed as Twilio signs them, retried as Twilio retries.

Twilio documents connection overrides for its webhooks as a URL fragment: `rc` (retry count,
0 to 5, default 1) and `rp` (retry policy: `ct` connection failure, `rt` read timeout, `4xx`,
`5xx`, `all`). The fragment is read by the sender and never sent, so the receiver's URL (and
the signature over it) is the URL without it.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urldefrag

import httpx
from twilio.request_validator import RequestValidator

from orchestrator.fakes.twilio_rules import API_VERSION

if TYPE_CHECKING:
    from orchestrator.fakes.twilio import FakeTwilioSettings

logger = logging.getLogger("orchestrator.fakes.twilio")


def status_callback_params(resource: dict[str, Any]) -> dict[str, str]:
    """The form Twilio posts to a StatusCallback URL for one Message resource."""
    params = {
        "AccountSid": resource["account_sid"],
        "ApiVersion": API_VERSION,
        "From": resource["from"] or "",
        "MessageSid": resource["sid"],
        "MessageStatus": resource["status"],
        "SmsSid": resource["sid"],
        "SmsStatus": resource["status"],
        "To": resource["to"],
    }
    if resource["messaging_service_sid"]:
        params["MessagingServiceSid"] = resource["messaging_service_sid"]
    if resource["status"] in ("undelivered", "failed") and resource["error_code"]:
        params["ErrorCode"] = str(resource["error_code"])
    return params


async def post_status_callback(
    client: httpx.AsyncClient, url: str, resource: dict[str, Any], settings: FakeTwilioSettings
) -> None:
    params = status_callback_params(resource)
    url, fragment = urldefrag(url)  # connection overrides: read by Twilio, never sent
    retries, policy = retry_overrides(fragment)
    signature = RequestValidator(settings.auth_token).compute_signature(url, params)
    headers = {"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"}
    for attempt in range(retries + 1):
        try:
            response = await client.post(url, data=params, headers=headers)
        except httpx.TimeoutException as error:
            failure = "rt" if isinstance(error, (httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout)) else "ct"
            reason = repr(error)
        except Exception as error:  # noqa: BLE001 - a broken receiver (or URL) must not stop the fake
            failure, reason = "ct", repr(error)
        else:
            if response.status_code < 400:
                return
            failure, reason = f"{response.status_code // 100}xx", f"answered {response.status_code}"
        if failure not in policy and "all" not in policy or attempt == retries:
            logger.warning("status callback to %s failed (%s), attempt %d", url, reason, attempt + 1)
            return


# Twilio's default for webhooks: one retry. Its page documents `rp` values ct, rt, 4xx, 5xx
# and all; for the default policy we follow Plivo's copy of the same scheme (ct,rt).
DEFAULT_RETRY_COUNT, DEFAULT_RETRY_POLICY = 1, frozenset({"ct", "rt"})


def retry_overrides(fragment: str) -> tuple[int, frozenset[str]]:
    """`rc` and `rp` from a webhook URL's fragment (`#rc=3&rp=all`), else Twilio's defaults."""
    overrides = dict(parse_qsl(fragment))
    try:
        retries = min(max(int(overrides.get("rc", DEFAULT_RETRY_COUNT)), 0), 5)
    except ValueError:
        retries = DEFAULT_RETRY_COUNT
    policy = frozenset(overrides["rp"].split(",")) if overrides.get("rp") else DEFAULT_RETRY_POLICY
    return retries, policy
