"""Signed checkpoints: the C2SP tlog-checkpoint body in a C2SP signed note, Ed25519.

A checkpoint is the text::

    <origin>
    <tree size, decimal>
    <root hash, base64>

    — <key name> <base64(key id (4 bytes) || Ed25519 signature (64 bytes))>

The signature covers the body (the first three lines with their newlines). The key id is the
first 4 bytes of SHA-256(key name || "\\n" || 0x01 || public key), and a verifier key is
written ``<name>+<key id, 8 hex>+<base64(0x01 || public key)>``, as in Go's sumdb/note.

Standard library only (copied into bundles). Signatures are checked with the ``cryptography``
package when it is installed, otherwise with the pure-Python RFC 8032 verifier below.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "Checkpoint",
    "VerifierKey",
    "checkpoint_body",
    "ed25519_verify",
    "key_id",
    "parse_checkpoint",
    "sign_checkpoint",
]

_ALG_ED25519 = b"\x01"
_DASH = "\u2014 "


def key_id(name: str, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + _ALG_ED25519 + public).digest()[:4]


@dataclass(frozen=True)
class VerifierKey:
    name: str
    public: bytes  # 32-byte raw Ed25519 public key

    @property
    def id(self) -> bytes:
        return key_id(self.name, self.public)

    def __str__(self) -> str:
        return (
            f"{self.name}+{self.id.hex()}+{base64.b64encode(_ALG_ED25519 + self.public).decode()}"
        )

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        parts = text.strip().split("+", 2)  # the base64 key may itself hold '+'
        if len(parts) != 3:
            raise ValueError("a verifier key is NAME+KEYID+BASE64KEY")
        name, kid, blob = parts
        try:
            raw = base64.b64decode(blob, validate=True)
        except binascii.Error:
            raise ValueError("verifier key: the key is not base64") from None
        if len(raw) != 33 or raw[:1] != _ALG_ED25519:
            raise ValueError("verifier key: not an Ed25519 key")
        key = cls(name, raw[1:])
        if key.id.hex() != kid.lower():
            raise ValueError("verifier key: its key id does not match the key")
        return key


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root: bytes
    body: str
    signatures: tuple[tuple[str, bytes, bytes], ...]  # (key name, key id, signature)

    def verify(self, key: VerifierKey, *, pure: bool = False) -> bool:
        """Does a signature by ``key`` over this body verify? (Unknown keys are ignored.)"""
        for name, kid, sig in self.signatures:
            if name == key.name and kid == key.id:
                return ed25519_verify(key.public, self.body.encode(), sig, pure=pure)
        return False


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    if not origin or "\n" in origin:
        raise ValueError("the origin must be one non-empty line")
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def sign_checkpoint(
    origin: str, size: int, root: bytes, name: str, public: bytes, sign: Callable[[bytes], bytes]
) -> str:
    """The signed note; ``sign`` is the holder's Ed25519 signing function."""
    body = checkpoint_body(origin, size, root)
    blob = key_id(name, public) + sign(body.encode())
    return f"{body}\n{_DASH}{name} {base64.b64encode(blob).decode()}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a signed checkpoint; ValueError (saying what is wrong) if it is malformed."""
    body, sep, sigs = text.partition("\n\n")
    if not sep:
        raise ValueError("no blank line between the checkpoint and its signatures")
    body += "\n"
    lines = body.split("\n")[:-1]
    if len(lines) < 3:
        raise ValueError("a checkpoint needs an origin, a tree size and a root hash")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not size_text.isdigit() or (size_text.startswith("0") and size_text != "0"):
        raise ValueError(f"tree size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error:
        raise ValueError("the root hash is not base64") from None
    if len(root) != 32:
        raise ValueError("the root hash is not 32 bytes")
    found = []
    if not sigs.strip():
        raise ValueError("the checkpoint is not signed")
    if not sigs.endswith("\n"):
        raise ValueError("the signature block does not end with a newline")
    for line in sigs[:-1].split("\n"):
        if not line.startswith(_DASH):
            raise ValueError(f"signature line {line[:40]!r} does not start with '— '")
        name, _, blob_text = line[len(_DASH) :].rpartition(" ")
        try:
            blob = base64.b64decode(blob_text, validate=True)
        except binascii.Error:
            raise ValueError(f"signature of {name!r} is not base64") from None
        if len(blob) < 5:
            raise ValueError(f"signature of {name!r} is too short")
        found.append((name, blob[:4], blob[4:]))
    if not found:
        raise ValueError("the checkpoint is not signed")
    return Checkpoint(origin, int(size_text), root, body, tuple(found))


def ed25519_verify(public: bytes, message: bytes, signature: bytes, *, pure: bool = False) -> bool:
    """Ed25519 (RFC 8032) verification: ``cryptography`` if present, else pure Python."""
    if not pure:
        try:
            from cryptography.exceptions import InvalidSignature
            from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        except ImportError:
            pure = True
        else:
            try:
                Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
            except (InvalidSignature, ValueError):
                return False
            return True
    return _verify_pure(public, message, signature)


# -- Ed25519 verification in pure Python, after RFC 8032 §6 (slow, a few ms; fine for notes) --
_P = 2**255 - 19
_L = 2**252 + 27742317777372353535851937790883648493
_D = -121665 * pow(121666, -1, _P) % _P
_SQRT_M1 = pow(2, (_P - 1) // 4, _P)
_Point = tuple[int, int, int, int]


def _add(a: _Point, b: _Point) -> _Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % _P
    bb = (y1 + x1) * (y2 + x2) % _P
    cc = t1 * 2 * _D * t2 % _P
    dd = z1 * 2 * z2 % _P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % _P, g * h % _P, f * g % _P, e * h % _P)


def _mul(s: int, point: _Point) -> _Point:
    q: _Point = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            q = _add(q, point)
        point = _add(point, point)
        s >>= 1
    return q


def _equal(a: _Point, b: _Point) -> bool:
    x1, y1, z1, _ = a
    x2, y2, z2, _ = b
    return (x1 * z2 - x2 * z1) % _P == 0 and (y1 * z2 - y2 * z1) % _P == 0


def _recover_x(y: int, sign: int) -> int | None:
    if y >= _P:
        return None
    x2 = (y * y - 1) * pow(_D * y * y + 1, -1, _P) % _P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (_P + 3) // 8, _P)
    if (x * x - x2) % _P:
        x = x * _SQRT_M1 % _P
    if (x * x - x2) % _P:
        return None
    if x & 1 != sign:
        x = _P - x
    return x


def _decompress(data: bytes) -> _Point | None:
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = _recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % _P)


_GY = 4 * pow(5, -1, _P) % _P
_G: _Point = (_recover_x(_GY, 0) or 0, _GY, 1, (_recover_x(_GY, 0) or 0) * _GY % _P)


def _verify_pure(public: bytes, message: bytes, signature: bytes) -> bool:
    if len(public) != 32 or len(signature) != 64:
        return False
    a = _decompress(public)
    r = _decompress(signature[:32])
    if a is None or r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= _L:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % _L
    return _equal(_mul(s, _G), _add(r, _mul(h, a)))
