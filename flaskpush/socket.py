"""The WebSocket at ``/ws``: handshake checks and the read-dispatch-reply loop."""
import json
import secrets
from dataclasses import dataclass, field

from flask import Blueprint, abort, current_app, g, request
from flask_login import current_user
from flask_sock import Sock
from peewee import PeeweeException

from .commands import dispatch
from .db import close_db, write_transaction
from .group_commit import run_command
from .models import LoginSession, SocketPresence, utcnow
from .ratelimit import TokenBucket

bp = Blueprint("socket", __name__)
sock = Sock()


@dataclass
class Client:
    """One open socket: who opened it, and who it acts for right now.

    ``session_id`` is fixed at the handshake; ``user_id`` is re-read from it
    before every command that needs one, so a logout, a deactivation or a
    deleted account takes effect on the very next command.
    """

    session_id: str | None
    user_agent: str
    bucket: TokenBucket | None = None
    user_id: int | None = None
    socket_id: str = field(default_factory=lambda: secrets.token_hex(16))

    def allow(self):
        """Whether this socket is within its command rate."""
        return self.bucket is None or self.bucket.allow()

    def authenticate(self):
        self.user_id = LoginSession.active_user_id(self.session_id) if self.session_id else None
        return self.user_id is not None


def request_origin():
    return f"{request.scheme}://{request.host}"


@bp.before_request
def check_handshake():
    """Settle everything that can fail before the connection is upgraded,
    while an HTTP error can still be sent: refuse cross-site handshakes (so
    another site cannot ride the cookie), and read the session (503 if the
    database is unreachable)."""
    origin = request.headers.get("Origin")
    if origin is not None and origin != request_origin() and origin not in current_app.config["ALLOWED_ORIGINS"]:
        abort(403)
    try:
        g.session_id = current_user.login_session.id if current_user.is_authenticated else None
    except PeeweeException:
        current_app.logger.exception("cannot read the session of a WebSocket handshake")
        abort(503)
    finally:
        close_db()


class Presence:
    """This socket's row in ``SocketPresence`` while its user is signed in."""

    def __init__(self, client):
        self.client = client
        self.beat_at = None

    def beat(self):
        """Create or refresh the row; drop it once the session has ended."""
        if not self.client.authenticate():
            self.clear()
            return
        now = utcnow()
        with write_transaction():
            SocketPresence.insert(
                id=self.client.socket_id,
                user=self.client.user_id,
                login_session=self.client.session_id,
                heartbeat_at=now,
            ).on_conflict(
                conflict_target=[SocketPresence.id], update={SocketPresence.heartbeat_at: now}
            ).execute()
        self.beat_at = now

    def clear(self):
        with write_transaction():
            SocketPresence.delete().where(SocketPresence.id == self.client.socket_id).execute()
        self.beat_at = None

    def due(self, interval):
        return self.beat_at is not None and (utcnow() - self.beat_at).total_seconds() >= interval


@sock.route("/ws", bp=bp)
def websocket(ws):
    """Read frames until the client goes; answer each on this socket only."""
    app = current_app._get_current_object()
    session_id = g.session_id
    client = Client(
        session_id=session_id,
        user_agent=request.user_agent.string or "",
        bucket=TokenBucket(app.config["WS_COMMAND_RATE"], app.config["WS_COMMAND_BURST"]),
    )
    presence = Presence(client)
    interval = app.config["PRESENCE_HEARTBEAT"]
    if session_id:
        safely(app, presence.beat)
    try:
        while True:
            frame = ws.receive(timeout=interval)
            if frame is not None:
                ws.send(json.dumps(dispatch(app, frame, client)))
            if session_id and (frame is None or presence.due(interval)):
                safely(app, presence.beat)
    finally:
        safely(app, presence.clear)


def safely(app, action):
    """Presence is best effort: a database hiccup must not close the socket.
    It is socket database work like a command, so it runs where commands do."""
    try:
        run_command(action)
    except Exception:
        app.logger.exception("presence update failed")
    finally:
        close_db()


def init_app(app):
    app.config.setdefault(
        "SOCK_SERVER_OPTIONS",
        {
            "max_message_size": app.config["WS_MAX_MESSAGE_SIZE"],
            "ping_interval": app.config["WS_PING_INTERVAL"],
        },
    )
    sock.init_app(app)
