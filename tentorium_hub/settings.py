"""Hub settings, read once from the environment (prefix `HUB_`, plus `DATABASE_URL`)."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_node_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Settings(BaseSettings):
    """Validated configuration passed explicitly to every component that needs it."""

    model_config = SettingsConfigDict(env_prefix="HUB_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("DATABASE_URL", "HUB_DATABASE_URL"),
        description="PostgreSQL URL; without it an embedded server runs in data_dir/pg.",
    )
    data_dir: Path = Field(default=Path("var"), description="Embedded database and uploads.")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    node_id: str = Field(default_factory=_default_node_id)

    db_pool_min_size: int = Field(default=1, ge=1, le=100)
    db_pool_max_size: int = Field(default=10, ge=1, le=500)

    lease_ttl_s: float = Field(default=15.0, gt=1, le=600)
    lease_renew_interval_s: float = Field(default=5.0, gt=0.1, le=300)

    poll_interval_s: float = Field(default=60.0, gt=0.05, le=86_400)
    delivery_batch_size: int = Field(default=50, ge=1, le=5_000)
    odata_timeout_s: float = Field(default=10.0, gt=0, le=600)
    retry_base_s: float = Field(default=1.0, gt=0, le=3600)
    retry_max_s: float = Field(default=300.0, gt=0, le=86_400)
    max_delivery_attempts: int = Field(default=20, ge=1, le=10_000)

    exchange_max_upload_bytes: int = Field(default=2 * 1024**3, ge=1024)
    exchange_max_unzip_ratio: int = Field(default=200, ge=1, le=10_000)
    exchange_session_ttl_s: float = Field(default=3600.0, gt=1)
    exchange_step_s: float = Field(
        default=5.0,
        gt=0,
        le=300,
        description="How long one `import` request waits for the background parse before "
        "answering `progress`.",
    )

    webhook_url: str | None = None
    webhook_timeout_s: float = Field(default=5.0, gt=0, le=120)
    log_level: str = "info"
    log_format: str = Field(default="auto", pattern="^(auto|json|console)$")

    @field_validator("log_level")
    @classmethod
    def _check_level(cls, value: str) -> str:
        allowed = {"debug", "info", "warning", "error"}
        if value.lower() not in allowed:
            raise ValueError(f"HUB_LOG_LEVEL={value!r} is invalid; use one of {sorted(allowed)}")
        return value.lower()

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "exchange"

    @property
    def pictures_dir(self) -> Path:
        return self.data_dir / "pictures"

    # Circuit breaker of each OData branch actor: after `circuit_failure_threshold`
    # consecutive failed calls the actor stops calling the branch for a jittered period that
    # starts in [base/2, base] and doubles on each re-opening, up to `circuit_open_max_s`.
    circuit_failure_threshold: int = Field(
        default=5,
        ge=1,
        le=1_000,
        description="Consecutive failed calls to a branch's 1C that open its circuit (1 to 1000).",
    )
    circuit_open_base_s: float = Field(
        default=30.0,
        gt=0,
        le=3_600,
        description="Seconds a circuit stays open after its first opening (above 0, at most 3600).",
    )
    circuit_open_max_s: float = Field(
        default=600.0,
        gt=0,
        le=86_400,
        description="Upper bound in seconds of a circuit's open period (above 0, at most 86400).",
    )

    @model_validator(mode="after")
    def _check_circuit(self) -> Settings:
        if self.circuit_open_max_s < self.circuit_open_base_s:
            raise ValueError(
                f"HUB_CIRCUIT_OPEN_MAX_S={self.circuit_open_max_s!r} is below "
                f"HUB_CIRCUIT_OPEN_BASE_S={self.circuit_open_base_s!r}; set it to at least that"
            )
        return self
