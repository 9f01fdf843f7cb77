"""Signed checkpoints (C2SP signed note) and Ed25519 verification, pure and with OpenSSL."""

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takedown.case.evidence import note

ORIGIN = "takedown.evidence/0123456789abcdef"
ROOT = hashlib.sha256(b"root").digest()

# RFC 8032 §7.1, TEST 1 (the empty message).
RFC_SECRET = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC_SIG = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


def raw_public(key):
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_rfc8032_vector_in_both_verifiers():
    key = Ed25519PrivateKey.from_private_bytes(RFC_SECRET)
    assert raw_public(key) == RFC_PUBLIC
    assert key.sign(b"") == RFC_SIG
    for pure in (True, False):
        assert note.ed25519_verify(RFC_PUBLIC, b"", RFC_SIG, pure=pure)
        assert not note.ed25519_verify(RFC_PUBLIC, b"x", RFC_SIG, pure=pure)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(message=st.binary(max_size=200), flip=st.integers(0, 64 * 8 - 1))
def test_pure_verifier_agrees_with_openssl(message, flip):
    key = Ed25519PrivateKey.generate()
    public, sig = raw_public(key), key.sign(message)
    assert note.ed25519_verify(public, message, sig, pure=True)
    bad = bytearray(sig)
    bad[flip // 8] ^= 1 << (flip % 8)
    assert note.ed25519_verify(public, message, bytes(bad), pure=True) is note.ed25519_verify(
        public, message, bytes(bad), pure=False
    )
    assert not note.ed25519_verify(public, message, bytes(bad), pure=True)
    other = raw_public(Ed25519PrivateKey.generate())
    assert not note.ed25519_verify(other, message, sig, pure=True)


def test_pure_verifier_rejects_non_canonical_s():
    key = Ed25519PrivateKey.from_private_bytes(RFC_SECRET)
    sig = key.sign(b"m")
    s = int.from_bytes(sig[32:], "little") + note._L  # the same point, S ≥ L: malleable
    forged = sig[:32] + s.to_bytes(32, "little")
    assert not note.ed25519_verify(RFC_PUBLIC, b"m", forged, pure=True)
    assert not note.ed25519_verify(RFC_PUBLIC, b"m", forged, pure=False)
    assert not note.ed25519_verify(b"\xff" * 32, b"m", sig, pure=True)  # not a point


def signed(key=None, size=42, root=ROOT, origin=ORIGIN):
    key = key or Ed25519PrivateKey.generate()
    text = note.sign_checkpoint(origin, size, root, origin, raw_public(key), key.sign)
    return key, text


def test_checkpoint_text_is_a_c2sp_signed_note():
    key, text = signed()
    body, _blank, sigline = text.partition("\n\n")
    assert body.split("\n") == [ORIGIN, "42", base64.b64encode(ROOT).decode()]
    assert sigline.startswith(f"\u2014 {ORIGIN} ") and sigline.endswith("\n")
    blob = base64.b64decode(sigline.rsplit(" ", 1)[1])
    public = raw_public(key)
    # Key id: SHA-256(name || "\n" || 0x01 || key)[:4], then the 64-byte signature.
    assert blob[:4] == hashlib.sha256(ORIGIN.encode() + b"\n\x01" + public).digest()[:4]
    key.public_key().verify(blob[4:], (body + "\n").encode())
    cp = note.parse_checkpoint(text)
    assert (cp.origin, cp.size, cp.root) == (ORIGIN, 42, ROOT)
    vkey = note.VerifierKey(ORIGIN, public)
    assert cp.verify(vkey) and cp.verify(vkey, pure=True)


def test_verifier_keys_round_trip_even_with_plus_in_base64():
    for _ in range(40):  # base64 of random keys holds '+' now and then
        vkey = note.VerifierKey(ORIGIN, raw_public(Ed25519PrivateKey.generate()))
        assert note.VerifierKey.parse(str(vkey)) == vkey
    text = str(vkey)
    name, _kid, blob = text.split("+", 2)
    with pytest.raises(ValueError, match="key id"):
        note.VerifierKey.parse(f"{name}+00000000+{blob}")
    with pytest.raises(ValueError):
        note.VerifierKey.parse("no-plus-signs")


def test_altered_checkpoints_do_not_verify():
    key, text = signed()
    vkey = note.VerifierKey(ORIGIN, raw_public(key))
    other_root = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    for forged in (
        text.replace("\n42\n", "\n41\n"),
        text.replace(base64.b64encode(ROOT).decode(), other_root),
        text.replace(ORIGIN + "\n", "takedown.evidence/other\n", 1),
    ):
        assert not note.parse_checkpoint(forged).verify(vkey)
    _, by_other = signed()
    assert not note.parse_checkpoint(by_other).verify(vkey)


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda t: t.replace("\n\n", "\n"), "blank line"),
        (lambda t: t.replace("\n42\n", "\nforty-two\n"), "decimal"),
        (lambda t: t.replace("\n42\n", "\n042\n"), "decimal"),
        (lambda t: t.split("\n\n")[0] + "\n\n", "not signed"),
        (lambda t: t.replace("\u2014 ", "- "), "signature line"),
        (lambda t: t.rstrip("\n"), "newline"),
    ],
)
def test_malformed_checkpoints_are_named(mangle, message):
    _, text = signed()
    with pytest.raises(ValueError, match=message):
        note.parse_checkpoint(mangle(text))
