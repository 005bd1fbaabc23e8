"""Where the Delta tables live and how delta-rs reaches them: URLs, storage options, errors.

`DeltaLocation(url, storage_options)` names the lake root (a local folder, `file://…` or
`s3://bucket/prefix`); each dataset is one Delta table under it (`{url}/bars`, `{url}/features`).
`storage_options` are the fsspec/s3fs options `Settings.storage_options` gives; they are mapped to
delta-rs (object_store) options here: endpoint, `AWS_ALLOW_HTTP` for an `http://` endpoint,
`conditional_put="etag"` so that concurrent commits on S3 are safe without a lock service, and
connect/read timeouts when the settings carry them.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from marketpipe.errors import MarketpipeError, ServiceUnavailable, StoreError
from marketpipe.settings import mask_url

T = TypeVar("T")
MIGRATING_MARKER = "_migrating"  # present while `marketpipe lake migrate` converts in place
_CONNECTION_WORDS = (
    "connection refused",
    "connect error",
    "error trying to connect",
    "timed out",
    "operation timed out",
    "dns error",
    "connection reset",
    "tcp connect",
    "error sending request",
)
_AWS_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION")


def delta_storage_options(url: str, fsspec_options: dict | None) -> dict[str, str]:
    """delta-rs options for `url` from the fsspec options the settings give (empty for local)."""
    if not url.startswith("s3://"):
        return {}
    opts = dict(fsspec_options or {})
    client = dict(opts.get("client_kwargs") or {})
    config = dict(opts.get("config_kwargs") or {})
    out: dict[str, str] = {"conditional_put": "etag"}
    endpoint = client.get("endpoint_url") or opts.get("endpoint_url")
    if endpoint:
        out["AWS_ENDPOINT_URL"] = str(endpoint)
        if str(endpoint).startswith("http://"):
            out["AWS_ALLOW_HTTP"] = "true"
    region = client.get("region_name") or os.environ.get("AWS_REGION")
    out["AWS_REGION"] = str(region or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    for name in _AWS_ENV[
        :3
    ]:  # s3fs reads these from the environment; so does delta-rs, kept explicit
        if os.environ.get(name):
            out[name] = os.environ[name]
    key, secret = opts.get("key"), opts.get("secret")
    if key and secret:
        out["AWS_ACCESS_KEY_ID"], out["AWS_SECRET_ACCESS_KEY"] = str(key), str(secret)
    for src, dst in (("connect_timeout", "connect_timeout"), ("read_timeout", "timeout")):
        value = config.get(src, opts.get(src))
        if value is not None:
            out[dst] = f"{float(value):g}s"
    return out


def is_connection_error(exc: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionError | TimeoutError):
            return True
        text = str(cur).lower()
        if any(w in text for w in _CONNECTION_WORDS):
            return True
        cur = cur.__cause__ or cur.__context__
    return False


def is_commit_conflict(exc: BaseException) -> bool:
    """A lost optimistic-concurrency race: re-read the table and run the operation again."""
    from deltalake.exceptions import CommitFailedError

    if isinstance(exc, CommitFailedError):
        return True
    text = str(exc).lower()
    if "concurrent" in text or "version already exists" in text or "conflict" in text:
        return True
    # delta-rs 1.6.6 re-parses a winning commit's predicate when checking a conflict, and its
    # own text of a predicate on the `interval` column (an SQL keyword) does not parse: the
    # commit was not made, a concurrent one was, so re-run it like any lost race
    return "sql parser error" in text


class DeltaLocation:
    """The lake root and the delta-rs options to reach it; `uri(dataset)` is a table URI."""

    def __init__(
        self, url: str, storage_options: dict | None = None, delta_options: dict | None = None
    ):
        url = str(url).rstrip("/")
        if url.startswith("file://"):
            url = url.removeprefix("file://")
        self.url = url
        self.is_local = "://" not in url
        if self.is_local:
            self.url = str(Path(url).absolute())
        self.fsspec_options = dict(storage_options or {})
        self.options = delta_storage_options(self.url, self.fsspec_options)
        if not self.is_local and delta_options:  # what Settings gives wins (timeouts, budget)
            self.options.update({k: str(v) for k, v in delta_options.items()})
        endpoint = self.options.get("AWS_ENDPOINT_URL")
        cfg = self.fsspec_options.get("config_kwargs") or {}
        where = [f"endpoint {mask_url(endpoint)}"] if endpoint else []
        where += [
            f"{name} timeout {cfg[key]:g} s"
            for name, key in (("connect", "connect_timeout"), ("read", "read_timeout"))
            if isinstance(cfg.get(key), int | float)
        ]
        self.display = mask_url(self.url) + (f" ({', '.join(where)})" if where else "")

    def uri(self, dataset: str) -> str:
        return f"{self.url}/{dataset}"

    @contextlib.contextmanager
    def guard(self, action: str) -> Iterator[None]:
        """Map connection failures raised inside the block to ServiceUnavailable (one line)."""
        try:
            yield
        except MarketpipeError:
            raise
        except Exception as exc:
            if is_connection_error(exc):
                raise ServiceUnavailable(
                    f"cold lake {self.display} unreachable while {action}: {type(exc).__name__}"
                ) from exc
            raise

    def fsspec(self):
        """(filesystem, root path) of the lake through fsspec (listing the old layout, markers)."""
        import fsspec

        from marketpipe.settings import bound_s3fs_retries

        with self.guard("opening the lake"):
            fs, root = fsspec.core.url_to_fs(self.url, **self.fsspec_options)
        bound_s3fs_retries(fs)  # one try per S3 call; the store task retries, on a budget
        return fs, root

    def exists(self, rel: str) -> bool:
        fs, root = self.fsspec()
        with self.guard(f"checking {rel}"):
            return fs.exists(f"{root.rstrip('/')}/{rel}")


def retry_conflicts(
    op: Callable[[], T], *, attempts: int = 40, base_s: float = 0.05, max_s: float = 2.0
) -> tuple[T, int]:
    """Run `op` until it commits; returns (result, conflicts retried). Exponential backoff with
    full jitter between attempts (writers that collided spread out)."""
    for n in range(attempts):
        try:
            return op(), n
        except Exception as exc:
            if not is_commit_conflict(exc) or n == attempts - 1:
                if is_commit_conflict(exc):
                    raise StoreError(
                        f"cold lake: commit still conflicting after {attempts} attempts"
                    ) from exc
                raise
            time.sleep(random.uniform(0, min(max_s, base_s * 2**n)))
    raise AssertionError("unreachable")  # pragma: no cover
