"""Shared fixtures: one JupyterLab server and one Chromium for every browser test module
(Playwright's sync API allows one instance per thread); see browser_utils."""
from browser_utils import browser_page, chromium_browser, jupyter_server  # noqa: F401 - fixtures by name
