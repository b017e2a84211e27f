"""The web console in headless Chromium against the whole system, driven as a user would."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.clients.support import example
from tests.support import RdevSystem, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PROJECT = "console-demo"
LONG_WAIT_MS = 90_000


def shown_lines(page: Any) -> list[tuple[int, str, str]]:
    """(n, stream, text) of every log line on the page, in page order."""
    rows: list[list[Any]] = page.eval_on_selector_all(
        "#log .line[data-n]",
        "rows => rows.filter(r => r.id).map(r => "
        "[Number(r.dataset.n), r.dataset.stream, r.querySelector('.txt').textContent])",
    )
    return [(int(n), stream, text) for n, stream, text in rows]


def run_from_project_page(page: Any, command: str, priority: str = "normal") -> str:
    page.goto(f"/?project={PROJECT}")
    page.fill("#run-form input[name=command]", command)
    page.select_option("#run-form select[name=priority]", priority)
    page.click("#run-form button[type=submit]")
    page.wait_for_selector("#log")
    return str(page.url).split("command=", 1)[1]


def wait_status(page: Any, status: str) -> None:
    page.wait_for_selector(f"#run-status[data-status={status}]", timeout=LONG_WAIT_MS)


def test_login_and_create_project(page: Any, console_system: RdevSystem, shots: Path) -> None:
    page.goto("/")
    page.wait_for_selector("#login-form")
    page.screenshot(path=shots / "01-login.png")
    page.fill("#login-form input[name=api_key]", "rdev_wrong")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#notice:not([hidden])")
    assert "not accepted" in page.inner_text("#notice")

    page.fill("#login-form input[name=api_key]", console_system.api_key)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#create-project")
    workdir = console_system.data_dir / "workspaces" / PROJECT
    workdir.mkdir(parents=True, exist_ok=True)
    page.fill("#create-project input[name=id]", PROJECT)
    page.fill("#create-project input[name=workdir]", str(workdir))
    page.screenshot(path=shots / "02-create-project.png")
    page.click("#create-project button[type=submit]")
    page.wait_for_selector("#run-form")
    assert PROJECT in page.inner_text("h1")
    page.goto("/")
    page.wait_for_selector(f"#projects a:text('{PROJECT}')")
    page.screenshot(path=shots / "03-projects.png")


def test_run_shows_every_line_and_the_exit_code(page: Any, shots: Path) -> None:
    command_id = run_from_project_page(
        page, "for i in $(seq 1 200); do echo line $i; done; exit 7", "high"
    )
    page.wait_for_selector("#exit-code[data-exit-code]", timeout=LONG_WAIT_MS)
    page.wait_for_function("() => document.querySelectorAll('#log .line[id]').length >= 200")
    page.screenshot(path=shots / "04-run-200-lines-exit-7.png", full_page=True)
    assert page.get_attribute("#exit-code", "data-exit-code") == "7"
    lines = shown_lines(page)
    assert [text for _, _, text in lines] == [f"line {i}" for i in range(1, 201)]
    assert [n for n, _, _ in lines] == list(range(1, 201))
    assert {stream for _, stream, _ in lines} == {"stdout"}
    assert page.get_attribute("#L200 a.ln", "href") == "#L200"
    assert page.inner_text("#duration") != "—"

    with page.expect_download() as download:
        page.click("#download")
    saved = Path(download.value.path())
    assert saved.read_text().splitlines() == [f"line {i}" for i in range(1, 201)]

    # a past run opens with its whole log, and a line link lands on its line
    page.goto(f"/?command={command_id}#L150")
    page.wait_for_selector("#exit-code[data-exit-code='7']", timeout=LONG_WAIT_MS)
    page.wait_for_selector("#L150.target")
    assert len(shown_lines(page)) == 200
    page.screenshot(path=shots / "05-past-run-line-link.png")


def test_stderr_and_ansi_colours_are_distinguishable(page: Any, shots: Path) -> None:
    run_from_project_page(
        page, r"printf 'plain \033[1;31mred bold\033[0m done\n'; echo oops >&2; exit 0"
    )
    page.wait_for_selector("#exit-code[data-exit-code='0']", timeout=LONG_WAIT_MS)
    page.wait_for_selector("#log .line.stderr")
    assert page.inner_text("#log .line.stderr .txt") == "oops"
    red = page.locator("#log .line.stdout .txt span.b.fg-1")
    assert red.inner_text() == "red bold"
    assert "\x1b" not in page.inner_text("#log")
    page.screenshot(path=shots / "06-stderr-and-colours.png")


def test_ansi_renderer_covers_16_256_and_truecolour(page: Any) -> None:
    text = "a\x1b[32mb\x1b[38;5;196mc\x1b[48;2;1;2;3md\x1b[0me\x1b[2Kf"
    rendered = page.evaluate(
        """async (text) => {
          const { renderAnsi, initialStyle } = await import('/console/ansi.js');
          const box = document.createElement('div');
          box.appendChild(renderAnsi(text, initialStyle()));
          return box.innerHTML;
        }""",
        text,
    )
    assert rendered == (
        'a<span class="fg-2">b</span><span style="color: rgb(255, 0, 0);">c</span>'
        '<span style="color: rgb(255, 0, 0); background-color: rgb(1, 2, 3);">d</span>ef'
    )


def test_auto_scroll_pauses_when_the_reader_scrolls_up(page: Any, shots: Path) -> None:
    run_from_project_page(page, "for i in $(seq 1 300); do echo row $i; sleep 0.02; done")
    page.wait_for_function("() => document.querySelectorAll('#log .line[id]').length >= 60")
    page.eval_on_selector(
        "#log", "el => { el.scrollTop = 0; el.dispatchEvent(new Event('scroll')); }"
    )
    page.wait_for_selector("text=Auto-scroll paused")
    seen = len(shown_lines(page))
    page.wait_for_function(
        f"() => document.querySelectorAll('#log .line[id]').length >= {seen + 40}"
    )
    assert page.eval_on_selector("#log", "el => el.scrollTop") == 0
    page.screenshot(path=shots / "07a-autoscroll-paused.png")
    page.click("text=Follow output")
    page.wait_for_selector("#exit-code[data-exit-code='0']", timeout=LONG_WAIT_MS)
    page.wait_for_function(
        "() => { const el = document.getElementById('log');"
        " return el.scrollTop + el.clientHeight >= el.scrollHeight - 30; }"
    )


def test_cancel_a_running_command(page: Any, shots: Path) -> None:
    run_from_project_page(page, "sleep 60")
    wait_status(page, "running")
    page.screenshot(path=shots / "07-sleep-running.png")
    page.click("#cancel")
    wait_status(page, "cancelled")
    assert page.get_attribute("#run-status", "data-reason") == "cancelled"
    exit_code = int(page.get_attribute("#exit-code", "data-exit-code") or "0")
    assert exit_code >= 128, "a cancelled run ends by a signal: 128+N"
    page.screenshot(path=shots / "08-sleep-cancelled.png")


def test_history_lists_runs_with_status_and_duration(page: Any, shots: Path) -> None:
    page.goto(f"/?project={PROJECT}")
    page.wait_for_selector("#history table, #history .unavailable, #history .error")
    page.screenshot(path=shots / "09-history.png", full_page=True)
    if page.query_selector("#history .unavailable"):
        pytest.fail("GET /projects/{id}/commands is not served; the console says so")
    text = page.inner_text("#history")
    assert "sleep 60" in text and "cancelled" in text
    page.click("#history a:has-text('seq 1 200')")
    page.wait_for_selector("#exit-code[data-exit-code='7']", timeout=LONG_WAIT_MS)


def api_child_pid(system: RdevSystem) -> int:
    """The pid of the api process that `rdev up` supervises."""
    assert system.process is not None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == system.process.pid and b"rdev_api" in cmdline:
            return int(proc.name)
    raise AssertionError("no api child process under rdev up")


def api_ready(system: RdevSystem) -> bool:
    try:
        return httpx.get(f"{system.base_url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_output_continues_after_the_api_restarts(
    page: Any, console_system: RdevSystem, shots: Path
) -> None:
    total = 300
    run_from_project_page(page, f"for i in $(seq 1 {total}); do echo tick $i; sleep 0.04; done")
    page.wait_for_function("() => document.querySelectorAll('#log .line[id]').length >= 30")
    old_pid = api_child_pid(console_system)
    os.kill(old_pid, signal.SIGKILL)
    page.wait_for_selector("#connection.down", timeout=LONG_WAIT_MS)
    page.screenshot(path=shots / "10-api-down.png")
    wait_for(lambda: api_ready(console_system), 60, "the api did not come back after a kill")
    assert api_child_pid(console_system) != old_pid
    page.wait_for_selector("#exit-code[data-exit-code='0']", timeout=LONG_WAIT_MS)
    page.wait_for_function(f"() => document.querySelectorAll('#log .line[id]').length >= {total}")
    page.screenshot(path=shots / "11-resumed-complete.png")
    lines = shown_lines(page)
    assert [text for _, _, text in lines] == [f"tick {i}" for i in range(1, total + 1)]
    assert page.get_attribute("#log", "data-duplicates") == "0", (
        "the server resent lines after the reconnect"
    )


class Receiver(BaseHTTPRequestHandler):
    """A webhook endpoint on loopback that accepts everything and counts what it got."""

    received: list[str] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        Receiver.received.append(body.decode(errors="replace"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        return


@pytest.fixture(scope="module")
def receiver() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def test_webhook_deliveries_and_redeliver(
    page: Any, console_system: RdevSystem, receiver: str, shots: Path
) -> None:
    page.goto(f"/?project={PROJECT}&view=webhooks")
    page.wait_for_selector("#webhooks p, #webhooks .webhook, #webhooks .unavailable")
    if page.query_selector("#webhooks .unavailable"):
        pytest.fail("webhook endpoints are not served; the console says so")
    page.fill("#add-webhook input[name=url]", receiver)
    page.fill("#add-webhook input[name=events]", "command.completed")
    page.click("#add-webhook button[type=submit]")
    page.wait_for_selector("pre.secret")
    assert page.inner_text("pre.secret").startswith("whsec_")
    before = len(Receiver.received)
    with console_system.client() as client:
        response = client.post(f"/projects/{PROJECT}/shell", json={"command": "echo hook"})
        assert response.status_code == 202, response.text
    wait_for(lambda: len(Receiver.received) > before, 60, "no webhook delivery arrived")

    def delivered() -> bool:
        page.goto(f"/?project={PROJECT}&view=webhooks")
        page.wait_for_selector(".deliveries table, .deliveries p")
        return page.query_selector(".deliveries .badge.succeeded") is not None

    wait_for(delivered, 60, "the console shows no succeeded delivery", interval=0.5)
    page.screenshot(path=shots / "12-webhook-deliveries.png", full_page=True)
    row = page.locator(".deliveries-table tbody tr").first
    assert row.locator("td").nth(2).inner_text() == "1", "one attempt"
    arrived = len(Receiver.received)
    row.locator("button:has-text('Redeliver')").click()
    page.wait_for_selector("#notice.info")
    wait_for(lambda: len(Receiver.received) > arrived, 60, "the redelivery did not arrive")
    page.screenshot(path=shots / "13-webhook-redelivered.png", full_page=True)


def test_audit_log_with_filters(page: Any, shots: Path) -> None:
    page.goto("/?view=audit")
    page.wait_for_selector("#audit table, #audit p")
    if page.query_selector("#audit .unavailable"):
        pytest.fail("GET /audit is not served; the console says so")
    page.fill("#audit-filters input[name=project]", PROJECT)
    page.fill("#audit-filters input[name=action]", "command.requested")

    def filtered_rows() -> int:
        page.click("#audit-filters button[type=submit]")
        page.wait_for_selector("#audit table, #audit p")
        return int(page.locator("#audit .audit-table tbody tr").count())

    wait_for(filtered_rows, 60, "no audit rows for the project's commands", interval=0.5)
    actions = page.locator("#audit .audit-table tbody tr td:nth-child(5)").all_inner_texts()
    assert actions and set(actions) == {"command.requested"}
    assert f"project={PROJECT}" in page.url
    page.screenshot(path=shots / "14-audit-filtered.png", full_page=True)


def sse_clients_browser_example() -> str:
    """The browser example of SSE_CLIENTS.md (the copy under tests/clients/examples, which
    tests/clients/test_examples_match_doc.py holds equal to the doc), up to its usage lines."""
    return example("browser.js").split("// Usage", 1)[0]


def test_the_sse_clients_browser_example_runs_from_the_console(
    page: Any, console_system: RdevSystem
) -> None:
    page.goto("/")
    page.wait_for_selector("#projects")
    # The example declares `executeCommand`; the shim gives it the `process` it writes to.
    script = (
        "async ([project, key]) => {\n"
        "const out = [];\n"
        "const sink = { write: (s) => out.push(s) };\n"
        "window.process = { stdout: sink, stderr: sink };\n"
        f"{sse_clients_browser_example()}\n"
        "const done = await executeCommand(project, 'echo from-the-example; exit 5', key);\n"
        "return [done.exitCode, out.join('')];\n}"
    )
    result = page.evaluate(script, [PROJECT, console_system.api_key])
    assert result == [5, "from-the-example\n"]


# Run states, queue, run again, elapsed time, dark mode, narrow screens.

FAILED_RUN: dict[str, str] = {}


def contrast(page: Any, selector: str) -> float:
    """WCAG contrast ratio of an element's text colour against its own background."""
    return float(
        page.eval_on_selector(
            selector,
            """el => {
              const rgb = (c) => c.match(/[0-9.]+/g).slice(0, 3).map(Number);
              const lum = ([r, g, b]) => {
                const f = (v) => {
                  v /= 255;
                  return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
                };
                return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
              };
              const s = getComputedStyle(el);
              let bg = s.backgroundColor, node = el;
              while (bg === 'rgba(0, 0, 0, 0)' && node.parentElement) {
                node = node.parentElement; bg = getComputedStyle(node).backgroundColor;
              }
              const [a, b] = [lum(rgb(s.color)), lum(rgb(bg))].sort((x, y) => y - x);
              return (a + 0.05) / (b + 0.05);
            }""",
        )
    )


