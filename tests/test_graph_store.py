"""The graph's tables: links cite vault items, unknown is not 0, nothing merged, one writer."""

import subprocess
import sys

import pyarrow as pa
import pytest

from takedown.case.graph.evidence import open_vault
from takedown.case.graph.model import LinkSpec, check_confidence, parse_ref, path_weight
from takedown.case.graph.store import GraphStore, graph_path
from takedown.errors import GraphError
from takedown.home import Home


def spec(src, kind, dst, conf, sha, note=""):
    return LinkSpec(*src, kind, *dst, conf, [(sha, "line 1")], note=note)


@pytest.fixture
def graph(tmp_path):
    home = Home(tmp_path)
    with open_vault(home) as door, GraphStore.open(home) as store:
        item = door.add_bytes(b"a record", "record.txt", handler="tester", source="test")
        yield store, door, item.sha256


def test_links_create_entities_once_and_cite_evidence(graph):
    store, door, sha = graph
    links = [
        spec(("botnet", "rustock"), "beacons-to", ("domain", "c2.example"), 99, sha),
        spec(("domain", "c2.example"), "hosted-on", ("ip", "203.0.113.7"), None, sha),
        spec(("domain", "c2.example"), "hosted-on", ("ip", "203.0.113.7"), 0, sha),
    ]
    before = store.version
    result = store.add_links(links, door=door, asserted_by="tester", method="test")
    assert (result.links, result.entities) == (3, 3)
    assert store.version == before + 1
    ip = store.resolve("ip:203.0.113.7")
    rows = store.links_of(ip.id)
    # Unknown is NULL, zero is 0: two different statements.
    assert sorted((r["confidence"] is None, r["confidence"]) for r in rows) == [
        (False, 0),
        (True, None),
    ]
    assert all(r["evidence"][0]["name"] == "record.txt" for r in rows)
    assert all(r["asserted_by"] == "tester" for r in rows)
    # Same keys again: no new entity.
    again = store.add_links(links[:1], door=door, asserted_by="tester", method="test")
    assert again.entities == 0 and store.counts()["entities"] == 3


def test_evidence_must_be_in_the_vault(graph):
    store, door, _ = graph
    missing = "ab" * 32
    with pytest.raises(GraphError, match=f"evidence {missing} is not in the vault"):
        store.add_links(
            [spec(("ip", "192.0.2.1"), "related-to", ("ip", "192.0.2.2"), 5, missing)],
            door=door,
            asserted_by="tester",
            method="test",
        )
    empty = LinkSpec("ip", "192.0.2.1", "related-to", "ip", "192.0.2.2", 5, [])
    with pytest.raises(GraphError, match="at least one evidence item"):
        store.add_links([empty], door=door, asserted_by="tester", method="test")
    assert store.counts()["links"] == 0


def test_bad_tables_are_refused(graph):
    store, door, sha = graph
    with pytest.raises(GraphError, match="not a known link kind"):
        store.add_links(
            [spec(("ip", "192.0.2.1"), "owns", ("ip", "192.0.2.2"), 5, sha)],
            door=door,
            asserted_by="tester",
            method="test",
        )
    with pytest.raises(GraphError, match="who asserts"):
        store.add_links(
            [spec(("ip", "192.0.2.1"), "related-to", ("ip", "192.0.2.2"), 5, sha)],
            door=door,
            asserted_by=" ",
            method="test",
        )
    table = pa.table(
        {
            "src_kind": ["ip"],
            "src_key": ["192.0.2.1"],
            "kind": ["related-to"],
            "dst_kind": ["ip"],
            "dst_key": ["192.0.2.2"],
            "confidence": pa.array([101], pa.int16()),
            "evidence": [[{"sha256": sha, "locator": None}]],
        }
    )
    with pytest.raises(GraphError, match="outside 0-100"):
        store.add_links(table, door=door, asserted_by="tester", method="test")


def test_custody_records_each_citation(graph):
    store, door, sha = graph
    store.add_links(
        [spec(("ip", "192.0.2.1"), "related-to", ("ip", "192.0.2.2"), 5, sha)] * 3,
        door=door,
        asserted_by="tester",
        method="unit test",
    )
    from takedown.case.evidence.vault import Vault

    with Vault.open(store.home) as vault:
        linked = [e for e in vault.custody(sha) if e.action == "linked"]
    assert len(linked) == 1 and linked[0].details["links"] == 3
    assert linked[0].details["method"] == "unit test"


def test_references_resolve_or_explain(graph):
    store, door, sha = graph
    store.add_links(
        [
            spec(("person", "rec-1"), "named", ("email", "a@b.example"), 50, sha),
            LinkSpec(
                "person",
                "rec-2",
                "named",
                "email",
                "a@b.example",
                50,
                [(sha, "x")],
                src_label="Same Name",
            ),
            LinkSpec(
                "person",
                "rec-3",
                "named",
                "email",
                "a@b.example",
                50,
                [(sha, "x")],
                src_label="Same Name",
            ),
        ],
        door=door,
        asserted_by="tester",
        method="test",
    )
    email = store.resolve("A@B.example")  # bare value, normalised per kind
    assert email.kind == "email"
    assert store.resolve(f"#{email.id}").id == email.id
    with pytest.raises(GraphError, match="could be 2 entities"):
        store.resolve("Same Name")
    with pytest.raises(GraphError, match="no entity"):
        store.resolve("ip:192.0.2.99")
    assert [e.key for e in store.search("rec-")] == ["rec-1", "rec-2", "rec-3"]


def test_confidence_and_refs_parse():
    assert check_confidence("unknown", "x") is None
    assert check_confidence("", "x") is None
    assert check_confidence("0", "x") == 0
    assert check_confidence(87.6, "x") == 88
    for bad in ("high", -1, 100.5, True, float("nan")):
        with pytest.raises(GraphError):
            check_confidence(bad, "x")
    assert path_weight(0) == float("inf") and path_weight(100) > 0
    assert path_weight(None) == path_weight(25)
    assert parse_ref("#12").id == 12 and parse_ref("ip:1.2.3.4").kind == "ip"
    assert parse_ref("nokind:thing").kind is None


def test_a_second_writer_gets_a_clear_error(tmp_path):
    home = Home(tmp_path)
    with GraphStore.open(home):
        code = (
            "from pathlib import Path\nfrom takedown.home import Home\n"
            "from takedown.case.graph.store import GraphStore\n"
            f"GraphStore.open(Home(Path({str(tmp_path)!r}))).__enter__()\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
        )
    assert result.returncode != 0
    assert "open for writing by another takedown process" in result.stderr
    assert graph_path(home).exists()


def test_read_only_without_a_graph(tmp_path):
    with (
        pytest.raises(GraphError, match="no graph yet"),
        GraphStore.open(Home(tmp_path), read_only=True),
    ):
        pass
