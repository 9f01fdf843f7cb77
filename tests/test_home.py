from takedown.home import Home


def test_layout_lives_under_the_root(tmp_path):
    home = Home(tmp_path / "case")
    home.ensure()
    for folder in (home.spool, home.lake, home.events, home.rules, home.run):
        assert folder.is_dir() and tmp_path in folder.parents
    for path in (home.catalog, home.ingested, home.quarantine):
        assert (tmp_path / "case") in path.parents
