"""The WebSocket command registry: how a frame becomes a handler call and a reply.

Blueprints own a ``CommandSet`` and register it with themselves; when the
app registers the blueprint, its commands join the app's table. The socket
loop only ever calls ``dispatch``, so new commands never touch the loop.
Errors are data produced here, in one place: handlers raise ``CommandError``
and never format an error frame themselves.
"""
import json
import logging
from dataclasses import dataclass
from typing import Callable

from peewee import PeeweeException

from .db import close_db
from .group_commit import run_command

log = logging.getLogger(__name__)
EXTENSION = "flaskpush.commands"
RATE_LIMITED = "Too many commands; slow down"


class CommandError(Exception):
    """A command failed; ``reason`` is the error reply's ``val``."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Command:
    name: str
    handler: Callable
    login_required: bool
    failure: str  # the reply when the handler fails unexpectedly


class CommandSet:
    """The commands one blueprint contributes."""

    def __init__(self):
        self.commands = {}

    def command(self, name, *, login_required=True, failure="Internal server error"):
        """Register ``handler(message, client) -> reply dict`` for ``name``."""

        def decorator(handler):
            self.commands[name] = Command(name, handler, login_required, failure)
            return handler

        return decorator

    def register_with(self, blueprint):
        def record(state):
            state.app.extensions.setdefault(EXTENSION, {}).update(self.commands)

        blueprint.record_once(record)


def error(src, reason):
    return {"cmd": "error", "src": src, "val": reason}


def parse_frame(frame):
    """The frame as a command object, or a ``CommandError`` saying why not."""
    if isinstance(frame, bytes):
        try:
            frame = frame.decode("utf-8")
        except UnicodeDecodeError:
            raise CommandError("Frame is not valid UTF-8") from None
    try:
        message = json.loads(frame)
    except (ValueError, RecursionError):
        raise CommandError("Frame is not valid JSON") from None
    if not isinstance(message, dict):
        raise CommandError("Frame must be a JSON object")
    if not isinstance(message.get("cmd"), str):
        raise CommandError("Frame must have a string cmd")
    return message


def execute(command, message, client):
    """The handler, after the session check its command asks for."""
    if command.login_required and not client.authenticate():
        raise CommandError("Not authenticated")
    return command.handler(message, client)


def run(command, message, client):
    """Call one handler; every failure becomes that command's error reply.

    A command for a signed-in user needs the database (its session is
    checked first), so it runs where socket database work runs
    (``group_commit``); the others answer even while the database is away.
    """
    try:
        if command.login_required:
            return run_command(lambda: execute(command, message, client))
        return execute(command, message, client)
    except CommandError as exc:
        return error(command.name, exc.reason)
    except PeeweeException:
        log.exception("database error in %s", command.name)
        return error(command.name, command.failure)
    except Exception:
        log.exception("unexpected error in %s", command.name)
        return error(command.name, command.failure)
    finally:
        close_db()


def dispatch(app, frame, client):
    """Turn one incoming frame into exactly one reply."""
    try:
        message = parse_frame(frame)
    except CommandError as exc:
        message, reason = None, exc.reason
    src = message["cmd"] if message else None
    if not client.allow():
        return error(src, RATE_LIMITED)
    if message is None:
        return error(None, reason)
    command = app.extensions.get(EXTENSION, {}).get(src)
    if command is None:
        return error(message["cmd"], "Unknown command")
    return run(command, message, client)
