"""The whole path in a real headless Firefox, offline: sign in through the page,
``flaskpush.enable()``, ``flask push test-send``, the service worker shows the
notification, ``flaskpush.disable()`` - and what the client script does on its
own: re-sending the subscription after a sign-in, re-subscribing when the
server's VAPID key changed, and reopening its socket after a sign-in made
without navigation; and what the service worker does on its own when the push
service replaces a subscription (``pushsubscriptionchange``).

Firefox's push service is the loopback ``FirefoxPushServer`` (tests/firefox.py),
so each push really is encrypted by the app, checked (VAPID) and relayed by a
push service, decrypted by Firefox and acknowledged.
"""
import json
import time
from pathlib import Path

import pytest
from py_vapid import Vapid

from firefox import BiDiError, Firefox, FirefoxPushServer, JavaScriptError, b64url
from flaskpush.models import PushSubscription, User
from flaskpush.vapid import public_key_b64

pytestmark = [pytest.mark.browser, pytest.mark.app_config(ALLOW_INSECURE_ENDPOINTS=True)]

PASSWORD = "correct horse"
SCREENSHOTS = Path(__file__).parent / "screenshots"
NOTIFICATIONS = """navigator.serviceWorker.ready
  .then(r => r.getNotifications())
  .then(ns => ns.map(n => ({title: n.title, body: n.body, url: n.data && n.data.url})))"""


@pytest.fixture(scope="module")
def push_service():
    with FirefoxPushServer() as service:
        yield service


@pytest.fixture(scope="module")
def firefox(push_service, tmp_path_factory):
    with Firefox(push_service.ws_url, tmp_path_factory.mktemp("firefox")) as browser:
        yield browser


@pytest.fixture
def page(firefox, push_service, server):
    """Firefox on the app's page, its push service connected (see FIREFOX_PUSH.md)."""
    firefox.navigate(server + "/")
    push_service.wait_for_hello()
    return firefox


def settled(firefox, expression, timeout=20):
    """Poll ``expression`` until truthy, across the navigations a form causes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = firefox.evaluate(expression)
        except (JavaScriptError, BiDiError):
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"{expression!r} not truthy after {timeout}s\n{firefox.log_tail()}")


def submit(firefox, form, **fields):
    """Fill and submit one of the page's forms, as a person would."""
    firefox.evaluate(f"""(() => {{
      const form = document.querySelector({json.dumps(form)});
      for (const [name, value] of Object.entries({json.dumps(fields)})) form.elements[name].value = value;
      form.requestSubmit();
    }})()""")


def state(firefox):
    return settled(firefox, "document.querySelector('#flaskpush-state:not([aria-busy])')?.dataset.state")


def sign_up(firefox, name):
    submit(firefox, "form#flaskpush-signup", username=name, password=PASSWORD)
    assert settled(firefox, "document.querySelector('.who strong')?.textContent") == name
    state(firefox)  # the client script has run


def sign_in(firefox, name):
    submit(firefox, "form#flaskpush-signin", username=name, password=PASSWORD)
    assert settled(firefox, "document.querySelector('.who strong')?.textContent") == name
    state(firefox)  # the client script has run


def sign_out(firefox):
    submit(firefox, "form#flaskpush-signout")
    settled(firefox, "!!document.querySelector('form#flaskpush-signin')")


def endpoints(name):
    query = PushSubscription.select(PushSubscription.endpoint).join(User).where(User.name == name)
    return [row.endpoint for row in query]


