import pytest

from marketpipe.errors import ConfigError
from marketpipe.settings import bound_s3fs_retries, load_settings, mask_url, parse_rate


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


# ---------------------------------------------------------------- 16.6 secrets in URLs
SECRET_URLS = [
    # (URL as a user writes it, the secret text that must never be shown)
    ("postgresql+psycopg://bob:s3cretPW@db:5432/mp", "s3cretPW"),
    ("postgresql+psycopg://postgres@db/mp?password=s3cretPW", "s3cretPW"),
    ("postgresql+psycopg://postgres@db/mp?sslmode=require&PASSWORD=s3cretPW", "s3cretPW"),
    ("postgresql+psycopg://postgres@db/mp?sslpassword=s3cretPW&application_name=x", "s3cretPW"),
    ("postgresql://u@db/mp?token=s3cretPW&api_key=s3cretPW&secret=s3cretPW", "s3cretPW"),
    ("postgresql+psycopg://postgres:s3cret@PW_tail@db:5432/mp", "PW_tail"),  # unencoded @
    ("postgresql+psycopg://postgres:s3cret@PW_tail@db:5432/mp", "s3cret"),
    ("postgresql+psycopg://postgres:s3c/ret@db/mp", "s3c/ret"),
    ("postgresql+psycopg://postgres:s3cr%40et@db/mp", "s3cr"),
]


@pytest.mark.parametrize(("url", "secret"), SECRET_URLS)
def test_mask_url_hides_every_password_shape(url, secret):
    from marketpipe.redact import mask_url as mask
    from marketpipe.redact import redact

    shown = mask(url)
    assert secret not in shown and "***" in shown, shown
    assert "db" in shown  # still says where it points
    text = redact(f'hot store unavailable at {url}: connection to "db" failed')
    assert secret not in text and "***" in text, text


@pytest.mark.parametrize(("url", "secret"), SECRET_URLS[:7])
def test_settings_never_show_a_url_password(monkeypatch, url, secret):
    monkeypatch.setenv("MARKETPIPE_HOT_URL", url)
    s = load_settings()
    assert secret not in s.hot_url_masked
    assert "***" in s.hot_url_masked


def test_unencoded_at_in_password_reaches_the_driver_as_one_password(monkeypatch):
    import sqlalchemy as sa

    monkeypatch.setenv("MARKETPIPE_HOT_URL", "postgresql://bob:pa@ss@db:5432/mp")
    url = sa.make_url(load_settings().hot_url_resolved)
    assert (url.username, url.password, url.host, url.port) == ("bob", "pa@ss", "db", 5432)


def test_redact_masks_key_value_pairs():
    from marketpipe.redact import redact

    text = redact("dsn host=db password=s3cret sslpassword='a b' user=bob; duplicate key value")
    assert "s3cret" not in text and "a b" not in text
    assert "host=db" in text and "user=bob" in text and "duplicate key value" in text


def test_mask_url_leaves_urls_without_secrets_alone():
    for url in ("sqlite:///x.db", "s3://bucket/lake", "http://127.0.0.1:9000", "/tmp/lake"):
        assert mask_url(url) == url


