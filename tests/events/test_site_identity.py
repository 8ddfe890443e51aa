"""The hash a site's server computes, and which identify calls it governs."""

from __future__ import annotations

import pytest

from orchestrator.events.schemas import IdentifyCall, TrackCall
from orchestrator.events.site_identity import WrongUserHash, check_page_calls, user_hash

SECRET = "k" * 32


def test_the_user_hash_is_hex_hmac_sha256_of_the_user_id():
    # RFC 4231-style known answer (HMAC-SHA256, key "key"), as any language's HMAC library gives it.
    assert user_hash("key", "The quick brown fox jumps over the lazy dog") == (
        "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
    )


def test_only_an_identify_with_a_user_id_and_no_hash_has_traits_withheld():
    traits = {"email": "a@example.com", "phone": None, "whatsapp_opt_in": True, "name": "A"}
    plain = IdentifyCall(userId="a", traits=traits)
    verified = IdentifyCall(userId="a", traits=traits, context={"userHash": user_hash(SECRET, "a").upper()})
    anonymous = IdentifyCall(anonymousId="v", traits=traits)
    track = TrackCall(userId="a", event="Signed Up", properties={"email": "b@example.com"})
    check_page_calls([plain, verified, anonymous, track], (SECRET,))
    assert plain.withheld_traits == {"email", "whatsapp_opt_in"}  # a null phone changes nothing
    assert verified.withheld_traits == anonymous.withheld_traits == frozenset()


def test_a_withheld_trait_cannot_be_undone_from_the_body():
    call = IdentifyCall.model_validate({"userId": "a", "traits": {"email": "a@example.com"}, "_withheld_traits": []})
    check_page_calls([call], (SECRET,))
    assert call.withheld_traits == {"email"}


@pytest.mark.parametrize("given", [user_hash(SECRET, "b"), "", 1, {"hash": "x"}])
def test_a_hash_that_is_not_the_user_ids_is_refused_with_the_calls_index(given):
    calls = [IdentifyCall(userId="a"), IdentifyCall(userId="a", context={"userHash": given})]
    with pytest.raises(WrongUserHash) as refused:
        check_page_calls(calls, (SECRET,))
    assert refused.value.index == 1


def test_a_track_naming_a_user_without_a_hash_is_unverified():
    plain = TrackCall(userId="a", event="Cart Abandoned")
    verified = TrackCall(userId="a", event="Cart Abandoned", context={"userHash": user_hash(SECRET, "a")})
    anonymous = TrackCall(anonymousId="v", event="Cart Abandoned")
    check_page_calls([plain, verified, anonymous], (SECRET,))
    assert (plain.unverified, verified.unverified, anonymous.unverified) == (True, False, False)
    forged = TrackCall.model_validate({"userId": "a", "event": "Cart Abandoned", "_unverified": False})
    check_page_calls([forged], (SECRET,))
    assert forged.unverified  # the body cannot say otherwise


def test_a_track_with_a_wrong_hash_is_refused_like_an_identify():
    with pytest.raises(WrongUserHash) as refused:
        check_page_calls([TrackCall(userId="a", event="X", context={"userHash": user_hash(SECRET, "b")})], (SECRET,))
    assert refused.value.index == 0


def test_during_a_rotation_a_hash_under_the_previous_secret_is_valid_too():
    previous = "p" * 32
    old_page = TrackCall(userId="a", event="X", context={"userHash": user_hash(previous, "a")})
    new_page = TrackCall(userId="a", event="X", context={"userHash": user_hash(SECRET, "a")})
    check_page_calls([old_page, new_page], (SECRET, previous))
    assert not old_page.unverified and not new_page.unverified
    with pytest.raises(WrongUserHash):  # once the rotation is over, the old one is refused
        check_page_calls([old_page], (SECRET,))
