"""Fixtures for the real-receiver tests: one set of receivers per session,
the CLI binary, a private spool per test, events as JSON files."""

import json
import os
import re
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

from receivers import Receivers  # noqa: E402

CLI = os.environ.get("RS_CLI") or os.path.join(ROOT, "build", "slurm-resilience")
OPERATORS_MD = os.path.join(ROOT, "docs", "operators.md")


def sql_blocks():
    """{name: sql} of the ```sql blocks of docs/operators.md marked with
    <!-- sql:ddl --> or <!-- sql:query NAME -->: the tests run what the
    operators read."""
    with open(OPERATORS_MD) as f:
        text = f.read()
    out = {}
    for m in re.finditer(r"<!-- sql:(ddl|query) ?([a-z_]*) -->\s*```sql\n(.*?)```", text, re.S):
        out[m.group(2) or m.group(1)] = m.group(3).strip()
    return out


@pytest.fixture(scope="session")
def receivers():
    if not os.access(CLI, os.X_OK):
        pytest.exit(f"{CLI} not built (make build/slurm-resilience, or set RS_CLI)", 2)
    r = Receivers()
    r.start()
    for stmt in sql_blocks()["ddl"].split(";"):
        if stmt.strip():
            r.ch(stmt)
    yield r
    r.stop()


@pytest.fixture
def ch(receivers):
    """ClickHouse with an empty events table."""
    receivers.ch("TRUNCATE TABLE slurm_resilience.events")
    return receivers


@pytest.fixture
def spool(tmp_path):
    return str(tmp_path / "spool")


class Cli:
    """Runs build/slurm-resilience with a bounded wait."""

    def __init__(self, spool_dir):
        self.spool = spool_dir

    def run(self, *args, timeout=30, check=None):
        argv = [CLI] + [str(a) for a in args]
        t0 = time.monotonic()
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        p.seconds = time.monotonic() - t0
        if check is not None:
            assert p.returncode == check, (argv, p.returncode, p.stdout, p.stderr)
        return p

    def emit(self, event_file, *opts, **kw):
        return self.run("metrics", "emit", "--event", event_file,
                        f"spool_dir={self.spool}", *opts, **kw)

    def flush(self, *opts, **kw):
        return self.run("flush", f"spool_dir={self.spool}", *opts, **kw)

    def entries(self, dead=False):
        """Spooled entries as dicts (name, kind, format, event_id, attempts,
        next_try, last_error)."""
        p = self.run("metrics", "list", f"spool_dir={self.spool}",
                     *(["--dead"] if dead else []), check=0)
        out = []
        for line in p.stdout.splitlines():
            f = line.split("\t")
            out.append({"name": f[0], "kind": f[1], "format": f[2], "event_id": f[3],
                        "attempts": int(f[4].split("=")[1]),
                        "next_try": int(f[5].split("=")[1]),
                        "last_error": f[6] if len(f) > 6 else ""})
        return out


@pytest.fixture
def cli(spool):
    return Cli(spool)


def make_event(tmp_path, name="ev.json", **over):
    now = int(time.time())
    ev = {
        "cluster": "alpha", "job_id": 42, "attempt": 1, "user": "alice", "uid": 1001,
        "account": "physics", "partition": "batch", "qos": "normal",
        "job_name": "sim", "nodes": "n[1-2]", "num_nodes": 2, "num_tasks": 4,
        "num_cpus": 8, "restart_count": 0, "outcome": "completed", "exit_code": 0,
        "signal": 0, "action": "completed", "start_time": now - 125,
        "end_time": now - 5, "duration_seconds": 120.0, "checkpoints": 0,
        "last_ckpt_generation": None, "last_ckpt_bytes": None,
        "last_ckpt_seconds": None, "restored_from_generation": None,
        "energy_joules": None, "ckpt_dir": "/scratch/alice/ckpt/42",
    }
    ev.update(over)
    path = tmp_path / name
    path.write_text(json.dumps(ev))
    return str(path)


@pytest.fixture
def event(tmp_path):
    def _make(name="ev.json", **over):
        return make_event(tmp_path, name, **over)
    return _make


def wait_for(pred, timeout=10.0, step=0.05):
    """Poll pred() until truthy or timeout; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(step)
