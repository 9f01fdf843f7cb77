"""The exception tree. Every error a user can cause is a TakedownError with a one-line message."""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "EvidenceError",
    "GraphError",
    "IngestError",
    "LegalError",
    "RuleError",
    "SpoolError",
    "TakedownError",
]


class TakedownError(Exception):
    """Base of every error takedown raises on purpose; its message is one line with the fix."""


class ConfigError(TakedownError):
    """A setting is unknown or has a value of the wrong kind."""


class RuleError(TakedownError):
    """A signature rule file is malformed (names the file, the rule and the field)."""


class SpoolError(TakedownError):
    """The spool cannot be written or read (disk full, permissions, a held lock)."""


class IngestError(TakedownError):
    """Moving spool segments into the lake failed."""


class EvidenceError(TakedownError):
    """The evidence vault refused an action or found it tampered with (names item or entry)."""


class LegalError(TakedownError):
    """A legal document cannot be produced from what was given (names the file and field)."""


class GraphError(TakedownError):
    """The attribution graph refused an entity, link or import (names the record and field)."""
