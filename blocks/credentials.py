"""`ProviderCredentials`: one block document per vendor (e.g. `polygon`), the key as a SecretStr."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field, SecretStr


class ProviderCredentials(Block):
    """API credentials for a market-data provider. The key is stored encrypted, shown masked."""

    _block_type_name = "Marketpipe Provider Credentials"
    _block_type_slug = "marketpipe-provider-credentials"
    _description = "API key (and optional base URL) for a marketpipe data provider."

    provider: str = Field(description="Provider name: polygon | yahoo.")
    api_key: SecretStr | None = Field(default=None, description="The provider API key.")
    base_url: str | None = Field(default=None, description="Override of the provider API URL.")

    def env(self) -> dict[str, str]:
        """Environment variables marketpipe's settings read (for a worker's job variables)."""
        out: dict[str, str] = {}
        if self.provider == "polygon":
            if self.api_key is not None:
                out["POLYGON_API_KEY"] = self.api_key.get_secret_value()
            if self.base_url:
                out["MARKETPIPE_POLYGON_BASE_URL"] = self.base_url
        return out