def wait_for_rows(name, predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while not predicate(rows := endpoints(name)):
        assert time.monotonic() < deadline, f"rows of {name}: {rows}"
        time.sleep(0.1)
    return rows


def test_push_reaches_the_service_worker(page, push_service, runner):
    sign_up(page, "alice")
    assert state(page) == "disabled"

    subscription = page.evaluate("flaskpush.enable()")
    assert subscription["endpoint"].startswith(push_service.origin + "/push/")
    assert endpoints("alice") == [subscription["endpoint"]]
    assert page.evaluate("flaskpush.status()") == {
        "supported": True, "permission": "granted", "enabled": True, "endpoint": subscription["endpoint"]}
    assert state(page) == "enabled"
    [device] = page.evaluate("flaskpush.devices()")
    assert device["current"] is True and device["push_service"] == push_service.origin.split("//")[1]
    this_browser = "document.querySelector('#flaskpush-device-list li:has(.tag)')?.textContent"
    assert "This browser" in settled(page, this_browser)
    assert page.evaluate("document.querySelectorAll('#flaskpush-device-list button').length") == 0
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(SCREENSHOTS / "state-enabled-firefox.png")

    acks_before = len(push_service.acks)
    result = runner.invoke(args=["push", "test-send", "--user", "alice", "--title", "Hello", "--body", "From the server"])
    assert result.exit_code == 0, result.output
    assert push_service.wait_for_acks(acks_before + 1)[-1]["code"] == 100
    assert settled(page, NOTIFICATIONS) == [{"title": "Hello", "body": "From the server", "url": "/"}]

    assert page.evaluate("flaskpush.disable().then(() => flaskpush.status())")["enabled"] is False
    assert endpoints("alice") == []
    assert state(page) == "disabled"
    assert [r.active for r in push_service.registrations() if r.endpoint == subscription["endpoint"]] == [False]


def test_subscription_follows_sign_out_and_sign_in(page):
    sign_up(page, "bob")
    endpoint = page.evaluate("flaskpush.enable()")["endpoint"]
    sign_out(page)
    assert endpoints("bob") == []  # the server dropped it with the session
    sign_in(page, "bob")
    assert wait_for_rows("bob", bool) == [endpoint]  # the page handed it over again
    assert state(page) == "enabled"


def test_a_new_server_key_means_a_new_subscription(page, app, push_service, runner):
    sign_up(page, "carol")
    old = page.evaluate("flaskpush.enable()")["endpoint"]
    rotated = Vapid()
    rotated.generate_keys()
    app.extensions["flaskpush.vapid"] = rotated  # what a restart with a new key file does

    page.evaluate("flaskpush.reconnect()")
    [new] = wait_for_rows("carol", lambda rows: rows and rows != [old])
    assert page.evaluate("flaskpush.status()")["endpoint"] == new
    registration = {r.endpoint: r for r in push_service.registrations()}
    assert registration[old].active is False
    assert b64url(registration[new].key) == public_key_b64(rotated)
    result = runner.invoke(args=["push", "test-send", "--user", "carol", "--title", "New key", "--body", "Still here"])
    assert result.exit_code == 0, result.output
    assert settled(page, NOTIFICATIONS)[-1] == {"title": "New key", "body": "Still here", "url": "/"}


def test_sign_in_without_navigation_reopens_the_socket(page):
    """A host page may sign in with fetch; the socket opened before it was anonymous."""
    status = page.evaluate("""fetch("/register", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({username: "dave", password: "%s"})}).then(r => r.status)""" % PASSWORD)
    assert status == 200
    endpoint = page.evaluate("flaskpush.enable()")["endpoint"]
    assert endpoints("dave") == [endpoint]


def test_a_replaced_subscription_is_reported_by_the_service_worker(page, push_service, runner):
    """The push service forgets the browser: Firefox drops its subscriptions and
    fires pushsubscriptionchange; the service worker subscribes again and tells
    the server on its own, with no page involved."""
    sign_up(page, "erin")
    old = page.evaluate("flaskpush.enable()")["endpoint"]

    hellos = push_service.reset_uaid()
    push_service.wait_for_hello(after=hellos)
    [new] = wait_for_rows("erin", lambda rows: rows and old not in rows, timeout=20)
    assert new.startswith(push_service.origin + "/push/") and new != old
    assert page.evaluate("flaskpush.status()")["endpoint"] == new
    assert {r.endpoint: r.active for r in push_service.registrations()}[old] is False

    result = runner.invoke(args=["push", "test-send", "--user", "erin", "--title", "Moved", "--body", "Not lost"])
    assert result.exit_code == 0, result.output
    assert settled(page, NOTIFICATIONS)[-1] == {"title": "Moved", "body": "Not lost", "url": "/"}
