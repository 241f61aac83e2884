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


# One job of each kind the operators' queries must tell apart.  Each
# script knows its attempt from RESILIENCE_ATTEMPT.
CKPT_MODEL = r"""#!/bin/bash
trap 'T=$((T+1)); touch $RESILIENCE_CKPT_READY' USR1
T=0
head -c 2097152 /dev/zero > $RESILIENCE_SCRATCH/state
while [ $T -lt 3 ]; do sleep 0.5; done
sleep 6
exit 0
"""


def _held(cluster, j):
    return cluster.job(j).get("Reason") == "job_requeued_in_held_state"


def test_operator_queries_on_events_of_real_jobs(cluster, plugstack, rcv, spool, userdir):
    """Issue 14, must show 3: every query of docs/operators.md, run on the
    events real jobs sent, returns the figures this test knows: a job that
    completed, one retried once, a `scontrol requeue` (a continuation, no
    retry), one held then released by an operator and completed, one held
    and still held, one that fails without a retry, one that took more
    checkpoints than keep=1 leaves."""
    q = {}
    with open(os.path.join(ROOT, "docs", "operators.md")) as f:
        for m in re.finditer(r"<!-- sql:query ([a-z_]+) -->\s*```sql\n(.*?)```", f.read(), re.S):
            q[m.group(1)] = m.group(2)
    rcv.ch("TRUNCATE TABLE " + TABLE)
    args = ("metrics_url=%s metrics_format=clickhouse clickhouse_table=%s "
            "spool_dir=%s cluster=rsq state_dir=%s/st-q"
            % (rcv.clickhouse_url, TABLE, spool, cluster.dir))
    A = "#!/bin/bash\nexit 0\n"
    with plugstack(args):
        ok = cluster.sbatch(A, ["--resilience=retries=2"])
        retried = cluster.sbatch("#!/bin/bash\n[ $RESILIENCE_ATTEMPT = 1 ] && exit 3\nexit 0\n",
                                 ["--resilience=retries=2"])
        cont = cluster.sbatch("#!/bin/bash\n[ $RESILIENCE_ATTEMPT = 1 ] && sleep 300\nexit 0\n",
                              ["--resilience=retries=2"])
        released = cluster.sbatch("#!/bin/bash\n[ $RESILIENCE_ATTEMPT -lt 3 ] && exit 2\nexit 0\n",
                                  ["--resilience=retries=1"])
        held = cluster.sbatch("#!/bin/bash\nexit 2\n", ["--resilience=retries=1"])
        failed = cluster.sbatch("#!/bin/bash\nexit 1\n",
                                ["--resilience=retries=2,requeue_on=exit:75"])
        ckpt = cluster.sbatch(CKPT_MODEL, ["--resilience=ckpt=%s/ck,scratch=%s/s-%%j,"
                                           "every=10s,grace=3,keep=1,lead=0,retries=1"
                                           % (userdir, userdir)])
        cluster.wait_state(cont, "RUNNING", 60)
        time.sleep(2)
        r = cluster.run(["scontrol", "requeue", str(cont)])
        assert r.returncode == 0, r.stderr
        cluster.wait_for(lambda: _held(cluster, released), 120, "job %d held" % released)
        r = cluster.run(["scontrol", "release", str(released)])
        assert r.returncode == 0, r.stderr
        for j in (ok, retried, cont, released, ckpt):
            cluster.wait_state(j, "COMPLETED", 150)
        cluster.wait_state(failed, "FAILED", 60)
        cluster.wait_for(lambda: _held(cluster, held), 60, "job %d held" % held)

        def n_rows():
            return int(rcv.query("SELECT count() AS n FROM %s FINAL WHERE cluster = 'rsq'"
                                 % TABLE)[0]["n"])
        # 1 + 2 + 2 + 3 + 2 + 1 + 1 attempts
        cluster.wait_for(lambda: n_rows() == 12, 60, "12 events (now %d)" % n_rows())
        cont_comment = cluster.job(cont).get("AdminComment", "")

    def rows(j):
        return [(x["attempt"], x["outcome"], x["action"]) for x in rcv.query(
            "SELECT attempt, outcome, action FROM %s FINAL WHERE job_id = %d ORDER BY attempt"
            % (TABLE, j))]
    # The events are what the test made happen.
    assert rows(cont) == [(1, "requeued", "continued"), (2, "completed", "completed")]
    assert rows(released) == [(1, "failed", "requeued"), (2, "failed", "held"),
                              (3, "completed", "completed")]
    assert rows(held) == [(1, "failed", "requeued"), (2, "failed", "held")]
    assert rows(failed) == [(1, "failed", "failed")]
    # The AdminComment of the continuation says what happened, once.
    assert cont_comment.startswith("resilience: attempt 1/4 requeued, requeued by Slurm: "
                                   "no retry used"), cont_comment
    assert "checkpoint" not in cont_comment

    # checkpoints counts every checkpoint of the attempt, not keep=1.
    saved = len(re.findall(r"^resilience: checkpoint gen-\d+ saved", cluster.output(ckpt), re.M))
    ev = rcv.query("SELECT checkpoints, last_ckpt_generation FROM %s FINAL WHERE job_id = %d"
                   % (TABLE, ckpt))
    assert saved >= 3, cluster.output(ckpt)
    assert ev == [{"checkpoints": saved, "last_ckpt_generation": str(saved)}] or \
        ev == [{"checkpoints": saved, "last_ckpt_generation": saved}], (ev, saved)
    with open(os.path.join(userdir, "ck", "manifest.json")) as f:
        assert len(__import__("json").load(f)["generations"]) == 1      # keep=1

    user = cluster.user.pw_name
    r = rcv.query(q["retries_per_user"])
    # retried 1, released 1 (not its release), held 1; cont 0 (continuation)
    assert [(x["user"], int(x["jobs"]), int(x["total_retries"]), x["retries_per_job"])
            for x in r] == [(user, 7, 3, 0.43)], r

    r = rcv.query(q["success_rate_by_account"])
    # held is left out; failed failed; five completed
    assert [(int(x["jobs"]), int(x["succeeded"]), x["success_rate"]) for x in r] == \
        [(6, 5, 0.833)], r

    r = rcv.query(q["jobs_held_today"])
    assert [(int(x["job_id"]), x["user"], int(x["attempt"]), x["outcome"]) for x in r] == \
        [(held, user, 2, "failed")], r

    r = rcv.query(q["checkpoint_seconds_by_partition"])
    secs = rcv.query("SELECT last_ckpt_seconds AS s FROM %s FINAL WHERE job_id = %d"
                     % (TABLE, ckpt))[0]["s"]
    assert [(x["partition"], int(x["attempts_with_checkpoint"]), x["mean_checkpoint_mib"])
            for x in r] == [("debug", 1, 2)], r
    assert r[0]["max_checkpoint_seconds"] == secs

    r = rcv.query(q["energy_by_account"])
    no_energy = int(rcv.query("SELECT count() AS n FROM %s FINAL WHERE energy_joules IS NULL"
                              % TABLE)[0]["n"])
    assert [(int(x["attempts"]), int(x["attempts_without_energy"])) for x in r] == \
        [(12, no_energy)], r
