"""Sharing: a STIX 2.1 bundle valid under stix2-validator (and re-importable), a MISP event,
GraphML and GEXF readable by networkx."""

import json

import networkx as nx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymisp import MISPEvent
from test_graph_demo import demo_built, demo_home  # noqa: F401 (fixtures)

from takedown.case.graph.evidence import open_vault
from takedown.case.graph.importers import run_import
from takedown.case.graph.share import export, snapshot
from takedown.case.graph.share.stix import parse_stix, stix_bundle, validate
from takedown.case.graph.store import GraphStore
from takedown.errors import GraphError
from takedown.home import Home


@pytest.fixture(scope="module")
def stix_file(demo_built, tmp_path_factory):  # noqa: F811
    home, _, _ = demo_built
    out = tmp_path_factory.mktemp("stix") / "case.json"
    with GraphStore.open(home, read_only=True) as store:
        n = export(store, "stix", out)
    assert n > 50
    return out


def test_stix_bundle_is_valid_and_carries_the_evidence(stix_file):
    text = stix_file.read_text()
    warnings = validate(text)  # raises on any error
    assert isinstance(warnings, list)
    objects = json.loads(text)["objects"]
    types = {o["type"] for o in objects}
    assert {
        "infrastructure",
        "malware",
        "intrusion-set",
        "threat-actor",
        "identity",
        "indicator",
        "relationship",
        "sighting",
    } <= types
    rels = [o for o in objects if o["type"] == "relationship"]
    cited = [r for r in rels if r.get("external_references")]
    assert cited and all(
        ref["hashes"]["SHA-256"] == ref["external_id"] and len(ref["external_id"]) == 64
        for r in cited
        for ref in r["external_references"]
    )
    # Unknown confidence is left out, never written as 0.
    assert any("confidence" not in r for r in rels) and any(r.get("confidence") for r in rels)
    actors = [o for o in objects if o["type"] == "threat-actor"]
    assert any("Kirill Nightjar" in a["name"] for a in actors)
    sightings = [o for o in objects if o["type"] == "sighting"]
    assert {s["count"] for s in sightings} >= {120412, 119876}
    infra = [o for o in objects if o["type"] == "infrastructure"]
    assert any(o.get("infrastructure_types") == ["command-and-control"] for o in infra)


def test_stix_export_is_stable(demo_built, stix_file, tmp_path):  # noqa: F811
    home, _, _ = demo_built
    with GraphStore.open(home, read_only=True) as store:
        export(store, "stix", tmp_path / "again.json")
    first = {o["id"] for o in json.loads(stix_file.read_text())["objects"]}
    again = {o["id"] for o in json.loads((tmp_path / "again.json").read_text())["objects"]}
    assert first - {i for i in first if i.startswith("bundle--")} == again - {
        i for i in again if i.startswith("bundle--")
    }


def test_a_partner_bundle_imports_as_cited_links(stix_file, tmp_path):
    home = Home(tmp_path)
    with open_vault(home) as door, GraphStore.open(home) as store:
        report = run_import(store, door, "stix", stix_file, handler="partner desk")
        assert report.links > 50 and report.rejected < report.records / 4
        acct = store.resolve("hosting-account:examplehost ltd/4471")
        kinds = {r["kind"] for r in store.links_of(acct.id)}
        assert {"rented", "paid-for", "uses-alias"} <= kinds
        c2 = store.resolve("domain:onlinescannow.example")
        beacons = [r for r in store.links_of(c2.id) if r["kind"] == "beacons-to"]
        assert beacons and beacons[0]["confidence"] == 99
        assert all(e["sha256"] == report.item.sha256 for e in beacons[0]["evidence"])
        assert "takedown-evidence" not in beacons[0]["note"]
        assert beacons[0]["note"].startswith("partner takedown case")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
        lambda kids: st.one_of(
            st.lists(kids, max_size=4),
            st.dictionaries(
                st.sampled_from(
                    [
                        "type",
                        "id",
                        "source_ref",
                        "target_ref",
                        "objects",
                        "relationship_type",
                        "confidence",
                        "value",
                        "name",
                        "spec_version",
                        "created",
                        "modified",
                    ]
                ),
                kids,
                max_size=6,
            ),
        ),
        max_leaves=25,
    )
)
def test_stix_parser_never_stops(doc):
    parsed = parse_stix(json.dumps(doc).encode(), "ab" * 32)
    assert parsed.records >= parsed.rejected
    parse_stix(b"\xff{not json", "ab" * 32)


def test_misp_event_offline(demo_built, tmp_path):  # noqa: F811
    home, _, _ = demo_built
    out = tmp_path / "event.json"
    with GraphStore.open(home, read_only=True) as store:
        export(store, "misp", out)
    event = MISPEvent()
    event.load_file(str(out))
    names = {o.name for o in event.objects}
    assert {"domain-ip", "person", "user-account", "bank-account", "whois", "file"} <= names
    refs = [r for o in event.objects for r in o.references]
    assert any(r.relationship_type == "rented" for r in refs)
    assert all("evidence:" in r.comment and "sha256:" in r.comment for r in refs)
    assert all(not a.to_ids for o in event.objects for a in o.attributes)


@pytest.mark.parametrize("kind", ["graphml", "gexf"])
def test_gephi_files(demo_built, tmp_path, kind):  # noqa: F811
    home, _, _ = demo_built
    out = tmp_path / f"case.{kind}"
    with GraphStore.open(home, read_only=True) as store:
        export(store, kind, out)
        counts = store.counts()
    g = nx.read_graphml(out) if kind == "graphml" else nx.read_gexf(out)
    assert g.number_of_nodes() == counts["entities"]
    assert g.number_of_edges() == counts["links"]


def test_export_around_a_seed(demo_built, tmp_path):  # noqa: F811
    home, _, _ = demo_built
    with GraphStore.open(home, read_only=True) as store:
        seed = store.resolve("alias:vesper2k")
        near = snapshot(store, seed, hops=1)
        assert 1 < len(near.entities) < store.counts()["entities"]
        bundle = stix_bundle(store, near)
        validate(bundle.serialize())
        with pytest.raises(GraphError, match="choose stix"):
            export(store, "pdf", tmp_path / "x.pdf")
