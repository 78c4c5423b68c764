"""Runs the client script's unit tests (tests/js, plain ``node --test``, no
packages) so CI sees them: its reconnect and error paths, which a browser run
cannot provoke on demand."""
import re
import subprocess
from pathlib import Path

JS_TESTS = Path(__file__).parent / "js"


def test_client_protocol_handling():
    result = subprocess.run(["node", "--test", str(JS_TESTS)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "# fail 0" in result.stdout
    assert int(re.search(r"^# pass (\d+)$", result.stdout, re.M).group(1)) > 0
