"""Shared fixtures: one JupyterLab server and one Chromium for every browser test module
(Playwright's sync API allows one instance per thread); see browser_utils.

Tests marked ``book`` run last: the book is built from the executed copies that the
notebook tests leave in tests/reports/executed/, so no chapter is executed twice."""
from browser_utils import browser_page, chromium_browser, jupyter_server  # noqa: F401 - fixtures by name


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.get_closest_marker("book") is not None)  # stable sort
