"""Security: symbols are validated before SQL / paths / S3 keys, all SQL is parametrised, and
secrets (the Polygon key, the hot store password) never appear in anything marketpipe writes."""

from __future__ import annotations

import ast
import logging
import re
import uuid
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from marketpipe.errors import ConfigError
from marketpipe.storage.delta_lake import DeltaLake
from marketpipe.storage.hot import SqlHotStore
from tests.reliability.conftest import (
    POLY_KEY,
    ROOT,
    Reply,
    agg,
    assert_one_clean_line,
    poly_path,
    serve_reference,
)

EVIL_SYMBOLS = [
    "../x",
    "../../etc/passwd",
    "A;DROP TABLE bars",
    "x'); DROP TABLE bars;--",
    "AAPL/../../x",
    "ÄPFEL",
    "A" * 500,
    "",
    "AAPL\x00",
    "s3://other-bucket/key",
    "%2e%2e%2fx",
]


def _bar(symbol: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "symbol": symbol,
                "interval": "1d",
                "ts": pd.Timestamp("2024-01-02", tz="UTC"),
                "open": 1.0,
                "high": 2.0,
                "low": 0.5,
                "close": 1.5,
                "volume": 10.0,
                "source": "test",
            }
        ]
    )


# ---------------------------------------------------------------- symbols before SQL, paths, S3 keys
@pytest.mark.parametrize("symbol", EVIL_SYMBOLS)
def test_lake_rejects_unsafe_symbol_before_any_path(tmp_path, symbol):
    lake = DeltaLake(str(tmp_path / "lake"))
    with pytest.raises(ConfigError):
        lake.write_bars(_bar(symbol))
    assert not any(p.is_file() for p in tmp_path.rglob("*"))  # nothing written anywhere


@pytest.mark.parametrize("symbol", EVIL_SYMBOLS[:6])
def test_s3_lake_rejects_unsafe_symbol_before_any_key(s3_bucket, symbol):
    import s3fs

    url, opts = s3_bucket
    lake = DeltaLake(url, opts)
    with pytest.raises(ConfigError):
        lake.write_bars(_bar(symbol))
    fs = s3fs.S3FileSystem(**opts, skip_instance_cache=True)
    assert fs.find(url.removeprefix("s3://").split("/")[0]) == []


def test_unsafe_symbols_never_reach_sql_as_text(pg_url):
    store = SqlHotStore(pg_url)
    try:
        for symbol in EVIL_SYMBOLS[2:4]:
            with pytest.raises(ConfigError):
                store.upsert_bars(_bar(symbol))
            # reads bind the symbol as a parameter (or refuse it): the table survives
            try:
                assert store.read_bars([symbol], "1d", None, None).empty
            except ConfigError:
                pass
        # quarantine keeps an unsafe symbol verbatim, as a bound parameter
        q = _bar(EVIL_SYMBOLS[3]).assign(reason="bad_symbol", detail="x", payload="{}")
        store.write_quarantine(q)
        assert list(store.read_quarantine()["symbol"]) == [EVIL_SYMBOLS[3]]
        store.upsert_bars(_bar("AAPL"))
        assert store.count_bars() == 1  # `bars` still exists and works
    finally:
        store.dispose()


@pytest.mark.parametrize("symbol", ["../x", "A;DROP TABLE bars", "ÄPFEL", "A" * 500])
@pytest.mark.parametrize("command", ["read", "gaps", "backfill"])
def test_cli_symbol_arguments_are_validated(cli, command, symbol):
    args = [command, symbol] if command == "read" else [command, "--symbols", symbol]
    res = cli(*args, "--interval", "1d", "--start", "2024-01-02", "--end", "2024-01-05")
    assert res.code == 2
    assert_one_clean_line(res.err)
    assert "invalid symbol" in res.err


# ---------------------------------------------------------------- SQL is parametrised
SQL_WORDS = re.compile(
    r"\b(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|TRUNCATE|COPY|LOCK|GRANT)\b.*"
    r"|\b(select|insert into|delete from|update)\b.+\b(from|where|set|values)\b",
    re.S,
)
ALLOW = "sql: identifiers only"  # a comment on the line: the interpolated values are identifiers
SOURCE_DIRS = ("marketpipe", "flows", "tasks", "cli", "blocks", "deployments")


def _literal_text(node: ast.AST) -> str:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_literal_text(v) for v in node.values)
    if isinstance(node, ast.BinOp):
        return _literal_text(node.left) + _literal_text(node.right)
    return ""


