"""What a condition or a template sees of a customer and their enrollment."""

from __future__ import annotations

from typing import Any

from orchestrator.customers.consent import SendPermissions
from orchestrator.engine.interpreter import Facts
from orchestrator.storage.models import Customer, Enrollment

# Properties of events a wait_for received, kept in the enrollment's context under this key.
AWAITED_KEY = "_awaited"


def customer_view(customer: Customer) -> dict[str, Any]:
    # Traits at the top level read naturally (`customer.first_name`); the typed fields win.
    return {
        **customer.traits,
        "user_id": customer.user_id,
        "email": customer.email,
        "phone": customer.phone,
        "whatsapp": customer.whatsapp or customer.phone,
        "locale": customer.locale,
        "timezone": customer.timezone,
        "traits": dict(customer.traits),
    }


def facts_for(
    customer: Customer, enrollment: Enrollment, events_since_entry: set[str], permissions: SendPermissions | None = None
) -> Facts:
    permissions = permissions or SendPermissions.from_traits(customer.traits)
    return Facts(
        customer=customer_view(customer),
        event={k: v for k, v in enrollment.context.items() if k != AWAITED_KEY},
        events_since_entry=events_since_entry,
        consented=lambda channel: permissions.marketing_allowed(str(channel)),
        timezone=customer.timezone,
        awaited=dict(enrollment.context.get(AWAITED_KEY, {})),
    )
