"""Reading any bars file for `marketpipe validate`: CSV (optionally gzipped) or Parquet, including
the lake's own files, whose partition columns (`interval=1d/symbol=AAPL/year=2024`) live in the
path (Hive `key=value` folders, symbols percent-encoded) rather than in the file."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pandas as pd

from marketpipe.errors import ConfigError

PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"
ROW_COLUMN = "_row"  # 1-based data row number (the CSV header is not a row)


def partition_values(path: Path) -> dict[str, str]:
    """`key=value` folders of the path (innermost wins), values percent-decoded."""
    out: dict[str, str] = {}
    for part in path.resolve().parent.parts:
        if "=" in part:
            key, _, value = part.partition("=")
            if key.isidentifier():
                out[key] = unquote(value)
    return out


def read_bars_file(path_text: str) -> pd.DataFrame:
    """The file's rows with partition columns filled in from its path and a `_row` column.
    ConfigError (one line) for a missing, empty, binary or unreadable file."""
    path = Path(path_text)
    if not path.exists():
        raise ConfigError(f"no such file: {path_text}")
    if path.is_dir():
        raise ConfigError(f"{path_text} is a directory; give one CSV or Parquet file")
    if path.stat().st_size == 0:
        raise ConfigError(f"{path_text} is empty")
    with open(path, "rb") as fh:
        head = fh.read(8192)
    if head.startswith(PARQUET_MAGIC):
        frame = _read_parquet(path)
    else:
        compression = "gzip" if head.startswith(GZIP_MAGIC) else None
        if compression is None and (b"\x00" in head or not _is_text(head)):
            raise ConfigError(f"{path_text} is not a CSV or Parquet file (binary content)")
        frame = _read_csv(path, compression)
    if frame.empty:
        raise ConfigError(f"{path_text} has no rows")
    for key, value in partition_values(path).items():
        if key in ("interval", "symbol") and key not in frame.columns:
            frame[key] = value
    frame[ROW_COLUMN] = range(1, len(frame) + 1)
    return frame


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 4  # a multi-byte character cut at the 8 KiB boundary
    return True


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path, partitioning=None).to_pandas()
    except Exception as exc:  # ArrowInvalid, OSError: truncated or corrupt
        raise ConfigError(f"{path}: unreadable Parquet ({_first_line(exc)})") from None


def _read_csv(path: Path, compression: str | None) -> pd.DataFrame:
    try:
        return pd.read_csv(path, compression=compression, dtype={"symbol": "str"})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise ConfigError(f"{path}: not a readable CSV ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
