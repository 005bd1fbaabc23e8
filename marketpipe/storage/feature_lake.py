"""Cold storage for processing output: `features/interval=…/symbol=…/year=…/part-0.parquet`.

Same layout rules as the bars lake (Hive partitions, percent-encoded symbols, one deterministic
file per partition, merge on `(symbol, interval, ts)` with new rows winning, staged write then
move), sharing its filesystem wrapper.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from marketpipe.storage.lake_fs import LakeFS
from marketpipe.storage.lake_paths import encode_symbol, validate_interval
from marketpipe.symbols import validate_symbol

FEATURES_DIR = "features"
_HIVE = pads.partitioning(
    pa.schema([("interval", pa.string()), ("symbol", pa.string()), ("year", pa.int32())]),
    flavor="hive",
)


def partition_dir(interval: str, symbol: str, year: int) -> str:
    validate_interval(interval)
    validate_symbol(symbol)
    return f"{FEATURES_DIR}/interval={interval}/symbol={encode_symbol(symbol)}/year={int(year):04d}"


class FeatureLake:
    """Feature rows older than the hot window, next to the bars lake."""

    def __init__(self, io: LakeFS):
        self.io = io

    def write(self, df: pd.DataFrame) -> int:
        """Merge feature rows into their partitions; returns rows written."""
        if df.empty:
            return 0
        frame = df.assign(year=df["ts"].dt.year)
        written = 0
        for (interval, symbol, year), part in frame.groupby(["interval", "symbol", "year"]):
            rel = f"{partition_dir(interval, symbol, year)}/part-0.parquet"
            new = part.drop(columns=["interval", "symbol", "year"])
            old = self._read_file(rel)
            if old is not None:
                new = pd.concat([old, new], ignore_index=True)
            new = new.drop_duplicates("ts", keep="last").sort_values("ts", kind="stable")
            table = pa.Table.from_pandas(new.reset_index(drop=True), preserve_index=False)
            if self.io.is_local:
                tmp = f"{self.io.new_tmp_dir()}/part-0.parquet"
                self.io.write_parquet(table, tmp)
                self.io.move(tmp, rel)
            else:  # one PUT: readers see the old object or the new one
                self.io.write_parquet(table, rel)
            written += len(part)
        return written

    def read(self, symbols: Iterable[str], interval: str, start=None, end=None) -> pd.DataFrame:
        """Feature rows with `start <= ts < end` for the symbols (empty frame when none)."""
        files = []
        for sym in symbols:
            base = partition_dir(interval, sym, 2000).rsplit("/year=", 1)[0]
            for name, kind, _ in self.io.list_dir(base):
                if kind == "directory" and name.startswith("year="):
                    rel = f"{base}/{name}/part-0.parquet"
                    if self.io.exists(rel):
                        files.append(rel)
        if not files:
            return pd.DataFrame()
        ds = pads.dataset(
            [self.io.abs(f) for f in files],
            format="parquet",
            filesystem=self.io.arrow_fs,
            partitioning=_HIVE,
            partition_base_dir=self.io.abs(FEATURES_DIR),
        )
        df = ds.to_table().to_pandas().drop(columns=["year"])
        df["symbol"] = df["symbol"].astype(str)
        df["interval"] = df["interval"].astype(str)
        if start is not None:
            df = df.loc[df["ts"] >= pd.Timestamp(start).tz_convert("UTC")]
        if end is not None:
            df = df.loc[df["ts"] < pd.Timestamp(end).tz_convert("UTC")]
        return df.sort_values(["symbol", "ts"]).reset_index(drop=True)

    def _read_file(self, rel: str) -> pd.DataFrame | None:
        if not self.io.exists(rel):
            return None
        with self.io.guard(f"reading {rel}"), self.io.fs.open(self.io.abs(rel), "rb") as fh:
            return pq.read_table(fh).to_pandas()