def test_a_failed_run_says_so_in_red_and_runs_again(page: Any, shots: Path) -> None:
    command_id = run_from_project_page(page, "echo working; echo broken >&2; exit 3")
    wait_status(page, "failed")
    badge = page.locator("#run-status .badge")
    assert badge.inner_text() == "failed (exit 3)"
    background = page.eval_on_selector(
        "#run-status .badge", "el => getComputedStyle(el).backgroundColor"
    )
    red, green, blue = (int(v) for v in background[4:-1].split(",")[:3])
    assert red > 150 and green < 80 and blue < 80, f"failed is not red: {background}"
    page.wait_for_selector("#log .line.stderr")
    page.screenshot(path=shots / "20-run-failed.png")
    FAILED_RUN["id"] = command_id

    page.click("#rerun")
    page.wait_for_function(f"() => !location.search.includes('{command_id}')")
    wait_status(page, "failed")
    assert page.inner_text("#run-command") == "echo working; echo broken >&2; exit 3"
    assert page.locator("#run-status .badge").inner_text() == "failed (exit 3)"

    page.goto(f"/?project={PROJECT}&status=failed")
    page.wait_for_selector("#history table")
    states = page.locator("#history .badge.state").all_inner_texts()
    assert states and all(s.startswith("failed (exit") for s in states), states


