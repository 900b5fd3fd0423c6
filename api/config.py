"""HTTP API settings (part of the one Kizuna settings object)."""

from pydantic import BaseModel, Field, IPvAnyNetwork, SecretStr


class ApiConfig(BaseModel):
    """Where the API listens, how long its tokens live and how hard it pushes back."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    access_token_ttl_s: int = Field(default=900, ge=60)
    refresh_token_ttl_s: int = Field(default=14 * 24 * 3600, ge=300)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    mfa_token_ttl_s: int = Field(default=300, ge=30, le=900)
    password_reset_ttl_s: int = Field(default=1800, ge=300, le=86400)
    public_base_url: str = "http://127.0.0.1:8050"
    # Throttling: failures inside the window per submitted identifier and per client address.
    login_window_s: int = Field(default=900, ge=60)
    login_max_failures_per_identifier: int = Field(default=5, ge=1)
    login_max_failures_per_ip: int = Field(default=30, ge=1)
    totp_max_failures: int = Field(default=5, ge=1)
    # argon2id cost; the defaults follow RFC 9106's second recommended option.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=1024)
    argon2_parallelism: int = Field(default=4, ge=1)
    default_page_size: int = Field(default=50, ge=1)
    max_page_size: int = Field(default=200, ge=1, le=1000)
    max_time_range_days: int = Field(default=93, ge=1)
    # When set, /metrics requires `Authorization: Bearer <metrics_token>`.
    metrics_token: SecretStr | None = None
    # Reverse proxies whose X-Forwarded-For is believed, as addresses or networks
    # (KIZUNA_API__TRUSTED_PROXIES='["10.0.0.0/8", "::1"]'). Only when the direct peer is one
    # of them is the client taken from the header: the right-most address that is not itself
    # a trusted proxy. Empty (the default): the header is ignored. The dashboard's sign-in
    # follows the same list.
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Reverse proxies (addresses/networks) whose X-Forwarded-For is believed.",
    )
