"""The fictional demo case, end to end; its home is shared (copied) by the other graph tests."""

import io
import shutil

import pytest
from rich.console import Console

from takedown.case.graph.demo import DEMO_CASE, DEMO_SEED, demo_graph, import_demo_case
from takedown.case.graph.store import GraphStore
from takedown.home import Home


@pytest.fixture(scope="session")
def demo_built(tmp_path_factory):
    """A home with the demo case imported and the demo run once (built once per session)."""
    home = Home(tmp_path_factory.mktemp("graph-demo") / "home")
    console = Console(file=io.StringIO(), width=200)
    written = demo_graph(home, console)
    return home, written, console.file.getvalue()


@pytest.fixture
def demo_home(demo_built, tmp_path):
    """A private copy of the demo home, free to write to."""
    src, _, _ = demo_built
    dst = tmp_path / "home"
    shutil.copytree(src.root, dst, symlinks=True)
    return Home(dst)


def test_demo_shows_the_path_from_c2_to_the_candidate(demo_built):
    _, written, text = demo_built
    assert "Every person, nickname and account in this case is invented" in text
    ranking = text.split("Candidates (ranked by independent evidence)")[1]
    assert ranking.index("Kirill Nightjar") < ranking.index("Dmitri Ivanovich Fictional")
    assert "CAVEAT" in ranking and "reported an" in ranking
    assert "Jane Placeholder" not in ranking  # shared provider and registrar are not evidence
    explain = text.split("Strongest evidence path (fictional case)")[1]
    assert "From domain:onlinescannow.example to person:" in explain
    assert "SHA-256 " in explain and "hosting-export.csv (line 5" in explain
    assert [p.name for p in written] == ["candidate-paths.png", "explain.txt"]
    assert all(p.exists() and p.stat().st_size > 1000 for p in written)
    assert written[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_demo_file_is_labelled_fictional():
    for path in DEMO_CASE.rglob("*"):
        if path.is_file():
            assert "FICTIONAL" in path.read_text(), path


def test_the_demo_is_idempotent(demo_home):
    with GraphStore.open(demo_home, read_only=True) as store:
        before = store.counts()
    lines = import_demo_case(demo_home)
    assert sum("already imported" in line for line in lines) == 8
    assert all("0 new same-as links" in line for line in lines if line.startswith("resolve"))
    with GraphStore.open(demo_home, read_only=True) as store:
        assert store.counts()["links"] == before["links"]
        assert store.resolve(DEMO_SEED).kind == "domain"


def test_demo_runs_on_a_home_with_a_lake(tmp_path):
    """With sinkhole data in the lake, the C2 links come from the lake, not the shipped file."""
    import datetime as dt

    from test_lake import fill, row

    from takedown import lake

    home = Home(tmp_path)
    home.ensure()
    when = int(dt.datetime(2011, 3, 16, 12, tzinfo=dt.UTC).timestamp() * 1e6)
    fill(home, "s-w0", [[row(i, when + i) for i in range(3)]])
    lake.ingest(home)
    lines = import_demo_case(home)
    assert lines[0].startswith("C2 names from this home's lake")
    with GraphStore.open(home, read_only=True) as store:
        assert store.find("domain", "c2.example") is not None
