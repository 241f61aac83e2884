"""Issue 6 end to end: jobs on a real Slurm cluster push their per-attempt
events to a real ClickHouse, Pushgateway and Alertmanager (started here),
through the plugin's spool."""
import glob
import os
import re
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "metrics"))
from receivers import Receivers  # noqa: E402

TABLE = "slurm_resilience.events"
TOKEN = "tok-7d1c-never-show-me-e4b2"


def _ddl():
    with open(os.path.join(ROOT, "docs", "operators.md")) as f:
        text = f.read()
    m = re.search(r"<!-- sql:ddl -->\s*```sql\n(.*?)```", text, re.S)
    return [s for s in m.group(1).split(";") if s.strip()]


@pytest.fixture(scope="module")
def rcv():
    r = Receivers().start()
    for stmt in _ddl():
        r.ch(stmt)
    yield r
    r.stop()


@pytest.fixture
def spool(cluster, request):
    d = os.path.join(cluster.dir, "spool-" + request.node.name[:30])
    os.makedirs(d, mode=0o700)
    return d


def _rows(rcv, job):
    return rcv.query("SELECT attempt, outcome, action, exit_code, duration_seconds, "
                     "event_id, restart_count FROM %s FINAL WHERE job_id = %d "
                     "ORDER BY attempt" % (TABLE, job))


def _cli(cluster, *args):
    return cluster.run([os.path.join(os.path.dirname(cluster.plugin),
                                     "slurm-resilience")] + list(args), timeout=60)


def test_two_attempts_two_rows_in_clickhouse_and_pushgateway(cluster, plugstack, rcv, spool):
    """Must show 1."""
    script = "#!/bin/bash\nsleep 1\n[ $RESILIENCE_ATTEMPT = 1 ] && exit 3\nexit 0\n"
    args = ("metrics_url=%s metrics_format=clickhouse clickhouse_table=%s "
            "spool_dir=%s cluster=rstest state_dir=%s/st"
            % (rcv.clickhouse_url, TABLE, spool, cluster.dir))
    with plugstack(args):
        j = cluster.sbatch(script, ["--resilience=retries=2"])
        cluster.wait_state(j, "COMPLETED", 90)
        cluster.wait_for(lambda: len(_rows(rcv, j)) == 2, 30, "two rows")
    rows = _rows(rcv, j)
    assert [(r["attempt"], r["outcome"], r["action"], r["exit_code"], r["restart_count"])
            for r in rows] == [(1, "failed", "requeued", 3, 0), (2, "completed", "completed", 0, 1)]
    assert all(1 <= r["duration_seconds"] <= 10 for r in rows), rows
    assert rows[0]["event_id"] != rows[1]["event_id"]
    assert os.listdir(spool) == [] or all(not f.endswith(".json")
                                          for f in os.listdir(spool))

    # The same job shape, pushed to the Pushgateway instead.
    args = ("metrics_url=%s metrics_format=prometheus spool_dir=%s cluster=rstest "
            "state_dir=%s/st" % (rcv.pushgateway_url, spool, cluster.dir))
    with plugstack(args):
        j2 = cluster.sbatch(script, ["--resilience=retries=2"])
        cluster.wait_state(j2, "COMPLETED", 90)

        def pushed():
            s = rcv.pushgateway_samples("slurm_resilience_attempts_total")
            return [v for k, v in s.items() if ("job_id", str(j2)) in k]
        cluster.wait_for(lambda: pushed() == [2.0], 30, "attempt 2 in the Pushgateway")


def test_exhausted_retries_alert_reaches_alertmanager(cluster, plugstack, rcv, spool):
    """Must show 3."""
    args = ("alert_url=%s spool_dir=%s cluster=rstest state_dir=%s/st"
            % (rcv.alertmanager_url, spool, cluster.dir))
    with plugstack(args):
        j = cluster.sbatch("#!/bin/bash\nexit 2\n", ["--resilience=retries=1"])

        def alert():
            return [a for a in rcv.alerts()
                    if a["labels"].get("alertname") == "SlurmJobRetriesExhausted"
                    and a["labels"].get("job_id") == str(j)]
        cluster.wait_for(lambda: alert(), 90, "the alert")
    labels = alert()[0]["labels"]
    assert labels["cluster"] == "rstest"
    assert labels["user"] == "rstest"
    assert labels["partition"] == "debug"
    assert cluster.job(j)["Reason"] == "job_requeued_in_held_state"


