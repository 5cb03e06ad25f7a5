"""Sessions and checkpoints in `cairn serve`: the JSON API and the pages, over a project of their own.

The project of conftest stays as it is (its graph and spend tests count its
branches and calls); this one has two sessions, asks in the first through the
fake OpenAI server, and checkpoints. A second server over an empty project
shows the empty states.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
from conftest import CANARY, CANARY_ENV, OPENAI_KEY_ENV, Project, Server, clean_env
from test_browser import Page, browser  # noqa: F401  (the module's Chromium, reused)

from cairn.testing.fake_openai import FakeOpenAI, Reply


@pytest.fixture(scope="module")
def sessions_project(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module) -> Project:
    root = tmp_path_factory.mktemp("serve-sessions") / "project"
    root.mkdir()
    cairn = Project(root)
    cairn("init")
    cairn("commit", "-t", "instruction", "You are a brief travel assistant.")
    with FakeOpenAI(api_key="sk-fake-sessions-key-123456", model="gpt-4o-mini") as server:
        toml = root / "cairn.toml"
        toml.write_text(
            toml.read_text().replace('llm = "noop"', 'llm = "openai"')
            + f'\n[llm.openai]\nbase_url = "{server.url}"\napi_key_env = "{OPENAI_KEY_ENV}"\nmodel = "gpt-4o-mini"\n'
        )
        server.script(Reply("Take the TGV from Paris."), Reply("The same train, the other way."))
        env = {OPENAI_KEY_ENV: "sk-fake-sessions-key-123456"}
        cairn("session", "new", "--title", "Trip planning")
        cairn("ask", "How do I get to Lyon?", "--no-stream", env=env)
        cairn("checkpoint", "create", "after-one", "-m", "one answer in")
        cairn("ask", "And back?", "--no-stream", env=env)
    cairn("switch", "main")
    cairn("session", "new", "--title", "Quiet one", "--no-switch")
    cairn("checkpoint", "create", "main-start", "-m", f"the instructions alone, and a key by accident: {CANARY}")
    return cairn


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    """The project is built in process: the server's environment, not the developer's, is the one it sees."""
    with pytest.MonkeyPatch.context() as patch:
        for key in list(os.environ):
            patch.delenv(key)
        for key, value in clean_env().items():
            patch.setenv(key, value)
        yield patch


@pytest.fixture(scope="module")
def served(sessions_project: Project) -> Iterator[Server]:
    running = Server(sessions_project.path, "serve", "--port", "0", env={CANARY_ENV: CANARY})
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def api(served: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.base, timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def empty(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("serve-empty") / "project"
    root.mkdir()
    Project(root)("init")
    running = Server(root, "serve", "--port", "0")
    try:
        yield running
    finally:
        running.stop()


def get(api: httpx.Client, path: str):
    response = api.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def _by_title(project: Project) -> dict[str, dict]:
    return {s["title"]: s for s in project.json("session", "list")}


# -- the JSON API ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/checkpoints", "/api/sessions", "/checkpoints"])
def test_no_response_holds_the_secret_in_the_servers_environment(api, path):
    response = api.get(path)
    assert response.status_code == 200 and CANARY not in response.text


def test_sessions_list_matches_cairn_session_list(api, sessions_project):
    listed = get(api, "/api/sessions")
    assert listed == sessions_project.json("session", "list")
    trip, quiet = _by_title(sessions_project)["Trip planning"], _by_title(sessions_project)["Quiet one"]
    assert [s["id"] for s in listed] == [quiet["id"], trip["id"]]  # the most recently active first
    assert trip["provider"] == "openai" and trip["branch"] == f"sessions/{trip['id']}"
    assert trip["totals"]["turns"] == 2 and trip["totals"]["input_tokens"] > 0 and trip["totals"]["runs"] == 2
    assert quiet["totals"]["turns"] == 0


def test_one_session_has_its_turns_runs_and_checkpoints(api, sessions_project):
    trip = _by_title(sessions_project)["Trip planning"]
    data = get(api, f"/api/sessions/{trip['id']}")
    shown = sessions_project.json("session", "show", trip["id"])
    assert data["turns"] == 2 and data["totals"] == shown["totals"] and data["head"] == shown["head"]
    assert [r["run_id"] for r in data["runs"]] == shown["runs"]
    assert all(r["type"] == "llm" and r["status"] == "ok" for r in data["runs"])
    assert [c["name"] for c in data["checkpoints"]] == ["after-one"]
    quiet = _by_title(sessions_project)["Quiet one"]
    assert get(api, f"/api/sessions/{quiet['id']}")["runs"] == []


def test_checkpoints_list_matches_cairn_checkpoint_list(api, sessions_project):
    listed = get(api, "/api/checkpoints")
    kept = sessions_project.json("checkpoint", "list")
    assert [{**c, "message": None} for c in listed] == [{**c, "message": None} for c in kept]
    assert CANARY in str(kept) and "the instructions alone" in str(listed)  # the message is shown, its key masked
    after = next(c for c in listed if c["name"] == "after-one")
    trip = _by_title(sessions_project)["Trip planning"]
    assert after["session"] == trip["id"] and after["branch"] == trip["branch"] and after["message"] == "one answer in"
    assert after["commit"] != trip["head"] and after["tokens"] > 0  # the point after one answer, not the tip
    assert {"name", "commit", "branch", "session", "tokens", "created", "message"} <= set(after)


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/api/sessions/s-nosuchsession", 404, "s-nosuchsession"),
        ("/api/sessions/not-a-session", 400, "not-a-session"),
        ("/api/sessions/..%2Frefs", 404, "no API endpoint"),
    ],
)
def test_a_bad_session_id_gets_a_clear_json_error(api, path, status, says):
    response = api.get(path)
    assert response.status_code == status, response.text
    body = response.json()
    assert says in body["error"] and set(body) == {"error", "hint"}


def test_an_empty_project_has_no_sessions_or_checkpoints(empty):
    with httpx.Client(base_url=empty.base, timeout=30) as client:
        assert get(client, "/api/sessions") == [] and get(client, "/api/checkpoints") == []


# -- the pages ---------------------------------------------------------------------


@pytest.fixture
def tab(browser, served: Server):  # noqa: F811
    opened = Page(browser, served.base)
    yield opened
    opened.close()


def test_the_sessions_page_lists_both_and_opens_one(tab, sessions_project):
    page = tab.open("/sessions")
    rows = page.locator("#sessions tbody tr").all_inner_texts()
    assert len(rows) == 2 and "Quiet one" in rows[0] and "Trip planning" in rows[1]
    trip = _by_title(sessions_project)["Trip planning"]
    assert "openai" in rows[1] and "\t2\t" in rows[1]
    tab.shot("sessions")
    page.locator(f'a[href="/sessions/{trip["id"]}"]').click()
    page.wait_for_selector("body[data-ready]")
    assert page.locator("#totals tbody td").first.inner_text() == "2"
    assert page.locator("#session-runs tbody tr").count() == 2
    assert "after-one" in page.locator("#session-checkpoints tbody").inner_text()
    assert page.locator("#materialize-link").get_attribute("href") == f"/materialize?rev=sessions%2F{trip['id']}"
    tab.shot("session")
    page.locator("#materialize-link").click()
    page.wait_for_selector("body[data-ready]")
    assert "The same train, the other way." in page.locator("main").inner_text()
    assert tab.errors == []


def test_the_checkpoints_page_links_each_to_its_commit(tab, sessions_project):
    page = tab.open("/checkpoints")
    listed = sessions_project.json("checkpoint", "list")
    assert page.locator("#checkpoints tbody tr").count() == len(listed) == 2
    tab.shot("checkpoints")
    after = next(c for c in listed if c["name"] == "after-one")
    page.locator(f'a[href="/?commit={after["commit"]}"]').click()
    page.wait_for_selector("#commit-title")
    assert page.locator("#commit-title").inner_text() == f"Commit {after['commit'][:12]}"
    assert tab.errors == []


def test_a_bad_session_id_is_shown_as_an_error_on_the_page(tab):
    page = tab.open("/sessions/s-nosuchsession")
    assert "s-nosuchsession" in page.locator("#page-error .error").inner_text()


@pytest.mark.parametrize("path", ["/sessions", "/checkpoints"])
def test_an_empty_project_shows_a_clear_empty_state(browser, empty, path):  # noqa: F811
    opened = Page(browser, empty.base)
    try:
        page = opened.open(path)
        assert "yet:" in page.locator("tbody .empty").inner_text()
        opened.shot("empty-" + path.strip("/"))
        assert opened.errors == []
    finally:
        opened.close()
