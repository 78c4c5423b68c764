"""The load benchmarks still run: each script with tiny numbers, end to end.

Timings are never asserted here (they belong in the benchmark output); only
that every run completes against real gunicorn servers, counts no errors,
and prints its figures and ratios. The command benchmark runs on each test
database (``db_url``: SQLite, and this run's private PostgreSQL database).
"""
import os
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run_bench(script, *args):
    env = {name: value for name, value in os.environ.items() if not name.startswith("FLASKPUSH_")}
    result = subprocess.run(
        [sys.executable, str(BENCH / script), *args], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "total errors=0" in result.stdout
    return result.stdout


def test_ws_load_compares_flaskpush_with_echo(db_url, instance_path):
    instance_path.mkdir(exist_ok=True)  # where the SQLite file of db_url goes
    out = run_bench("ws_load.py", "--conns", "3", "8", "--users", "2", "--duration", "1", "--warmup", "0.2",
                    "--rounds", "2", "--database", db_url)
    for c in (3, 8):
        for app in ("echo", "flaskpush"):
            assert re.search(rf"^C={c} +{app} +commands/s= *[1-9]\d* .*errors=0 .*server cpu=\d+%", out, re.M), out
        assert re.search(rf"^C={c} +ratio +flaskpush/echo throughput=\d+\.\d\d \(rounds: \d+\.\d\d \d+\.\d\d\)"
                         rf" +per server CPU second=\d+\.\d\d ",
                         out, re.M), out
    assert "server tracebacks logged: 0" in out


def test_idle_sockets_stay_open_and_authenticated():
    out = run_bench("idle_sockets.py", "--gthread", "12", "--gevent", "30", "--users", "2", "--hold", "1", "--sample", "3")
    for kind, count in (("gthread", 12), ("gevent", 30)):
        assert re.search(
            rf"^{kind} +sockets held={count}/{count} .*presence rows={count}, authenticated sample=3/3 then 3/3",
            out, re.M,
        ), out
        assert re.search(rf"^{kind} +per socket=-?\d+\.\d KiB", out, re.M), out


def test_command_cost_splits_a_command_into_stages():
    out = run_bench("command_cost.py", "--commands", "40", "--batch", "10", "--repeat", "1", "--sockets", "5")
    for stage in ("frame", "session", "validate", "command"):
        assert re.search(rf"^{stage} +\d+\.\d us/command +x +\d+\.\d of frame ", out, re.M), out
    assert re.search(r"^flaskpush adds \d+\.\d us/command of CPU", out, re.M), out
