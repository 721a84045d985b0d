"""Make and verify reply addresses: reply+<token>@domain, bound to a thread and a person."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property

MAC_BYTES = 10  # 80 bits: forging one takes ~2**79 tries, each one an SMTP round trip.
MAX_LOCAL_PART = 64  # RFC 5321 section 4.5.3.1.1


@dataclass(frozen=True)
class ReplyTarget:
    """What a reply address names: the post, the comment replied to (if any), the recipient."""

    post_id: int
    comment_id: int | None
    person_id: int


@dataclass(frozen=True)
class Keyring:
    """HMAC secrets: the first signs new tokens, all of them verify (for rotation)."""

    secrets: tuple[bytes, ...]

    @classmethod
    def from_strings(cls, current: str, old: Sequence[str] = ()) -> Keyring:
        """Build a keyring from the current secret and any retired ones still accepted."""
        return cls(tuple(s.encode() for s in (current, *old)))

    def key_id(self, secret: bytes) -> int:
        """One byte naming a secret inside tokens, so verification tries only that key."""
        return hashlib.sha256(b"replyd-key-id\0" + secret).digest()[0]

    @cached_property
    def _by_key_id(self) -> dict[int, list[bytes]]:
        by_id: dict[int, list[bytes]] = {}
        for secret in self.secrets:
            by_id.setdefault(self.key_id(secret), []).append(secret)
        return by_id

    def lookup(self, key_id: int) -> list[bytes]:
        """Secrets whose key id matches (usually one)."""
        return self._by_key_id.get(key_id, [])


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varints(data: bytes, count: int) -> list[int] | None:
    values, shift, current = [], 0, 0
    for byte in data:
        current |= (byte & 0x7F) << shift
        shift += 7
        if shift > 63:
            return None
        if not byte & 0x80:
            values.append(current)
            shift, current = 0, 0
    if shift or len(values) != count:
        return None
    return values


def _mac(secret: bytes, purpose: str, body: bytes) -> bytes:
    message = b"replyd\0" + purpose.encode() + b"\0" + body
    return hmac.new(secret, message, hashlib.sha256).digest()[:MAC_BYTES]


def _b32(data: bytes) -> str:
    # Lower-case base32 without padding survives MTAs that lower-case local parts.
    return base64.b32encode(data).decode().rstrip("=").lower()


def _unb32(text: str) -> bytes | None:
    padded = text.upper() + "=" * (-len(text) % 8)
    try:
        return base64.b32decode(padded)
    except (binascii.Error, ValueError):
        return None


def sign(values: Sequence[int], keyring: Keyring, purpose: str) -> str:
    """Sign non-negative integers for one purpose into a compact lower-case token."""
    secret = keyring.secrets[0]
    body = bytes([keyring.key_id(secret)]) + b"".join(_varint(v) for v in values)
    return _b32(body + _mac(secret, purpose, body))


def unsign(token: str, keyring: Keyring, purpose: str, count: int) -> list[int] | None:
    """The integers a token carries, or None when it is malformed, tampered or foreign."""
    token = token.strip().lower()
    data = _unb32(token)
    # Re-encoding must give the same text: base32's spare low bits would otherwise let
    # several spellings of one token pass.
    if data is None or len(data) < 1 + count + MAC_BYTES or _b32(data) != token:
        return None
    body, mac = data[:-MAC_BYTES], data[-MAC_BYTES:]
    valid = False
    for secret in keyring.lookup(body[0]):
        valid |= hmac.compare_digest(_mac(secret, purpose, body), mac)
    if not valid:
        return None
    return _read_varints(body[1:], count)


# The purpose a notification's Message-ID token is signed for (see AddressBook.notification_id).
THREAD = "thread"
# Every purpose replyd signs tokens for: text scrubbed of our tokens looks for all of them.
PURPOSES = ("reply", "unsubscribe", "bounce", "digest", THREAD)
# c<comment id>: a notification about a comment; p<post id>: the mail announcing a new post.
_NOTIFICATION_ID = re.compile(r"^<([cp])([0-9]{1,19})\.([a-z2-7]{1,100})@([^<>@\s]+)>$")


def carries_our_mac(token: str, keyring: Keyring, purposes: Sequence[str]) -> bool:
    """Whether a token is one we signed for any of `purposes`, whatever it carries."""
    token = token.lower()
    head = _unb32(token[:2])  # the key id alone first: most runs of letters fail there
    if head is None or not head or not keyring.lookup(head[0]):
        return False
    data = _unb32(token)
    if data is None or len(data) < 2 + MAC_BYTES or _b32(data) != token:
        return False
    body, mac = data[:-MAC_BYTES], data[-MAC_BYTES:]
    return any(
        hmac.compare_digest(_mac(secret, purpose, body), mac)
        for secret in keyring.lookup(body[0])
        for purpose in purposes
    )


# In an unsubscribe token, this post id stands for every post the person follows (digests).
ALL_POSTS = 0
# ...and with this in the comment's place, for the blog's new posts (the mail announcing each).
NEW_POSTS = 1


def make_token(target: ReplyTarget, keyring: Keyring, purpose: str = "reply") -> str:
    """Sign a reply (or unsubscribe) target into a token."""
    return sign((target.post_id, target.comment_id or 0, target.person_id), keyring, purpose)


def verify_token(token: str, keyring: Keyring, purpose: str = "reply") -> ReplyTarget | None:
    """The target a token names, or None when it is malformed, tampered or foreign."""
    values = unsign(token, keyring, purpose, 3)
    if values is None:
        return None
    post_id, comment_id, person_id = values
    if person_id == 0 or (post_id == ALL_POSTS and purpose != "unsubscribe"):
        return None
    return ReplyTarget(post_id=post_id, comment_id=comment_id or None, person_id=person_id)


# What a confirmation names: a reader's comment from the blog, or their request to follow.
CONFIRM_COMMENT = 1
CONFIRM_FOLLOW = 2


@dataclass(frozen=True)
class Confirmation:
    """What a confirmation link or address names: a web comment or follow request waiting for
    its writer's address, and when it was made (so the token fits that row and no other)."""

    kind: int  # CONFIRM_COMMENT or CONFIRM_FOLLOW
    request_id: int
    issued: int  # seconds since 1970 (UTC) of the request's created_at


