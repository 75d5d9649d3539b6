import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "/stack/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
