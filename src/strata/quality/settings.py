"""``[quality]`` in strata.toml: where alerts on failing checks go. Every key is optional:

    [quality]
    alert_webhook_url = "https://hooks.example.com/strata"   # no URL: no webhook alerts
    alert_on = "error"                  # or "warn": alert on warnings too
    alert_event_prefix = "melmastoon.analytics"   # event type: <prefix>.data_quality.alert.v1
    alert_timeout_s = 5
    alert_max_attempts = 4
    alert_secret_env = "STRATA_ALERT_TOKEN"  # sent as "Authorization: Bearer <value>"

``STRATA_ALERT_WEBHOOK_URL`` overrides the URL (a URL with a token in it stays out of the
file). Failing checks are always written to the run's log as well.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from strata.core.errors import ConfigError
from strata.quality.alerts import AlertConfig

WEBHOOK_ENV: Final = "STRATA_ALERT_WEBHOOK_URL"
_KEYS: Final = frozenset(
    {
        "alert_webhook_url",
        "alert_on",
        "alert_event_prefix",
        "alert_timeout_s",
        "alert_max_attempts",
        "alert_secret_env",
    }
)


def load_alert_config(root: Path, environ: Mapping[str, str] | None = None) -> AlertConfig | None:
    """The project's alert settings, or ``None`` when no webhook is configured."""
    env = os.environ if environ is None else environ
    try:
        data = tomllib.loads((root / "strata.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"strata.toml: {exc}") from exc
    section: Any = data.get("quality", {})
    if not isinstance(section, dict):
        raise ConfigError("strata.toml: [quality] must be a table")
    unknown = sorted(set(section) - _KEYS)
    if unknown:
        raise ConfigError(
            f"strata.toml: unknown key quality.{unknown[0]} "
            f"(expected one of: {', '.join(sorted(_KEYS))})"
        )
    url = env.get(WEBHOOK_ENV) or section.get("alert_webhook_url")
    if url is None:
        return None
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ConfigError(f"strata.toml: quality.alert_webhook_url must be an http(s) URL: {url!r}")
    alert_on = section.get("alert_on", "error")
    if alert_on not in ("error", "warn"):
        raise ConfigError(f"strata.toml: quality.alert_on must be error or warn, not {alert_on!r}")
    prefix = section.get("alert_event_prefix", "")
    if not isinstance(prefix, str):
        raise ConfigError("strata.toml: quality.alert_event_prefix must be text")
    timeout = section.get("alert_timeout_s", 5)
    attempts = section.get("alert_max_attempts", 4)
    if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
        raise ConfigError(f"strata.toml: quality.alert_timeout_s must be > 0, not {timeout!r}")
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise ConfigError(f"strata.toml: quality.alert_max_attempts must be >= 1, not {attempts!r}")
    headers: dict[str, str] = {}
    secret_env = section.get("alert_secret_env")
    if secret_env is not None:
        if not isinstance(secret_env, str) or secret_env not in env:
            raise ConfigError(
                f"strata.toml: quality.alert_secret_env names {secret_env!r}, which is not set"
            )
        headers["authorization"] = f"Bearer {env[secret_env]}"
    return AlertConfig(
        url=url,
        min_status=alert_on,
        event_prefix=prefix,
        timeout_s=float(timeout),
        max_attempts=attempts,
        headers=headers,
    )