def test_a_running_run_counts_its_elapsed_time(page: Any) -> None:
    run_from_project_page(page, "sleep 4")
    wait_status(page, "running")
    page.wait_for_selector("#duration[data-elapsed]", timeout=LONG_WAIT_MS)
    assert page.inner_text("#duration").endswith("so far")
    page.wait_for_selector("#exit-code[data-exit-code='0']", timeout=LONG_WAIT_MS)
    assert "so far" not in page.inner_text("#duration")
    assert page.locator("#run-status .badge").inner_text() == "succeeded"


def test_a_queued_run_shows_its_position_and_cancels_at_once(
    page: Any, console_system: RdevSystem, shots: Path
) -> None:
    """Four runs fill the system's four executor slots; the fifth waits."""
    blockers: list[str] = []
    with console_system.client() as client:
        for _ in range(4):
            created = client.post(f"/projects/{PROJECT}/shell", json={"command": "sleep 120"})
            assert created.status_code == 202, created.text
            blockers.append(created.json()["data"]["id"])

        def all_running() -> bool:
            states = [client.get(f"/commands/{b}").json()["data"]["status"] for b in blockers]
            return all(s == "running" for s in states)

        try:
            wait_for(all_running, 90, "the blocking runs did not all start", interval=0.3)
            run_from_project_page(page, "echo from-the-queue")
            wait_status(page, "queued")
            page.wait_for_selector("#queue-note[data-position='1']", timeout=LONG_WAIT_MS)
            assert page.inner_text("#queue-note").startswith(
                "queued — position 1, waiting for an executor"
            )
            page.screenshot(path=shots / "21-run-queued.png")
            page.click("#cancel")
            # Ended by the cancel itself: no slot has freed, the blockers still run.
            wait_status(page, "cancelled")
            assert all_running()
        finally:
            for blocker in blockers:
                client.post(f"/commands/{blocker}/cancel")
    assert "from-the-queue" not in page.inner_text("#log")


