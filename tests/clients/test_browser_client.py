"""The browser example of SSE_CLIENTS.md in headless Chromium, on rdev's own origin.

The page logs in with `POST /session` (an HttpOnly cookie, since EventSource cannot send
headers), then runs the example as written. The example writes through
`process.stdout.write`, which browsers lack: the page defines that one shim, nothing else.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from tests.clients.proxy import CuttingProxy
from tests.clients.support import (
    ARTIFACTS,
    RELEASE_AFTER,
    Scenario,
    Target,
    assert_complete_output,
    example,
    js_string,
    save_artifact,
)

pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-first-run",
]

# The one shim the example needs: `process.stdout/stderr.write`, collecting what it writes.
PROCESS_SHIM = """() => {
  const sink = () => ({ text: [], write(chunk) { this.text.push(String(chunk)); } });
  window.process = { stdout: sink(), stderr: sink() };
}"""

PRINTED_FIRST_HALF = (
    f"() => process.stdout.text.join('').split('\\n').includes({js_string(RELEASE_AFTER)})"
)
COLLECTED = "() => [process.stdout.text.join(''), process.stderr.text.join('')]"


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("`chromium` is not installed: the browser example skipped (apt: chromium)")
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    executable = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def finished(message: Any) -> bool:
    """The example's Usage logs `Exit code: …` on success, `console.error` on failure."""
    if message.text.startswith("Exit code:"):
        return True
    # A missing favicon is logged as an error too; it is not the example's.
    return bool(message.type == "error" and not message.text.startswith("Failed to load"))


def run_browser_example(browser: Any, target: Target, scenario: Scenario) -> None:
    """Log in, open a page of `target.base_url`, run the example, check what it printed."""
    code = replace(target, command=scenario.command).apply(
        example("browser.js"), "'npm test'", js_string
    )
    context = browser.new_context(base_url=target.base_url)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    try:
        login = context.request.post("/session", data={"api_key": target.api_key})
        assert login.status == 200, login.text()
        cookies = context.cookies(target.base_url)
        assert cookies and all(c["httpOnly"] for c in cookies), cookies
        # Any page of rdev's origin will do: fetch and EventSource then go same-origin.
        assert page.goto("/healthz").status == 200
        page.evaluate(PROCESS_SHIM)
        with page.expect_console_message(predicate=finished, timeout=240_000) as done:
            page.add_script_tag(content=code)
            if scenario.gate is not None:
                page.wait_for_function(PRINTED_FIRST_HALF, timeout=120_000)
                scenario.release()
        stdout, stderr = page.evaluate(COLLECTED)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"browser-{scenario.name}.png"))
    finally:
        save_artifact(f"browser-{scenario.name}.log", "\n".join(console))
        context.close()
    result = done.value.text
    assert result.startswith("Exit code: "), f"the example failed: {result}"
    assert_complete_output(
        stdout.splitlines(), stderr.splitlines(), int(result.removeprefix("Exit code: "))
    )


def test_browser_eventsource_example(browser: Any, target: Target, scenario: Scenario) -> None:
    run_browser_example(browser, target, scenario)


def test_browser_example_resumes_after_a_dropped_connection(
    browser: Any, target: Target, proxy: CuttingProxy, reconnect: Scenario
) -> None:
    """EventSource reconnects by itself with Last-Event-ID: no line lost, none repeated."""
    run_browser_example(browser, replace(target, base_url=proxy.base_url), reconnect)
    assert len(proxy.event_requests) >= 2, proxy.event_requests
    assert proxy.event_requests[1], "the browser reconnected without Last-Event-ID"
