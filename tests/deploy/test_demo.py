"""Issue 28, findings 1 and 5: `make run` as a new user runs it, twice: each run starts a fresh demo and says so, loads
the fictional resident directory, states the wall time, keeps the hub up after the simulated night until Ctrl-C, and
stops it cleanly (no traceback in var/hub.log). Runs the real Makefile in a scratch directory with its own database,
site (and so its own clock topic), ports and client ids, so it never touches a developer's demo.

What the night nurse sees is checked in Debian's Chromium (headless, 390x844, Swedish, as natt1): after each night
the staff page's open alarms and the night log's open alarms are the same ones (the first report: the page showed
"Fall · Rum A06 · 08:37" while the log said "Inga larm de senaste 24 timmarna"); the second run's page and log show
none of the first run's alarms; and when the hub stops (Ctrl-C) the open page says the connection is gone, its
"Ta larmet" buttons cannot be pressed and its clock stands still.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.conftest import MQTT_PORT

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(400),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed at /usr/bin/chromium"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_demo(workdir: Path, unique: str, port: int) -> subprocess.Popen[str]:
    args = [
        "make", "-s", "-f", str(ROOT / "Makefile"), "-o", str(ROOT / ".venv" / "bin" / "vaka"), "run",
        f"VENV={ROOT / '.venv'}", "NIGHTS=1", "SPEED=3000",
        f"DEMO_DB=vaka_demo_{unique}", f"SITE=demo{unique}", f"HTTP_PORT={port}", f"MQTT_PORT={MQTT_PORT}",
        f"MQTT_CLIENT_ID=vaka-hub-{unique}", f"SIM_CLIENT_ID=vaka-sim-{unique}",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("VAKA_")}
    env["VAKA_MQTT__HUB_STATUS"] = "false"  # no retained status of this test's site left on the shared broker
    return subprocess.Popen(
        args, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def read_until(proc: subprocess.Popen[str], text: str, within_s: float) -> str:
    """The demo's output up to the line that contains `text`."""
    assert proc.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if text in line:
            return "".join(seen)
    pytest.fail(f"no {text!r} within {within_s} s:\n" + "".join(seen[-40:]))


def alarms_of(unique: str) -> list[tuple[str, int]] | None:
    """The demo database's alarms (rule, incidents), None when the database is gone."""
    done = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", f"vaka_demo_{unique}", "-tAF", ",", "-c",
         "SELECT rule_id, incidents FROM desk_alarms ORDER BY raised_at, rule_id"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    if done.returncode != 0:
        assert "does not exist" in done.stderr, done.stderr
        return None
    return [(rule, int(n)) for rule, n in (line.split(",") for line in done.stdout.split())]


def database_oid(unique: str) -> str:
    done = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc",
         f"SELECT oid FROM pg_database WHERE datname = 'vaka_demo_{unique}'"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return done.stdout.strip()


@dataclass
class Seen:
    """What natt1 saw after the night: the open alarms on the staff page and every alarm in the night log."""

    cards: dict[str, str]  # alarm id -> the card's text
    log_open: set[str]
    log_all: set[str]
    log_text: str


@pytest.fixture
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            yield b
        finally:
            b.close()


def natt1(browser: Browser, url: str) -> Page:
    """natt1 signs in on a phone, Swedish, as the README says (natt1 / natt1-demo)."""
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, locale="sv-SE")
    ctx.set_default_timeout(10_000)
    page = ctx.new_page()
    page.goto(f"{url}/staff/login")
    page.get_by_label("Användarnamn").fill("natt1")
    page.get_by_label("Lösenord").fill("natt1-demo")
    page.get_by_role("button", name="Logga in").click()
    page.wait_for_url(f"{url}/staff/")
    return page


def look(page: Page, url: str) -> Seen:
    """The staff page's cards and the night log, read until they agree (the log is written in the background)."""
    deadline = time.monotonic() + 15
    while True:
        page.goto(f"{url}/staff/")
        cards = dict(
            zip(
                page.locator("li.alarm").evaluate_all("els => els.map(e => e.dataset.id)"),
                page.locator("li.alarm").all_inner_texts(),
                strict=True,
            )
        )
        page.get_by_role("link", name="Nattlogg").click()
        expect(page.get_by_role("heading", name="Nattlogg", exact=True)).to_be_visible()
        ids = "els => els.map(e => e.id.slice(4))"  # log-{id}
        seen = Seen(
            cards,
            set(page.locator("li.log-alarm.open").evaluate_all(ids)),
            set(page.locator("li.log-alarm").evaluate_all(ids)),
            page.locator("main").inner_text(),
        )
        if set(seen.cards) == seen.log_open or time.monotonic() > deadline:
            page.get_by_role("link", name="Larm", exact=True).click()
            page.wait_for_url(f"{url}/staff/")
            return seen
        page.wait_for_timeout(500)


