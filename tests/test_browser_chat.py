"""The chat demo (and the ``wsio new`` chat) in headless Chromium: real
pages, the official client loaded from the project's static folder, a real
server. Screenshots go to test-output/browser/."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from browser import ProjectServer, chromium, copy_project
from support import ROOT, output_dir
from webpy_socketio.cli.new import render

pytestmark = [pytest.mark.server, pytest.mark.browser]

WAIT_MS = 8000
SCREENSHOTS = output_dir("browser")


@pytest.fixture(scope="module")
def chat(tmp_path_factory) -> Iterator[ProjectServer]:
    folder = copy_project(ROOT / "example_chat", tmp_path_factory.mktemp("chat") / "example_chat")
    server = ProjectServer(folder, "browser-chat")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as instance:
        yield instance


class Person:
    """One browser context (its own cookies and storage), one tab."""

    def __init__(self, browser: Any, base_url: str, width: int = 1200, height: int = 760) -> None:
        self.context = browser.new_context(
            base_url=base_url, viewport={"width": width, "height": height}
        )
        self.context.set_default_timeout(WAIT_MS)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text}")

    def join(self, room_id: int, name: str) -> None:
        self.page.goto(f"/rooms/{room_id}")
        self.page.fill("#join-name", name)
        self.page.click("#join button[type=submit]")

    def joined(self, room_id: int, name: str) -> Any:
        self.join(room_id, name)
        self.page.wait_for_selector("#chat:not([hidden])")
        self.expect_member(name)
        return self

    def say(self, text: str) -> None:
        self.page.fill("#composer input[name=text]", text)
        self.page.press("#composer input[name=text]", "Enter")

    def expect_member(self, name: str) -> None:
        self.page.locator("#members .name", has_text=name).wait_for()

    def expect_no_member(self, name: str) -> None:
        self.page.locator("#members .name", has_text=name).wait_for(state="detached")

    def members(self) -> list[str]:
        return self.page.locator("#members .name").all_text_contents()

    def texts(self) -> list[str]:
        return self.page.locator("#messages .text").all_text_contents()

    def expect_text(self, text: str) -> None:
        self.page.locator("#messages .text", has_text=text).first.wait_for()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def people(browser, chat) -> Iterator[Any]:
    opened: list[Person] = []

    def person(**viewport: int) -> Person:
        opened.append(Person(browser, chat.url, **viewport))
        return opened[-1]

    yield person
    problems = [p for person in opened for p in person.problems]
    for person in opened:
        person.close()
    # no script error and no Content-Security-Policy violation on any page
    assert problems == []


def test_two_people_in_a_room_and_a_third_elsewhere(people):
    ada, bob, cy = people(), people(), people()
    ada.joined(1, "Ada")
    bob.joined(1, "Bob")
    cy.joined(2, "Cy")
    ada.expect_member("Bob")
    assert sorted(ada.members()) == sorted(bob.members()) == ["Ada", "Bob"]

    ada.say("Hello from Ada")
    bob.expect_text("Hello from Ada")
    bob.say("Hi Ada, Bob here")
    ada.expect_text("Hi Ada, Bob here")
    ada.page.locator("#messages .system", has_text="Bob joined").wait_for()

    # the other room saw none of it
    cy.say("Anyone in room two?")
    cy.expect_text("Anyone in room two?")
    assert cy.members() == ["Cy"]
    assert "Hello from Ada" not in cy.texts() and "Hi Ada, Bob here" not in cy.texts()
    assert "Anyone in room two?" not in ada.texts() + bob.texts()
    bob.page.screenshot(path=str(SCREENSHOTS / "chat-room.png"))


def test_markup_in_a_message_is_shown_as_text(people):
    ada, bob = people(), people()
    ada.joined(1, "Mallory")
    bob.joined(1, "Bea")
    payload = '<script>window.owned = 1</script><img src=x onerror="window.owned = 2"><b>bold</b>'
    ada.say(payload)
    bob.expect_text("window.owned")
    assert payload in bob.texts()
    assert bob.page.evaluate("window.owned") is None
    assert bob.page.locator("#messages b, #messages img, #messages script").count() == 0


def test_a_name_is_unique_per_room(people):
    first, second = people(), people()
    first.joined(1, "Sam")
    second.join(1, "sam")
    second.page.locator("#join-error", has_text="already here").wait_for()
    assert second.page.locator("#chat").is_hidden()
    # the same name is free in another room
    second.joined(2, "sam")


def test_a_closed_tab_leaves_the_member_list(people):
    ada, bob = people(), people()
    ada.joined(2, "Ari")
    bob.joined(2, "Ben")
    ada.expect_member("Ben")
    bob.page.close()
    ada.expect_no_member("Ben")
    ada.page.locator("#messages .system", has_text="Ben left").wait_for()
    assert ada.members() == ["Ari"]


def test_rooms_page_shows_new_rooms_and_counts_live(people):
    watcher, creator, visitor = people(), people(), people()
    watcher.page.goto("/")
    watcher.page.locator("#status.online").wait_for()
    creator.page.goto("/")
    creator.page.fill("#room-name", "Book club <3")
    creator.page.click(".create button")
    creator.page.wait_for_url("**/rooms/*")
    creator.page.locator("#join .join-title", has_text="Book club <3").wait_for()
    room_id = int(creator.page.url.rsplit("/", 1)[1])
    card = watcher.page.locator(f'.room-card[data-room-id="{room_id}"]')
    card.locator(".room-title", has_text="Book club <3").wait_for()
    visitor.joined(room_id, "Vic")
    card.locator("[data-count]", has_text="1 online").wait_for()
    watcher.page.screenshot(path=str(SCREENSHOTS / "rooms.png"))


def test_admin_notice_reaches_all_rooms_or_one(people):
    ada, cy, admin = people(), people(), people()
    ada.joined(1, "Nia")
    cy.joined(2, "Oz")
    admin.page.goto("/admin")
    admin.page.fill("#notice-text", "Maintenance at noon")
    admin.page.select_option("#notice-target", "all")
    admin.page.click("form.stack button")
    admin.page.locator(".flash.ok", has_text="everyone online").wait_for()
    for person in (ada, cy):
        person.page.locator(".notice-banner", has_text="Maintenance at noon").wait_for()
        person.page.locator("#messages .notice", has_text="Maintenance at noon").wait_for()

    admin.page.fill("#notice-text", "Only for room two")
    admin.page.select_option("#notice-target", "2")
    admin.page.click("form.stack button")
    admin.page.locator(".flash.ok", has_text="Notice sent to Random").wait_for()
    cy.page.locator("#messages .notice", has_text="Only for room two").wait_for()
    # a message sent after the notice has arrived is a barrier: had ada got
    # the notice, it would be on her page by then
    cy.say("after the notice")
    ada_person_sees = ada.page.locator("#messages .notice", has_text="Only for room two")
    ada.say("barrier")
    ada.expect_text("barrier")
    assert ada_person_sees.count() == 0
    cy.page.screenshot(path=str(SCREENSHOTS / "notice.png"))


def test_wsio_new_chat_project_works_in_a_browser(browser, tmp_path):
    project = render("browserchat", tmp_path)
    copy = copy_project(project, tmp_path / "served")
    server = ProjectServer(copy, "browser-new")
    pages = []
    try:
        for name in ("Ann", "Bo"):
            context = browser.new_context(base_url=server.url)
            context.set_default_timeout(WAIT_MS)
            page = context.new_page()
            page.goto("/")
            page.fill("input[name=name]", name)
            page.fill("input[name=room]", "lobby")
            page.click("#join button")
            page.wait_for_selector("#room:not([hidden])")
            pages.append(page)
        ann, bo = pages
        ann.locator("#members li", has_text="Bo").wait_for()
        ann.locator("#messages .system", has_text="Bo joined").wait_for()
        ann.fill("#composer input", "hi from a new project")
        ann.press("#composer input", "Enter")
        bo.locator("#messages li", has_text="hi from a new project").wait_for()
        bo.screenshot(path=str(SCREENSHOTS / "wsio-new-chat.png"))
    finally:
        for page in pages:
            page.context.close()
        server.stop()


def overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    """Whether two bounding boxes share any area."""
    return (
        a["x"] < b["x"] + b["width"]
        and b["x"] < a["x"] + a["width"]
        and a["y"] < b["y"] + b["height"]
        and b["y"] < a["y"] + a["height"]
    )


def test_a_notice_on_a_phone_leaves_the_title_and_leave_button_visible(people):
    phone, admin = people(width=390, height=844), people()
    phone.joined(1, "Pim")
    admin.page.goto("/admin")
    admin.page.fill("#notice-text", "A notice long enough to wrap on a narrow phone screen")
    admin.page.select_option("#notice-target", "1")
    admin.page.click("form.stack button")
    banner = phone.page.locator(".notice-banner", has_text="long enough to wrap")
    banner.wait_for()
    box = banner.bounding_box()
    title = phone.page.locator(".chat-head h1").bounding_box()
    leave = phone.page.locator("#leave").bounding_box()
    assert box and title and leave
    assert not overlap(box, title), (box, title)
    assert not overlap(box, leave), (box, leave)
    phone.page.screenshot(path=str(SCREENSHOTS / "notice-phone.png"))
    # and Leave still takes the click (nothing lies on top of it)
    phone.page.click("#leave", timeout=3000)
    phone.page.wait_for_selector("#join:not([hidden])")
