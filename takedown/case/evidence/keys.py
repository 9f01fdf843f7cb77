"""The checkpoint signing key: Ed25519 in a passphrase-protected PKCS#8 file.

The private key never leaves its file unencrypted (PKCS#8 PEM, ``BestAvailableEncryption``);
the passphrase comes from ``TAKEDOWN_KEY_PASSPHRASE`` or, on the command line, a prompt. The
public half is written beside it as a verifier key (``.pub``, see note.py) and as PEM.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from takedown.case.evidence import note
from takedown.case.evidence.vault import Vault, _atomic_write
from takedown.errors import EvidenceError

__all__ = [
    "PASSPHRASE_ENV",
    "Signer",
    "default_key_path",
    "generate_key",
    "load_signer",
    "public_pem",
    "sign_checkpoint",
]

PASSPHRASE_ENV = "TAKEDOWN_KEY_PASSPHRASE"
_MIN_PASSPHRASE = 8


def default_key_path(vault: Vault) -> Path:
    return vault.keys_dir / "signing-key.pem"


@dataclass(frozen=True)
class Signer:
    private: Ed25519PrivateKey
    name: str  # the key name in signatures: the vault's origin

    @property
    def public(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def verifier(self) -> note.VerifierKey:
        return note.VerifierKey(self.name, self.public)

    def sign(self, message: bytes) -> bytes:
        return self.private.sign(message)


def public_pem(public: bytes) -> bytes:
    """SubjectPublicKeyInfo PEM of a raw Ed25519 key (for openssl and other tools)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    return Ed25519PublicKey.from_public_bytes(public).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _check_passphrase(passphrase: bytes) -> None:
    if len(passphrase) < _MIN_PASSPHRASE:
        raise EvidenceError(
            f"the key passphrase must have at least {_MIN_PASSPHRASE} characters "
            f"(set {PASSPHRASE_ENV} or type it at the prompt)"
        )


def generate_key(path: Path, passphrase: bytes, *, force: bool = False) -> bytes:
    """Write a new Ed25519 key to ``path`` (mode 0600); returns its raw public key."""
    _check_passphrase(passphrase)
    if path.exists() and not force:
        raise EvidenceError(f"{path}: a signing key is already there (--force replaces it)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, pem)
    os.chmod(path, 0o600)
    public = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    _atomic_write(path.with_suffix(".pub.pem"), public_pem(public))
    return public


def load_signer(path: Path, passphrase: bytes, name: str) -> Signer:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise EvidenceError(
            f"{path}: no signing key; create one with `takedown evidence keygen`"
        ) from None
    except OSError as exc:
        raise EvidenceError(f"{path}: cannot read the signing key: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except (ValueError, TypeError):
        raise EvidenceError(
            f"{path}: wrong passphrase, or not a passphrase-protected key ({PASSPHRASE_ENV})"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise EvidenceError(f"{path}: not an Ed25519 key")
    return Signer(key, name)


def ensure_registered(vault: Vault, signer: Signer, handler: str) -> None:
    """Introduce the signer's key in the custody log if it is not there yet."""
    text = str(signer.verifier)
    if all(vkey != text for _, vkey in vault.signing_keys()):
        vault.register_key(text, signer.verifier.id.hex(), handler=handler)


def sign_checkpoint(vault: Vault, signer: Signer, handler: str) -> tuple[Path, str]:
    """Sign the log as it is now; returns the checkpoint file and its text."""
    if signer.name != vault.origin:
        raise EvidenceError(f"signer named {signer.name!r}, vault origin is {vault.origin!r}")
    ensure_registered(vault, signer, handler)
    size = vault.size
    text = note.sign_checkpoint(
        vault.origin, size, vault.root(size), signer.name, signer.public, signer.sign
    )
    return vault.save_checkpoint(size, signer.verifier.id.hex(), text), text
