"""Pipeline health (Prefect-free): a 0–100 score with documented rules, and live stage figures.

Score = 100 − the penalties below (each capped at its weight), rounded; `healthy` when the score is
≥ `health_score_min`. A rule without data costs nothing and says so ("no data").

| rule | weight | penalty |
|---|---|---|
| freshness | 40 | 40 × stale symbols / symbols. A symbol is stale when its newest daily bar is older than the *due session*: the last XNYS session whose close + `freshness_deadline_min` has passed (early closes and holidays move it — `marketpipe.calendar`). |
| completeness | 20 | 20 × missing / expected daily bars over the last 20 sessions up to the due session, counted from each symbol's first bar in that window (gaps inside the history). |
| error rate | 20 | 20 × min(1, rate / `error_rate_max`); rate = failed / finished job runs among the last 20, or failed / total batches of the live stages. |
| latency | 10 | 10 when the worst live stage latency (mean per batch) or the real-time tick→commit p99 exceeds `latency_max_ms`. |
| drops | 10 | 10 × min(1, dropped / received ticks ÷ 1 %) of the last real-time session (or the live one). |

Live figures come from Prometheus samples (`marketpipe.metrics`): two scrapes `dt` seconds apart
give per-stage throughput (items/s), latency (mean seconds per batch), queue depth, error rate and
busy share (stage seconds per second); the *bottleneck* is the stage with the highest busy share.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta

import pandas as pd

WEIGHTS = {"freshness": 40, "completeness": 20, "error_rate": 20, "latency": 10, "drops": 10}
COMPLETENESS_SESSIONS = 20
RECENT_RUNS = 20
DROP_FULL_PENALTY = 0.01  # 1 % of ticks dropped costs the whole drops weight


@dataclass(frozen=True)
class Thresholds:
    latency_max_ms: float = 250.0
    throughput_min_per_s: float = 0.0
    error_rate_max: float = 0.05
    health_score_min: int = 80
    freshness_deadline_min: int = 120

    @classmethod
    def from_settings(cls, settings) -> Thresholds:
        return cls(**{k: getattr(settings, k) for k in cls.__dataclass_fields__})


@dataclass
class Health:
    score: int
    healthy: bool
    due_session: str | None
    penalties: dict[str, float] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    stale_symbols: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def line(self) -> str:
        state = "ok" if self.healthy else "UNHEALTHY"
        why = "; ".join(self.reasons) or "no penalties"
        return f"health {self.score}/100 {state} ({why})"


def due_session(now: pd.Timestamp, deadline_min: int, exchange: str = "XNYS") -> date:
    """The newest session whose data is due: its close + `deadline_min` is at or before `now`."""
    from marketpipe.calendar import last_closed_session

    return last_closed_session(pd.Timestamp(now) - timedelta(minutes=deadline_min), exchange)


def deadline_of(session: date, deadline_min: int, exchange: str = "XNYS") -> pd.Timestamp:
    """When the data of `session` is due (its real close, early closes included, + the deadline)."""
    from marketpipe.calendar import session_bounds

    return pd.Timestamp(session_bounds(session, exchange)[1]) + timedelta(minutes=deadline_min)


# ---------------------------------------------------------------- the score
def score(
    t: Thresholds,
    *,
    due: date | None = None,
    symbols: int = 0,
    stale: list[str] = (),
    expected_bars: int = 0,
    present_bars: int = 0,
    runs_finished: int = 0,
    runs_failed: int = 0,
    latency_ms: float | None = None,
    ticks: int = 0,
    drops: int = 0,
) -> Health:
    """Apply the rules of the module docstring to already-measured figures."""
    pen: dict[str, float] = {}
    why: list[str] = []
    if symbols:
        pen["freshness"] = WEIGHTS["freshness"] * len(stale) / symbols
        if stale:
            why.append(f"{len(stale)}/{symbols} symbols stale for {due} ({', '.join(stale[:5])})")
    if expected_bars:
        missing = max(0, expected_bars - present_bars)
        pen["completeness"] = WEIGHTS["completeness"] * missing / expected_bars
        if missing:
            why.append(f"{missing}/{expected_bars} daily bars missing")
    if runs_finished:
        rate = runs_failed / runs_finished
        pen["error_rate"] = WEIGHTS["error_rate"] * min(1.0, rate / max(t.error_rate_max, 1e-9))
        if runs_failed:
            why.append(f"error rate {rate:.1%} (max {t.error_rate_max:.1%})")
    if latency_ms is not None:
        over = latency_ms > t.latency_max_ms
        pen["latency"] = WEIGHTS["latency"] if over else 0.0
        if over:
            why.append(f"latency {latency_ms:.0f} ms > {t.latency_max_ms:.0f} ms")
    if ticks:
        frac = drops / ticks
        pen["drops"] = WEIGHTS["drops"] * min(1.0, frac / DROP_FULL_PENALTY)
        if drops:
            why.append(f"{drops} of {ticks} ticks dropped")
    for rule in WEIGHTS:
        if rule not in pen:
            pen[rule] = 0.0
    total = round(max(0.0, 100.0 - sum(pen.values())))
    return Health(
        score=int(total),
        healthy=total >= t.health_score_min,
        due_session=due.isoformat() if due else None,
        penalties={k: round(v, 1) for k, v in pen.items()},
        reasons=why,
        stale_symbols=list(stale),
    )


def store_health(stores, t: Thresholds, now: pd.Timestamp | None = None, live=None) -> Health:
    """The score from the stores: freshness and completeness of daily bars, recent job runs,
    the last real-time session's drops; `live` (a `LiveStages`) adds live latency/errors/drops."""
    from marketpipe.calendar import expected_bar_starts
    from marketpipe.status import newest_bars
    from marketpipe.storage.read import read_bars

    now = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    due = due_session(now, t.freshness_deadline_min)
    newest, _ = newest_bars(stores)
    daily = sorted(s for s, i in newest if i == "1d")
    stale = [s for s in daily if pd.Timestamp(newest[(s, "1d")]).date() < due]
    expected = present = 0
    if daily:
        start = due - timedelta(days=COMPLETENESS_SESSIONS * 7 // 5 + 10)
        want = expected_bar_starts("1d", start, due)[-COMPLETENESS_SESSIONS:]
        bars = read_bars(stores, daily, want[0].date(), due + timedelta(days=1), "1d")
        for _sym, ts in bars.groupby("symbol", observed=True)["ts"]:
            first = ts.min()
            expected += int((want >= first).sum())
            present += int(ts.isin(want).sum())
    jobs = stores.hot.recent_jobs(RECENT_RUNS)
    finished = [j for j in jobs if j.get("status") in ("success", "failed")]
    failed = sum(j["status"] == "failed" for j in finished)
    ticks = drops = 0
    last_rt = next((j for j in jobs if j.get("job") == "realtime" and j.get("counts")), None)
    if last_rt:
        ticks = int(last_rt["counts"].get("ticks_received") or 0)
        drops = int(last_rt["counts"].get("drops") or 0)
    latency, runs_finished, runs_failed = None, len(finished), failed
    if live is not None:
        latency = live.worst_latency_ms()
        if live.batches:
            runs_finished, runs_failed = live.batches, live.errors
        if live.ticks:
            ticks, drops = live.ticks, live.drops
    return score(
        t,
        due=due,
        symbols=len(daily),
        stale=stale,
        expected_bars=expected,
        present_bars=present,
        runs_finished=runs_finished,
        runs_failed=runs_failed,
        latency_ms=latency,
        ticks=ticks,
        drops=drops,
    )


def health_for_status(stores, settings, now: pd.Timestamp | None = None) -> dict:
    """What `marketpipe status` adds: the score from the stores, JSON-safe, with its one line."""
    h = store_health(stores, Thresholds.from_settings(settings), now=now)
    return h.to_dict() | {"line": h.line()}


# ---------------------------------------------------------------- live stages (from metrics)
Samples = dict[tuple[str, tuple], float]


@dataclass
class StageFigures:
    job: str
    stage: str
    throughput_per_s: float
    latency_ms: float | None
    queue: float | None
    error_rate: float
    busy: float  # stage seconds per wall second (> 1 when batches run in parallel)


@dataclass
class LiveStages:
    stages: list[StageFigures]
    active: dict[str, float]
    batches: int = 0
    errors: int = 0
    ticks: int = 0
    drops: int = 0
    tick_p99_ms: float | None = None

    @property
    def bottleneck(self) -> StageFigures | None:
        busy = [s for s in self.stages if s.busy > 0]
        return max(busy, key=lambda s: (s.busy, s.queue or 0)) if busy else None

    def worst_latency_ms(self) -> float | None:
        vals = [s.latency_ms for s in self.stages if s.latency_ms is not None]
        if self.tick_p99_ms is not None:
            vals.append(self.tick_p99_ms)
        return max(vals) if vals else None


def _sum(samples: Samples, name: str, **match) -> dict[tuple, float]:
    """{labels: value} of `name`, labels reduced to `match`'s keys + job/stage."""
    out: dict[tuple, float] = {}
    for (n, labels), v in samples.items():
        if n != name:
            continue
        d = dict(labels)
        if any(d.get(k) != v2 for k, v2 in match.items()):
            continue
        key = (d.get("job", ""), d.get("stage", ""))
        out[key] = out.get(key, 0.0) + v
    return out


def live_stages(prev: Samples, cur: Samples, dt: float) -> LiveStages:
    """Per-stage figures from two scrapes `dt` seconds apart."""
    dt = max(dt, 1e-6)

    def delta(name, **m):
        a, b = _sum(prev, name, **m), _sum(cur, name, **m)
        return {k: max(0.0, b[k] - a.get(k, 0.0)) for k in b}

    secs, count = delta("pipeline_stage_seconds_sum"), delta("pipeline_stage_seconds_count")
    items, errors = delta("pipeline_stage_items_total"), delta("pipeline_stage_errors_total")
    queue = _sum(cur, "pipeline_queue_depth")
    keys = sorted(set(secs) | set(items) | set(queue) | set(errors))
    stages = []
    for k in keys:
        n = count.get(k, 0.0)
        stages.append(
            StageFigures(
                job=k[0],
                stage=k[1],
                throughput_per_s=round(items.get(k, 0.0) / dt, 1),
                latency_ms=round(1000 * secs[k] / n, 1) if n and k in secs else None,
                queue=queue.get(k),
                error_rate=round(errors.get(k, 0.0) / n, 3) if n else 0.0,
                busy=round(secs.get(k, 0.0) / dt, 3),
            )
        )
    active = {
        dict(lb).get("job_name", ""): v for (n, lb), v in cur.items() if n == "pipeline_active_jobs"
    }
    ticks = delta("pipeline_ticks_total", outcome="received")
    drops = delta("pipeline_ticks_total", outcome="dropped")
    return LiveStages(
        stages=stages,
        active={k: v for k, v in active.items() if v},
        batches=int(sum(count.values())),
        errors=int(sum(errors.values())),
        ticks=int(sum(ticks.values())),
        drops=int(sum(drops.values())),
        tick_p99_ms=_hist_quantile(prev, cur, "pipeline_tick_to_commit_seconds", 0.99),
    )


def _hist_quantile(prev: Samples, cur: Samples, name: str, q: float) -> float | None:
    """The upper bucket bound holding quantile `q` of the observations between two scrapes (ms)."""
    buckets: dict[float, float] = {}
    for source, sign in ((cur, 1.0), (prev, -1.0)):
        for (n, labels), v in source.items():
            if n == f"{name}_bucket":
                le = float(dict(labels)["le"])
                buckets[le] = buckets.get(le, 0.0) + sign * v
    if not buckets or buckets.get(float("inf"), 0.0) <= 0:
        return None
    total = buckets[float("inf")]
    for le in sorted(buckets):
        if buckets[le] >= q * total:
            return None if le == float("inf") else round(le * 1000, 1)
    return None


def scrape(urls: list[str], timeout: float = 5.0) -> tuple[Samples, list[str]]:
    """Samples summed over every reachable `/metrics` URL (the `pid` label dropped), and the
    URLs that could not be read."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    out: Samples = {}
    down: list[str] = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                text = resp.read().decode()
        except OSError:
            down.append(url)
            continue
        for fam in text_string_to_metric_families(text):
            for smp in fam.samples:
                labels = tuple(sorted((k, v) for k, v in smp.labels.items() if k != "pid"))
                out[(smp.name, labels)] = out.get((smp.name, labels), 0.0) + smp.value
    return out, down
