from pathlib import Path

import pytest

from takedown import config
from takedown.errors import ConfigError

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_every_setting_is_documented():
    page = (DOCS / "config.md").read_text()
    assert page == config.doc_markdown()
    for s in config.SETTINGS:
        assert f"`{s.name}`" in page
        assert s.help


def test_defaults(tmp_path):
    s = config.load_settings(env={}, home=tmp_path)
    assert s.workers == 1
    assert s.http_listen == "127.0.0.1:8080"
    assert s.home == str(tmp_path)


def test_precedence_override_env_file_default(tmp_path):
    (tmp_path / "config.toml").write_text('workers = 3\nraw_bytes = 64\nfeed_provider = "file"\n')
    env = {"TAKEDOWN_WORKERS": "5", "TAKEDOWN_HOME": str(tmp_path)}
    s = config.load_settings({"raw_bytes": None}, env=env)
    assert s.workers == 5  # env beats file
    assert s.raw_bytes == 64  # file beats default
    assert s.feed_provider == "file"
    s = config.load_settings({"workers": 2}, env=env)
    assert s.workers == 2  # command line beats env


def test_bad_values_name_where_they_came_from(tmp_path):
    with pytest.raises(ConfigError, match="TAKEDOWN_WORKERS"):
        config.load_settings(env={"TAKEDOWN_WORKERS": "many"}, home=tmp_path)
    (tmp_path / "config.toml").write_text("nonsense = 1\n")
    with pytest.raises(ConfigError, match=r"unknown setting .nonsense."):
        config.load_settings(env={}, home=tmp_path)
    (tmp_path / "config.toml").write_text("workers = [\n")
    with pytest.raises(ConfigError, match=r"config\.toml"):
        config.load_settings(env={}, home=tmp_path)


def test_replace_coerces_and_keeps_others(tmp_path):
    s = config.load_settings(env={}, home=tmp_path)
    t = s.replace(workers="4")
    assert t.workers == 4 and s.workers == 1 and t.home == s.home