def test_receiver_down_nothing_lost_job_not_held_up(cluster, plugstack, spool):
    """Must show 2: the receiver is down while the job ends; the job is not
    held up; the event waits in the spool; `flush` delivers it once a
    receiver is back, and a deliberate second send still leaves one row."""
    down = Receivers(pushgateway=False, alertmanager=False).start()
    url = down.clickhouse_url
    down.stop()                              # nothing listens there now
    args = ("metrics_url=%s metrics_format=clickhouse clickhouse_table=%s "
            "spool_dir=%s cluster=rstest timeout_ms=500" % (url, TABLE, spool))
    with plugstack(args):
        j0 = cluster.sbatch("#!/bin/bash\nexit 0\n")     # no metrics at all
        t0 = time.time()
        cluster.wait_done(j0)
        plain = time.time() - t0
        j = cluster.sbatch("#!/bin/bash\nexit 0\n", ["--resilience=retries=1"])
        t0 = time.time()
        cluster.wait_done(j)
        with_dead = time.time() - t0
    assert with_dead < plain + 2, (plain, with_dead)
    time.sleep(3)  # the detached sender has given up by now
    entries = [f for f in glob.glob(os.path.join(spool, "e-*"))]
    assert len(entries) == 1, os.listdir(spool)
    with open(entries[0], "rb") as f:
        saved = f.read()
    assert (":%d:1" % j).encode() in saved          # its event_id

    back = Receivers(pushgateway=False, alertmanager=False).start()
    try:
        for stmt in _ddl():
            back.ch(stmt)
        flush = ["flush", "--all", "metrics_url=" + back.clickhouse_url,
                 "metrics_format=clickhouse", "clickhouse_table=" + TABLE,
                 "spool_dir=" + spool, "cluster=rstest"]
        r = _cli(cluster, *flush)
        assert r.returncode == 0, r.stdout + r.stderr
        assert glob.glob(os.path.join(spool, "e-*")) == []
        q = "SELECT job_id, attempt FROM %s FINAL WHERE job_id = %d" % (TABLE, j)
        assert back.query(q) == [{"job_id": j, "attempt": 1}]
        # Send the very same entry again.
        with open(entries[0], "wb") as f:
            f.write(saved)
        os.chmod(entries[0], 0o600)
        r = _cli(cluster, *flush)
        assert r.returncode == 0, r.stdout + r.stderr
        assert glob.glob(os.path.join(spool, "e-*")) == []
        assert back.query("SELECT count() AS n FROM %s WHERE job_id = %d"
                          % (TABLE, j)) in ([{"n": "2"}], [{"n": 2}])
        assert back.query(q) == [{"job_id": j, "attempt": 1}]
    finally:
        back.stop()


def test_token_never_in_job_env_output_or_log(cluster, plugstack, rcv, spool):
    """Must show 4, and a token file readable by others is refused."""
    tok = os.path.join(cluster.dir, "token")
    with open(tok, "w") as f:
        f.write(TOKEN + "\n")
    os.chmod(tok, 0o600)
    args = ("metrics_url=%s metrics_format=prometheus token_file=%s spool_dir=%s "
            "cluster=rstest" % (rcv.pushgateway_url, tok, spool))
    script = ("#!/bin/bash\nenv\ncat /proc/$$/environ | tr '\\0' '\\n'\n"
              "sleep 3\necho bye\n")
    with plugstack(args):
        j = cluster.sbatch(script, ["--resilience=retries=1"])
        cluster.wait_state(j, "RUNNING")
        time.sleep(1)
        environs = ""
        for pid in cluster.own_pids(job=j):   # this job's, not the machine's
            try:
                with open("/proc/%s/environ" % pid, "rb") as f:
                    environs += f.read().decode(errors="replace")
            except OSError:
                pass
        cluster.wait_done(j)

        def pushed():
            s = rcv.pushgateway_samples("slurm_resilience_attempts_total")
            return [v for k, v in s.items() if ("job_id", str(j)) in k]
        cluster.wait_for(lambda: pushed() == [1.0], 30, "the event in the Pushgateway")
    logs = "".join(open(p, errors="replace").read()
                   for p in glob.glob(os.path.join(cluster.dir, "*.log")))
    assert "RESILIENCE_SPEC" in cluster.output(j)      # the job's env was printed
    assert environs                                    # and read from /proc
    for where, text in (("environ", environs), ("output", cluster.output(j)),
                        ("logs", logs)):
        assert TOKEN not in text, where

    # A token file that others can read is refused, with the file named;
    # the job itself runs.
    os.chmod(tok, 0o644)
    with plugstack(args):
        j2 = cluster.sbatch("#!/bin/bash\necho ran\n", ["--resilience=retries=1"])
        assert cluster.wait_done(j2)["JobState"] == "COMPLETED"
    log = cluster.slurmd_log(cluster.job(j2)["NodeList"])
    assert re.search(r"metrics disabled: .*%s" % re.escape(tok), log), log[-2000:]
    assert TOKEN not in log