def _sql_built_from_values(path: Path) -> list[str]:
    text = path.read_text()
    lines = text.splitlines()
    hits = []
    for node in ast.walk(ast.parse(text)):
        built = None
        if isinstance(node, ast.JoinedStr) and any(
            isinstance(v, ast.FormattedValue) for v in node.values
        ):
            built = node
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
            built = node
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "format"
        ):
            built = node.func.value
        if built is None or not SQL_WORDS.search(_literal_text(built)):
            continue
        line = lines[node.lineno - 1]
        prev = lines[node.lineno - 2] if node.lineno > 1 else ""
        if ALLOW in line or ALLOW in prev:
            continue
        hits.append(f"{path.relative_to(ROOT)}:{node.lineno}: {line.strip()}")
    return hits


def test_no_sql_is_built_from_values_by_string_formatting():
    files = [p for d in SOURCE_DIRS if (ROOT / d).is_dir() for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 20
    hits = [h for f in files for h in _sql_built_from_values(f)]
    assert not hits, "SQL built with f-strings/%/.format/+:\n" + "\n".join(hits)


def test_the_sql_scanner_catches_what_it_should(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        'sym = "x"\n'
        "a = f\"SELECT * FROM bars WHERE symbol = '{sym}'\"\n"
        "b = \"DELETE FROM bars WHERE symbol = '%s'\" % sym\n"
        'c = "select * from bars where symbol = {}".format(sym)\n'
        'd = f"DROP TABLE {sym}"  # sql: identifiers only\n'
    )
    hits = []
    orig_root = globals()["ROOT"]
    try:
        globals()["ROOT"] = tmp_path
        hits = _sql_built_from_values(bad)
    finally:
        globals()["ROOT"] = orig_root
    assert [h.split(":")[1] for h in hits] == ["2", "3", "4"]


# ---------------------------------------------------------------- secrets
PG_PASSWORD = "pw_SENTINEL_4d2b8e91"
# a password with an unencoded `@`: each half must stay hidden (a half-masked URL showed the tail)
PG_PASSWORD_AT = "pw_SENTINEL_4d2b@tail_SENTINEL_77c1"
SECRETS = (POLY_KEY, PG_PASSWORD, *PG_PASSWORD_AT.split("@"))
# how the password reaches marketpipe: in the user part, as a `?password=` query parameter, or in
# the user part with an unencoded `@`
URL_SHAPES = ("userinfo", "query", "unencoded-at")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:
            text = str(record.msg)
        if record.exc_info:
            text += logging.Formatter().formatException(record.exc_info)
        self.texts.append(text)


@pytest.fixture(params=URL_SHAPES)
def secret_pg(request, pg_url, pg_admin_url):
    """The test database owned by a role that has a recognisable password, and the hot-store URL
    that carries the password in one of `URL_SHAPES`."""
    role = f"mp_sec_{uuid.uuid4().hex[:8]}"
    dbname = pg_url.rsplit("/", 1)[1]
    password = PG_PASSWORD_AT if request.param == "unencoded-at" else PG_PASSWORD
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")  # test setup only
        conn.execute(f'ALTER DATABASE "{dbname}" OWNER TO {role}')
    where = f"127.0.0.1:5432/{dbname}"
    url = {
        "userinfo": f"postgresql+psycopg://{role}:{password}@{where}",
        "query": f"postgresql+psycopg://{role}@{where}?password={password}",
        "unencoded-at": f"postgresql+psycopg://{role}:{password}@{where}",
    }[request.param]
    yield url, dbname
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f"DROP ROLE IF EXISTS {role}")


def _hot_store_text(pg_admin_url: str, dbname: str) -> str:
    url = pg_admin_url.rsplit("/", 1)[0] + "/" + dbname
    out = []
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "select table_name from information_schema.tables where table_schema = 'public'"
        ).fetchall()
        assert {"bars", "quarantine", "job_runs"} <= {t for (t,) in tables}
        for (table,) in tables:
            ident = psycopg.sql.Identifier(table)
            rows = conn.execute(psycopg.sql.SQL("select t::text from {} t").format(ident))
            out.extend(r[0] for r in rows.fetchall())
    return "\n".join(out)


def _prefect_text(since: pd.Timestamp) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterStartTime,
        LogFilter,
        LogFilterFlowRunId,
    )

    out = []
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=since))
        )
        assert runs, "no flow runs recorded"
        ids = [r.id for r in runs]
        for r in runs:
            out.append(r.model_dump_json())
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        out.extend(log.message for log in logs)
        for tr in client.read_task_runs(
            flow_run_filter=FlowRunFilter(id={"any_": ids}),
        ):
            out.append(tr.model_dump_json())
        out.extend(a.model_dump_json() for a in client.read_artifacts())
    return "\n".join(out)


