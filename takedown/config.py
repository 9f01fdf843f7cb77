"""One settings table: name, type, default, help. It drives the CLI, validation and the docs.

A value comes from, in order: the command line, the environment (``TAKEDOWN_<NAME>``), the
home's ``config.toml``, the default here.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from takedown.errors import ConfigError

__all__ = ["SETTINGS", "Setting", "Settings", "doc_markdown", "load_settings"]


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    type: type
    default: Any
    help: str

    @property
    def env(self) -> str:
        return "TAKEDOWN_" + self.name.upper().replace(".", "_")


SETTINGS: tuple[Setting, ...] = (
    Setting("home", str, "./takedown-data", "Folder holding all state: spool, lake, catalog."),
    Setting(
        "handler",
        str,
        "",
        "Who is operating: named in logs and in every evidence custody entry (required by"
        " `takedown evidence` commands that record).",
    ),
    Setting("feed_provider", str, "takedown", "feed.provider written on sinkhole events."),
    Setting("http_listen", str, "127.0.0.1:8080", "HOST:PORT the HTTP sinkhole binds."),
    Setting("dns_listen", str, "", "HOST:PORT the DNS sinkhole binds (UDP and TCP); off if empty."),
    Setting("workers", int, 1, "Sinkhole worker processes (SO_REUSEPORT); each has its own spool."),
    Setting("dns_zones", str, "", "Comma-separated zones the DNS sinkhole answers for."),
    Setting("dns_answer_ipv4", str, "", "A answer for sinkholed names (default: the HTTP host)."),
    Setting("dns_answer_ipv6", str, "", "AAAA answer for sinkholed names (none if empty)."),
    Setting("dns_ttl", int, 300, "TTL of sinkhole answers, seconds."),
    Setting("rules_dir", str, "", "Extra rule folder (besides HOME/rules and the built-in rules)."),
    Setting("raw_bytes", int, 512, "How many leading body bytes each event keeps in `raw`."),
    Setting("max_header_bytes", int, 32768, "Request line plus headers cap; above it: 431."),
    Setting("max_body_bytes", int, 64 << 20, "Body bytes hashed; past it the connection closes."),
    Setting("request_timeout", float, 15.0, "Seconds a request may take to arrive (slowloris)."),
    Setting("idle_timeout", float, 30.0, "Seconds an idle keep-alive connection is kept."),
    Setting("max_connections", int, 20000, "Open connections per worker; more are closed."),
    Setting(
        "fast_accept",
        bool,
        True,
        "Accept new HTTP connections and answer a lone whole request that closes its connection "
        "in C (`sinkhole/_accept.c`); off: every connection goes through uvloop's transports.",
    ),
    Setting(
        "max_pipeline",
        int,
        256,
        "Unanswered pipelined requests per connection before the server stops reading from it.",
    ),
    Setting("response_status", int, 200, "HTTP status of the sinkhole's neutral answer."),
    Setting("response_body", str, "", "Body of the sinkhole's neutral answer."),
    Setting("response_content_type", str, "text/html", "Content-Type of that answer."),
    Setting(
        "headers_kept",
        str,
        "host,user-agent,content-type,content-length,transfer-encoding,"
        "cookie,referer,accept,accept-encoding,accept-language,connection,x-forwarded-for",
        "Comma-separated request headers recorded in extra.http.headers.",
    ),
    Setting(
        "enrich_on_ingest",
        bool,
        True,
        "Fill source network, AS and country as events enter the lake (`takedown ingest`).",
    ),
    Setting(
        "seal_on_ingest",
        bool,
        True,
        "Seal ingested spool segments and lake day partitions into the evidence vault.",
    ),
    Setting(
        "enrich_mmdb",
        str,
        "",
        "MaxMind MMDB (ASN and/or country) to enrich with, instead of"
        " the embedded geoip2fast data.",
    ),
    Setting(
        "enrich_pyasn",
        str,
        "",
        "pyasn-style prefix→ASN table to enrich with (real AS"
        " numbers; the embedded data has AS names only).",
    ),
    Setting(
        "commit_delay",
        float,
        0.005,
        "Seconds a spool block may wait for more requests while they come faster than one per"
        " this long (fewer, larger fdatasync'd blocks); 0: a block never waits.",
    ),
    Setting(
        "commit_batch",
        int,
        16,
        "Requests that start a spool block at once, without waiting out `commit_delay`.",
    ),
    Setting("segment_max_bytes", int, 64 << 20, "Spool segment size before it is closed."),
    Setting("segment_max_age", float, 60.0, "Seconds before an open segment is closed anyway."),
    Setting(
        "evidence_key",
        str,
        "",
        "Checkpoint signing key (Ed25519, passphrase-protected PKCS#8 PEM; the passphrase comes"
        " from TAKEDOWN_KEY_PASSPHRASE or a prompt); default HOME/vault/keys/signing-key.pem.",
    ),
    Setting(
        "evidence_place",
        str,
        "",
        "Where evidence is acquired or held, recorded on each item `takedown evidence add`"
        " adds without --place (default: this host's name).",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


class Settings(Mapping[str, Any]):
    """Resolved settings; read as a mapping or attributes (``settings.workers``)."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(key) from None

    def replace(self, **changes: Any) -> Settings:
        values = dict(self._values)
        for k, v in changes.items():
            values[k] = _coerce(_BY_NAME[k], v, "argument")
        return Settings(values)


def _coerce(setting: Setting, value: Any, where: str) -> Any:
    try:
        if setting.type is bool and isinstance(value, str):
            return value.strip().lower() in {"1", "true", "yes", "on"}
        return setting.type(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{where}: setting {setting.name!r} wants {setting.type.__name__}, got {value!r}"
        ) from None


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    home: str | Path | None = None,
) -> Settings:
    """Resolve every setting: overrides > environment > HOME/config.toml > default."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {s.name: s.default for s in SETTINGS}
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    home_value = overrides.get("home") or home or env.get(_BY_NAME["home"].env) or values["home"]
    config_file = Path(home_value) / "config.toml"
    if config_file.is_file():
        try:
            data = tomllib.loads(config_file.read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{config_file}: {exc}") from None
        for key, value in data.items():
            if key not in _BY_NAME:
                raise ConfigError(f"{config_file}: unknown setting {key!r}")
            values[key] = _coerce(_BY_NAME[key], value, str(config_file))
    for s in SETTINGS:
        if s.env in env:
            values[s.name] = _coerce(s, env[s.env], f"environment {s.env}")
    for key, value in overrides.items():
        if key not in _BY_NAME:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = _coerce(_BY_NAME[key], value, "command line")
    values["home"] = str(home_value)
    return Settings(values)


def doc_markdown() -> str:
    """The settings docs page (docs/config.md), generated; a test keeps the file in step."""
    lines = [
        "# Settings",
        "",
        "Generated from `takedown/config.py`; do not edit by hand. Each setting can be given",
        "on the command line where the command has an option for it, in the environment as",
        "`TAKEDOWN_<NAME>`, or in `HOME/config.toml` as `name = value`, in that order of",
        "precedence.",
        "",
        "| setting | environment | type | default | meaning |",
        "| --- | --- | --- | --- | --- |",
    ]
    for s in SETTINGS:
        default = repr(s.default) if s.default != "" else "(empty)"
        lines.append(f"| `{s.name}` | `{s.env}` | {s.type.__name__} | `{default}` | {s.help} |")
    return "\n".join(lines) + "\n"