def hub_stopped(page: Page) -> None:
    """Finding 5, after Ctrl-C: the open page says so, "Ta larmet" cannot be pressed, the clock stands still."""
    expect(page.locator("#conn-lost")).to_be_visible(timeout=20_000)
    expect(page.locator("#conn-lost")).to_contain_text("Anslutningen är bruten")
    take = page.locator("li.alarm").get_by_role("button", name="Ta larmet")
    for i in range(take.count()):
        expect(take.nth(i)).to_be_disabled()
    stood = page.evaluate("window.vakaHubNow()")
    ages = page.locator("li.alarm .ago").all_inner_texts()
    page.wait_for_timeout(1000)
    assert page.evaluate("window.vakaHubNow()") == stood
    assert page.locator("li.alarm .ago").all_inner_texts() == ages


def run_once(
    workdir: Path, unique: str, while_up: Callable[[str], Seen], stopped: Callable[[], None]
) -> tuple[str, list[tuple[str, int]], str, Seen]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_demo(workdir, unique, port)
    try:
        said = read_until(proc, "until you press Ctrl-C.", 240)
        said += read_until(proc, "The simulated nights are over", 120)
        with urllib.request.urlopen(f"{url}/healthz", timeout=5) as resp:
            assert resp.status == 200  # the hub stays up after the night
        await_s = time.monotonic() + 10  # the last changes are persisted in the background
        alarms = alarms_of(unique)
        while not alarms and time.monotonic() < await_s:
            alarms = alarms_of(unique)
        seen = while_up(url)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in the terminal
        assert proc.stdout is not None
        said += proc.stdout.read()
        assert proc.wait(timeout=30) != 0
        stopped()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    return said, alarms or [], (workdir / "var" / "hub.log").read_text(), seen


def test_make_run_twice_gives_two_fresh_demos_that_say_what_they_do(
    tmp_path: Path, unique: str, browser: Browser
) -> None:
    for name in ("deploy", "pyproject.toml", "requirements"):  # what the Makefile reads relative to where it runs
        (tmp_path / name).symlink_to(ROOT / name)
    pages: list[Page] = []

    def sign_in_and_look(url: str) -> Seen:
        pages.append(natt1(browser, url))
        return look(pages[-1], url)

    first, alarms, log, night1 = run_once(tmp_path, unique, sign_in_and_look, lambda: hub_stopped(pages[-1]))
    assert "A fresh demo: a new database" in first
    assert "resident directory: 12 entries imported" in first
    assert "about 17 s of wall time" in first  # 14.5 simulated hours at 3000x
    assert "14 h 30 min of wall time" not in first  # the inventory step said so (at speed 1) beside the real figure
    assert "then the hub stays up" in first
    assert "The demo hub stopped." in first
    assert "is taken" not in first
    assert "Traceback" not in log
    assert alarms, "the simulated night raised no alarm"
    assert night1.cards, "the simulated night left no open alarm on the page"
    assert set(night1.cards) == night1.log_open  # the page and the night log agree
    assert "Inga larm" not in night1.log_text
    first_db = database_oid(unique)

    second, again, log, night2 = run_once(tmp_path, unique, sign_in_and_look, lambda: hub_stopped(pages[-1]))
    assert "A fresh demo" in second
    # what natt1 sees: none of the first run's alarms, on the page or in the night log; page and log agree
    assert night2.cards
    assert not set(night2.cards) & night1.log_all
    assert not night2.log_all & night1.log_all
    assert set(night2.cards) == night2.log_open
    assert "Inga larm" not in night2.log_text
    assert database_oid(unique) != first_db  # a new database, not the first run's
    # the same night again, not the first night's alarms with the second's folded in ("3rd time since 01:43")
    assert again
    assert max(n for _, n in again) <= max(n for _, n in alarms)
    assert len(again) < 2 * len(alarms) or len(alarms) < 3
    assert "Traceback" not in log
    proc = subprocess.run(
        ["make", "-s", "-f", str(ROOT / "Makefile"), "demo-clean", f"DEMO_DB=vaka_demo_{unique}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env={k: v for k, v in os.environ.items() if not k.startswith("VAKA_")},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (tmp_path / "var").exists()
    assert alarms_of(unique) is None
