"""Shared fixtures: one JupyterLab server and one Chromium for every browser test module
(Playwright's sync API allows one instance per thread); see browser_utils.

Tests marked ``book`` run last: the book is built from the executed copies that the
notebook tests leave in tests/reports/executed/, so no chapter is executed twice."""
import pytest
import torch

from browser_utils import browser_page, chromium_browser, jupyter_server  # noqa: F401 - fixtures by name
from nifkit.models import small_cnn


def pytest_collection_modifyitems(session, config, items):
    items.sort(key=lambda item: item.get_closest_marker("book") is not None)  # stable sort


# a small CNN and six 8x8 images: chapter 2 and the path recording test on the same pair
@pytest.fixture(scope="module")
def cnn():
    return small_cnn(1, 8, (4, 8), 10, hidden=(12,), seed=0).eval()


@pytest.fixture(scope="module")
def xs():
    return torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(1))
