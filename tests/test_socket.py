"""The WebSocket itself: handshake checks, session life, size limit, resilience."""
import json

import pytest
import websocket
from conftest import Socket, make_subscription, wait_until
from flask import Blueprint

from flaskpush import create_app
from flaskpush.commands import CommandSet, dispatch
from flaskpush.socket import Client
from flaskpush.models import PushSubscription, SocketPresence, User


def not_authenticated(cmd):
    return {"cmd": "error", "src": cmd, "val": "Not authenticated"}


def test_logout_ends_socket_and_its_subscriptions(alice, browser_factory):
    sub = make_subscription()
    assert alice.ws.call("push_subscribe", subscription=sub)["success"]
    # The same user signed in on another browser keeps that browser's subscription.
    phone = browser_factory()
    phone.login("alice")
    phone_sub = make_subscription("https://push.example.com/phone")
    assert phone.socket().call("push_subscribe", subscription=phone_sub)["success"]

    alice.logout()
    assert alice.ws.call("push_subscribe", subscription=sub) == not_authenticated("push_subscribe")
    assert [s.endpoint for s in PushSubscription.select()] == [phone_sub["endpoint"]]


def test_deactivated_or_deleted_user_loses_socket(alice):
    assert alice.ws.call("push_subscribe", subscription=make_subscription())["success"]
    User.update(active=False).where(User.name == "alice").execute()
    assert alice.ws.call("push_unsubscribe", endpoint="https://x.example/") == not_authenticated("push_unsubscribe")
    User.update(active=True).where(User.name == "alice").execute()
    assert alice.ws.call("push_unsubscribe", endpoint="https://x.example/")["success"]
    User.get(User.name == "alice").delete_instance()
    assert alice.ws.call("push_unsubscribe", endpoint="https://x.example/") == not_authenticated("push_unsubscribe")
    assert PushSubscription.select().count() == 0


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://127.0.0.1.evil.example"])
def test_cross_site_handshake_refused(server, origin):
    with pytest.raises(websocket.WebSocketBadStatusException) as exc:
        Socket(server, origin=origin)
    assert exc.value.status_code == 403


def test_same_origin_and_allowed_origins(app, server):
    app.config["ALLOWED_ORIGINS"] = ["https://app.example"]
    assert Socket(server, origin="https://app.example").call("push_get_vapid")["cmd"] == "push_vapid"
    assert Socket(server).call("push_get_vapid")["cmd"] == "push_vapid"
    with pytest.raises(websocket.WebSocketBadStatusException):
        Socket(server, origin="https://app.example:8443")


def test_no_origin_header_is_accepted(server):
    ws = websocket.create_connection(server.replace("http", "ws") + "/ws", suppress_origin=True)
    ws.send(json.dumps({"cmd": "push_get_vapid"}))
    assert json.loads(ws.recv())["cmd"] == "push_vapid"


# simple-websocket wakes the reader for a too-big frame before it marks the
# socket closed, so the handler notices only at its next receive timeout (the
# heartbeat): a short heartbeat lets the test's server stop promptly.
@pytest.mark.app_config(WS_MAX_MESSAGE_SIZE=1024, PRESENCE_HEARTBEAT=1)
def test_oversized_frame_closes_with_1009(alice):
    alice.ws.ws.send(json.dumps({"cmd": "push_get_vapid", "pad": "x" * 4096}))
    opcode, frame = alice.ws.ws.recv_data(control_frame=True)
    assert opcode == websocket.ABNF.OPCODE_CLOSE
    assert int.from_bytes(frame[:2], "big") == 1009


def test_handler_exception_becomes_error_reply(app_config, db_url):
    extra = CommandSet()

    @extra.command("explode", login_required=False, failure="It broke")
    def explode(message, client):
        raise RuntimeError("boom")

    bp = Blueprint("extra", __name__)
    extra.register_with(bp)
    app = create_app(app_config)
    app.register_blueprint(bp)
    client = Client(session_id=None, user_agent="test")
    with app.app_context():
        assert dispatch(app, '{"cmd": "explode"}', client) == {"cmd": "error", "src": "explode", "val": "It broke"}
        assert dispatch(app, '{"cmd": "push_get_vapid"}', client)["cmd"] == "push_vapid"


def test_presence_row_lives_with_the_socket(alice):
    alice.ws.call("push_get_vapid")  # the row is written before the first reply
    assert SocketPresence.select().count() == 1
    assert SocketPresence.get().user.name == "alice"
    anonymous = type(alice)(alice.base_url).socket()
    anonymous.call("push_get_vapid")
    assert SocketPresence.select().count() == 1
    alice.ws.close()
    wait_until(lambda: SocketPresence.select().count() == 0)


@pytest.mark.app_config(PROXY_COUNT=1)
def test_origin_behind_a_tls_proxy(server):
    """The proxy speaks http to the app; the browser's origin is https."""
    headers = ["X-Forwarded-Proto: https", "X-Forwarded-Host: push.example.com"]
    ws = websocket.create_connection(server.replace("http", "ws") + "/ws", header=headers,
                                     origin="https://push.example.com")
    ws.send(json.dumps({"cmd": "push_get_vapid"}))
    assert json.loads(ws.recv())["cmd"] == "push_vapid"
    with pytest.raises(websocket.WebSocketBadStatusException):
        websocket.create_connection(server.replace("http", "ws") + "/ws", header=headers, origin=server)
