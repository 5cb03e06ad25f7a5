"""Every page in headless Chromium (the system's, driven by Playwright's client): no console errors, and what each draws.

Playwright never downloads a browser here: it launches the Chromium binary
named by CAIRN_CHROMIUM, else ``chromium`` on PATH (Debian's package, which
``.ci/run`` installs). Without one these tests skip on a developer's machine
and fail in CI. Screenshots go to ``plugins/cairn-serve/test-artifacts/``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import CANARY, Server

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def chromium_path() -> str | None:
    return os.environ.get("CAIRN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("no chromium to drive: .ci/run installs Debian's chromium package")
        pytest.skip("no chromium on PATH (apt-get install chromium, or set CAIRN_CHROMIUM)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


class Page:
    """One browser tab that remembers every console error and uncaught exception."""

    def __init__(self, browser, base: str) -> None:
        self.context = browser.new_context(viewport={"width": 1400, "height": 900})
        self.page = self.context.new_page()
        self.base = base
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"uncaught: {e}"))

    def open(self, path: str):
        response = self.page.goto(self.base + path.lstrip("/"))
        assert response is not None and response.status == 200, path
        self.page.wait_for_selector("body[data-ready]", timeout=30_000)
        return self.page

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser, server: Server):
    opened = Page(browser, server.base)
    yield opened
    opened.close()


def _thread(project) -> str:
    return next(t["thread_id"] for t in project.json("thread", "list") if t["title"] == "Boiling points")


PAGES = {
    "history": "/",
    "materialize": "/materialize?rev=experiment&budget=60",
    "diff": "/diff?a=main&b=experiment",
    "runs": "/runs",
    "calls": "/logs",
    "chat": "/chat",
    "evals": "/evals?base=baseline&run=candidate&resamples=500",
    "spend": "/spend",
    "memory": "/memory?q=Everest+summit&mode=hybrid",
}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_every_page_loads_with_no_console_errors_and_no_secret(tab, name):
    page = tab.open(PAGES[name])
    assert not page.locator(".error").count(), page.locator(".error").all_inner_texts()
    assert CANARY not in page.content()
    tab.shot(name)
    assert tab.errors == []


def test_the_graph_shows_every_commit_and_a_click_opens_one(tab, project):
    page = tab.open("/")
    hashes = {c["hash"] for branch in ("main", "experiment", "memory") for c in project.json("log", branch)}
    nodes = page.locator("#graph svg .commit")
    assert nodes.count() == len(hashes)
    assert {nodes.nth(i).get_attribute("data-hash") for i in range(nodes.count())} == hashes
    # the edit of the answer, and the superseded fact on the memory branch
    assert page.locator("#graph svg path.edge.edit").count() == 2
    assert page.locator("#graph svg path.edge.delete").count() == 1
    assert page.locator("#branches tbody tr").count() == 3

    answer = next(c for c in project.json("log", "main") if "will be edited" in (c["content"] or {}).get("text", ""))
    page.locator(f'#graph .commit[data-hash="{answer["hash"]}"]').click()
    page.wait_for_selector("#commit-history")
    assert page.locator("#commit-title").inner_text() == f"Commit {answer['hash'][:12]}"
    assert "will be edited" in page.locator("#commit-content").inner_text()
    history = page.locator("#commit-history li").all_inner_texts()
    assert len(history) == 2 and " edit " in history[0] and " delete " in history[1]
    assert page.locator(f'#graph .commit.selected[data-hash="{answer["hash"]}"]').count() == 1
    tab.shot("history-commit")
    assert tab.errors == []


def test_a_pinned_commit_shows_its_annotation(tab, project):
    question = next(c for c in project.json("log", "main") if c["content"].get("text", "").startswith("What is"))
    page = tab.open(f"/?commit={question['hash']}")
    assert page.locator("#commit-annotations li").all_inner_texts()[0].endswith("pinned — the question itself")


def test_materialize_lists_messages_items_and_what_was_dropped(tab, project):
    page = tab.open("/materialize?rev=experiment&budget=60")
    data = project.json("materialize", "experiment", "--budget", "60")
    assert page.locator("#items tbody tr").count() == len(data["items"])
    assert page.locator("#dropped tbody tr").count() == len(data["dropped"])
    reasons = {row.split("\t")[1] for row in page.locator("#dropped tbody tr").all_inner_texts()}
    assert reasons == {d["reason"] for d in data["dropped"]}
    assert page.locator("#messages .message").count() == len(data["messages"])


def test_a_bad_budget_is_shown_as_an_error_on_the_page(tab):
    page = tab.page
    page.goto(tab.base + "materialize?budget=0")
    page.wait_for_selector("body[data-ready]")
    assert "budget must be at least 1" in page.locator(".error").inner_text()


def test_diff_marks_what_was_added_removed_and_changed(tab, project):
    page = tab.open("/diff?a=main&b=experiment")
    entries = project.json("diff", "main", "experiment")
    rows = page.locator("#diff tbody tr")
    assert rows.count() == len(entries)
    assert sorted(rows.nth(i).get_attribute("class") for i in range(rows.count())) == sorted(
        e["status"] for e in entries
    )


def test_a_runs_timeline_draws_each_event(tab, project):
    [run] = project.json("runs", "list", "--type", "command")
    events = project.json("runs", "events", run["run_id"])
    page = tab.open("/runs")
    page.locator(f'a[href="/runs/{run["run_id"]}"]').click()
    page.wait_for_selector("body[data-ready]")
    assert page.locator("#timeline-chart circle.event").count() == len(events)
    assert page.locator("#events tbody tr").count() == len(events)
    assert "A note on the last run." in page.locator("#run-chat").inner_text()
    tab.shot("run")
    assert tab.errors == []


def test_the_eval_comparison_chart_renders_each_evaluator(tab, project):
    page = tab.open("/evals?base=baseline&run=candidate&resamples=500")
    chart = page.locator("#comparison-chart")
    assert chart.count() == 1
    groups = chart.locator("g.evaluator")
    assert groups.count() == 3
    labels = {groups.nth(i).get_attribute("data-label") for i in range(3)}
    assert labels == {"exact", "token_f1", "latency:max_ms=600"}
    for i in range(3):
        assert groups.nth(i).locator("line.interval").count() == 1
        assert groups.nth(i).locator("circle.difference").count() == 1
    assert page.locator("#comparison-table tbody tr").count() == 3
    box = chart.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 60
    tab.shot("evals-comparison")


def test_spend_chart_has_a_bar_per_model_and_day(tab, project):
    page = tab.open("/spend")
    groups = [g for g in project.json("spend")["groups"] if g["priced_cost"]]
    assert page.locator("#spend-svg rect.bar").count() == len(groups)
    assert page.locator("#spend tbody tr").count() == len(project.json("spend")["groups"])


def test_chat_shows_the_sealed_message_locked(tab, project):
    page = tab.open(f"/chat?thread={_thread(project)}")
    texts = page.locator("#messages").inner_text()
    assert "Plain words anyone may read." in texts and "[encrypted: no key" in texts
    assert "Sealed words" not in page.content()


def test_memory_lists_facts_episodes_and_search_results(tab, project):
    page = tab.open("/memory?q=boils+altitude&mode=lexical&kind=memory")
    facts = page.locator("#facts tbody tr").all_inner_texts()
    assert len(facts) == len(project.json("memory", "facts")) == 2
    assert any("physics" in row and "lower with altitude" in row and "revised" in row for row in facts)
    assert any("geography" in row and "original" in row for row in facts)
    episodes = page.locator("#episodes tbody tr").all_inner_texts()
    assert any("experiment" in row for row in episodes)
    results = page.locator("#search-results tbody tr").all_inner_texts()
    assert results and "lower with altitude" in results[0]
    assert tab.errors == []


def test_a_bad_memory_search_is_shown_as_an_error_on_the_page(tab):
    page = tab.open("/memory?q=+&mode=lexical")
    assert "the query is empty" in page.locator("#results .error").inner_text()
    assert page.locator("#facts tbody tr").count() == 2


def test_calls_link_to_their_prompt_and_reply_commits(tab, project):
    page = tab.open("/logs")
    calls = project.json("logs")
    assert page.locator("#calls tbody tr").count() == len(calls)
    reply = next(c["reply_commit"] for c in calls if c["reply_commit"])  # an ask's, not an embedding call's
    page.locator(f'a[href="/?commit={reply}"]').click()
    page.wait_for_selector("#commit-title")
    assert page.locator("#commit-title").inner_text() == f"Commit {reply[:12]}"


def test_a_token_in_the_url_opens_the_pages_in_the_browser(browser, project):
    guarded = Server(project.path, "serve", "--port", "0", "--token", "browser-test-token-0123456789")
    try:
        tab = Page(browser, guarded.base)
        page = tab.page
        page.goto(guarded.url)
        page.wait_for_selector("body[data-ready]")
        assert page.url == guarded.base  # the token left the address bar
        assert page.locator("#graph svg .commit").count() > 0
        assert tab.errors == []
        tab.close()
    finally:
        guarded.stop()
