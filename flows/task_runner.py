"""Choose a flow's task runner from the `task_runner` setting (`MARKETPIPE_TASK_RUNNER`), read
when the flow starts (never at import).

    unset | threads | threads:N   → ThreadPoolTaskRunner(max_workers=N)        (default N = 4)
    dask | dask:N                 → DaskTaskRunner on a local cluster of N worker processes
    dask:N:inproc                 → the same with threads in this process (processes=False):
                                    no pickling of task arguments, no process start-up cost
    dask:tcp://host:8786          → DaskTaskRunner(address=…) on an existing Dask cluster

Use: `ingestion.with_options(task_runner=task_runner_from_env())(…)`. With worker processes,
task arguments travel by pickle (even in-process, Dask serialises them): an open `SqlHotStore`
is sent as its URL and reopened on the worker (`enable_store_pickling`); prefer passing settings.
"""

from __future__ import annotations

from marketpipe.errors import ConfigError

ENV = "MARKETPIPE_TASK_RUNNER"
DEFAULT_THREADS = 4


def _count(text: str, spec: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1 or n > 512:
        raise ConfigError(f"{ENV}: {spec!r} needs a worker count between 1 and 512")
    return n


def task_runner_from_env(spec: str | None = None, default_threads: int = DEFAULT_THREADS):
    """The task runner described by `spec` (default: the `task_runner` setting, read now).

    `threads` without a count uses `default_threads`.
    """
    from prefect.task_runners import ThreadPoolTaskRunner

    if spec is None:
        from marketpipe.settings import load_settings

        spec = load_settings().task_runner
    spec = spec.strip()
    kind, _, rest = spec.partition(":")
    kind = kind.lower()
    if kind in ("", "threads", "thread"):
        return ThreadPoolTaskRunner(max_workers=_count(rest, spec) if rest else default_threads)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        enable_store_pickling()

        if rest.startswith(("tcp://", "tls://", "//")):
            return DaskTaskRunner(address=rest if "://" in rest else f"tcp:{rest}")
        count, _, mode = rest.partition(":")
        n = _count(count, spec) if count else 2
        if mode not in ("", "inproc", "processes"):
            raise ConfigError(f"{ENV}: {spec!r}: use dask:N, dask:N:inproc or dask:tcp://host:port")
        kwargs = {"n_workers": n, "processes": mode != "inproc"}
        if mode == "inproc":
            kwargs["threads_per_worker"] = 1
        return DaskTaskRunner(cluster_kwargs=kwargs)
    raise ConfigError(f"{ENV}: {spec!r} is not threads[:N], dask[:N[:inproc]] or dask:tcp://…")


def _reopen_hot_store(url: str):
    from marketpipe.storage.hot import SqlHotStore

    return SqlHotStore(url, migrate=False)


def _reduce_hot_store(store):
    return _reopen_hot_store, (store.url,)


def enable_store_pickling() -> None:
    """Let an open `SqlHotStore` travel to Dask workers as its URL (reopened there, no migration).

    Dask serialises every task's arguments, even with in-process workers; the store holds a
    SQLAlchemy engine, which does not pickle. Registered whenever a Dask runner is chosen.
    """
    import copyreg

    try:
        from marketpipe.storage.hot import SqlHotStore
    except ImportError:  # pragma: no cover - store module not installed
        return
    copyreg.pickle(SqlHotStore, _reduce_hot_store)
