"""ApiConfig, tokens, tenants and the loopback rule (no server needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from goalkeeper.api.config import ApiConfig, Tenant, check_exposure, is_loopback, mask_url, parse_tokens
from goalkeeper.errors import ConfigurationError


def test_parse_tokens() -> None:
    assert parse_tokens("tok1-abcdef=teamA, tok2-abcdef=team.B_2,") == {
        "tok1-abcdef": "teamA", "tok2-abcdef": "team.B_2",
    }  # fmt: skip
    for bad in (
        "no-equals-sign",
        "=teamA",
        "tok1-abcdef=",
        "short=teamA",
        "tok1-abcdef=a/b",
        "tok1-abcdef=-x",
    ):
        with pytest.raises(ConfigurationError):
            parse_tokens(bad)


def test_token_errors_do_not_echo_the_secret() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_tokens("sup3r-s3cret-value")
    assert "sup3r-s3cret-value" not in str(info.value)


def test_tenants_and_namespacing() -> None:
    config = ApiConfig(tokens={"tok1-abcdef": "teamA"})
    tenant = config.tenant_for("tok1-abcdef")
    assert tenant == Tenant("teamA", "teamA/")
    assert config.tenant_for("wrong-token") is None
    assert config.tenant_for(None) is None
    assert tenant.store_id("g") == "teamA/g"
    assert tenant.client_id("teamA/g") == "g"
    assert tenant.owns("teamA/g")
    assert not tenant.owns("teamAB/g")
    assert not tenant.owns("teamB/g")
    assert tenant.max_goal_id == 256 - len("teamA/")
    open_config = ApiConfig()
    assert open_config.tenant_for(None) == Tenant("default", "")
    assert not open_config.auth_required


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("0.0.0.0", False), ("::", False), ("192.168.1.4", False), ("example.com", False)],
)  # fmt: skip
def test_exposure_rule(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    if loopback:
        check_exposure(host, ApiConfig())
    else:
        with pytest.raises(ConfigurationError, match="without authentication"):
            check_exposure(host, ApiConfig())
    check_exposure(host, ApiConfig(tokens={"tok1-abcdef": "teamA"}))


def test_from_env() -> None:
    config = ApiConfig.from_env(
        {
            "GOALKEEPER_STORE": "memory://",
            "GOALKEEPER_BUS": "memory://",
            "GOALKEEPER_TOKENS": "tok1-abcdef=teamA",
            "GOALKEEPER_MAX_BODY_BYTES": "4096",
            "GOALKEEPER_MAX_BATCH_EVENTS": "10",
            "GOALKEEPER_COMMIT_WAIT": "0.5",
        }
    )
    assert config.store_url == "memory://"
    assert config.max_body_bytes == 4096
    assert config.max_batch_events == 10
    assert config.commit_wait == 0.5
    assert dict(config.tokens) == {"tok1-abcdef": "teamA"}
    assert ApiConfig.from_env({}) == ApiConfig()
    with pytest.raises(ConfigurationError, match="GOALKEEPER_MAX_BODY_BYTES"):
        ApiConfig.from_env({"GOALKEEPER_MAX_BODY_BYTES": "big"})


@pytest.mark.parametrize(
    "kwargs",
    [{"store_url": "goalkeeper.db"}, {"bus_url": "nope"}, {"max_body_bytes": 0}, {"max_batch_events": True},
     {"commit_wait": 0}, {"heartbeat": -1}, {"tokens": {"x": "teamA"}}],
)  # fmt: skip
def test_bad_config(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        ApiConfig(**kwargs)  # type: ignore[arg-type]


def test_bus_url_follows_the_store(tmp_path: Path) -> None:
    assert ApiConfig(store_url=f"sqlite:///{tmp_path}/a.db").resolved_bus_url() == f"memory://{tmp_path}/a.db"
    relative = ApiConfig(store_url="sqlite:///goalkeeper.db").resolved_bus_url()
    assert relative == "memory://" + str(Path("goalkeeper.db").resolve())
    assert ApiConfig(store_url="redis://localhost/0").resolved_bus_url() == "memory://"
    assert ApiConfig(store_url="memory://", bus_url="nats://h:4222").resolved_bus_url() == "nats://h:4222"


def test_mask_url() -> None:
    assert mask_url("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
    assert mask_url("sqlite:///x.db") == "sqlite:///x.db"
    assert ApiConfig(store_url="redis://:pw@h/0").masked_store_url() == "redis://:***@h/0"
