import pytest

from marketpipe.errors import ConfigError
from marketpipe.settings import load_settings, mask_url, parse_rate


def test_defaults_are_embedded(monkeypatch, tmp_path):
    for var in ("MARKETPIPE_HOT_URL", "MARKETPIPE_COLD_URL", "MARKETPIPE_HOT_DAYS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MARKETPIPE_DATA_DIR", str(tmp_path))
    s = load_settings()
    assert s.hot_url_resolved == f"sqlite:///{tmp_path / 'hot.db'}"
    assert s.cold_url_resolved == str(tmp_path / "lake")
    assert s.hot_days == 30
    assert s.rate_limit("polygon") == (5, 60.0)


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("MARKETPIPE_HOT_DAYS", "-3", "MARKETPIPE_HOT_DAYS"),
        ("MARKETPIPE_HOT_DAYS", "abc", "MARKETPIPE_HOT_DAYS"),
        ("MARKETPIPE_HOT_URL", "mysql://u:pw@h/db", "MARKETPIPE_HOT_URL"),
        ("MARKETPIPE_COLD_URL", "gs://bucket/x", "MARKETPIPE_COLD_URL"),
        ("MARKETPIPE_POLYGON_RATE_LIMIT", "lots", "MARKETPIPE_POLYGON_RATE_LIMIT"),
        ("MARKETPIPE_METRICS_PORT", "70000", "MARKETPIPE_METRICS_PORT"),
    ],
)
def test_invalid_values_fail_with_one_line_naming_the_variable(monkeypatch, var, value, needle):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    msg = str(err.value)
    assert msg.startswith(needle + ":")
    assert "\n" not in msg
    assert "pw" not in msg  # a password in a bad URL is never echoed


def test_postgres_url_normalised_and_masked(monkeypatch):
    monkeypatch.setenv("MARKETPIPE_HOT_URL", "postgresql://bob:s3cret@db:5432/mp")
    s = load_settings()
    assert s.hot_url_resolved == "postgresql+psycopg://bob:s3cret@db:5432/mp"
    assert "s3cret" not in s.hot_url_masked and "***" in s.hot_url_masked


def test_secret_key_is_secretstr(monkeypatch):
    monkeypatch.setenv("POLYGON_API_KEY", "pk_live_SENTINEL")
    s = load_settings()
    assert s.polygon_api_key.get_secret_value() == "pk_live_SENTINEL"
    assert "SENTINEL" not in repr(s) and "SENTINEL" not in str(s.model_dump())


@pytest.mark.parametrize(
    ("text", "expected"), [("5/min", (5, 60.0)), ("100/s", (100, 1.0)), ("300/10min", (300, 600.0))]
)
def test_parse_rate(text, expected):
    assert parse_rate(text) == expected


def test_mask_url():
    assert mask_url("postgresql+psycopg://u:p@h/db") == "postgresql+psycopg://u:***@h/db"
    assert mask_url("sqlite:///x.db") == "sqlite:///x.db"
