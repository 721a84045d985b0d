"""Reply addresses: signed, compact, case-proof, and refused when tampered with."""

from __future__ import annotations

import pytest

from service.identity.addresses import (
    CONFIRM_FOLLOW,
    MAX_LOCAL_PART,
    AddressBook,
    AddressKind,
    Confirmation,
    Keyring,
    ReplyTarget,
    make_token,
    verify_confirmation,
    verify_token,
)
from service.identity.web_tokens import (
    author_of,
    form_token_valid,
    make_author_token,
    make_form_token,
)

KEYS = Keyring.from_strings("current-secret-0123456789")
BOOK = AddressBook("replies.example.org")
BIG = ReplyTarget(post_id=2**31 - 1, comment_id=2**31 - 1, person_id=2**31 - 1)


class TestReplyAddresses:
    def test_round_trip(self) -> None:
        """A token verifies back to the target it was made for."""
        target = ReplyTarget(7, 42, 3)
        assert verify_token(make_token(target, KEYS), KEYS) == target

    def test_post_level_target_has_no_comment(self) -> None:
        """A reply address for the post itself names no parent comment."""
        target = ReplyTarget(7, None, 3)
        assert verify_token(make_token(target, KEYS), KEYS) == target

    def test_survives_lower_and_upper_casing(self) -> None:
        """MTAs that change the case of local parts do not break the token."""
        address = BOOK.reply_address(ReplyTarget(7, 42, 3), KEYS)
        for variant in (address.lower(), address.upper()):
            token = BOOK.token_of(variant)
            assert token is not None
            assert verify_token(token, KEYS) == ReplyTarget(7, 42, 3)

    def test_local_part_fits_64_octets_for_large_ids(self) -> None:
        """Even 31-bit ids give a local part within RFC 5321's 64 octets."""
        local = BOOK.reply_address(BIG, KEYS).split("@")[0]
        assert len(local) <= MAX_LOCAL_PART

    @pytest.mark.parametrize("position", [0, 5, 10, -1])
    def test_every_changed_character_is_refused(self, position: int) -> None:
        """Changing any one character of a token makes it invalid."""
        token = make_token(ReplyTarget(7, 42, 3), KEYS)
        chars = list(token)
        chars[position] = "a" if chars[position] != "a" else "b"
        assert verify_token("".join(chars), KEYS) is None

    @pytest.mark.parametrize("cut", [1, 5, 20])
    def test_truncated_token_is_refused(self, cut: int) -> None:
        """A token cut short by a broken client is refused."""
        token = make_token(ReplyTarget(7, 42, 3), KEYS)
        assert verify_token(token[:-cut], KEYS) is None

    def test_token_from_another_secret_is_refused(self) -> None:
        """A token signed with someone else's secret does not verify here."""
        foreign = make_token(
            ReplyTarget(7, 42, 3), Keyring.from_strings("someone-elses-secret-xyz")
        )
        assert verify_token(foreign, KEYS) is None

    def test_rotated_secret_still_verifies_old_tokens(self) -> None:
        """After rotation, tokens made with the old secret keep working."""
        token = make_token(ReplyTarget(7, 42, 3), KEYS)
        rotated = Keyring.from_strings("next-secret-abcdefghijklmn", ["current-secret-0123456789"])
        assert verify_token(token, rotated) == ReplyTarget(7, 42, 3)
        assert verify_token(make_token(ReplyTarget(1, None, 1), rotated), KEYS) is None

    @pytest.mark.parametrize(
        "garbage", ["", "!!!!", "a" * 200, "0189", "zzzzzzzzzzzzzzzzzzzzzzzzzzzz"]
    )
    def test_garbage_is_refused_not_raised(self, garbage: str) -> None:
        """Malformed tokens give None, never an exception."""
        assert verify_token(garbage, KEYS) is None

    def test_token_of_other_domain_or_prefix(self) -> None:
        """Only our domain and prefix carry tokens; the bare prefix gives an empty token."""
        assert BOOK.token_of("reply+abc@elsewhere.org") is None
        assert BOOK.token_of("someone@replies.example.org") is None
        assert BOOK.token_of("reply@replies.example.org") == ""
        assert BOOK.token_of("<Reply+ABC@Replies.Example.org>") == "abc"

    def test_configurable_separator(self) -> None:
        """A deployment whose forwarder drops '+' can use '-' instead."""
        book = AddressBook("replies.example.org", separator="-")
        address = book.reply_address(ReplyTarget(1, None, 2), KEYS)
        assert address.startswith("reply-")
        token = book.token_of(address)
        assert token is not None
        assert verify_token(token, KEYS) == ReplyTarget(1, None, 2)


class TestConfirmationAndWebTokens:
    """Tokens of the blog side (issue 19): confirmations, author tokens, form tokens."""

    def test_a_confirm_address_round_trips_and_fits(self) -> None:
        """confirm+<token>@domain names its request, within 64 octets for large ids and
        times, and survives case changes; a changed character is refused."""
        confirmation = Confirmation(CONFIRM_FOLLOW, 2**31 - 1, 2**33)
        address = BOOK.confirm_address(confirmation, KEYS)
        assert len(address.split("@")[0]) <= MAX_LOCAL_PART
        for variant in (address, address.upper()):
            recipient = BOOK.recipient(variant, KEYS)
            assert recipient is not None and recipient.kind is AddressKind.CONFIRM
            assert recipient.confirmation == confirmation
        local, domain = address.split("@")
        changed = local[:-1] + ("a" if local[-1] != "a" else "b")
        assert BOOK.recipient(f"{changed}@{domain}", KEYS) is None

    def test_a_reply_token_is_no_confirmation(self) -> None:
        """Tokens of one purpose never pass as another's."""
        token = make_token(ReplyTarget(1, 2, 3), KEYS)
        assert verify_confirmation(token, KEYS) is None
        assert author_of(token, KEYS, 0) is None

    def test_an_author_token_expires_after_30_days(self) -> None:
        """Good for 30 days from its making, then refused; another secret's is refused."""
        token = make_author_token(42, 1_000_000, KEYS)
        assert author_of(token, KEYS, 1_000_000 + 30 * 86400) == 42
        assert author_of(token, KEYS, 1_000_000 + 30 * 86400 + 1) is None
        other = Keyring.from_strings("another-secret-0123456789")
        assert author_of(token, other, 1_000_000) is None

    def test_a_form_token_is_bound_to_post_client_and_day(self) -> None:
        """Valid for its post and client for a day; not for another post, another client,
        after the day, or from far in the future."""
        token = make_form_token(7, "192.0.2.1", 5_000_000, KEYS)
        assert form_token_valid(token, 7, "192.0.2.1", 5_000_000 + 86400, KEYS)
        assert not form_token_valid(token, 8, "192.0.2.1", 5_000_000, KEYS)
        assert not form_token_valid(token, 7, "192.0.2.2", 5_000_000, KEYS)
        assert not form_token_valid(token, 7, "192.0.2.1", 5_000_000 + 86401, KEYS)
        assert not form_token_valid(token, 7, "192.0.2.1", 5_000_000 - 3600, KEYS)