def test_secrets_never_written_anywhere(cli, poly, mp_env, secret_pg, pg_admin_url, tmp_path):
    url, dbname = secret_pg
    mp_env.setenv("MARKETPIPE_HOT_URL", url)
    since = pd.Timestamp.now(tz="UTC") - pd.Timedelta(seconds=1)
    collect = _Collect()
    names = ("", "prefect", "prefect.flow_runs", "prefect.task_runs", "marketpipe", "flows")
    loggers = [logging.getLogger(n) for n in names]
    for lg in loggers:
        lg.addHandler(collect)
    outputs: list[str] = []
    try:
        serve_reference(poly, ("AAPL", "MSFT", "SPY"))
        days = ("2024-01-02", "2024-01-05")
        # 1. a good run (one bad row, so the quarantine holds a payload)
        page = {"status": "OK", "results": [agg("2024-01-02"), agg("2024-01-03", h=90.0)]}
        poly.add_json(poly_path("AAPL", *days), page)
        # 2. the vendor echoes the key in a 401 body
        poly.add(
            poly_path("MSFT", *days),
            Reply(401, {"status": "ERROR", "error": f"Unknown API Key {POLY_KEY}"}),
        )
        # 3. a 5xx whose body carries the key as a query parameter, until retries run out
        poly.add(poly_path("SPY", *days), Reply(503, f"upstream failed: /x?apiKey={POLY_KEY}"))
        runs = [
            [
                "run",
                "--source",
                "polygon",
                "--symbols",
                "AAPL",
                "--start",
                days[0],
                "--end",
                days[1],
            ],
            [
                "run",
                "--source",
                "polygon",
                "--symbols",
                "MSFT",
                "--start",
                days[0],
                "--end",
                days[1],
            ],
            [
                "run",
                "--source",
                "polygon",
                "--symbols",
                "SPY",
                "--start",
                days[0],
                "--end",
                days[1],
            ],
            ["run", "--dry-run", "--source", "polygon", "--symbols", "AAPL"],
            ["status"],
            ["status", "--json"],
            [
                "--debug",
                "run",
                "--source",
                "polygon",
                "--symbols",
                "MSFT",
                "--start",
                days[0],
                "--end",
                days[1],
            ],
        ]
        codes = []
        for args in runs:
            res = cli(*args)
            codes.append(res.code)
            outputs += [res.out, res.err]
        assert codes == [0, 1, 1, 0, 1, 1, 1], (codes, outputs)  # status: 2024 data is stale
        assert "hot store: postgresql+psycopg://" in outputs[0]
        assert "***" in outputs[0] and "127.0.0.1:5432" in outputs[0]
        assert '"hot": "postgresql+psycopg://' in outputs[10] and "***" in outputs[10]
        # 4. the hot store unreachable: the error names the URL with the password masked
        mp_env.setenv("MARKETPIPE_HOT_URL", url.replace(":5432/", ":1/"))
        res = cli("run", "--source", "polygon", "--symbols", "AAPL")
        assert res.code == 1 and "***" in res.err and "127.0.0.1:1" in res.err, res.err
        outputs += [res.out, res.err]
    finally:
        for lg in loggers:
            lg.removeHandler(collect)

    where = {
        "stdout/stderr": "\n".join(outputs),
        # Prefect's run loggers may bypass handlers added here; their records are checked on
        # stderr (console handler) and through the Prefect API (flow-run logs) below
        "log records": "\n".join(collect.texts) or "(none captured)",
        "hot store tables": _hot_store_text(pg_admin_url, dbname),
        "prefect runs/logs/artifacts": _prefect_text(since),
        "lake files": "\n".join(
            p.read_bytes().decode("latin-1") for p in Path(tmp_path).rglob("*") if p.is_file()
        ),
        "request urls": "\n".join(s.path for s in poly.seen),
    }
    assert "Unknown API Key ***" in where["stdout/stderr"]  # the message survived, redacted
    assert "Unknown API Key ***" in where["prefect runs/logs/artifacts"]
    for name, text in where.items():
        assert text, name
        for secret in SECRETS:
            assert secret not in text, f"{secret[:12]}… leaked into {name}"
    # the key did reach the vendor, in the Authorization header only
    assert all(s.headers.get("Authorization") == f"Bearer {POLY_KEY}" for s in poly.seen)


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql+psycopg://mp@127.0.0.1:5432/db?password={PG_PASSWORD}",
        f"postgresql+psycopg://mp:{PG_PASSWORD}@127.0.0.1:5432/db",
    ],
)
def test_hot_store_block_keeps_the_password_secret(url):
    """`make deploy` saves the hot store as a block: the password (also a `?password=` one) is a
    SecretStr there, never plain text in the block document the Prefect server stores."""
    from blocks.hot import connector_url, hot_store_connector

    block = hot_store_connector(url)
    assert PG_PASSWORD not in block.model_dump_json()
    assert PG_PASSWORD not in repr(block)
    assert block.connection_info.password.get_secret_value() == PG_PASSWORD
    assert "password" not in (block.connection_info.query or {})
    import sqlalchemy as sa

    assert sa.make_url(connector_url(block)).password == PG_PASSWORD