def test_dark_mode_follows_the_system_and_the_toggle(
    browser: Any, console_system: RdevSystem, page: Any, shots: Path
) -> None:
    dark = browser.new_context(
        base_url=console_system.base_url,
        viewport={"width": 1280, "height": 900},
        color_scheme="dark",
    )
    try:
        tab = dark.new_page()
        tab.set_default_timeout(60_000)
        tab.goto("/")
        tab.fill("#login-form input[name=api_key]", console_system.api_key)
        tab.click("#login-form button[type=submit]")
        tab.wait_for_selector("#projects")
        tab.goto(f"/?command={FAILED_RUN['id']}")
        tab.wait_for_selector("#run-status[data-status=failed]", timeout=LONG_WAIT_MS)
        tab.wait_for_selector("#log .line.stderr")
        body = tab.eval_on_selector("body", "el => getComputedStyle(el).backgroundColor")
        assert sum(int(v) for v in body[4:-1].split(",")[:3]) < 120, f"not dark: {body}"
        assert contrast(tab, "#run-command") >= 7
        assert contrast(tab, "#run-status .badge") >= 4.5
        assert tab.inner_text("#theme") == "Light mode"
        tab.screenshot(path=shots / "22-dark-mode-failed-run.png")
    finally:
        dark.close()

    # A light system: the toggle switches to dark, and the choice is remembered.
    page.goto(f"/?project={PROJECT}")
    page.wait_for_selector("#run-form")
    assert page.inner_text("#theme") == "Dark mode"
    page.click("#theme")
    page.wait_for_selector("html[data-theme=dark]")
    page.reload()
    page.wait_for_selector("html[data-theme=dark]")
    body = page.eval_on_selector("body", "el => getComputedStyle(el).backgroundColor")
    assert sum(int(v) for v in body[4:-1].split(",")[:3]) < 120
    page.screenshot(path=shots / "23-dark-mode-toggled.png", full_page=True)
    page.click("#theme")
    page.wait_for_selector("html[data-theme=light]")


