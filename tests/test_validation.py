"""The subscription rules of the contract, checked without a server."""
import base64

import pytest
from conftest import make_subscription

from flaskpush.commands import CommandError
from flaskpush.push.validation import MISSING, validate_subscription


def reason(subscription, allow_insecure=False):
    with pytest.raises(CommandError) as exc:
        validate_subscription(subscription, allow_insecure)
    return exc.value.reason


@pytest.mark.parametrize(
    "endpoint",
    [
        "https://updates.push.services.mozilla.com/wpush/v2/abc",
        "https://fcm.googleapis.com/fcm/send/abc:def",
        "https://push.example.com:8443/x?y=1",
        "https://8.8.8.8/x",
        "https://[2001:4860:4860::8888]/x",
        "https://push.example/".ljust(2048, "p"),
    ],
    ids=repr,
)
def test_valid_endpoints(endpoint):
    assert len(endpoint) <= 2048
    assert validate_subscription(make_subscription(endpoint)).endpoint == endpoint


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://push.example.com/x",
        "ftp://push.example.com/x",
        "https:///x",
        "https://user:pw@push.example.com/x",
        "https://user@push.example.com/x",
        "https://localhost/x",
        "https://api.localhost/x",
        "https://127.0.0.1/x",
        "https://127.1/x",
        "https://0x7f.0.0.1/x",
        "https://2130706433/x",
        "https://10.1.2.3/x",
        "https://192.168.0.1/x",
        "https://172.16.0.1/x",
        "https://169.254.169.254/latest/meta-data",
        "https://0.0.0.0/x",
        "https://[::1]/x",
        "https://[::]/x",
        "https://[fe80::1]/x",
        "https://[fd00::1]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://[::ffff:10.0.0.1]/x",
        "https://push.example.com:99999/x",
        "https://push.example.com/a b",
        "https://push.example.com/\nx",
        "https://push.example/".ljust(2049, "p"),
        "not a url",
        ["https://push.example.com/x"],
        {"url": "https://push.example.com/x"},
        7,
        True,
    ],
    ids=lambda e: repr(e)[:60],
)
def test_invalid_endpoints(endpoint):
    assert reason(make_subscription(endpoint)) == "Invalid endpoint"


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:8080/push/1", "https://localhost/x", "http://10.0.0.2/x"])
def test_insecure_endpoints_allowed_when_configured(endpoint):
    assert validate_subscription(make_subscription(endpoint), allow_insecure=True).endpoint == endpoint


def test_insecure_setting_still_requires_http_and_host():
    assert reason(make_subscription("ftp://127.0.0.1/x"), True) == "Invalid endpoint"
    assert reason(make_subscription("http://u:p@127.0.0.1/x"), True) == "Invalid endpoint"


def with_keys(**keys):
    sub = make_subscription()
    sub["keys"] = {**sub["keys"], **keys}
    return sub


def test_keys_accept_padding_and_are_stored_canonical():
    sub = make_subscription()
    padded = with_keys(p256dh=sub["keys"]["p256dh"] + "=", auth=sub["keys"]["auth"] + "==")
    padded["endpoint"] = sub["endpoint"]
    checked = validate_subscription(padded)
    assert checked.auth == padded["keys"]["auth"].rstrip("=")
    assert "=" not in checked.p256dh


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "keys",
    [
        {"auth": b64(b"x" * 15)},
        {"auth": b64(b"x" * 17)},
        {"auth": "!!!!!!!!!!!!!!!!!!!!!!"},
        {"auth": 12345},
        {"p256dh": b64(b"\x04" + b"\x01" * 64)},  # not on the curve
        {"p256dh": b64(b"\x02" + b"\x01" * 32)},  # compressed form
        {"p256dh": b64(b"\x04" * 66)},
        {"p256dh": "+/+/" * 22},  # standard, not url-safe, alphabet
        {"p256dh": ["a"]},
    ],
)
def test_invalid_keys(keys):
    assert reason(with_keys(**keys)) == "Invalid subscription keys"


@pytest.mark.parametrize(
    "sub",
    [
        {},
        {"endpoint": "https://push.example.com/x"},
        {"endpoint": "https://push.example.com/x", "keys": {}},
        {"endpoint": "https://push.example.com/x", "keys": None},
        {"endpoint": None, "keys": {"p256dh": "a", "auth": "b"}},
        {"endpoint": "https://push.example.com/x", "keys": {"p256dh": None, "auth": "b"}},
        {"endpoint": "https://push.example.com/x", "keys": {"p256dh": "a", "auth": ""}},
    ],
)
def test_missing_fields(sub):
    assert reason(sub) == MISSING


def test_not_an_object():
    assert reason(["endpoint"]) == "Missing subscription object"


@pytest.mark.parametrize("value", ["soon", True, float("inf"), 1e30, [1]])
def test_invalid_expiration_time(value):
    sub = make_subscription()
    sub["expirationTime"] = value
    assert reason(sub) == "Invalid expirationTime"


def test_expiration_time_is_kept():
    sub = make_subscription()
    sub["expirationTime"] = 1_900_000_000_000
    assert validate_subscription(sub).expiration_time.year == 2030
