"""Input checks that run before anything starts (shared by the CLI and the Python API).

Each check raises `ConfigError` (bad input: CLI exit 2) or `ServiceUnavailable` (a store cannot be
reached: exit 1) with one line a user can act on. Nothing here opens a store for writing, creates
a file or a folder, or imports Prefect: `--dry-run` runs every check too.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from marketpipe.bars import INTERVALS, STORED_INTERVALS
from marketpipe.errors import ConfigError, ServiceUnavailable
from marketpipe.settings import Settings, mask_url

# sources whose adapter needs a key, and the setting that holds it
SOURCE_KEYS = {"polygon": ("polygon_api_key", "POLYGON_API_KEY")}


def check_interval(value: str, *, stored: bool = False, flag: str = "--interval") -> str:
    """`value` if it is a known interval (`stored=True` also accepts real-time `1s` … `30s`)."""
    allowed = STORED_INTERVALS if stored else INTERVALS
    if value not in allowed:
        shown = ", ".join(INTERVALS) + (", 1s … 30s" if stored else "")
        raise ConfigError(f"{flag}: {value!r} is not one of {shown}")
    return value


def check_date_order(start: date | None, end: date | None) -> None:
    if start is not None and end is not None and start > end:
        raise ConfigError(f"--start {start} is after --end {end}")


def check_sources(
    spec: str, settings: Settings, replay_path: str | None = None, *, local: bool = True
) -> list[str]:
    """The source names of `spec` ('polygon,yahoo'), each known and (when `local`: the run is in
    this process) with the keys and files it needs."""
    from marketpipe.providers import source_names

    try:
        names = source_names(spec or "")
    except ConfigError as exc:
        raise ConfigError(f"--source: {exc}") from None
    if not local:
        return names
    for name in names:
        if name in SOURCE_KEYS:
            field, env = SOURCE_KEYS[name]
            if getattr(settings, field, None) is None:
                raise ConfigError(
                    f"--source {name} needs an API key: set {env} (or store it in the "
                    f"marketpipe-{name} credentials block)"
                )
    if "replay" in names:
        if not replay_path:
            raise ConfigError("--source replay needs --replay-path FILE")
        check_file(replay_path, flag="--replay-path", what="replay file")
    return names


def check_file(path: str, *, flag: str = "FILE", what: str = "file") -> Path:
    """A local file that exists, is a file and is not empty."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{flag}: {what} not found: {path}")
    if p.is_dir():
        raise ConfigError(f"{flag}: {what} {path} cannot be read: it is a directory")
    if p.stat().st_size == 0:
        raise ConfigError(f"{flag}: {what} {path} cannot be read: it is empty")
    return p


def check_stores_reachable(settings: Settings) -> None:
    """The hot store answers and the lake's location is usable; creates and migrates nothing."""
    _check_hot(settings)
    _check_cold(settings)


def require_existing_data(settings: Settings) -> None:
    """Reads must not conjure an empty store: the embedded data folder (or SQLite file) must exist."""
    url = settings.hot_url_resolved
    if settings.hot_url is None and not Path(settings.data_dir).is_dir():
        raise ConfigError(
            f"no data directory {settings.data_dir} (MARKETPIPE_DATA_DIR): nothing is stored "
            "there yet; run `marketpipe run` first or point MARKETPIPE_DATA_DIR at your data"
        )
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        cold = settings.cold_url_resolved
        lake_missing = "://" not in cold and not Path(cold.removeprefix("file:")).exists()
        if not path.is_file() and lake_missing:  # a lake-only data set (e.g. migrated) is data
            raise ConfigError(
                f"no hot store at {path} (MARKETPIPE_HOT_URL) and no lake at {cold} "
                "(MARKETPIPE_COLD_URL): nothing is stored there yet"
            )


def _check_hot(settings: Settings) -> None:
    url = settings.hot_url_resolved
    if url.startswith("sqlite:///"):
        _check_local_parent(Path(url.removeprefix("sqlite:///")), "hot store")
        return
    import sqlalchemy as sa

    engine = sa.create_engine(url, connect_args={"connect_timeout": 5}, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("select 1")
    except sa.exc.DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        raise ServiceUnavailable(
            f"hot store {mask_url(url)} is not reachable: {mask_url(reason)}"
        ) from None
    finally:
        engine.dispose()


def _check_cold(settings: Settings) -> None:
    url = settings.cold_url_resolved
    if url.startswith("s3://"):
        import s3fs

        bucket = url.removeprefix("s3://").split("/", 1)[0]
        from marketpipe.settings import bound_s3fs_retries

        fs = s3fs.S3FileSystem(skip_instance_cache=True, **settings.s3fs_options())
        bound_s3fs_retries(fs)  # one bounded attempt: a dead endpoint answers within the timeouts
        try:
            fs.ls(bucket, refresh=True)
        except FileNotFoundError:
            raise ConfigError(f"cold lake {url}: bucket {bucket!r} does not exist") from None
        except Exception as exc:  # botocore/aiohttp errors: endpoint down, refused, denied
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise ServiceUnavailable(f"cold lake {url} is not reachable: {first}") from None
        return
    if url.startswith("memory://"):
        return
    _check_local_parent(Path(url.removeprefix("file://").removeprefix("local://")), "cold lake")


def _check_local_parent(path: Path, what: str) -> None:
    """`path` exists, or its nearest existing ancestor is a writable folder."""
    import os

    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir() and probe != path:
        raise ConfigError(f"{what} {path}: {probe} is a file, not a folder")
    if not os.access(probe, os.W_OK):
        raise ConfigError(f"{what} {path}: {probe} is not writable")
