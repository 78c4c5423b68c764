"""Clients that vanish without a close frame are noticed and let go."""
import threading
import time

import pytest
import websocket

from flaskpush.models import SocketPresence


def keep_reading(ws, seconds):
    """Read like a live browser: websocket-client answers pings while reading."""
    deadline = time.monotonic() + seconds
    ws.settimeout(0.2)
    while time.monotonic() < deadline:
        try:
            ws.recv()
        except websocket.WebSocketTimeoutException:
            pass


@pytest.mark.app_config(WS_PING_INTERVAL=0.5)
def test_silent_client_is_dropped_and_its_presence_cleared(alice, browser_factory):
    live_browser = browser_factory()
    live_browser.login("alice")
    live = live_browser.socket()
    for ws in (alice.ws, live):
        ws.call("push_get_vapid")
    assert SocketPresence.select().count() == 2
    # alice.ws goes silent (never reads again, so never pongs); `live` keeps reading.
    reader = threading.Thread(target=keep_reading, args=(live.ws, 3.0))
    reader.start()
    reader.join()
    assert SocketPresence.select().count() == 1
    live.ws.settimeout(5)
    assert live.call("push_get_vapid")["cmd"] == "push_vapid"
    # Unread on the silent socket: the server's pings, then its close frame
    # (1008, "Ping/Pong timeout"), then the end of the connection (werkzeug's
    # development server writes a stray HTTP response after it; gunicorn not).
    raw, sock = b"", alice.ws.ws.sock
    sock.settimeout(5)
    while chunk := sock.recv(4096):
        raw += chunk
    assert raw.startswith(b"\x89\x00\x88\x13" + (1008).to_bytes(2, "big") + b"Ping/Pong timeout")
