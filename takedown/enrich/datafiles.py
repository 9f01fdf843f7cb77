"""Which file fills which role, and loading them (each file read once).

The ASN role (asn, as_name, network) and the country role each come from exactly one source,
so the fields of one role are always consistent with each other. Files are recognised by
content, not name: an MMDB by its metadata marker, a geoip2fast file by its gzip'd pickle.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from takedown.enrich import g2fdat, ipasn, mmdb
from takedown.enrich.layers import Layer
from takedown.enrich.tablecache import file_digest
from takedown.errors import TakedownError

__all__ = ["EnrichError", "Input", "detect", "load", "plan"]

PathLike = str | os.PathLike[str]


class EnrichError(TakedownError, ValueError):
    """An enrichment data file is missing, unreadable or of an unknown kind."""


@dataclass(frozen=True)
class Input:
    """One file in one role: ``asn``, ``geo`` or ``names`` (AS names for a pyasn table)."""

    role: str
    kind: str  # "mmdb", "geoip2fast", "pyasn", "asnames"
    path: Path
    digest: str


def detect(path: Path) -> str:
    """``"mmdb"`` or ``"geoip2fast"``, from the file's content."""
    if mmdb.is_mmdb(path):
        return "mmdb"
    with path.open("rb") as fh:
        head = fh.read(2)
    if head == b"\x1f\x8b" or head[:1] == b"\x80":
        return "geoip2fast"
    raise EnrichError(f"{path}: neither an MMDB file nor a geoip2fast .dat.gz file")


def _existing(value: PathLike, what: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_file():
        raise EnrichError(f"{what} file {path} not found: check the path")
    return path


def _input(role: str, kind: str | None, value: PathLike, what: str) -> Input:
    path = _existing(value, what)
    return Input(role, kind or detect(path), path, file_digest(path))


def plan(
    asn: PathLike | None,
    country: PathLike | None,
    mmdb_file: PathLike | None,
    pyasn: PathLike | None,
    as_names: PathLike | None,
    fill_default: bool,
) -> list[Input]:
    """The inputs, in roles, for :meth:`Enricher.from_files`."""
    if not any((asn, country, mmdb_file, pyasn)) and not fill_default:
        raise EnrichError("no data files given: pass asn=, country=, mmdb= or pyasn=")
    inputs: list[Input] = []
    if pyasn is not None:
        inputs.append(_input("asn", "pyasn", pyasn, "pyasn"))
        if as_names is not None:
            inputs.append(_input("names", "asnames", as_names, "AS names"))
    elif asn is not None:
        inputs.append(_input("asn", None, asn, "ASN"))
    elif mmdb_file is not None:
        inputs.append(_input("asn", "mmdb", mmdb_file, "MMDB"))
    elif fill_default:
        inputs.append(_input("asn", "geoip2fast", g2fdat.default_path(), "embedded"))
    if country is not None:
        inputs.append(_input("geo", None, country, "country"))
    elif mmdb_file is not None:
        inputs.append(_input("geo", "mmdb", mmdb_file, "MMDB"))
    elif fill_default:
        inputs.append(_input("geo", "geoip2fast", g2fdat.default_path(), "embedded"))
    return inputs


_read_memo: dict[tuple[str, str], tuple[Layer | None, Layer | None]] = {}


def _read(kind: str, path: Path, digest: str) -> tuple[Layer | None, Layer | None]:
    """Both layers of a file, kept in memory by content (the embedded file is often reused)."""
    key = (kind, digest)
    if key not in _read_memo:
        _read_memo.clear()  # keep one file's layers at most
        _read_memo[key] = _read_file(kind, path)
    return _read_memo[key]


def _read_file(kind: str, path: Path) -> tuple[Layer | None, Layer | None]:
    source = f"{kind} {path.name}"
    try:
        if kind == "mmdb":
            return mmdb.layers_from_mmdb(path, source)
        if kind == "geoip2fast":
            return g2fdat.layers_from_dat(g2fdat.read_dat(path), source)
    except (OSError, ValueError) as exc:
        raise EnrichError(f"{path}: cannot read as {kind} ({exc})") from exc
    raise EnrichError(f"{path}: unknown kind {kind}")


def load(inputs: list[Input]) -> dict[str, Layer]:
    """Read every input once; roles without a file get empty layers."""
    read: dict[tuple[str, Path], tuple[Layer | None, Layer | None]] = {}
    names: dict[int, str] | None = None
    for item in inputs:
        if item.role == "names":
            try:
                names = ipasn.read_as_names(item.path)
            except (OSError, ValueError) as exc:
                raise EnrichError(f"{item.path}: cannot read AS names ({exc})") from exc
    out: dict[str, Layer] = {}
    for item in inputs:
        if item.role == "names":
            continue
        if item.kind == "pyasn":
            try:
                out["asn"] = ipasn.layer_from_ipasn(item.path, f"pyasn {item.path.name}", names)
            except (OSError, ValueError) as exc:
                raise EnrichError(f"{item.path}: cannot read as a pyasn table ({exc})") from exc
            continue
        key = (item.kind, item.path)
        if key not in read:
            read[key] = _read(item.kind, item.path, item.digest)
        asn_layer, geo_layer = read[key]
        layer = asn_layer if item.role == "asn" else geo_layer
        if layer is None:
            what = "ASN" if item.role == "asn" else "country"
            raise EnrichError(f"{item.path}: has no {what} data")
        out[item.role] = layer
    out.setdefault("asn", Layer.empty("asn"))
    out.setdefault("geo", Layer.empty("geo"))
    return out
