"""Make and verify reply addresses: reply+<token>@domain, bound to a thread and a person."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

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

    def lookup(self, key_id: int) -> list[bytes]:
        """Secrets whose key id matches (usually one)."""
        return [s for s in self.secrets if self.key_id(s) == key_id]


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


def make_token(target: ReplyTarget, keyring: Keyring, purpose: str = "reply") -> str:
    """Sign a target into a compact lower-case token."""
    secret = keyring.secrets[0]
    body = (
        bytes([keyring.key_id(secret)])
        + _varint(target.post_id)
        + _varint(target.comment_id or 0)
        + _varint(target.person_id)
    )
    return _b32(body + _mac(secret, purpose, body))


def verify_token(token: str, keyring: Keyring, purpose: str = "reply") -> ReplyTarget | None:
    """The target a token names, or None when it is malformed, tampered or foreign."""
    token = token.strip().lower()
    data = _unb32(token)
    # Re-encoding must give the same text: base32's spare low bits would otherwise let
    # several spellings of one token pass.
    if data is None or len(data) < 1 + 3 + MAC_BYTES or _b32(data) != token:
        return None
    body, mac = data[:-MAC_BYTES], data[-MAC_BYTES:]
    valid = False
    for secret in keyring.lookup(body[0]):
        valid |= hmac.compare_digest(_mac(secret, purpose, body), mac)
    if not valid:
        return None
    values = _read_varints(body[1:], 3)
    if values is None or values[0] == 0 or values[2] == 0:
        return None
    post_id, comment_id, person_id = values
    return ReplyTarget(post_id=post_id, comment_id=comment_id or None, person_id=person_id)


@dataclass(frozen=True)
class AddressBook:
    """The shape of our addresses: prefix, separator and domain from the settings."""

    domain: str
    prefix: str = "reply"
    separator: str = "+"

    def reply_address(self, target: ReplyTarget, keyring: Keyring) -> str:
        """The address whose replies become comments on `target` written by its person."""
        local = f"{self.prefix}{self.separator}{make_token(target, keyring)}"
        if len(local) > MAX_LOCAL_PART:
            raise ValueError(f"reply address local part is {len(local)} octets, over 64")
        return f"{local}@{self.domain}"

    def is_ours(self, address: str) -> bool:
        """Whether an address is at our domain (any local part)."""
        _, _, domain = address.rpartition("@")
        return domain.lower() == self.domain

    def token_of(self, address: str) -> str | None:
        """The token in one of our reply addresses, "" for the bare prefix, None if not ours."""
        local, at, domain = address.strip().strip("<>").rpartition("@")
        if not at or domain.lower() != self.domain:
            return None
        local = local.lower()
        if local == self.prefix:
            return ""
        head = f"{self.prefix}{self.separator}"
        return local[len(head) :] if local.startswith(head) else None
