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

A `track` naming a userId is held to the same proof, because journeys react to events and
send messages: without a hash it is stored (the site's analytics count it) but marked
unverified, so no journey starts, waits on, converts or exits on it and no segment counts
it (events/ingest.py, segments/conditions.py). Otherwise anyone with the page's key could
have any customer sent whatever a journey sends on "Cart Abandoned" or "Order Completed".
Page and screen views pass as sent. The secret is never generated: the site's server must
know it, so unset means that no page can change an address or a consent, or move a journey.
"""

from __future__ import annotations

import hashlib
import hmac

from orchestrator.customers.consent import TRAIT_CONSENTS
from orchestrator.events.schemas import AnyCall, IdentifyCall, TrackCall

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


def check_page_calls(calls: list[AnyCall], secrets: tuple[str, ...]) -> None:
    """Mark each identify and track from a page that does not prove its userId (identify:
    its address and consent traits withheld; track: unverified); `WrongUserHash` (with the
    call's index) for a hash that is present but valid under none of `secrets` (the current
    secret and, during a rotation, the previous one)."""
    for index, call in enumerate(calls):
        if not isinstance(call, (IdentifyCall, TrackCall)) or call.userId is None:
            continue  # an anonymousId alone changes no customer; page views move nothing
        given = (call.context or {}).get(USER_HASH)
        if given is None:
            if isinstance(call, IdentifyCall):
                call.withhold(frozenset(name for name in PROTECTED_TRAITS if getattr(call.traits, name) is not None))
            else:
                call.mark_unverified()
        elif not secrets:
            raise WrongUserHash(index, "cannot be checked: ORCHESTRATOR_SITE_IDENTITY_SECRET is not set on the service")
        elif not isinstance(given, str) or not any(
            hmac.compare_digest(user_hash(secret, call.userId).encode(), given.lower().encode()) for secret in secrets
        ):
            raise WrongUserHash(
                index, "not the HMAC-SHA256 of userId under ORCHESTRATOR_SITE_IDENTITY_SECRET (hex, 64 characters)"
            )
