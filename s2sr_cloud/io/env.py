"""GDAL/AWS settings for reading COGs, captured on the client from its environment and carried by odc-stac into
every load task (so workers need no environment of their own). Credentials never go into logs or attrs."""

from __future__ import annotations

import os
from typing import Any

from ..errors import ConfigError

GDAL_ENV_KEYS = ("AWS_S3_ENDPOINT", "AWS_HTTPS", "AWS_VIRTUAL_HOSTING", "AWS_REQUEST_PAYER", "AWS_NO_SIGN_REQUEST",
                 "GDAL_HTTP_MAX_RETRY", "GDAL_HTTP_RETRY_DELAY", "GDAL_HTTP_TIMEOUT", "CPL_VSIL_CURL_USE_HEAD",
                 "GDAL_DISABLE_READDIR_ON_OPEN", "VSI_CACHE", "GDAL_CACHEMAX")


def captured_settings() -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(GDAL options, AWSSession kwargs or None) from this process's environment."""
    params: dict[str, Any] = {"GDAL_HTTP_MAX_RETRY": "5", "GDAL_HTTP_RETRY_DELAY": "1"}
    params.update({k: os.environ[k] for k in GDAL_ENV_KEYS if k in os.environ})
    if "GDAL_CACHEMAX" in params:  # rasterio.Env takes it only as an integer (a string fails every read)
        value = params["GDAL_CACHEMAX"].strip()
        if not value.isdigit():
            raise ConfigError(f"GDAL_CACHEMAX={value!r}: give a whole number (megabytes below 100000, else bytes), "
                              "e.g. GDAL_CACHEMAX=64")
        params["GDAL_CACHEMAX"] = int(value)
    aws: dict[str, Any] | None = None
    if os.environ.get("AWS_NO_SIGN_REQUEST", "").upper() in ("YES", "TRUE", "1"):
        aws = {"aws_unsigned": True}
    elif os.environ.get("AWS_ACCESS_KEY_ID") or os.environ.get("AWS_PROFILE"):
        aws = {k: v for k, v in {
            "aws_access_key_id": os.environ.get("AWS_ACCESS_KEY_ID"),
            "aws_secret_access_key": os.environ.get("AWS_SECRET_ACCESS_KEY"),
            "aws_session_token": os.environ.get("AWS_SESSION_TOKEN"),
            "region_name": os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"),
            "profile_name": os.environ.get("AWS_PROFILE"),
            "endpoint_url": os.environ.get("AWS_S3_ENDPOINT"),
        }.items() if v}
    return params, aws


def configure_reads() -> None:
    """Apply the captured settings to odc-stac's loader config (travels with every load task)."""
    import odc.stac

    params, aws = captured_settings()
    odc.stac.configure_rio(cloud_defaults=True, aws=aws, **params)