def test_ansi_black_on_green_is_readable(page: Any) -> None:
    run_from_project_page(page, r"printf '\033[30;42mtmp\033[0m \033[30mdim\033[0m\n'")
    page.wait_for_selector("#exit-code[data-exit-code='0']", timeout=LONG_WAIT_MS)
    page.wait_for_selector("#log .line .txt span.bg-2")
    assert contrast(page, "#log .line .txt span.bg-2") >= 4.5
    assert contrast(page, "#log .line .txt span.fg-0:not(.bg-2)") >= 4.5


def test_narrow_screen_has_no_sideways_overflow(
    browser: Any, console_system: RdevSystem, shots: Path
) -> None:
    phone = browser.new_context(
        base_url=console_system.base_url, viewport={"width": 390, "height": 844}
    )
    try:
        tab = phone.new_page()
        tab.set_default_timeout(60_000)
        tab.goto("/")
        tab.fill("#login-form input[name=api_key]", console_system.api_key)
        tab.click("#login-form button[type=submit]")
        tab.wait_for_selector("#create-project")
        for view in ("/", f"/?project={PROJECT}", f"/?command={FAILED_RUN['id']}"):
            tab.goto(view)
            tab.wait_for_selector("#create-project, #history table, #log .line")
            width = tab.evaluate("() => document.documentElement.scrollWidth")
            assert width <= 390, f"{view} is {width} px wide at 390 px"
            wide = tab.eval_on_selector_all(
                "input.wide", "els => els.map(e => e.getBoundingClientRect().right)"
            )
            assert all(right <= 390 for right in wide), wide
        tab.goto(f"/?project={PROJECT}")
        tab.wait_for_selector("#history table")
        tab.screenshot(path=shots / "24-project-at-390px.png", full_page=True)
    finally:
        phone.close()


