"""Bar files as bounded batches of canonical bars: read once, columns projected, rows selected early.

`BarFile(path, filesystem)` opens a Parquet, CSV or CSV.gz file (local or any fsspec filesystem,
e.g. s3fs) and `batches(selection, …)` yields `FileBatch(bars, rejected, rows)` of at most
`batch_rows` rows each, so memory stays flat however large the file is. Parquet is read with
`pyarrow.dataset` one row group at a time (only the needed columns; the symbol, interval and
timestamp filters pushed down to row groups); CSV is streamed block by block with every column
read as text, so a bad value reaches the quarantine instead of failing the file.

Shapes (column names matched case-insensitively, spaces → `_`):
* canonical: `symbol, interval, ts, open, high, low, close, volume[, vwap, trades]`;
* the common download shape: `Date, Open, High, Low, Close[, Adj Close], Volume[, Ticker|Symbol]`
  (`Adj Close` is ignored: bars are raw);
* Polygon flat files (day and minute aggregates):
  `ticker, volume, open, close, high, low, window_start, transactions[, vwap]`, `window_start` in
  epoch nanoseconds; a daily row is the session of `window_start`'s New York date.
Without a symbol column the caller names the symbol (`--symbol`, or the file name's stem).

Timestamps: Parquet timestamp and date types are exact (naive means UTC). Text is ISO 8601 (naive
means UTC). Integers — or text made only of digits — are epoch values whose unit is detected from
the batch's median magnitude (`detect_epoch_unit`): below 1e11 seconds, below 1e14 milliseconds,
below 1e17 microseconds, else nanoseconds (each band covers 1973–5138 in its unit). A value outside
the detected unit's band (a mixed-unit file) goes to the quarantine as `malformed`; a timestamp
column that is neither time, text nor integer is refused with one line. Daily bars are stamped at
the session date's 00:00 UTC. A row whose timestamp or a price/volume cannot be parsed becomes a
`rejected` row (`malformed`, with the row as JSON); the contract checks the rest. Every row read is
either in `bars` or in `rejected`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import PurePosixPath

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from marketpipe.bars import BAR_COLUMNS, INTERVALS, TS_DTYPE, conform_bars, empty_bars
from marketpipe.calendar import EXCHANGE_TZ
from marketpipe.errors import ConfigError, ContractError
from marketpipe.input_columns import check_column_names
from marketpipe.providers._frames import REJECTED_COLUMNS, exchange_dates, rejected_frame
from marketpipe.stage_timer import StageTimer

BATCH_ROWS = 500_000  # rows per batch through validate → route → store (memory stays bounded)
REQUIRED = ("ts", "open", "high", "low", "close", "volume")
NUMERIC = ("open", "high", "low", "close", "volume", "vwap", "trades")
ALIASES = {
    "date": "ts",
    "datetime": "ts",
    "timestamp": "ts",
    "time": "ts",
    "window_start": "ts",
    "ticker": "symbol",
    "transactions": "trades",
}
IGNORED = ("adj_close", "source", "otc")
SUFFIXES = (".parquet", ".pq", ".csv", ".csv.gz", ".txt")
# epoch-value bands: the first unit whose limit exceeds |value| (see the module docstring)
EPOCH_UNITS: tuple[tuple[str, float, int], ...] = (
    ("s", 1e11, 1_000_000),
    ("ms", 1e14, 1_000),
    ("us", 1e17, 1),
    ("ns", 9.3e18, 0),  # 0: divide by 1000
)


@dataclass(frozen=True)
class Selection:
    """Which rows to keep: symbols (None: all), interval (None: the file's), inclusive dates."""

    symbols: tuple[str, ...] | None = None
    interval: str | None = None
    start: date | None = None
    end: date | None = None


@dataclass
class FileBatch:
    bars: pd.DataFrame  # canonical columns, not yet contract-checked
    rejected: pd.DataFrame  # REJECTED_COLUMNS, reason `malformed`
    rows: int  # rows read in this batch (= len(bars) + len(rejected))


def is_bar_file(name: str) -> bool:
    return name.lower().endswith(SUFFIXES)


def normalise_name(name: str) -> str:
    return str(name).strip().lower().replace(" ", "_")


def detect_epoch_unit(values: np.ndarray) -> str:
    """The unit of integer epoch values, from the median magnitude (module docstring's bands)."""
    finite = np.abs(values[np.isfinite(values)]) if values.dtype.kind == "f" else np.abs(values)
    if finite.size == 0:
        return "ns"
    median = float(np.median(finite))
    for unit, limit, _ in EPOCH_UNITS:
        if median < limit:
            return unit
    raise ContractError(f"epoch timestamps of magnitude {median:.3g} fit no unit (s/ms/us/ns)")


def epoch_to_us(values: np.ndarray, unit: str | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """(epoch µs int64, ok mask, unit) for integer epoch values; values off the unit's band → not ok."""
    unit = unit or detect_epoch_unit(values)
    bands = {u: (lim, mul) for u, lim, mul in EPOCH_UNITS}
    lower = {"s": 0.0, "ms": 1e11, "us": 1e14, "ns": 1e17}[unit]
    limit, mul = bands[unit]
    v = np.asarray(values)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(v) & (v >= lower) & (v < limit) if v.dtype.kind == "f" else None
        if ok is None:
            ok = (v >= lower) & (v < limit)
    iv = np.where(ok, v, 0).astype("int64")
    us = iv // 1000 if mul == 0 else iv * mul
    return us, ok, unit


class BarFile:
    """One bar file; `batches()` streams it as canonical batches."""

    def __init__(self, path: str, filesystem=None):
        self.path = str(path)
        self.name = PurePosixPath(self.path).name
        self.fs = filesystem
        low = self.name.lower()
        if low.endswith((".parquet", ".pq")):
            self.kind = "parquet"
        elif low.endswith((".csv", ".csv.gz", ".txt")):
            self.kind = "csv"
        else:
            raise ConfigError(f"{self.path}: use a .parquet, .csv or .csv.gz file")
        self._dataset = self._open()
        raw = list(self._dataset.schema.names)
        check_column_names(raw, self.path)  # duplicates / names colliding case-insensitively
        norm = [normalise_name(c) for c in raw]
        by_norm = dict(zip(norm, raw, strict=True))
        cols: dict[str, str] = {}
        for n, r in by_norm.items():
            target = ALIASES.get(n, n)
            if target in cols or n in IGNORED:
                continue
            if target != n and target in by_norm:
                continue  # a real `ts`/`symbol` column wins over its alias
            cols[target] = r
        self.polygon = "window_start" in by_norm and cols.get("ts") == by_norm["window_start"]
        self.columns = {
            k: v for k, v in cols.items() if k in (*REQUIRED, *NUMERIC, "symbol", "interval")
        }
        missing = [c for c in REQUIRED if c not in self.columns]
        if missing:
            shown = ["Date" if c == "ts" else c for c in missing]
            raise ContractError(
                f"{self.path} lacks column(s) {', '.join(shown)} "
                "(want Date/ts, Open, High, Low, Close, Volume)"
            )
        self.ts_type = self._dataset.schema.field(self.columns["ts"]).type

    def _open(self) -> ds.Dataset:
        try:
            if self.kind == "parquet":
                return ds.dataset(self.path, format="parquet", filesystem=self.fs)
            header = ds.dataset(self.path, format="csv", filesystem=self.fs).schema.names
            fmt = ds.CsvFileFormat(
                convert_options=_csv_text_options(header), read_options=_csv_read_options()
            )
            return ds.dataset(self.path, format=fmt, filesystem=self.fs)
        except FileNotFoundError:
            raise ConfigError(f"file not found: {self.path}") from None
        except (OSError, pa.ArrowException, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ContractError(f"{self.path} cannot be read: {first}") from None

    # ---------------------------------------------------------------- reading
    def symbols(self) -> list[str] | None:
        """Distinct symbols in the file (None when it has no symbol column)."""
        col = self.columns.get("symbol")
        if col is None:
            return None
        table = self._dataset.to_table(columns=[col])
        return sorted(pc.unique(_clean_symbols(table.column(0))).to_pylist())

    def batches(
        self,
        selection: Selection = Selection(),
        *,
        symbol: str | None = None,
        source: str = "import",
        batch_rows: int = BATCH_ROWS,
        timer: StageTimer | None = None,
        default_interval: str | None = None,
    ) -> Iterator[FileBatch]:
        """Canonical batches of at most `batch_rows` rows (selected rows only)."""
        timer = timer or StageTimer()
        if "symbol" not in self.columns and not symbol:
            raise ConfigError(f"{self.path} has no symbol column: pass --symbol")
        interval = selection.interval or default_interval
        if "interval" not in self.columns and interval is None:
            interval = self.guess_interval()
        pending: list[pa.RecordBatch] = []
        size = 0
        offset = 0
        it = self._record_batches(selection, batch_rows)
        while True:
            with timer.stage("fetch"):
                rb = next(it, None)
            if rb is not None and rb.num_rows:
                pending.append(rb)
                size += rb.num_rows
            if pending and (rb is None or size >= batch_rows):
                table = pa.Table.from_batches(pending)
                pending, size = [], 0
                for start in range(0, table.num_rows, batch_rows):
                    part = table.slice(start, batch_rows)
                    with timer.stage("parse"):
                        out = self._canonical(part, selection, symbol, interval, source, offset)
                    offset += part.num_rows
                    if out.rows:
                        yield out
            if rb is None:
                return

    def _record_batches(self, selection: Selection, batch_rows: int) -> Iterator[pa.RecordBatch]:
        """The file's selected rows, projected, in order. Parquet is read one row group at a time:
        a dataset scanner decodes a file's row groups ahead of a slow consumer (a 4M-bar file
        was held whole, 520 MB of Arrow, while SQLite wrote its first batch)."""
        columns = list(dict.fromkeys(self.columns.values()))
        flt = self._pushdown(selection)
        if self.kind != "parquet":
            scanner = self._dataset.scanner(
                columns=columns, filter=flt, batch_size=max(1, min(batch_rows, 1_000_000))
            )
            yield from scanner.to_batches()
            return
        for fragment in self._dataset.get_fragments(filter=flt):
            for group in fragment.split_by_row_group(filter=flt):  # statistics prune groups
                yield from group.to_table(columns=columns, filter=flt).to_batches()

    def guess_interval(self) -> str:
        """`1d` or `1m` from a Polygon path (`day_aggs`/`minute_aggs`), else from the data."""
        low = self.path.lower()
        if "day_aggs" in low or "/day" in low:
            return "1d"
        if "minute_aggs" in low or "/minute" in low:
            return "1m"
        head = self._dataset.head(2000, columns=[self.columns["ts"]])
        us, ok = self._parse_ts(head.column(0))
        ts = pd.to_datetime(us[ok], unit="us", utc=True)
        if len(ts) and (ts.tz_convert(EXCHANGE_TZ).normalize() == ts.tz_convert(EXCHANGE_TZ)).all():
            return "1d"
        if len(ts) and (ts.normalize() == ts).all():
            return "1d"
        return "1m"

    def _pushdown(self, sel: Selection):
        expr = None

        def add(e):
            nonlocal expr
            expr = e if expr is None else expr & e

        sym = self.columns.get("symbol")
        if sel.symbols and sym and self.kind == "parquet":
            add(ds.field(sym).isin(list(sel.symbols)))
        ivl = self.columns.get("interval")
        if sel.interval and ivl and self.kind == "parquet":
            add(ds.field(ivl) == sel.interval)
        if pa.types.is_timestamp(self.ts_type) and self.kind == "parquet":
            # one day of slack either side: the exact session-date filter runs after parsing
            tz = self.ts_type.tz
            if sel.start:
                lo = pd.Timestamp(sel.start) - pd.Timedelta(days=1)
                add(ds.field(self.columns["ts"]) >= pa.scalar(_as_ts(lo, tz), self.ts_type))
            if sel.end:
                hi = pd.Timestamp(sel.end) + pd.Timedelta(days=2)
                add(ds.field(self.columns["ts"]) < pa.scalar(_as_ts(hi, tz), self.ts_type))
        return expr

    def _parse_ts(self, arr) -> tuple[np.ndarray, np.ndarray]:
        """(epoch µs int64, ok mask) of a timestamp column in any accepted type."""
        arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
        t = arr.type
        if pa.types.is_timestamp(t) or pa.types.is_date(t):
            us = pc.cast(arr, pa.timestamp("us", tz=getattr(t, "tz", None)), safe=False)
            ok = pc.is_valid(us).to_numpy(zero_copy_only=False)
            return pc.fill_null(pc.cast(us, pa.int64()), 0).to_numpy(), ok
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            vals = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
            us, ok, _ = epoch_to_us(vals, "ns" if self.polygon else None)
            return us, ok & ~np.isnan(vals)
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            text = pc.utf8_trim_whitespace(arr)
            digits = pc.match_substring_regex(text, r"^-?\d+$")
            if pc.all(pc.fill_null(digits, False)).as_py() and len(text):
                vals = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
                us, ok, _ = epoch_to_us(vals, "ns" if self.polygon else None)
                return us, ok
            return _parse_text_ts(text)
        raise ContractError(f"{self.path}: timestamp column of type {t} is not a time")

    def _canonical(self, table, sel, symbol, interval, source, offset) -> FileBatch:
        n = table.num_rows
        c = self.columns
        # symbol and interval stay Arrow strings: no Python str per row (pandas takes them as is)
        if "symbol" in c:
            syms = _clean_symbols(table.column(c["symbol"]))
        else:
            syms = _constant(symbol.upper(), n)
        if "interval" in c:
            ivls = pc.cast(table.column(c["interval"]), pa.string())
            ivls = ivls.combine_chunks() if isinstance(ivls, pa.ChunkedArray) else ivls
        else:
            ivls = _constant(interval, n)
        keep = _mask(pc.is_in(ivls, value_set=pa.array(INTERVALS)))
        if sel.symbols:
            keep &= _mask(pc.is_in(syms, value_set=pa.array(list(sel.symbols))))
        if sel.interval:
            keep &= _mask(pc.equal(ivls, sel.interval))
        us, ts_ok = self._parse_ts(table.column(c["ts"]))
        nums = {k: _to_float(table.column(c[k])) for k in NUMERIC if k in c}
        # daily bars: the session date at 00:00 UTC (Polygon: the New York date of window_start)
        daily = _mask(pc.equal(ivls, "1d"))
        if daily.any():
            us = _daily(us, daily, self.polygon)
        ts = pd.to_datetime(us, unit="us", utc=True).astype(TS_DTYPE)
        in_range = _session_in_range(ts, daily, sel.start, sel.end) | ~ts_ok
        keep &= in_range
        bad = ~ts_ok
        for k in REQUIRED[1:]:
            bad |= np.isnan(nums[k])
        good = keep & ~bad
        rejected = self._rejected(table, keep & bad, ts_ok, nums, syms, ivls, ts, source, offset)
        if not good.any():
            return FileBatch(empty_bars(), rejected, len(rejected))
        take = pa.array(good)
        frame = {
            "symbol": syms.filter(take).to_pandas(),
            "interval": ivls.filter(take).to_pandas(),
            "ts": ts[good],
            **{k: v[good] for k, v in nums.items()},
            "source": source,
        }
        df = pd.DataFrame(frame)
        if "trades" in df:
            trades = pd.array(np.round(df["trades"].to_numpy()), dtype="Float64")
            trades[~(np.abs(df["trades"].to_numpy()) < 2.0**63)] = pd.NA
            df["trades"] = trades.astype("Int64")
        bars = conform_bars(df[[k for k in BAR_COLUMNS if k in df.columns]])
        return FileBatch(bars, rejected, len(bars) + len(rejected))

    def _rejected(self, table, mask, ts_ok, nums, syms, ivls, ts, source, offset) -> pd.DataFrame:
        if not mask.any():
            return rejected_frame()
        idx = np.flatnonzero(mask)
        raw = table.take(pa.array(idx)).to_pandas(types_mapper=None)
        # pandas escapes "/" as "\/" (valid JSON, but not how the payload reads elsewhere)
        text = raw.to_json(orient="records", lines=True, date_format="iso")
        payload = text.replace("\\/", "/").splitlines()
        problems = np.full(len(idx), "", dtype=object)
        for k in REQUIRED:
            miss = ~ts_ok[idx] if k == "ts" else np.isnan(nums[k][idx])
            problems = np.where(miss, problems + np.where(problems == "", "", ", ") + k, problems)
        rows = pd.Series(idx + offset + 1).astype(str).to_numpy()
        detail = "unparseable or missing " + problems + " (row " + rows + ")"
        take = pa.array(idx)
        out = pd.DataFrame(
            {
                "symbol": syms.take(take).to_numpy(zero_copy_only=False),
                "interval": ivls.take(take).to_numpy(zero_copy_only=False),
                "ts": ts[idx].where(ts_ok[idx]),
                "source": source,
                "reason": "malformed",
                "detail": detail,
                "payload": payload,
            }
        )
        return _rej(out)


def _rej(out: pd.DataFrame) -> pd.DataFrame:
    out["ts"] = pd.to_datetime(out["ts"], utc=True).astype(TS_DTYPE)
    for col in ("symbol", "interval", "source", "reason", "detail", "payload"):
        out[col] = out[col].astype("str")
    return out[list(REJECTED_COLUMNS)].reset_index(drop=True)


def _csv_read_options():
    import pyarrow.csv as pacsv

    return pacsv.ReadOptions(block_size=16 << 20)


def _csv_text_options(header: list[str]):
    import pyarrow.csv as pacsv

    return pacsv.ConvertOptions(
        column_types={h: pa.string() for h in header},
        strings_can_be_null=True,
        null_values=[""],
        quoted_strings_can_be_null=True,
    )


def _clean_symbols(arr) -> pa.Array:
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    return pc.utf8_upper(pc.utf8_trim_whitespace(pc.cast(arr, pa.string())))


def _constant(value: str, n: int) -> pa.Array:
    """`n` copies of one string, built in Arrow."""
    codes = pa.array(np.zeros(n, dtype="int8"))
    return pa.DictionaryArray.from_arrays(codes, pa.array([value])).cast(pa.string())


def _mask(arr) -> np.ndarray:
    """A boolean Arrow result as a numpy mask (null → False)."""
    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False)


def _to_float(arr) -> np.ndarray:
    """float64 values; unparseable text or nulls → NaN (text casts fast, falling back per batch)."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    try:
        out = pc.cast(arr, pa.float64())
        if out.null_count:
            out = pc.fill_null(out, np.nan)
        return out.to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        text = pd.Series(arr.to_numpy(zero_copy_only=False), dtype=object)
        return pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def _parse_text_ts(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """ISO 8601 text (naive = UTC): Arrow's parser first, pandas' mixed parser if Arrow refuses."""
    for target in (pa.timestamp("us", tz="UTC"), pa.timestamp("us")):
        try:
            us = pc.cast(text, target)
            ok = pc.is_valid(us).to_numpy(zero_copy_only=False)
            return pc.fill_null(pc.cast(us, pa.int64()), 0).to_numpy(), ok
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
    s = pd.Series(text.to_numpy(zero_copy_only=False), dtype=object)
    ts = pd.to_datetime(s, utc=True, errors="coerce", format="mixed")
    ok = ts.notna().to_numpy()
    us = ts.astype(TS_DTYPE).to_numpy(dtype="datetime64[us]").astype("int64")
    return np.where(ok, us, 0), ok


def _daily(us: np.ndarray, daily: np.ndarray, polygon: bool) -> np.ndarray:
    day = 86_400_000_000
    if polygon:
        local = pd.to_datetime(us, unit="us", utc=True).tz_convert(EXCHANGE_TZ)
        dates = local.tz_localize(None).normalize().to_numpy().astype("datetime64[us]")
        floored = dates.astype("int64")
    else:
        floored = (us // day) * day
    return np.where(daily, floored, us)


def _session_in_range(ts: pd.DatetimeIndex, daily, start, end) -> np.ndarray:
    if start is None and end is None:
        return np.ones(len(ts), dtype=bool)
    series = pd.Series(ts)
    d = np.where(
        daily,
        exchange_dates(series, "1d").to_numpy(),
        exchange_dates(series, "1m").to_numpy(),
    )
    ok = np.ones(len(ts), dtype=bool)
    if start is not None:
        ok &= d >= start
    if end is not None:
        ok &= d <= end
    return ok


def _as_ts(value: pd.Timestamp, tz: str | None):
    return value.tz_localize(tz) if tz else value
