"""HTTP API settings (part of the one Kizuna settings object)."""

from pydantic import BaseModel, Field


class ApiConfig(BaseModel):
    """Where the API listens and how long its tokens live."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    access_token_ttl_s: int = Field(default=900, ge=60)
    refresh_token_ttl_s: int = Field(default=14 * 24 * 3600, ge=300)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
