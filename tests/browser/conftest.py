"""Browser tests: Playwright driving Debian's chromium (Playwright's own browser download is not used).

Without chromium the tests are skipped with the reason, except in CI (CI=true), where
they fail: CI installs chromium, so its absence there is a broken build, not a skip.
Screenshots of failing tests go to .playwright-results/ (see addopts in pyproject.toml).
"""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session", autouse=True)
def _orm_beside_the_browser():
    """Playwright's sync API keeps an event loop running in the main thread from its start to
    the end of the session; the tests' own ORM calls (setup and checks, never concurrent with
    the browser) are safe. The browser tests run last (see below), so the variable is set
    only for them and no subprocess of another test inherits it."""
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    yield
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    path = chromium_path()
    if path is None:
        message = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}: CI must run the browser tests")
        pytest.skip(message)
    return {**browser_type_launch_args, "executable_path": path, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1366, "height": 900}, "locale": "en-US"}


def pytest_collection_modifyitems(config, items):
    """Mark the browser tests, and run them after every other test of the session."""
    in_browser = [item for item in items if "tests/browser/" in str(item.fspath).replace(os.sep, "/")]
    for item in in_browser:
        item.add_marker(pytest.mark.browser)
    chosen = set(map(id, in_browser))
    items[:] = [item for item in items if id(item) not in chosen] + in_browser
