"""CSRF protection for HTML forms.

Forms carry the session's token in a hidden ``csrf_token`` input. Requests
with ``Content-Type: application/json`` need none: a browser cannot send
that cross-site without a CORS preflight, which this app never grants.
"""
import hmac
import secrets

from flask import abort, request, session

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def csrf_token():
    """This session's token, created on first use."""
    if "csrf_token" not in session:
        session["csrf_token"] = secrets.token_urlsafe(32)
    return session["csrf_token"]


def check_csrf():
    if request.method in SAFE_METHODS or request.mimetype == "application/json":
        return
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf_token", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, description="The form's CSRF token is missing or invalid; reload the page.")


def init_app(app):
    app.before_request(check_csrf)
    app.jinja_env.globals["csrf_token"] = csrf_token
