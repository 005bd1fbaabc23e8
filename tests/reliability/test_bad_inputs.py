"""The bad-input corpus (`tests/data/bad/cases.json`) through the entry point that would meet it.

* `replay`: `marketpipe run --source replay --replay-path FILE`;
* `polygon`: the file served by the local Polygon-compatible server, `marketpipe run --source polygon`;
* `cli`: the arguments as given (symbols through the CLI flags).

Outcomes: `quarantine` (exit 0; the quarantine table holds exactly `reasons`; stored + quarantined =
rows in), `store` (exit 0; everything stored), `reject` (non-zero exit; the last stderr line is one
`marketpipe: error: …` containing `message_contains`; nothing written). Never a traceback.
"""

from __future__ import annotations

import json

import pytest

from tests.reliability.conftest import (
    BAD,
    Reply,
    all_bars,
    assert_no_duplicate_keys,
    assert_one_clean_line,
    open_current_stores,
    poly_path,
    serve_reference,
)

MANIFEST = json.loads((BAD / "cases.json").read_text())
DEFAULTS = MANIFEST["defaults"]
CASES = MANIFEST["cases"]


def test_corpus_is_big_enough_and_every_file_exists():
    assert len(CASES) >= 30
    for case in CASES:
        if "file" in case:
            assert (BAD / case["file"]).is_file(), case["file"]


def _args(case: dict) -> list[str]:
    if case["via"] == "cli":
        return list(case["args"])
    args = ["run", "--source", case["via"]]
    if case["via"] == "replay":
        args += ["--replay-path", str(BAD / case["file"])]
    for opt in ("symbols", "interval", "start", "end"):
        args += [f"--{opt}", case.get(opt, DEFAULTS[opt])]
    return args


def _serve(poly, case: dict) -> None:
    serve_reference(poly, ("AAPL",))
    path = poly_path("AAPL", DEFAULTS["start"], case.get("end", DEFAULTS["end"]))
    body = (BAD / case["file"]).read_text()
    poly.add(path, Reply(200, body, content_type=case.get("content_type", "application/json")))
    for route, file in case.get("pages", {}).items():
        poly.add(route, Reply(200, (BAD / file).read_text()))


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_bad_input(case, cli, poly, mp_env):
    if case["via"] == "polygon":
        _serve(poly, case)
    for _ in range(case.get("runs", 1)):
        res = cli(*_args(case))
        assert "Traceback" not in res.err, res.err

    stores = open_current_stores()
    try:
        bars = all_bars(stores, ["AAPL"])
        quarantine = stores.hot.read_quarantine()
    finally:
        stores.close()
    assert_no_duplicate_keys(bars)

    if case["outcome"] == "reject":
        assert res.code == case.get("exit", res.code) and res.code in (1, 2), (res.out, res.err)
        last = res.err.strip().splitlines()[-1]
        assert_one_clean_line(last)
        assert case["message_contains"] in last, last
        assert bars.empty and quarantine.empty  # rejected before any write
        return

    assert res.code == 0, res.err[-2000:]
    runs = case.get("runs", 1)
    reasons = sorted(quarantine["reason"])
    assert reasons == sorted(case.get("reasons", []) * runs)
    assert len(bars) == case["stored"]
    # rows in = rows stored + rows quarantined (per run; re-runs upsert the same keys)
    assert case["stored"] + len(reasons) // runs == case["rows_in"]
    if case["outcome"] == "store":
        assert quarantine.empty
