"""Family signature rules, kept as data (TOML files), matched against requests.

A rule names a family (``malware``) when every condition it states holds. Conditions for HTTP:
``method``, ``path`` (regex, searched in the path), ``query`` (regex), ``host`` (regex),
``user_agent`` (regex), ``body_size`` ([min, max] bytes), ``body_prefix`` (hex of the first
bytes). For DNS: ``qname`` (regex) and ``qtype``. ``bot_id`` says where a bot identifier sits:
``{ query = "param" }``, ``{ header = "name" }``, ``{ path = "regex with (?P<id>...)" }`` or
``{ body = [offset, length] }`` (hex). Every rule states its ``basis`` (what it was written from)
and ``confidence`` (0-100). Rules are tried in order: user folders first, then the built-ins.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from takedown.errors import RuleError

__all__ = ["BUILTIN_RULES", "HttpFacts", "Match", "Rule", "RuleSet", "load_rules", "parse_rules"]

log = logging.getLogger(__name__)

BUILTIN_RULES = Path(__file__).parent / "rules"

_HTTP_KEYS = {"method", "path", "query", "host", "user_agent", "body_size", "body_prefix"}
_DNS_KEYS = {"qname", "qtype"}
_META_KEYS = {
    "id",
    "malware",
    "basis",
    "confidence",
    "protocol",
    "bot_id",
    "description",
    "taxonomy",
    "type",
}


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ costs 2x per request
class HttpFacts:
    """What a rule may look at in an HTTP request (all text already decoded)."""

    method: str
    path: str
    query: str
    host: str
    user_agent: str
    headers: Mapping[str, str]
    body_size: int
    body_prefix: bytes


@dataclass(frozen=True, slots=True)
class Match:
    malware: str
    rule: str
    bot_id: str | None
    taxonomy: str
    type: str


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    malware: str
    protocol: str
    confidence: int
    basis: str
    source: str
    method: str | None = None
    path: re.Pattern[str] | None = None
    query: re.Pattern[str] | None = None
    host: re.Pattern[str] | None = None
    user_agent: re.Pattern[str] | None = None
    body_size: tuple[int, int] | None = None
    body_prefix: bytes | None = None
    qname: re.Pattern[str] | None = None
    qtype: str | None = None
    bot_id: tuple[str, Any] | None = None
    taxonomy: str = "malicious-code"
    type: str = "infected-system"

    def match_http(self, req: HttpFacts) -> Match | None:
        if self.method is not None and req.method != self.method:
            return None
        if self.body_size is not None and not (
            self.body_size[0] <= req.body_size <= self.body_size[1]
        ):
            return None
        if self.body_prefix is not None and not req.body_prefix.startswith(self.body_prefix):
            return None
        for pattern, value in (
            (self.path, req.path),
            (self.query, req.query),
            (self.host, req.host),
            (self.user_agent, req.user_agent),
        ):
            if pattern is not None and pattern.search(value) is None:
                return None
        return Match(self.malware, self.id, self._bot_id(req), self.taxonomy, self.type)

    def match_dns(self, qname: str, qtype: str) -> Match | None:
        if self.qtype is not None and qtype != self.qtype:
            return None
        if self.qname is not None and self.qname.search(qname) is None:
            return None
        return Match(self.malware, self.id, None, self.taxonomy, self.type)

    def _bot_id(self, req: HttpFacts) -> str | None:
        if self.bot_id is None:
            return None
        kind, where = self.bot_id
        if kind == "query":
            params = parse_qs(req.query, keep_blank_values=True)
            for name in where:
                if params.get(name):
                    return str(params[name][0][:256])
            return None
        if kind == "header":
            for name in where:
                value = req.headers.get(name)
                if value is not None:
                    return value[:256]
            return None
        if kind == "path":
            m = where.search(req.path)
            return m.group("id")[:256] if m else None
        offset, length = where
        chunk = req.body_prefix[offset : offset + length]
        return chunk.hex() if len(chunk) == length else None


def _regex(source: str, rule_id: str, key: str, value: Any) -> re.Pattern[str]:
    if not isinstance(value, str):
        raise RuleError(f"{source}: rule {rule_id!r}: {key} must be a regex string")
    try:
        return re.compile(value)
    except re.error as exc:
        raise RuleError(f"{source}: rule {rule_id!r}: {key} is not a valid regex: {exc}") from None


def _parse_bot_id(source: str, rule_id: str, spec: Any) -> tuple[str, Any]:
    where = f"{source}: rule {rule_id!r}: bot_id"
    if not isinstance(spec, dict) or len(spec) != 1:
        raise RuleError(
            f"{where} must be one of {{query=..}}, {{header=..}}, {{path=..}}, "
            "{body=[offset, length]}"
        )
    ((kind, value),) = spec.items()
    if kind in ("query", "header"):
        names = [value] if isinstance(value, str) else value
        if not (isinstance(names, list) and names and all(isinstance(n, str) and n for n in names)):
            raise RuleError(f"{where}.{kind} must be a name or a list of names")
        return kind, tuple(n.lower() for n in names) if kind == "header" else tuple(names)
    if kind == "path":
        pattern = _regex(source, rule_id, "bot_id.path", value)
        if "id" not in pattern.groupindex:
            raise RuleError(f"{where}.path needs a named group (?P<id>...)")
        return kind, pattern
    if kind == "body":
        ok = (
            isinstance(value, list)
            and len(value) == 2
            and all(isinstance(v, int) and v >= 0 for v in value)
            and value[1] > 0
        )
        if not ok:
            raise RuleError(f"{where}.body must be [offset, length] with length > 0")
        return kind, (value[0], value[1])
    raise RuleError(f"{where}: unknown location {kind!r}")


def _parse_rule(source: str, index: int, raw: Any) -> Rule:
    if not isinstance(raw, dict):
        raise RuleError(f"{source}: rule #{index + 1} is not a table")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        raise RuleError(f"{source}: rule #{index + 1}: field 'id' is missing")
    unknown = set(raw) - _HTTP_KEYS - _DNS_KEYS - _META_KEYS
    if unknown:
        raise RuleError(f"{source}: rule {rule_id!r}: unknown field {sorted(unknown)[0]!r}")
    for key in ("malware", "basis"):
        if not isinstance(raw.get(key), str) or not raw[key]:
            raise RuleError(f"{source}: rule {rule_id!r}: field {key!r} is missing")
    confidence = raw.get("confidence")
    if not isinstance(confidence, int) or not 0 <= confidence <= 100:
        raise RuleError(f"{source}: rule {rule_id!r}: confidence must be an integer 0-100")
    protocol = raw.get("protocol", "dns" if _DNS_KEYS & set(raw) else "http")
    if protocol not in ("http", "dns"):
        raise RuleError(f"{source}: rule {rule_id!r}: protocol must be http or dns")
    wrong = (_DNS_KEYS if protocol == "http" else _HTTP_KEYS) & set(raw)
    if wrong:
        raise RuleError(
            f"{source}: rule {rule_id!r}: {sorted(wrong)[0]!r} does not apply to {protocol}"
        )
    kwargs: dict[str, Any] = {}
    for key in ("path", "query", "host", "user_agent", "qname"):
        if key in raw:
            kwargs[key] = _regex(source, rule_id, key, raw[key])
    if "method" in raw:
        kwargs["method"] = str(raw["method"]).upper()
    if "qtype" in raw:
        kwargs["qtype"] = str(raw["qtype"]).upper()
    if "body_size" in raw:
        bs = raw["body_size"]
        if not (
            isinstance(bs, list)
            and len(bs) == 2
            and all(isinstance(v, int) for v in bs)
            and 0 <= bs[0] <= bs[1]
        ):
            raise RuleError(f"{source}: rule {rule_id!r}: body_size must be [min, max]")
        kwargs["body_size"] = (bs[0], bs[1])
    if "body_prefix" in raw:
        try:
            kwargs["body_prefix"] = bytes.fromhex(str(raw["body_prefix"]))
        except ValueError:
            raise RuleError(f"{source}: rule {rule_id!r}: body_prefix must be hex") from None
    if "bot_id" in raw:
        if protocol != "http":
            raise RuleError(f"{source}: rule {rule_id!r}: bot_id applies to http rules only")
        kwargs["bot_id"] = _parse_bot_id(source, rule_id, raw["bot_id"])
    for key in ("taxonomy", "type"):
        if key in raw:
            kwargs[key] = str(raw[key])
    return Rule(
        id=rule_id,
        malware=raw["malware"].lower(),
        protocol=protocol,
        confidence=confidence,
        basis=raw["basis"],
        source=source,
        **kwargs,
    )


def parse_rules(text: str, source: str) -> list[Rule]:
    """Parse one rule file's text; raises RuleError naming the file, rule and field."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"{source}: not valid TOML: {exc}") from None
    rules = data.get("rule", [])
    if not isinstance(rules, list):
        raise RuleError(f"{source}: 'rule' must be an array of tables ([[rule]])")
    return [_parse_rule(source, i, r) for i, r in enumerate(rules)]


