"""Regenerate the bad-input corpus files (the expectations live in cases.json, edited by hand)."""

import json
from pathlib import Path

HERE = Path(__file__).parent
HEAD = "symbol,interval,ts,open,high,low,close,volume"
GOOD = [
    "AAPL,1d,2024-01-02T00:00:00Z,100,101,99,100.5,1000",
    "AAPL,1d,2024-01-03T00:00:00Z,100,101,99,100.5,1000",
]


def csv(name, *bad, good=GOOD, head=HEAD):
    (HERE / f"{name}.csv").write_text("\n".join([head, *good, *bad]) + "\n")


def row(ts="2024-01-04T00:00:00Z", o="100", h="101", l="99", c="100.5", v="1000", sym="AAPL"):  # noqa: E741
    return f"{sym},1d,{ts},{o},{h},{l},{c},{v}"


csv("replay_nan_price", row(o="NaN"))
csv("replay_inf_price", row(h="inf"))
csv("replay_negative_price", row(o="-5", l="-6"))
csv("replay_zero_price", row(c="0", l="0"))
csv("replay_negative_volume", row(v="-10"))
csv("replay_high_below_open", row(o="102"))
csv("replay_high_below_close", row(c="101.5"))
csv("replay_low_above_open", row(o="98.5"))
csv("replay_low_above_close", row(c="98"))
csv("replay_high_below_low", row(h="98", l="99.5", o="99", c="99"))
csv("replay_duplicate_key", row(ts="2024-01-03T00:00:00Z", o="100.2"))
csv("replay_future_timestamp", row(ts="2099-01-05T00:00:00Z"))
csv("replay_naive_timestamp", row(ts="2024-01-04 00:00:00"))
csv("replay_non_utc_timestamp", row(ts="2024-01-04T09:30:00-05:00"))
csv("replay_string_price", row(o="abc"))
csv("replay_missing_close", row(c=""))
csv("replay_bad_timestamp", row(ts="not-a-date"))
csv("replay_absurd_price", row(o="1e400"))
csv("replay_absurd_volume", row(v="1e300"))
csv(
    "replay_missing_columns", good=["AAPL,2024-01-02T00:00:00Z,100,101"], head="symbol,ts,open,high"
)
csv("replay_header_only", good=[])
(HERE / "replay_empty_file.csv").write_text("")
(HERE / "replay_binary_garbage.csv").write_bytes(b"\x00\xff\xfe\x00PK\x03\x04garbage\x00")


def agg(day_ms, **kw):
    r = {
        "t": day_ms,
        "o": 100.0,
        "h": 101.0,
        "l": 99.0,
        "c": 100.5,
        "v": 1000.0,
        "vw": 100.2,
        "n": 10,
    }
    r.update(kw)
    return r


# Polygon daily t: midnight America/New_York (EST = UTC-5) in ms
D2, D3, D4 = 1704171600000, 1704258000000, 1704344400000


def page(*rows, **extra):
    return {
        "ticker": "AAPL",
        "status": "OK",
        "results": list(rows),
        "resultsCount": len(rows),
        **extra,
    }


def pj(name, obj):
    (HERE / f"{name}.json").write_text(json.dumps(obj, indent=1))


pj("polygon_string_price", page(agg(D2), agg(D3), agg(D4, o="100.0")))
pj("polygon_missing_field", page(agg(D2), agg(D3), {k: v for k, v in agg(D4).items() if k != "c"}))
pj("polygon_negative_volume", page(agg(D2), agg(D3), agg(D4, v=-1.0)))
pj("polygon_high_below_low", page(agg(D2), agg(D3), agg(D4, h=98.0)))
pj("polygon_zero_price", page(agg(D2), agg(D3), agg(D4, o=0.0, l=0.0)))
pj("polygon_row_not_object", page(agg(D2), agg(D3), ["not", "a", "bar"]))
pj(
    "polygon_duplicate_across_pages",
    page(agg(D2), agg(D3), next_url="{base}/v2/aggs/ticker/AAPL/range/1/day/cursor/next?cursor=p2"),
)
pj("polygon_duplicate_across_pages.p2", page(agg(D3, c=100.7), agg(D4)))
pj("polygon_empty_page", page())
pj("polygon_results_not_list", {"status": "OK", "results": {"t": D2}})
pj("polygon_status_error_200", {"status": "ERROR", "error": "Unknown API Key"})
(HERE / "polygon_nan_price.json").write_text(
    json.dumps(page(agg(D2), agg(D3), agg(D4))).replace(
        '"o": 100.0, "h": 101.0, "l": 99.0, "c": 100.5, "v": 1000.0, "vw": 100.2, "n": 10}]',
        '"o": NaN, "h": 101.0, "l": 99.0, "c": 100.5, "v": 1000.0, "vw": 100.2, "n": 10}]',
    )
)
(HERE / "polygon_infinity_price.json").write_text(
    json.dumps(page(agg(D2), agg(D3), agg(D4))).replace(
        '"h": 101.0, "l": 99.0, "c": 100.5, "v": 1000.0, "vw": 100.2, "n": 10}]',
        '"h": Infinity, "l": 99.0, "c": 100.5, "v": 1000.0, "vw": 100.2, "n": 10}]',
    )
)
(HERE / "polygon_truncated.json").write_text(json.dumps(page(agg(D2), agg(D3)))[:80])
(HERE / "polygon_html_200.html").write_text(
    "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1></body></html>"
)
pj("polygon_absurd_trades", page(agg(D2), agg(D3), agg(D4, n=1e30, v=1e300)))
