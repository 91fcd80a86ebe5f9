"""The dashboards web UI: static pages served next to the query API by ``strata serve``."""

from strata.web.ui import CONTENT_SECURITY_POLICY, STATIC_DIR, UI_PATH, mount_ui

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_DIR", "UI_PATH", "mount_ui"]