# ---------------------------------------------------------------- 16.7 cold URLs
@pytest.mark.parametrize(
    "value",
    [
        "s3://",
        "s3:///x",
        "s3://bucket/../x",
        "s3://bucket/a/../x",
        "s3://bucket//x",
        "s3://bucket/./x",
        "s3://bucket/%2e%2e/x",
        "s3://../x",
        "s3:",
        "s3:bucket/x",
    ],
)
def test_bad_cold_urls_are_refused_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv("MARKETPIPE_COLD_URL", value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    msg = str(err.value)
    assert msg.startswith("MARKETPIPE_COLD_URL: ") and "\n" not in msg, msg


@pytest.mark.parametrize(
    ("value", "resolved"),
    [
        ("s3://bucket", "s3://bucket"),
        ("s3://bucket/lake/", "s3://bucket/lake"),
        ("s3://my.bucket-1/a/b", "s3://my.bucket-1/a/b"),
        ("../data/lake", "../data/lake"),
        ("/tmp/lake/", "/tmp/lake"),
        ("file:///tmp/lake", "file:///tmp/lake"),
    ],
)
def test_good_cold_urls_are_kept(monkeypatch, value, resolved):
    monkeypatch.setenv("MARKETPIPE_COLD_URL", value)
    assert load_settings().cold_url_resolved == resolved


# ---------------------------------------------------------------- 16.10 rate limits
@pytest.mark.parametrize(
    "value",
    ["5/0s", "0/s", "99999999999999999999/s", "1/1000000000000h", "1/0min", "2000000/s", "1/25h"],
)
@pytest.mark.parametrize("var", ["MARKETPIPE_POLYGON_RATE_LIMIT", "MARKETPIPE_YAHOO_RATE_LIMIT"])
def test_unusable_rate_limits_are_refused_naming_the_variable(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    msg = str(err.value)
    assert msg.startswith(var + ": ") and "\n" not in msg, msg
    assert value in msg  # the bad text is shown back


@pytest.mark.parametrize(
    ("text", "expected"), [("1000000/s", (1_000_000, 1.0)), ("1/24h", (1, 86_400.0))]
)
def test_rate_limit_bounds_are_inclusive(text, expected):
    assert parse_rate(text) == expected


# ---------------------------------------------------------------- 16.8 S3 timeouts
def test_s3_timeouts_reach_s3fs_and_delta_rs(monkeypatch):
    import s3fs

    monkeypatch.setenv("MARKETPIPE_COLD_URL", "s3://bucket/lake")
    monkeypatch.setenv("MARKETPIPE_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("MARKETPIPE_S3_CONNECT_TIMEOUT_S", "2")
    monkeypatch.setenv("MARKETPIPE_S3_READ_TIMEOUT_S", "7.5")
    monkeypatch.setenv("MARKETPIPE_STORE_RETRY_BUDGET_S", "20")
    s = load_settings()
    assert s.storage_options == s.s3fs_options()
    fs = s3fs.S3FileSystem(**s.s3fs_options(), skip_instance_cache=True)
    bound_s3fs_retries(fs)
    assert fs.retries == 1
    cfg = fs.connect().meta.config  # the botocore client config s3fs built
    assert (cfg.connect_timeout, cfg.read_timeout) == (2.0, 7.5)
    assert cfg.retries["total_max_attempts"] == 1
    delta = s.delta_storage_options()
    assert delta["connect_timeout"] == "2000ms" and delta["timeout"] == "9500ms"
    assert delta["retry_timeout"] == "20000ms"
    assert delta["AWS_ENDPOINT_URL"] == "http://127.0.0.1:9" and delta["AWS_ALLOW_HTTP"] == "true"
    assert "timeouts connect 2 s, read 7.5 s, retry budget 20 s" in s.cold_url_masked


@pytest.mark.parametrize(
    ("var", "value"),
    [
        ("MARKETPIPE_S3_CONNECT_TIMEOUT_S", "0"),
        ("MARKETPIPE_S3_READ_TIMEOUT_S", "-1"),
        ("MARKETPIPE_STORE_RETRY_BUDGET_S", "abc"),
        ("MARKETPIPE_S3_ENDPOINT_URL", "127.0.0.1:9000"),
    ],
)
def test_bad_s3_bounds_are_refused(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value).startswith(var + ": ")


def test_redact_mapping_masks_secret_keys_and_urls():
    from marketpipe.redact import redact_mapping

    params = {
        "hot_url": "postgresql+psycopg://u:s3cretPW@db/mp",
        "polygon_api_key": "pk_s3cretPW",
        "nested": {"token": "s3cretPW", "symbols": ["AAPL"], "n": 3},
        "hot_days": 30,
    }
    shown = redact_mapping(params)
    assert "s3cretPW" not in repr(shown)
    assert shown["hot_days"] == 30 and shown["nested"]["symbols"] == ["AAPL"]
    assert shown["hot_url"] == "postgresql+psycopg://u:***@db/mp"
    assert params["nested"]["token"] == "s3cretPW"  # the input is left alone


def test_settings_repr_masks_the_hot_url(monkeypatch):
    monkeypatch.setenv("MARKETPIPE_HOT_URL", "postgresql+psycopg://u@db/mp?password=s3cretPW")
    s = load_settings()
    assert "s3cretPW" not in repr(s) and "s3cretPW" not in str(s)
    assert "s3cretPW" in s.hot_url_resolved  # the store still gets the real URL


def test_defaults_sources_sit_below_the_environment(monkeypatch):
    from marketpipe import settings as s

    monkeypatch.setattr(s, "_DEFAULTS_SOURCES", [])
    s.add_defaults_source(lambda: {"hot_days": 7, "cold_url": "/blocks/lake"})
    monkeypatch.delenv("MARKETPIPE_HOT_DAYS", raising=False)
    monkeypatch.setenv("MARKETPIPE_COLD_URL", "/env/lake")
    got = s.load_settings()
    assert got.hot_days == 7 and got.cold_url == "/env/lake"
    assert s.load_settings(hot_days=3).hot_days == 3
