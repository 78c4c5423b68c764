"""Accounts and sign-in: ``/login``, ``/register``, ``/logout``.

Sessions live in the database (``LoginSession``); the cookie only names one.
Ending the row ends the session everywhere: in other requests, in open
WebSockets from their next command, and for the push subscriptions that
were registered through it.
"""
import re

from flask import Blueprint, current_app, jsonify, redirect, render_template, request, session, url_for
from flask_login import LoginManager, current_user, login_user, logout_user
from peewee import IntegrityError
from werkzeug.security import generate_password_hash

from . import csrf, ratelimit
from .db import write_transaction
from .models import LoginSession, User, token_hash

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
USERNAME = re.compile(r"[A-Za-z0-9_.@+-]{1,64}")
_DUMMY_HASH = generate_password_hash("timing-equaliser")


@login_manager.user_loader
def load_user(token):
    return LoginSession.active_user(token_hash(token))


def wants_json():
    return request.mimetype == "application/json"


def credentials():
    """``username`` and ``password`` from a form or a JSON object."""
    data = request.get_json(silent=True) if wants_json() else request.form
    if not isinstance(data, dict):
        return "", ""
    username, password = data.get("username"), data.get("password")
    return (
        username.strip() if isinstance(username, str) else "",
        password if isinstance(password, str) else "",
    )


def answer(status, error=None, user=None, form=None, headers=None):
    """Reply as the caller asked: JSON, or the page (redirect on success)."""
    if wants_json():
        body = {"ok": error is None}
        if error:
            body["error"] = error
        if user:
            body["user"] = user.name
        return jsonify(body), status, headers
    if error is None:
        return redirect(url_for("pages.index"))
    return render_template("index.html", error=error, form=form), status, headers


def authenticate(username, password):
    """The active user with these credentials, or None, in constant-ish time."""
    user = User.get_or_none(User.name == username)
    if user is None:
        User(password_hash=_DUMMY_HASH).check_password(password)
        return None
    if not user.check_password(password) or not user.active:
        return None
    return user


def sign_in(user):
    """Start a server-side session for ``user`` and put its token in the cookie."""
    session.clear()  # no session fixation: a fresh cookie for a fresh sign-in
    user.login_session = LoginSession.start(user, request.user_agent.string or "")
    login_user(user)


@bp.post("/login")
def login():
    username, password = credentials()
    address = request.remote_addr or ""
    wait = ratelimit.sign_in_blocked_for(username, address)
    if wait:
        message = f"Too many failed sign-ins; try again in {wait} seconds"
        return answer(429, message, form="signin", headers={"Retry-After": str(wait)})
    user = authenticate(username, password)
    if user is None:
        with write_transaction():
            ratelimit.record_failure(username, address, current_app.config)
        return answer(401, "Invalid username or password", form="signin")
    with write_transaction():
        ratelimit.clear_failures(username)
        sign_in(user)
    return answer(200, user=user)


def check_password_rule(password):
    """Raise ``ValueError`` for a password shorter than ``MIN_PASSWORD_LENGTH``."""
    minimum = current_app.config["MIN_PASSWORD_LENGTH"]
    if len(password) < minimum:
        raise ValueError(f"Password must be at least {minimum} characters")


def create_user(name, password):
    """Create a user or raise ``ValueError`` with a message fit for the caller."""
    if not USERNAME.fullmatch(name):
        raise ValueError("Username must be 1-64 letters, digits or . _ @ + -")
    check_password_rule(password)
    user = User(name=name)
    user.set_password(password)
    with write_transaction():
        user.save()
    return user


@bp.post("/register")
def register():
    if not current_app.config["OPEN_REGISTRATION"]:
        return answer(403, "Registration is closed", form="signup")
    username, password = credentials()
    try:
        user = create_user(username, password)
    except ValueError as exc:
        return answer(400, str(exc), form="signup")
    except IntegrityError:
        return answer(409, "That username is taken", form="signup")
    sign_in(user)
    return answer(200, user=user)


def end_session(login_session):
    """Delete the session row; its subscriptions and sockets go with it."""
    with write_transaction():
        LoginSession.delete().where(LoginSession.id == login_session.id).execute()


@bp.post("/logout")
def logout():
    if current_user.is_authenticated:
        end_session(current_user.login_session)
    logout_user()
    session.clear()
    return answer(200)


def init_app(app):
    login_manager.init_app(app)
    csrf.init_app(app)
