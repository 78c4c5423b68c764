"""The page at / in a real Chromium: sign-in errors, sign up, sign out, and
each notification state, with a screenshot of each under tests/screenshots/.

Chromium cannot subscribe offline (its push goes through Google's service), so
the enabled state and real delivery are proven in Firefox
(test_browser_firefox_push.py). Here the states come from real browser
conditions: permission denied through Chromium's own permission API, and an
insecure origin - the app reached by a host name mapped to 127.0.0.1 over
plain http - where browsers offer no service workers and no push at all.
"""
import os
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from conftest import store_subscription
from flaskpush.models import PushSubscription, User

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
INSECURE_HOST = "flaskpush.test"
SCREENSHOTS = Path(__file__).parent / "screenshots"
PHONE = {"width": 390, "height": 780}
DESKTOP = {"width": 1200, "height": 760}


def processes_with(marker):
    """PIDs of live processes whose environment carries ``marker``."""
    needle = b"\0" + marker.encode() + b"\0"
    pids = []
    for entry in os.scandir("/proc"):
        try:
            if entry.name.isdigit() and needle in b"\0" + Path(entry.path, "environ").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            pass
    return pids


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for this module; every process it started is gone after."""
    marker = f"FLASKPUSH_TEST_BROWSER={uuid.uuid4().hex}"
    name, _, value = marker.partition("=")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            env={**os.environ, name: value},
            args=["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  f"--host-resolver-rules=MAP {INSECURE_HOST} 127.0.0.1"],
        )
        yield browser
        browser.close()
    assert processes_with(marker) == []


@pytest.fixture
def page(chromium, server):
    context = chromium.new_context(base_url=server, viewport=DESKTOP)
    page = context.new_page()
    yield page
    context.close()


def shoot(page, name):
    """Save the page at phone and desktop width, for a person to look at."""
    SCREENSHOTS.mkdir(exist_ok=True)
    for label, size in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(size)
        page.screenshot(path=SCREENSHOTS / f"{name}-{label}.png", full_page=True)
    page.set_viewport_size(DESKTOP)


def sign_up(page, name="alice", password="correct horse"):
    page.goto("/")
    form = page.locator("form#flaskpush-signup")
    form.locator("[name=username]").fill(name)
    form.locator("[name=password]").fill(password)
    with page.expect_navigation():
        form.locator("button[type=submit]").click()


def state_of(page):
    """The state the script settled on (it marks the element busy until then)."""
    state = page.locator("#flaskpush-state:not([aria-busy])")
    expect(state).to_have_count(1)
    return state.get_attribute("data-state")


def test_anonymous_visitor_sees_the_forms_at_root(page):
    response = page.goto("/")
    assert response.status == 200 and page.url.endswith("/")
    expect(page.locator("form#flaskpush-signin")).to_be_visible()
    expect(page.locator("form#flaskpush-signup")).to_be_visible()
    expect(page.locator("#flaskpush-state")).to_have_count(0)
    shoot(page, "signed-out")


def test_wrong_password_shows_the_servers_message(page, runner):
    runner.invoke(args=["user", "create", "bob", "--password", "correct horse"])
    page.goto("/")
    form = page.locator("form#flaskpush-signin")
    form.locator("[name=username]").fill("bob")
    form.locator("[name=password]").fill("wrong password")
    with page.expect_response(lambda r: r.url.endswith("/login")) as response:
        form.locator("button[type=submit]").click()
    assert response.value.status == 401
    form = page.locator("form#flaskpush-signin")
    expect(form.locator(".error")).to_have_text("Invalid username or password")
    expect(form.locator("[name=username]")).to_have_value("bob")
    shoot(page, "signin-error")


def test_taken_name_shows_the_servers_message(page, runner):
    runner.invoke(args=["user", "create", "alice", "--password", "correct horse"])
    sign_up(page, "alice")
    expect(page.locator("form#flaskpush-signup .error")).to_have_text("That username is taken")
    expect(page.locator("form#flaskpush-signin .error")).to_have_count(0)


def test_sign_up_then_sign_out(page):
    sign_up(page, "carol")
    expect(page.locator(".who")).to_have_text("Signed in as carol")
    assert User.get(User.name == "carol")
    assert state_of(page) == "disabled"
    expect(page.locator("#flaskpush-enable")).to_be_visible()
    expect(page.locator("#flaskpush-disable")).to_be_hidden()
    shoot(page, "state-disabled")
    page.locator("form#flaskpush-signout button").click()
    expect(page.locator("form#flaskpush-signin")).to_be_visible()
    assert page.evaluate("fetch('/').then(r => r.text())").count('id="flaskpush-signin"') == 1


def test_status_before_anything_was_enabled(page):
    sign_up(page)
    status = page.evaluate("flaskpush.status()")
    assert status == {"supported": True, "permission": "default", "enabled": False, "endpoint": None}
    assert page.evaluate("flaskpush.disable().then(() => 'resolved')") == "resolved"


def test_denied_permission(page, server):
    sign_up(page)
    cdp = page.context.new_cdp_session(page)
    context_id = cdp.send("Target.getTargetInfo")["targetInfo"]["browserContextId"]
    cdp.send("Browser.setPermission", {"permission": {"name": "notifications"}, "setting": "denied",
                                       "origin": server, "browserContextId": context_id})
    page.reload()
    assert state_of(page) == "denied"
    expect(page.locator("#flaskpush-enable")).to_be_hidden()
    error = page.evaluate("flaskpush.enable().then(() => null, e => e.message)")
    assert error == "Notification permission was not granted"
    assert page.evaluate("flaskpush.status()")["permission"] == "denied"
    shoot(page, "state-denied")


def test_insecure_origin_is_unsupported(page, server):
    port = server.rsplit(":", 1)[1]
    page.goto(f"http://{INSECURE_HOST}:{port}/")
    assert page.evaluate("window.isSecureContext") is False
    sign_up_form = page.locator("form#flaskpush-signup")
    sign_up_form.locator("[name=username]").fill("dave")
    sign_up_form.locator("[name=password]").fill("correct horse")
    with page.expect_navigation():
        sign_up_form.locator("button[type=submit]").click()
    assert state_of(page) == "unsupported"
    expect(page.locator("#flaskpush-enable")).to_be_hidden()
    assert page.evaluate("flaskpush.status()")["supported"] is False
    error = page.evaluate("flaskpush.enable().then(() => null, e => e.message)")
    assert error == "This browser does not support push notifications"
    shoot(page, "state-unsupported")


def test_a_failed_subscribe_is_shown_on_the_page(page, server):
    """Chromium grants the permission but cannot reach its push service offline."""
    sign_up(page)
    page.context.grant_permissions(["notifications"], origin=server)
    page.reload()
    assert state_of(page) == "disabled"
    page.locator("#flaskpush-enable").click()
    expect(page.locator("#flaskpush-message")).not_to_be_empty(timeout=30000)
    assert state_of(page) == "disabled"
    expect(page.locator("#flaskpush-enable")).to_be_enabled()
    shoot(page, "enable-failed")


ANDROID_CHROME = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/126.0 Mobile Safari/537.36")
WINDOWS_FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:128.0) Gecko/20100101 Firefox/128.0"


def test_other_devices_are_listed_and_removable(page, runner):
    sign_up(page, "erin")
    runner.invoke(args=["user", "create", "frank", "--password", "correct horse"])
    phone, laptop = (store_subscription(User.get(User.name == "erin")) for _ in range(2))
    store_subscription(User.get(User.name == "frank"))
    for row, agent in ((phone, ANDROID_CHROME), (laptop, WINDOWS_FIREFOX)):
        PushSubscription.update(user_agent=agent).where(PushSubscription.id == row.id).execute()
    page.reload()

    items = page.locator("#flaskpush-device-list li")
    expect(items).to_have_count(2)
    expect(items.locator(".name")).to_have_text(["Chrome on Android", "Firefox on Windows"])
    expect(items.first.locator(".details")).to_contain_text("via push.example.com")
    assert state_of(page) == "disabled"
    shoot(page, "devices")

    items.first.get_by_role("button", name="Remove Chrome on Android").click()
    expect(items).to_have_count(1)
    expect(items.locator(".name")).to_have_text(["Firefox on Windows"])
    assert PushSubscription.get_or_none(PushSubscription.id == phone.id) is None
    assert PushSubscription.select().count() == 2  # the laptop's, and frank's untouched
