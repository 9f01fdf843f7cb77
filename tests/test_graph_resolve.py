"""Probabilistic resolution: same-as links with score and model, never a merge."""

from test_graph_demo import demo_built, demo_home  # noqa: F401 (fixtures)

from takedown.case.graph.evidence import open_vault
from takedown.case.graph.resolve import _row, _split_name, model_version, resolve
from takedown.case.graph.store import GraphStore


def test_names_and_fields_are_folded():
    assert _split_name("Kirill Nightjar") == ("kirill", "nightjar")
    assert _split_name("Nightjar, Kirill") == ("kirill", "nightjar")
    assert _split_name("Naïve") == (None, "naive")
    row = _row(
        7,
        "x",
        {
            "name": "K. Nightjar",
            "email": "K.Nightjar@Mail.example",
            "phone": "+44 7700 900123",
            "country": "ZZ",
        },
    )
    assert row == {
        "unique_id": "7",
        "first_name": "k",
        "surname": "nightjar",
        "email": "k.nightjar@mail.example",
        "phone": "+447700900123",
        "city": None,
        "country": "zz",
        "dob": None,
        "organisation": None,
        "street": None,
    }


def test_resolution_links_people_without_merging(demo_home):  # noqa: F811
    with GraphStore.open(demo_home, read_only=True) as store:
        rows = store.con.execute(
            "SELECT l.confidence, l.score, l.model, a.label, b.label FROM links l "
            "JOIN entities a ON a.id = l.src JOIN entities b ON b.id = l.dst "
            "WHERE l.kind = 'same-as' AND a.kind = 'person'"
        ).fetchall()
        people = store.counts()["entities"]
    pairs = {frozenset((a, b)) for _, _, _, a, b in rows}
    assert frozenset(("Kirill Nightjar", "Kiril Naitdzhar")) in pairs  # same phone
    assert frozenset(("Dmitri Ivanovich Fictional",)) in pairs  # report and wallet holder
    assert not any("Jane Placeholder" in p and "Kirill Nightjar" in p for p in pairs)
    assert all(
        m == model_version("person") and s is not None and 50 <= c <= 100 for c, s, m, _, _ in rows
    )
    with open_vault(demo_home) as door, GraphStore.open(demo_home) as store:
        again = resolve(store, door, handler="tester", kind="person")
        assert again.links == 0 and store.counts()["entities"] == people
        stricter = resolve(store, door, handler="tester", kind="person", threshold=1.0)
        assert stricter.links == 0