def make_confirmation(confirmation: Confirmation, keyring: Keyring) -> str:
    """Sign a confirmation into a token for a link and a reply address."""
    values = (confirmation.kind, confirmation.request_id, confirmation.issued)
    return sign(values, keyring, "confirm")


def verify_confirmation(token: str, keyring: Keyring) -> Confirmation | None:
    """The confirmation a token names, or None when it is malformed, tampered or foreign."""
    values = unsign(token, keyring, "confirm", 3)
    if values is None or values[0] not in (CONFIRM_COMMENT, CONFIRM_FOLLOW) or values[1] == 0:
        return None
    return Confirmation(*values)


class AddressKind(StrEnum):
    """What mail to one of our addresses is: a reply, or a control message."""

    REPLY = "reply"
    UNSUBSCRIBE = "unsubscribe"  # the mailto: of List-Unsubscribe
    BOUNCE = "bounce"  # VERP envelope sender of each outbound message
    DIGEST = "digest"  # Reply-To of a digest, which answers with how to reply
    CONFIRM = "confirm"  # Reply-To of a confirmation mail: replying confirms too
    FORGET = "forget"  # forget@domain, no token: "delete what you keep about me"


@dataclass(frozen=True)
class Recipient:
    """One of our addresses, verified: its kind and what its token names."""

    kind: AddressKind
    target: ReplyTarget | None = None  # reply and unsubscribe
    outbound_id: int | None = None  # bounce and digest: the message it came from
    person_id: int | None = None
    confirmation: Confirmation | None = None  # confirm

    @property
    def named_person(self) -> int | None:
        """The person whose token this address carries, if it carries one."""
        return self.target.person_id if self.target is not None else self.person_id


