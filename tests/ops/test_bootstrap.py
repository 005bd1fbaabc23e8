"""Bootstrap against the real test Prefect server: everything exists, and a re-run changes nothing."""

from __future__ import annotations

import pytest

from deployments import bootstrap as bs
from marketpipe.settings import load_settings


@pytest.fixture
def ops_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("MARKETPIPE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("MARKETPIPE_HOT_URL", "postgresql+psycopg://mp:pa55word@127.0.0.1:5432/mp")
    monkeypatch.setenv("MARKETPIPE_COLD_URL", "s3://bucket/lake")
    monkeypatch.setenv("MARKETPIPE_S3_ENDPOINT_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("POLYGON_API_KEY", "pk-test-123")
    monkeypatch.setenv("MARKETPIPE_POLYGON_RATE_LIMIT", "5/min")
    return load_settings()


def _server_state(client) -> dict:
    from prefect.client.schemas.filters import BlockDocumentFilter  # noqa: F401

    docs = client.read_block_documents()
    return {
        "blocks": sorted((d.name, str(d.id)) for d in docs if d.name.startswith("marketpipe-")),
        "pools": sorted((p.name, str(p.id), p.type) for p in client.read_work_pools()),
        "limits": sorted(
            (g.name, str(g.id), g.limit, g.slot_decay_per_second)
            for g in client.read_global_concurrency_limits(limit=100)
        ),
        "automations": sorted((a.name, str(a.id)) for a in client.read_automations()),
    }


def test_provider_limit_is_derived_from_the_rate(ops_settings):
    assert bs.provider_limit(ops_settings, "polygon") == (5, 5 / 60)
    assert bs.provider_limit(ops_settings, "yahoo") == (60, 1.0)


def test_block_classes_are_registrable():
    names = {c.__name__ for c in bs.block_classes()}
    assert names == {"ProviderCredentials", "LakeSettings"}


def test_bootstrap_is_idempotent(prefect_server, ops_settings, capsys):
    from prefect.client.orchestration import get_client
    from prefect_sqlalchemy import SqlAlchemyConnector

    from blocks import LakeSettings, ProviderCredentials
    from blocks.hot import connector_url

    first = bs.bootstrap(ops_settings, deploy_flows=False)
    with get_client(sync_client=True) as client:
        state1 = _server_state(client)
    second = bs.bootstrap(ops_settings, deploy_flows=False)
    with get_client(sync_client=True) as client:
        state2 = _server_state(client)
        pool = client.read_work_pool("marketpipe")
        polygon = client.read_global_concurrency_limit_by_name("provider-polygon")
        zombie = client.read_automations_by_name(bs.ZOMBIE_AUTOMATION)

    assert state1 == state2
    assert first.blocks == second.blocks and first.limits == second.limits
    assert first.automations == second.automations and first.work_pool == second.work_pool
    assert set(first.blocks) == {"marketpipe-hot", "marketpipe-lake", "marketpipe-polygon"}
    assert pool.type == "process"
    assert (polygon.limit, polygon.slot_decay_per_second) == (5, pytest.approx(5 / 60))
    assert len(zombie) == 1
    trig = zombie[0].trigger
    assert trig.posture == "Proactive" and "prefect.flow-run.heartbeat" in trig.after
    assert zombie[0].actions[0].type == "change-flow-run-state"
    assert str(zombie[0].actions[0].state.value) == "CRASHED"

    hot = SqlAlchemyConnector.load("marketpipe-hot")
    assert hot.connection_info.password.get_secret_value() == "pa55word"
    assert "pa55word" not in repr(hot) and "pa55word" not in hot.model_dump_json()
    assert connector_url(hot).endswith("@127.0.0.1:5432/mp")
    creds = ProviderCredentials.load("marketpipe-polygon")
    assert creds.api_key.get_secret_value() == "pk-test-123"
    lake = LakeSettings.load("marketpipe-lake")
    assert lake.cold_url == "s3://bucket/lake"
    assert lake.storage_options() == {"client_kwargs": {"endpoint_url": "http://127.0.0.1:9000"}}

    # a changed rate updates the same limit in place
    changed = ops_settings.model_copy(update={"polygon_rate_limit": "10/min"})
    third = bs.bootstrap(changed, deploy_flows=False)
    assert third.limits == first.limits
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name("provider-polygon").limit == 10
    # without POLYGON_API_KEY a re-run keeps the key stored in the block
    no_key = ops_settings.model_copy(update={"polygon_api_key": None})
    assert bs.bootstrap(no_key, deploy_flows=False).blocks == first.blocks
    assert (
        ProviderCredentials.load("marketpipe-polygon").api_key.get_secret_value() == "pk-test-123"
    )
    bs.bootstrap(ops_settings, deploy_flows=False)

    printed = capsys.readouterr()
    assert "pa55word" not in printed.out + printed.err and "pk-test-123" not in printed.out


def test_bootstrap_command_prints_no_secrets(prefect_server, ops_settings, capsys):
    assert bs.main(["--no-deploy"]) == 0
    out = capsys.readouterr().out
    assert "block marketpipe-hot:" in out and "provider-polygon" in out
    assert "mp:***@127.0.0.1" in out  # the masked hot URL
    assert "pa55word" not in out and "pk-test-123" not in out
