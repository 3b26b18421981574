"""WorkerConfig: defaults, validation and the GOALKEEPER_* environment."""

from __future__ import annotations

import pytest

from goalkeeper.errors import ConfigurationError
from goalkeeper.worker import WorkerConfig
from goalkeeper.worker.config import default_worker_name


def test_defaults_are_valid_and_frozen() -> None:
    config = WorkerConfig()
    assert config.batch_size == 500
    assert config.lease_ttl == 10.0
    assert config.metrics_port is None
    with pytest.raises(AttributeError):
        config.batch_size = 3  # type: ignore[misc]


def test_from_env_reads_prefixed_variables_and_overrides_win() -> None:
    env = {
        "GOALKEEPER_BATCH_SIZE": "200",
        "GOALKEEPER_LEASE_TTL": "2.5",
        "GOALKEEPER_GROUP": "team-a",
        "GOALKEEPER_INSTALL_SIGNAL_HANDLERS": "no",
        "GOALKEEPER_METRICS_PORT": "9100",
        "GOALKEEPER_UNRELATED": "x",
    }
    config = WorkerConfig.from_env(env, group="override")
    assert config.batch_size == 200
    assert config.lease_ttl == 2.5
    assert config.group == "override"
    assert config.install_signal_handlers is False
    assert config.metrics_port == 9100


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GOALKEEPER_BATCH_SIZE": "lots"}, "GOALKEEPER_BATCH_SIZE: expected an integer"),
        ({"GOALKEEPER_LEASE_TTL": "soon"}, "GOALKEEPER_LEASE_TTL: expected a number"),
        ({"GOALKEEPER_INSTALL_SIGNAL_HANDLERS": "maybe"}, "expected true or false"),
        ({"GOALKEEPER_BATCH_SIZE": "0"}, "batch_size must be an integer >= 1"),
    ],
)
def test_from_env_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        WorkerConfig.from_env(env)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"group": "has space"}, "group"),
        ({"name": ""}, "name"),
        ({"fetch_timeout": 0}, "fetch_timeout"),
        ({"lease_ttl": float("nan")}, "lease_ttl"),
        ({"outbox_grace": -1}, "outbox_grace"),
        ({"poll_interval": 5, "poll_max_interval": 1}, "poll_max_interval"),
        ({"metrics_port": 70000}, "metrics_port"),
        ({"lease_url": "nowhere"}, "lease_url"),
        ({"profile": "fancy"}, "profile"),
        ({"session_cache": True}, "session_cache"),
    ],
)
def test_bad_values_name_the_field(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        WorkerConfig(**kwargs)  # type: ignore[arg-type]


def test_default_names_are_unique_and_valid() -> None:
    a, b = default_worker_name(), default_worker_name()
    assert a != b
    assert len(a) <= 64
    WorkerConfig(name=a)
    assert WorkerConfig().member_name != WorkerConfig().member_name
    assert WorkerConfig(name="fixed").member_name == "fixed"
