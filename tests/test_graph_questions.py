"""Questions on the demo case: paths, explain, candidates, show, timeline."""

import pytest
from test_graph_demo import demo_built, demo_home  # noqa: F401 (fixtures)

from takedown.case.graph.adjacency import load_adjacency
from takedown.case.graph.questions import (
    candidates,
    explain_text,
    paths,
    route_steps,
    show_rows,
    step_rows,
    timeline_rows,
)
from takedown.case.graph.store import GraphStore


@pytest.fixture
def store(demo_built):  # noqa: F811
    home, _, _ = demo_built
    with GraphStore.open(home, read_only=True) as s:
        yield s


def test_paths_shortest_and_strongest(store):
    adj = load_adjacency(store)
    a = store.resolve("ip:203.0.113.10")
    b = store.resolve("alias:vesper2k")
    found = paths(store, adj, a, b)
    short, strong = found["shortest"], found["strongest"]
    assert short is not None and strong is not None
    assert len(short.nodes) <= len(strong.nodes)
    assert strong.probability >= short.probability
    rows = step_rows(route_steps(store, strong))
    assert rows[0]["from"].startswith("ip:203.0.113.10") and rows[-1]["to"].startswith("alias")
    assert all(r["evidence"] and "sha256:" in r["evidence"] for r in rows)


def test_explain_is_ready_for_an_affidavit(store):
    adj = load_adjacency(store)
    seed = store.resolve("domain:onlinescannow.example")
    top = candidates(store, adj, seed, hops=8)[0]
    text = explain_text(store, top.routes[0], "Strongest evidence path")
    steps = [line for line in text.splitlines() if line[:2].rstrip(".").isdigit()]
    assert len(steps) == len(top.routes[0].links)
    evidence = [line for line in text.splitlines() if line.strip().startswith("evidence:")]
    assert len(evidence) >= len(steps)
    for line in evidence:
        sha = line.rsplit("SHA-256 ", 1)[1]
        assert len(sha) == 64 and int(sha, 16) >= 0
    assert "asserted by takedown demo (fictional case)" in text
    assert "the product of the stated confidences is" in text


def test_candidates_rank_by_independent_evidence(store):
    adj = load_adjacency(store)
    seed = store.resolve("botnet:rustock")
    found = candidates(store, adj, seed, hops=8)
    assert [c.person.label for c in found][:2] == ["Kirill Nightjar", "Dmitri Ivanovich Fictional"]
    kirill, dmitri = found[0], found[1]
    assert kirill.independent == 2 and dmitri.independent == 1
    assert {m.label for m in kirill.members} == {
        "Kirill Nightjar",
        "K. Nightjar",
        "Kiril Naitdzhar",
    }
    assert not kirill.caveats and dmitri.caveats
    assert "independent line(s) of evidence" in kirill.explanation()
    # Each of a candidate's paths shares no entity with another but the seed.
    inner = [set(r.nodes[1:-1]) for r in kirill.routes]
    for i, a in enumerate(inner):
        for b in inner[i + 1 :]:
            assert not a & b


def test_show_and_timeline(store):
    acct = store.resolve("hosting-account:Examplehost Ltd/4471")
    rows = show_rows(store, acct)
    kinds = {r["kind"] for r in rows}
    assert {"rented", "uses-alias", "paid-for", "logged-in-from", "named"} <= kinds
    assert all(r["evidence"] for r in rows)
    timeline = timeline_rows(store, acct)
    whens = [r["when"] for r in timeline]
    assert whens == sorted(whens) and whens[0].startswith("2010-04-28")
    assert len(timeline_rows(store, acct, depth=2)) > len(timeline)
