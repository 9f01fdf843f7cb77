"""Cache location, keys, get-or-build, and recovery from a damaged cache file."""

from __future__ import annotations

from pathlib import Path

import pytest

from takedown.enrich import tablecache
from takedown.enrich.layers import Layer
from takedown.enrich.overlay import Tables


def empty_tables() -> Tables:
    return Tables.build(Layer.empty("asn"), Layer.empty("geo"))


def test_cache_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAKEDOWN_CACHE_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert tablecache.cache_root(tmp_path / "explicit") == tmp_path / "explicit"
    assert tablecache.cache_root() == tmp_path / "env"
    monkeypatch.delenv("TAKEDOWN_CACHE_DIR")
    assert tablecache.cache_root() == tmp_path / "xdg" / "takedown"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert tablecache.cache_root() == tmp_path / "home" / ".cache" / "takedown"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert tablecache.cache_root(blocker / "sub") is None


def test_keys_follow_content(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"one")
    d1 = tablecache.file_digest(f)
    f.write_bytes(b"two")
    d2 = tablecache.file_digest(f)
    assert d1 != d2
    assert tablecache.table_key([("asn", "mmdb", d1)]) != tablecache.table_key(
        [("asn", "mmdb", d2)]
    )
    assert tablecache.table_key([("a", "k", d1), ("b", "k", d2)]) == tablecache.table_key(
        [("b", "k", d2), ("a", "k", d1)]
    )


def test_get_or_build_saves_reuses_and_survives_damage(tmp_path: Path) -> None:
    calls: list[int] = []

    def build() -> Tables:
        calls.append(1)
        return empty_tables()

    key = "test-" + tmp_path.name
    tablecache.get_or_build(key, build, tmp_path)
    assert len(calls) == 1 and (tmp_path / f"enrich-{key}.npz").exists()
    tablecache.get_or_build(key, build, tmp_path)  # in-process memo
    assert len(calls) == 1
    tablecache._memo.clear()
    tablecache.get_or_build(key, build, tmp_path)  # from the file
    assert len(calls) == 1
    tablecache._memo.clear()
    (tmp_path / f"enrich-{key}.npz").write_bytes(b"damaged")
    tablecache.get_or_build(key, build, tmp_path)  # rebuilt, file rewritten
    assert len(calls) == 2
    tablecache._memo.clear()
    tablecache.get_or_build(key, build, tmp_path)
    assert len(calls) == 2
