"""Identity verification for calls from web pages: a public write key cannot take over a customer.

A key in a web page is public (docs/website-kpis.md): anyone who copies it can send an
`identify` for any userId. Contact addresses and consent decide whom the service messages
and how, so a page's call changes them only when it proves that the site's own server
vouched for its userId: `context.userHash`, the hex HMAC-SHA256 of the userId keyed with
`ORCHESTRATOR_SITE_IDENTITY_SECRET`, which the site's server renders into the page of a
logged-in customer (Intercom's identity verification, Braze's SDK authentication).

- a valid hash: the call is applied like a server's;
- no hash: the call is stored and its other traits applied, but its address and consent
  traits are withheld (`IdentifyCall.withhold`): the event names them in `withheld_traits`
  and they are counted. Refusing instead would lose the page's data: analytics.js drops a
  call answered 4xx;
- a wrong hash, or one that cannot be checked because no secret is set: `WrongUserHash`,
  for a 403, since the site means to verify and is misconfigured.

Only `identify` changes addresses and consent (events/ingest.py); other calls pass as sent.
The secret is never generated: the site's server must know it, so unset means that no
page can change an address or a consent.
"""

from __future__ import annotations

import hashlib
import hmac

from orchestrator.customers.consent import TRAIT_CONSENTS
from orchestrator.events.schemas import AnyCall, IdentifyCall

USER_HASH = "userHash"  # in the call's `context`, where analytics.js puts `options.context`
# Whom the service messages, and whether it may: what a page must prove its userId to change.
PROTECTED_TRAITS = frozenset({"email", "phone", "whatsapp", *TRAIT_CONSENTS})


class WrongUserHash(ValueError):
    def __init__(self, index: int, reason: str) -> None:
        super().__init__(reason)
        self.index = index


def user_hash(secret: str, user_id: str) -> str:
    """What the site's server renders into the page for `user_id`."""
    return hmac.new(secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def withhold_unverified_traits(calls: list[AnyCall], secret: str | None) -> None:
    """Mark each identify from a page that does not prove its userId; `WrongUserHash` (with the
    call's index) for a hash that is present but not valid."""
    for index, call in enumerate(calls):
        if not isinstance(call, IdentifyCall) or call.userId is None:
            continue  # an anonymousId alone changes no customer
        given = (call.context or {}).get(USER_HASH)
        if given is None:
            call.withhold(frozenset(name for name in PROTECTED_TRAITS if getattr(call.traits, name) is not None))
        elif secret is None:
            raise WrongUserHash(index, "cannot be checked: ORCHESTRATOR_SITE_IDENTITY_SECRET is not set on the service")
        elif not isinstance(given, str) or not hmac.compare_digest(
            user_hash(secret, call.userId).encode(), given.lower().encode()
        ):
            raise WrongUserHash(
                index, "not the HMAC-SHA256 of userId under ORCHESTRATOR_SITE_IDENTITY_SECRET (hex, 64 characters)"
            )
