"""`LakeSettings`: where the cold Parquet lake lives (fsspec URL + optional S3 endpoint)."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field


class LakeSettings(Block):
    """The cold tier: a local folder or `s3://bucket/prefix`, with an optional S3 endpoint."""

    _block_type_name = "Marketpipe Lake Settings"
    _block_type_slug = "marketpipe-lake-settings"
    _description = "Cold Parquet lake location for marketpipe (fsspec URL and S3 endpoint)."

    cold_url: str = Field(description="fsspec URL of the lake: a path or s3://bucket/prefix.")
    s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, moto…); unset for AWS."
    )
    hot_days: int = Field(default=30, description="Rows newer than this many days stay hot.")

    def storage_options(self) -> dict:
        if self.cold_url.startswith("s3://") and self.s3_endpoint_url:
            return {"client_kwargs": {"endpoint_url": self.s3_endpoint_url}}
        return {}
