"""Which alerts a health check raises (Prefect-free). `flows/health.py` emits them as Prefect
events; `make deploy`'s automations (`deployments/alerting.py`) send them to a notification block.

Events (resource ids are stable, so an automation can group by them):
- `marketpipe.alert.stale`     a symbol's daily data is missing after the due session's deadline
                               (close + `freshness_deadline_min`; early closes and holidays move it)
- `marketpipe.alert.threshold` a live figure is beyond its setting: `latency_max_ms`,
                               `throughput_min_per_s`, `error_rate_max`, or the score below
                               `health_score_min`
Failed runs need no event of ours: Prefect emits `prefect.flow-run.Failed` / `.Crashed`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STALE = "marketpipe.alert.stale"
THRESHOLD = "marketpipe.alert.threshold"


@dataclass(frozen=True)
class Alert:
    event: str
    resource_id: str
    message: str
    payload: dict = field(default_factory=dict)


def evaluate(health, thresholds, live=None, stale_symbols: list[str] = ()) -> list[Alert]:
    """Alerts for a `Health` (+ optional `LiveStages`); `stale_symbols` past their deadline."""
    out: list[Alert] = []
    if stale_symbols:
        due = health.due_session
        out.append(
            Alert(
                STALE,
                "marketpipe.freshness",
                f"{len(stale_symbols)} symbols have no bar for the {due} session after its "
                f"deadline: {', '.join(stale_symbols[:20])}",
                {"due_session": due, "symbols": list(stale_symbols)},
            )
        )
    if health.score < thresholds.health_score_min:
        out.append(
            _threshold("health_score", health.score, thresholds.health_score_min, health.line())
        )
    if live is not None:
        lat = live.worst_latency_ms()
        if lat is not None and lat > thresholds.latency_max_ms:
            out.append(
                _threshold(
                    "latency_ms",
                    lat,
                    thresholds.latency_max_ms,
                    f"latency {lat:.0f} ms > {thresholds.latency_max_ms:.0f} ms",
                )
            )
        floor = thresholds.throughput_min_per_s
        for s in live.stages:
            if floor and 0 < s.throughput_per_s < floor:
                out.append(
                    _threshold(
                        "throughput_per_s",
                        s.throughput_per_s,
                        floor,
                        f"{s.job}/{s.stage} at {s.throughput_per_s}/s < {floor}/s",
                    )
                )
        if live.batches and live.errors / live.batches > thresholds.error_rate_max:
            rate = live.errors / live.batches
            out.append(
                _threshold(
                    "error_rate",
                    rate,
                    thresholds.error_rate_max,
                    f"error rate {rate:.1%} > {thresholds.error_rate_max:.1%}",
                )
            )
    return out


def _threshold(name: str, value: float, limit: float, message: str) -> Alert:
    return Alert(
        THRESHOLD,
        f"marketpipe.threshold.{name}",
        message,
        {"threshold": name, "value": value, "limit": limit},
    )
