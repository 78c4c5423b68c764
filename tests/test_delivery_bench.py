"""bench/fanout.py still runs end to end with tiny numbers (figures are the
benchmark's business, never asserted here)."""
import os
import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "fanout.py"


def test_fanout_benchmark_runs_and_prints_ratios(tmp_path):
    env = {name: value for name, value in os.environ.items() if not name.startswith("FLASKPUSH_")}
    result = subprocess.run([sys.executable, str(BENCH), "--sizes", "40", "--naive-sample", "20"],
                            env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "N = 40 (naive loop on a sample of 20)" in out
    assert re.search(r"^flaskpush send +40 ", out, re.M), out
    assert re.search(r"^naive webpush\(\) +20 ", out, re.M), out
    assert re.search(r"flaskpush rate / naive rate: +\d+\.\dx", out), out
    assert re.search(r"flaskpush CPU/msg / encryption CPU/msg: +\d+\.\d\dx", out), out