@dataclass(frozen=True)
class AddressBook:
    """The shape of our addresses: prefix, separator and domain from the settings."""

    domain: str
    prefix: str = "reply"
    separator: str = "+"

    def _local_prefix(self, kind: AddressKind) -> str:
        if kind is AddressKind.REPLY:
            return self.prefix
        return {
            "unsubscribe": "unsubscribe",
            "bounce": "bounces",
            "digest": "digest",
            "confirm": "confirm",
            "forget": "forget",
        }[kind]

    def _address(self, kind: AddressKind, token: str) -> str:
        local = f"{self._local_prefix(kind)}{self.separator}{token}"
        if len(local) > MAX_LOCAL_PART:
            raise ValueError(f"{kind} address local part is {len(local)} octets, over 64")
        return f"{local}@{self.domain}"

    def reply_address(self, target: ReplyTarget, keyring: Keyring) -> str:
        """The address whose replies become comments on `target` written by its person."""
        return self._address(AddressKind.REPLY, make_token(target, keyring))

    def unsubscribe_address(self, target: ReplyTarget, keyring: Keyring) -> str:
        """The List-Unsubscribe mailto: address stopping `target.person_id`'s mail on a post."""
        return self._address(AddressKind.UNSUBSCRIBE, make_token(target, keyring, "unsubscribe"))

    def bounce_address(self, outbound_id: int, person_id: int, keyring: Keyring) -> str:
        """The VERP envelope sender of one outbound message: bounces say which one failed."""
        return self._address(AddressKind.BOUNCE, sign((outbound_id, person_id), keyring, "bounce"))

    def digest_address(self, outbound_id: int, person_id: int, keyring: Keyring) -> str:
        """The Reply-To of a digest: a reply there gets directions, not a comment."""
        return self._address(AddressKind.DIGEST, sign((outbound_id, person_id), keyring, "digest"))

    def notification_id(self, target: ReplyTarget, keyring: Keyring) -> str:
        """The Message-ID of the notification about `target.comment_id` sent to its person.

        It carries a token signed for threading, so a reply whose To lost its token can be
        routed by In-Reply-To; an id nobody signed (or one guessed) routes nothing. Made from
        the target alone, it is the same at every delivery attempt.
        """
        if not target.comment_id:
            raise ValueError("a notification is about a comment")
        token = make_token(target, keyring, THREAD)
        return f"<c{target.comment_id}.{token}@{self.domain}>"

    def new_post_id(self, target: ReplyTarget, keyring: Keyring) -> str:
        """The Message-ID of the mail announcing the new post `target.post_id` to its person:
        signed like a notification's, so a reply to it routes by In-Reply-To to the post."""
        if target.comment_id:
            raise ValueError("a new post's mail is about the post, not a comment")
        token = make_token(target, keyring, THREAD)
        return f"<p{target.post_id}.{token}@{self.domain}>"

    def thread_target(self, message_id: str, keyring: Keyring) -> ReplyTarget | None:
        """What a notification (or new post) Message-ID of ours names, verified by its HMAC;
        None for any other id (a client's, an unsigned old one, a guess, a tampered token)."""
        match = _NOTIFICATION_ID.match(message_id.strip().lower())
        if match is None or match.group(4) != self.domain:
            return None
        target = verify_token(match.group(3), keyring, THREAD)
        if target is None:
            return None
        named = int(match.group(2))
        if match.group(1) == "c" and target.comment_id != named:
            return None
        if match.group(1) == "p" and (target.comment_id is not None or target.post_id != named):
            return None
        return target

    def confirm_address(self, confirmation: Confirmation, keyring: Keyring) -> str:
        """The Reply-To of a confirmation mail: a reply there confirms like the link does."""
        return self._address(AddressKind.CONFIRM, make_confirmation(confirmation, keyring))

    def forget_address(self) -> str:
        """Where a person mails to have what this blog keeps about them deleted (after they
        confirm a link mailed back to them)."""
        return f"{self._local_prefix(AddressKind.FORGET)}@{self.domain}"

    def token_of(self, address: str) -> str | None:
        """The token in one of our reply addresses, "" for the bare prefix, None if not ours."""
        parsed = self.split(address)
        if parsed is None or parsed[0] is not AddressKind.REPLY:
            return None
        return parsed[1]

    def split(self, address: str) -> tuple[AddressKind, str] | None:
        """The kind and raw token of an address we hand out; None for any other address."""
        local, at, domain = address.strip().strip("<>").rpartition("@")
        if not at or domain.lower() != self.domain:
            return None
        local = local.lower()
        if local == self.prefix:
            return AddressKind.REPLY, ""
        if local == self._local_prefix(AddressKind.FORGET):
            return AddressKind.FORGET, ""
        for kind in AddressKind:
            if kind is AddressKind.FORGET:
                continue  # it takes no token
            head = f"{self._local_prefix(kind)}{self.separator}"
            if local.startswith(head):
                return kind, local[len(head) :]
        return None

    def recipient(self, address: str, keyring: Keyring) -> Recipient | None:
        """Verify one of our addresses; None when it is not ours or its token fails."""
        parsed = self.split(address)
        if parsed is None:
            return None
        kind, token = parsed
        if kind is AddressKind.REPLY:
            if not token:
                return Recipient(kind)  # bare address: routed by In-Reply-To later
            target = verify_token(token, keyring)
            return Recipient(kind, target=target) if target else None
        if kind is AddressKind.UNSUBSCRIBE:
            target = verify_token(token, keyring, "unsubscribe")
            return Recipient(kind, target=target) if target else None
        if kind is AddressKind.CONFIRM:
            confirmation = verify_confirmation(token, keyring)
            return Recipient(kind, confirmation=confirmation) if confirmation else None
        if kind is AddressKind.FORGET:
            return Recipient(kind)
        values = unsign(token, keyring, kind.value, 2)
        if values is None or 0 in values:
            return None
        return Recipient(kind, outbound_id=values[0], person_id=values[1])