def test_project_id_pattern_is_valid_under_the_v_flag(page: Any) -> None:
    page.goto("/")
    page.wait_for_selector("#create-project")
    valid = page.eval_on_selector(
        "#create-project input[name=id]",
        "el => { try { new RegExp(`^(?:${el.pattern})$`, 'v'); return true; }"
        " catch { return false; } }",
    )
    assert valid, "the browser ignores a pattern that does not compile under the v flag"
    page.fill("#create-project input[name=id]", "Bad_Id")
    assert page.eval_on_selector(
        "#create-project input[name=id]", "el => el.validity.patternMismatch"
    )
    page.fill("#create-project input[name=id]", "good-id-1")
    assert not page.eval_on_selector(
        "#create-project input[name=id]", "el => el.validity.patternMismatch"
    )


LOG_FEATURES = (
    "echo before; echo '::group::Build step'; echo inside-1; echo inside-2; "
    "echo '::endgroup::'; echo '--- Tests'; echo test-line; echo oops-on-stderr >&2; "
    "for i in 1 2 3 4; do printf 'progress %s%%\\r' $((i*25)); done; echo; echo after"
)


def visible_texts(page: Any) -> list[str]:
    return list(
        page.eval_on_selector_all(
            "#log .line[id]",
            "rows => rows.filter(r => r.offsetParent !== null)"
            ".map(r => r.querySelector('.txt').textContent)",
        )
    )


def test_log_sections_fold_progress_collapses_and_stderr_filters(page: Any, shots: Path) -> None:
    run_from_project_page(page, LOG_FEATURES)
    page.wait_for_selector("#exit-code[data-exit-code='0']", timeout=LONG_WAIT_MS)
    page.wait_for_function(
        "() => [...document.querySelectorAll('#log .line .txt')]"
        ".some(t => t.textContent === 'after')"
    )
    shown = visible_texts(page)
    progress = [t for t in shown if t.startswith("progress")]
    assert progress == ["progress 100%"], shown
    assert "inside-1" in shown
    page.click("#log .line.group-head[data-group-name='Build step'] .txt")
    shown = visible_texts(page)
    assert "inside-1" not in shown and "inside-2" not in shown and "before" in shown
    assert "::group::Build step" in shown, "the head stays, folded"
    page.click("#log .line.group-head[data-group-name='Tests'] .txt")
    assert "test-line" not in visible_texts(page)
    page.screenshot(path=shots / "25-log-sections-folded.png")
    page.click("#log .line.group-head[data-group-name='Tests'] .txt")
    assert "test-line" in visible_texts(page)
    page.check("#stderr-only")
    assert visible_texts(page) == ["oops-on-stderr"]
    page.uncheck("#stderr-only")


def test_search_a_100000_line_log(page: Any, shots: Path) -> None:
    """The log viewer itself, fed 100,000 lines as the stream would feed them."""
    page.goto(f"/?project={PROJECT}")
    page.wait_for_selector("#run-form")
    page.evaluate(
        """async () => {
          const { LogView } = await import('/console/logview.js');
          const main = document.getElementById('main');
          main.replaceChildren();
          const log = new LogView(main);
          for (let n = 1; n <= 100000; n += 1) log.add(n, 'stdout', String(n));
        }"""
    )
    page.wait_for_function(
        "() => document.querySelectorAll('#log .line[id]').length >= 100000", timeout=LONG_WAIT_MS
    )
    page.fill("#log-search", "9999")
    expected = sorted(n for n in range(1, 100001) if "9999" in str(n))
    page.wait_for_selector(
        f"#log[data-matches='{len(expected)}']", state="attached", timeout=LONG_WAIT_MS
    )
    assert page.inner_text("#log-search-count") == f"1 of {len(expected)}"
    assert page.get_attribute("#log", "data-current") == str(expected[0])
    page.click("#search-next")
    assert page.inner_text("#log-search-count") == f"2 of {len(expected)}"
    assert page.get_attribute("#log", "data-current") == str(expected[1])
    page.click("#search-prev")
    page.click("#search-prev")
    assert page.inner_text("#log-search-count") == f"{len(expected)} of {len(expected)}"
    assert page.locator("#log .line.match").count() == len(expected)
    current = page.locator("#log .line.match.current")
    assert current.locator(".txt").inner_text() == str(expected[-1])
    assert current.is_visible()
    page.screenshot(path=shots / "26-search-100000-lines.png")
    page.fill("#log-search", "no-such-text")
    page.wait_for_selector("#log[data-matches='0']", state="attached", timeout=LONG_WAIT_MS)
    assert page.inner_text("#log-search-count") == "no match"