def _rule_files(folders: Iterable[Path]) -> list[Path]:
    files: list[Path] = []
    for folder in folders:
        if folder.is_dir():
            files.extend(sorted(folder.glob("*.toml")))
    return files


def load_rules(folders: Sequence[Path]) -> list[Rule]:
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for path in _rule_files(folders):
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise RuleError(f"{path}: cannot read: {exc}") from None
        for rule in parse_rules(text, str(path)):
            if rule.id in seen:
                # A user rule with a built-in's id replaces it (user folders come first).
                continue
            seen[rule.id] = rule.source
            rules.append(rule)
    return rules


UNKNOWN = Match("unknown", "", None, "other", "undetermined")
# Decisions remembered per rule set (bots repeat the same request shape endlessly); the memo
# starts over when it reaches this size, so hostile variety costs memory only up to it.
MEMO_MAX = 4096


class RuleSet:
    """The rules in force, reloaded when their files change; a broken edit keeps the old set."""

    def __init__(self, folders: Sequence[Path]) -> None:
        self.folders = list(folders)
        self.rules = load_rules(self.folders)
        self._stamp = self._fingerprint()
        self._index()

    def _index(self) -> None:
        self._http = [r for r in self.rules if r.protocol == "http"]
        self._dns = [r for r in self.rules if r.protocol == "dns"]
        # What a decision depends on: the query only if a rule reads it, the body's first
        # bytes only as far as a rule's prefix reaches.
        self._uses_query = any(r.query is not None for r in self._http)
        self._prefix_len = max((len(r.body_prefix or b"") for r in self._http), default=0)
        self._memo: dict[tuple[Any, ...], Rule | None] = {}
        self._fixed = {
            r.id: Match(r.malware, r.id, None, r.taxonomy, r.type)
            for r in self._http
            if r.bot_id is None
        }

    def _fingerprint(self) -> tuple[tuple[str, int, int], ...]:
        out = []
        for path in _rule_files(self.folders):
            try:
                st = path.stat()
            except OSError:
                continue
            out.append((str(path), st.st_mtime_ns, st.st_size))
        return tuple(out)

    def reload_if_changed(self) -> bool:
        stamp = self._fingerprint()
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            rules = load_rules(self.folders)
        except RuleError as exc:
            log.error("rules not reloaded, keeping the %d in force: %s", len(self.rules), exc)
            return False
        self.rules = rules
        self._index()
        log.info("rules reloaded: %d rules", len(rules))
        return True

    def classify_http(self, req: HttpFacts) -> Match:
        for rule in self._http:
            m = rule.match_http(req)
            if m is not None:
                return m
        return UNKNOWN

    def classify_request(
        self,
        method: str,
        target: str,
        host: str,
        user_agent: str,
        headers: Mapping[str, str],
        body_size: int,
        body_prefix: bytes,
    ) -> Match:
        """``classify_http`` of one request, remembering which rule requests of its shape
        match (the rules' verdict depends only on the key below); bot ids are read anew."""
        path, _, query = target.partition("?")
        key = (
            method,
            target if self._uses_query else path,
            host,
            user_agent,
            body_size,
            body_prefix[: self._prefix_len],
        )
        memo = self._memo
        known = key in memo
        if known:
            rule = memo[key]
            if rule is None:
                return UNKNOWN
            fixed = self._fixed.get(rule.id)
            if fixed is not None:
                return fixed
        facts = HttpFacts(method, path, query, host, user_agent, headers, body_size, body_prefix)
        if known and rule is not None:  # the rule is known: only its bot id is read anew
            return Match(rule.malware, rule.id, rule._bot_id(facts), rule.taxonomy, rule.type)
        for rule in self._http:
            m = rule.match_http(facts)
            if m is not None:
                break
        else:
            rule, m = None, UNKNOWN
        if len(memo) >= MEMO_MAX:
            memo.clear()
        memo[key] = rule
        return m

    def classify_dns(self, qname: str, qtype: str) -> Match:
        for rule in self._dns:
            m = rule.match_dns(qname, qtype)
            if m is not None:
                return m
        return UNKNOWN
