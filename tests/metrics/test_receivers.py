"""Metrics and alerts against real ClickHouse 18.16, Pushgateway 1.5.1 and
Alertmanager 0.25 started on loopback, driven through
`slurm-resilience metrics emit` / `flush` (the plugin's own code path),
plus a faulty receiver for the failure cases."""

import os
import stat
import time

import pytest

from conftest import sql_blocks, wait_for
from receivers import FaultyReceiver, free_port

TOKEN = "tok-7Hq2-NEVER-PRINT-ME-93"

CH = "metrics_format=clickhouse"


def rows(r, where="1"):
    return r.query("SELECT * FROM slurm_resilience.events FINAL WHERE " + where +
                   " ORDER BY job_id, attempt")


def write_secret(tmp_path, name, content, mode=0o600):
    p = tmp_path / name
    p.write_text(content)
    os.chmod(p, mode)
    return str(p)


# --------------------------------------------------------------- ClickHouse ---

def test_two_attempts_arrive_as_two_rows(ch, cli, event):
    """A job that fails once and then succeeds: two rows, right attempts,
    outcomes, durations; distinct event ids.  Sent by the detached
    background flush, as at the end of a real job."""
    url = f"metrics_url={ch.clickhouse_url}"
    first = event("a1.json", attempt=1, outcome="failed", exit_code=3, action="requeued",
                  duration_seconds=61.5, checkpoints=2, last_ckpt_generation=2,
                  last_ckpt_bytes=4096, last_ckpt_seconds=0.75, energy_joules=5000.25)
    second = event("a2.json", attempt=2, restart_count=1, outcome="completed",
                   action="completed", duration_seconds=30.0, restored_from_generation=2)
    p = cli.emit(first, url, CH, check=0)
    assert "emit: alpha:42:1 spooled" in p.stdout and "background send started" in p.stdout
    cli.emit(second, url, CH, check=0)
    got = wait_for(lambda: len(rows(ch)) == 2 and rows(ch), timeout=15)
    assert got, "two rows expected in ClickHouse"
    a, b = got
    assert (a["attempt"], a["outcome"], a["action"], a["exit_code"]) == (1, "failed", "requeued", 3)
    assert (b["attempt"], b["outcome"], b["action"], b["restart_count"]) == (2, "completed", "completed", 1)
    assert a["duration_seconds"] == 61.5 and b["duration_seconds"] == 30.0
    assert a["event_id"] == "alpha:42:1" and b["event_id"] == "alpha:42:2"
    # 64-bit integers come back quoted from ClickHouse 18.16
    assert a["last_ckpt_generation"] == "2"
    assert a["last_ckpt_seconds"] == 0.75 and a["energy_joules"] == 5000.25
    assert b["last_ckpt_generation"] is None and b["energy_joules"] is None
    assert b["restored_from_generation"] == "2"
    assert a["user"] == "alice" and a["partition"] == "batch" and a["nodes"] == "n[1-2]"
    # the spool is empty once delivered
    assert wait_for(lambda: cli.entries() == [], timeout=5)


def test_resent_event_collapses_to_one_row(ch, cli, event):
    url = f"metrics_url={ch.clickhouse_url}"
    ev = event(job_id=43, job_name='quote " newline \n unicode é 日本')
    cli.emit(ev, url, CH, "--wait", check=0)
    cli.emit(ev, url, CH, "--wait", check=0)
    # two inserts reached the table; FINAL shows one row per attempt
    assert ch.query("SELECT count() AS n FROM slurm_resilience.events WHERE job_id = 43")[0]["n"] in ("2", 2)
    got = rows(ch, "job_id = 43")
    assert len(got) == 1
    assert got[0]["job_name"] == 'quote " newline \n unicode é 日本'
    ch.ch("OPTIMIZE TABLE slurm_resilience.events FINAL")
    assert ch.query("SELECT count() AS n FROM slurm_resilience.events WHERE job_id = 43")[0]["n"] in ("1", 1)


def test_clickhouse_credentials_used_and_never_shown(ch, cli, event, tmp_path):
    cred = write_secret(tmp_path, "ch.cred", f"{ch.WRITER_USER}:{ch.WRITER_PASSWORD}\n")
    p = cli.emit(event(job_id=44), f"metrics_url={ch.clickhouse_url}", CH,
                 f"clickhouse_credentials={cred}", "--wait", check=0)
    assert len(rows(ch, "job_id = 44")) == 1
    # the query log names the writer user: the credentials were used
    ch.ch("SYSTEM FLUSH LOGS", check=False)
    # a wrong password: 401, kept for later (not a bad event)
    bad = write_secret(tmp_path, "bad.cred", f"{ch.WRITER_USER}:wrong-pw-XYZ\n")
    p = cli.emit(event("b.json", job_id=45), f"metrics_url={ch.clickhouse_url}", CH,
                 f"clickhouse_credentials={bad}", "--wait", check=1)
    assert "HTTP 401" in p.stderr
    for text in (p.stdout, p.stderr):
        assert ch.WRITER_PASSWORD not in text and "wrong-pw-XYZ" not in text
    left = cli.entries()
    assert [e["event_id"] for e in left] == ["alpha:45:1"] and left[0]["attempts"] == 1
    assert cli.entries(dead=True) == []


# -------------------------------------------------------------- Pushgateway ---

def test_pushgateway_shows_job_group(receivers, cli, event):
    url = f"metrics_url={receivers.pushgateway_url}"
    cli.emit(event(job_id=46, attempt=3, restart_count=2, outcome="timeout", action="requeued",
                   duration_seconds=12.5, checkpoints=1, last_ckpt_generation=5,
                   last_ckpt_bytes=1048576, last_ckpt_seconds=0.5),
             url, "metrics_format=prometheus", "--wait", check=0)
    grp = frozenset({("job", "slurm_resilience"), ("cluster", "alpha"), ("job_id", "46"),
                     ("instance", "")})
    assert receivers.pushgateway_samples("slurm_resilience_attempts_total")[grp] == 3
    assert receivers.pushgateway_samples("slurm_resilience_restarts_total")[grp] == 2
    assert receivers.pushgateway_samples("slurm_resilience_attempt_duration_seconds")[grp] == 12.5
    assert receivers.pushgateway_samples("slurm_resilience_last_checkpoint_bytes")[grp] == 1048576
    info = receivers.pushgateway_samples("slurm_resilience_attempt_info")
    key = grp | {("user", "alice"), ("account", "physics"), ("partition", "batch"),
                 ("qos", "normal"), ("job_name", "sim"), ("attempt", "3"),
                 ("outcome", "timeout"), ("action", "requeued")}
    assert info[frozenset(key)] == 1
    # a second job has its own group; the first is untouched
    cli.emit(event("b.json", job_id=47, cluster="a/b"), url, "metrics_format=prometheus",
             "--wait", check=0)
    g47 = frozenset({("job", "slurm_resilience"), ("cluster", "a/b"), ("job_id", "47"),
                     ("instance", "")})
    att = receivers.pushgateway_samples("slurm_resilience_attempts_total")
    assert att[grp] == 3 and att[g47] == 1


# ------------------------------------------------------------- Alertmanager ---

def test_exhausted_alert_reaches_alertmanager(receivers, cli, event):
    ev = event(job_id=48, attempt=3, outcome="node_fail", action="failed",
               ckpt_dir="/scratch/alice/ckpt/48")
    cli.emit(ev, f"alert_url={receivers.alertmanager_url}", "--alert", check=0)

    def mine():
        return [a for a in receivers.alerts() if a["labels"].get("job_id") == "48"]
    got = wait_for(mine, timeout=15)
    assert len(got) == 1
    a = got[0]
    assert a["labels"] == {"alertname": "SlurmJobRetriesExhausted", "cluster": "alpha",
                           "job_id": "48", "user": "alice", "account": "physics",
                           "partition": "batch"}
    assert a["annotations"]["last_outcome"] == "node_fail"
    assert a["annotations"]["attempts"] == "3"
    assert a["annotations"]["ckpt_dir"] == "/scratch/alice/ckpt/48"
    assert a["status"]["state"] == "active"


def test_no_alert_unless_exhausted(receivers, cli, event):
    p = cli.emit(event(job_id=49), f"alert_url={receivers.alertmanager_url}", check=1)
    assert "nothing to send" in p.stderr
    assert cli.entries() == []


# ---------------------------------------------------------- receiver down ---

def test_receiver_down_nothing_lost_delivered_once_later(ch, cli, event):
    dead_url = f"metrics_url=http://127.0.0.1:{free_port()}/"
    ev = event(job_id=50)
    p = cli.emit(ev, dead_url, CH, check=0)
    # the job's end is not held up: the command returned at once
    assert p.seconds < 1.0, p.seconds
    # the background attempt fails (refused) and keeps the entry
    got = wait_for(lambda: [e for e in cli.entries() if e["attempts"] == 1], timeout=10)
    assert len(got) == 1 and got[0]["event_id"] == "alpha:50:1"
    assert "Couldn't connect" in got[0]["last_error"]
    assert got[0]["next_try"] > time.time()
    # the receiver "comes back": flush delivers it, exactly once
    p = cli.flush(f"metrics_url={ch.clickhouse_url}", CH, "--all", check=0)
    assert "1 sent, 0 to retry, 0 dead-lettered" in p.stdout
    assert cli.entries() == []
    p = cli.flush(f"metrics_url={ch.clickhouse_url}", CH, "--all", check=0)
    assert "0 sent" in p.stdout
    assert len(rows(ch, "job_id = 50")) == 1
    # a deliberate double send still leaves one row
    cli.emit(ev, f"metrics_url={ch.clickhouse_url}", CH, "--wait", check=0)
    assert len(rows(ch, "job_id = 50")) == 1


def test_receiver_500_retried_later(ch, cli, event):
    with FaultyReceiver("500") as bad:
        p = cli.emit(event(job_id=51), f"metrics_url={bad.url}", CH, "--wait", check=1)
        assert "HTTP 500: internal error, try later" in p.stderr
        assert "0 sent, 1 to retry" in p.stdout
        e = cli.entries()
        assert len(e) == 1 and e[0]["attempts"] == 1
        assert e[0]["next_try"] >= time.time() + 20
        # not due: a flush now leaves the receiver alone
        n = bad.count
        p = cli.flush(f"metrics_url={bad.url}", CH, check=0)
        assert "1 skipped" in p.stdout and bad.count == n
    p = cli.flush(f"metrics_url={ch.clickhouse_url}", CH, "--all", check=0)
    assert "1 sent" in p.stdout
    assert len(rows(ch, "job_id = 51")) == 1


def test_receiver_hang_bounded_by_timeout(cli, event):
    with FaultyReceiver("hang") as bad:
        p = cli.emit(event(job_id=52), f"metrics_url={bad.url}", "timeout_ms=500",
                     "--wait", check=1)
        assert p.seconds < 2.0, p.seconds
        assert "Timeout was reached" in p.stderr
        e = cli.entries()
        assert len(e) == 1 and e[0]["attempts"] == 1
        # the background path is bounded the same way
        p = cli.emit(event("b.json", job_id=53), f"metrics_url={bad.url}", "timeout_ms=500",
                     "flush_budget_ms=1000", check=0)
        assert p.seconds < 1.0
        assert wait_for(lambda: len([x for x in cli.entries() if x["attempts"] >= 1]) == 2,
                        timeout=5)


def test_receiver_closing_connection_retried(ch, cli, event):
    with FaultyReceiver("close") as bad:
        p = cli.emit(event(job_id=54), f"metrics_url={bad.url}", CH, "--wait", check=1)
        assert bad.count == 1
        assert "Server returned nothing" in p.stderr or "Empty reply" in p.stderr \
            or "Recv failure" in p.stderr, p.stderr
        assert cli.entries()[0]["attempts"] == 1
    cli.flush(f"metrics_url={ch.clickhouse_url}", CH, "--all", check=0)
    assert len(rows(ch, "job_id = 54")) == 1


def test_rejected_row_goes_to_dead_letter_with_message(receivers, cli, event):
    # an operator's table where `nodes` has the wrong type: ClickHouse
    # refuses the row with 500 "Code: 27"; retrying would never help
    receivers.ch("CREATE TABLE IF NOT EXISTS default.bad (event_id String, nodes UInt32) "
                 "ENGINE = Log")
    p = cli.emit(event(job_id=55), f"metrics_url={receivers.clickhouse_url}", CH,
                 "clickhouse_table=default.bad", "--wait", check=1)
    assert "0 sent, 0 to retry, 1 dead-lettered" in p.stdout
    assert "refused by the receiver" in p.stderr and "Code: " in p.stderr
    assert cli.entries() == []
    dead = cli.entries(dead=True)
    assert len(dead) == 1 and dead[0]["event_id"] == "alpha:55:1"
    assert "HTTP 500: Code: " in dead[0]["last_error"]
    # not retried by later flushes
    p = cli.flush(f"metrics_url={receivers.clickhouse_url}", CH,
                  "clickhouse_table=default.bad", "--all", check=0)
    assert "0 sent, 0 to retry, 0 dead-lettered" in p.stdout


def test_dead_letter_requeued_after_fix(ch, cli, event):
    ch.ch("CREATE TABLE IF NOT EXISTS default.bad2 (event_id String, nodes UInt32) ENGINE = Log")
    cli.emit(event(job_id=56), f"metrics_url={ch.clickhouse_url}", CH,
             "clickhouse_table=default.bad2", "--wait", check=1)
    assert len(cli.entries(dead=True)) == 1
    p = cli.flush(f"metrics_url={ch.clickhouse_url}", CH, "--requeue-dead", "--all", check=0)
    assert "1 dead letters moved back" in p.stdout and "1 sent" in p.stdout
    assert len(rows(ch, "job_id = 56")) == 1


# ------------------------------------------------------------------ secrets ---

def test_token_file_0644_refused(receivers, cli, event, tmp_path):
    tok = write_secret(tmp_path, "token", TOKEN + "\n", mode=0o644)
    with FaultyReceiver(200) as ok:
        p = cli.emit(event(job_id=57), f"metrics_url={ok.url}", f"token_file={tok}", check=1)
        assert tok in p.stderr and "mode 0644; refused" in p.stderr
        assert TOKEN not in p.stdout + p.stderr
        # the event is spooled all the same, and nothing was sent
        assert len(cli.entries()) == 1
        p = cli.flush(f"metrics_url={ok.url}", f"token_file={tok}", check=1)
        assert tok in p.stderr and TOKEN not in p.stdout + p.stderr
        assert ok.count == 0
        os.chmod(tok, 0o600)
        p = cli.flush(f"metrics_url={ok.url}", f"token_file={tok}", check=0)
        assert ok.count == 1
        assert ok.last[2].get("Authorization") == "Bearer " + TOKEN


def test_token_never_printed_or_stored(cli, event, tmp_path, spool):
    tok = write_secret(tmp_path, "token", TOKEN + "\n")
    # a receiver that echoes our headers back in its error
    with FaultyReceiver("echo400") as leak:
        p = cli.emit(event(job_id=58), f"metrics_url={leak.url}", f"token_file={tok}",
                     "--wait", check=1)
        assert leak.last[2].get("Authorization") == "Bearer " + TOKEN
    dead = cli.entries(dead=True)
    assert len(dead) == 1 and "Bearer ***" in dead[0]["last_error"]
    assert TOKEN not in p.stdout + p.stderr + dead[0]["last_error"]
    listing = cli.run("metrics", "list", "--dead", f"spool_dir={spool}", check=0)
    assert TOKEN not in listing.stdout + listing.stderr
    check = cli.run("metrics", "check", f"token_file={tok}", f"spool_dir={spool}", check=0)
    assert TOKEN not in check.stdout + check.stderr
    for root, _dirs, files in os.walk(spool):
        for f in files:
            with open(os.path.join(root, f), "rb") as fh:
                assert TOKEN.encode() not in fh.read(), f


def test_spool_is_private(cli, event, spool):
    cli.emit(event(), f"metrics_url=http://127.0.0.1:{free_port()}/", "--no-send", check=0)
    st = os.stat(spool)
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == os.geteuid()
    for e in cli.entries():
        assert stat.S_IMODE(os.stat(os.path.join(spool, e["name"])).st_mode) == 0o600
    os.chmod(spool, 0o777)
    p = cli.emit(event(), f"metrics_url=http://127.0.0.1:{free_port()}/", "--no-send", check=1)
    assert "group/world-writable" in p.stderr


# ---------------------------------------------------------- operator queries ---

def test_operator_queries_work_on_clickhouse_18(ch, cli, event):
    """The five queries of docs/operators.md, on known data."""
    url = f"metrics_url={ch.clickhouse_url}"
    now = int(time.time())
    evs = [
        # physics/alice: job 60 failed then completed; job 61 completed
        dict(job_id=60, attempt=1, outcome="failed", action="requeued", exit_code=1,
             last_ckpt_generation=1, last_ckpt_bytes=2097152, last_ckpt_seconds=2.0,
             checkpoints=1, energy_joules=3600000.0),
        dict(job_id=60, attempt=2, outcome="completed", action="completed",
             energy_joules=1800000.0),
        dict(job_id=61, attempt=1, outcome="completed", action="completed"),
        # chem/bob: job 62 timed out 3 times and failed; job 63 held today
        dict(job_id=62, attempt=1, user="bob", account="chem", partition="long",
             outcome="timeout", action="requeued", last_ckpt_generation=4,
             last_ckpt_bytes=1048576, last_ckpt_seconds=4.0, checkpoints=2),
        dict(job_id=62, attempt=2, user="bob", account="chem", partition="long",
             outcome="timeout", action="requeued"),
        dict(job_id=62, attempt=3, user="bob", account="chem", partition="long",
             outcome="timeout", action="failed", last_ckpt_generation=6,
             last_ckpt_bytes=1048576, last_ckpt_seconds=6.0, checkpoints=1),
        dict(job_id=63, attempt=1, user="bob", account="chem", partition="long",
             outcome="node_fail", action="held", end_time=now - 1),
        # physics/alice: job 64 preempted (continued, no retry), then
        # `scontrol requeue` (continued), then completed: 0 retries
        dict(job_id=64, attempt=1, outcome="preempted", action="continued"),
        dict(job_id=64, attempt=2, outcome="requeued", action="continued"),
        dict(job_id=64, attempt=3, outcome="completed", action="completed"),
        # chem/bob: job 65 retried once, held, released by an operator,
        # completed: 1 retry, not held any more
        dict(job_id=65, attempt=1, user="bob", account="chem", partition="long",
             outcome="failed", action="requeued", exit_code=1),
        dict(job_id=65, attempt=2, user="bob", account="chem", partition="long",
             outcome="failed", action="held", exit_code=1, end_time=now - 60),
        dict(job_id=65, attempt=3, user="bob", account="chem", partition="long",
             outcome="completed", action="completed"),
        # chem/bob: job 66 retried once, held, released, held again: 1
        # retry, listed once (its latest hold)
        dict(job_id=66, attempt=1, user="bob", account="chem", partition="long",
             outcome="failed", action="requeued", exit_code=1, end_time=now - 90),
        dict(job_id=66, attempt=2, user="bob", account="chem", partition="long",
             outcome="failed", action="held", exit_code=1, end_time=now - 80),
        dict(job_id=66, attempt=3, user="bob", account="chem", partition="long",
             outcome="failed", action="held", exit_code=1, end_time=now - 3),
    ]
    for i, over in enumerate(evs):
        cli.emit(event(f"q{i}.json", **over), url, CH, "--wait", check=0)
    q = sql_blocks()
    assert set(q) == {"ddl", "success_rate_by_account", "retries_per_user",
                      "checkpoint_seconds_by_partition", "jobs_held_today",
                      "energy_by_account"}

    r = ch.query(q["success_rate_by_account"])
    assert [(x["account"], int(x["jobs"]), int(x["succeeded"]), x["success_rate"]) for x in r] == \
        [("chem", 2, 1, 0.5), ("physics", 3, 3, 1)]

    r = ch.query(q["retries_per_user"])
    assert [(x["user"], int(x["jobs"]), int(x["total_retries"]), x["retries_per_job"]) for x in r] == \
        [("bob", 4, 4, 1), ("alice", 3, 1, 0.33)]

    r = ch.query(q["checkpoint_seconds_by_partition"])
    assert [(x["partition"], int(x["attempts_with_checkpoint"]), x["mean_checkpoint_seconds"],
             x["max_checkpoint_seconds"], x["mean_checkpoint_mib"]) for x in r] == \
        [("batch", 1, 2, 2, 2), ("long", 2, 5, 6, 1)]

    r = ch.query(q["jobs_held_today"])
    assert [(int(x["job_id"]), x["user"], int(x["attempt"]), x["outcome"], x["ckpt_dir"])
            for x in r] == \
        [(66, "bob", 3, "failed", "/scratch/alice/ckpt/42"),
         (63, "bob", 1, "node_fail", "/scratch/alice/ckpt/42")]

    r = ch.query(q["energy_by_account"])
    assert [(x["account"], x["kwh"], int(x["attempts"]), int(x["attempts_without_energy"]))
            for x in r] == [("chem", 0, 10, 10), ("physics", 1.5, 6, 4)]


# ------------------------------------------------------------- site options ---

def test_database_in_url_and_config_from_plugstack(ch, cli, event, tmp_path, spool):
    """The timer runs `flush --config /etc/slurm/plugstack.conf`: the
    plugin's line is read, other plugins' lines are not, and keys that are
    not metrics options (the requeue policy's) are left to the plugin.
    ?database= picks ClickHouse's database (18.16 ignores the header)."""
    conf = tmp_path / "plugstack.conf"
    conf.write_text(
        "# site plugins\n"
        "optional /usr/lib/slurm/other.so metrics_url=http://127.0.0.1:1/ spool_dir=/nope\n"
        f"required /usr/lib/x86_64-linux-gnu/slurm-wlm/resilience.so max_retries=3 "
        f"metrics_url={ch.clickhouse_url}?database=slurm_resilience metrics_format=clickhouse "
        f"clickhouse_table=events spool_dir={spool} timeout_ms=1500  # comment\n")
    p = cli.run("metrics", "emit", "--event", event(job_id=70), "--config", str(conf), "--no-send",
                check=0)
    assert f"spooled in {spool}" in p.stdout
    p = cli.run("flush", "--config", str(conf), check=0)
    assert "1 sent" in p.stdout
    assert len(rows(ch, "job_id = 70")) == 1
    chk = cli.run("metrics", "check", "--config", str(conf), check=0)
    assert "timeout_ms=1500\n" in chk.stdout and "metrics_format=clickhouse\n" in chk.stdout
    # a bad value in the file is refused with the key named
    conf.write_text(f"required /x/resilience.so metrics_format=influx spool_dir={spool}\n")
    p = cli.run("flush", "--config", str(conf), check=1)
    assert "metrics_format: 'influx' is not json, clickhouse or prometheus" in p.stderr


def test_many_jobs_ending_at_once_all_delivered_once(ch, cli, event, spool):
    """30 attempts ending at the same moment on one node: 30 background
    senders race for the spool lock; every event arrives, once."""
    import subprocess
    from conftest import CLI
    files = [event(f"m{i}.json", job_id=100 + i) for i in range(30)]
    procs = [subprocess.Popen([CLI, "metrics", "emit", "--event", f, f"spool_dir={spool}",
                               f"metrics_url={ch.clickhouse_url}", CH],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for f in files]
    for p in procs:
        assert p.wait(10) == 0, p.stderr.read()

    def count():
        return int(ch.query("SELECT count() AS n FROM slurm_resilience.events "
                            "WHERE job_id >= 100 AND job_id < 130")[0]["n"])
    assert wait_for(lambda: count() == 30, timeout=30), count()
    assert wait_for(lambda: cli.entries() == [], timeout=10)
    # exactly once: no duplicate even before merging
    assert count() == 30


def test_documented_alert_rules_use_pushed_metrics(receivers, cli, event):
    """Every metric a rule of docs/alerts/resilience.rules.yml uses is one
    the Pushgateway really shows after a push (a renamed metric would leave
    a rule that never fires; promtool's tests only see the series they are
    given)."""
    import re
    import yaml
    from conftest import ROOT
    with open(os.path.join(ROOT, "docs", "alerts", "resilience.rules.yml")) as f:
        rules = yaml.safe_load(f)["groups"][0]["rules"]
    assert len(rules) >= 3
    cli.emit(event(job_id=80, action="held", checkpoints=1, last_ckpt_generation=1,
                   last_ckpt_bytes=1, last_ckpt_seconds=1.0),
             f"metrics_url={receivers.pushgateway_url}", "metrics_format=prometheus",
             "--wait", check=0)
    pushed = receivers.pushgateway_metrics()
    for rule in rules:
        names = re.findall(r"slurm_resilience_[a-z_]+", rule["expr"])
        assert names, rule
        for n in names:
            assert re.search(rf"^{n}[{{ ]", pushed, re.M), (rule["alert"], n)
    held = receivers.pushgateway_samples("slurm_resilience_attempt_info")
    assert any(("action", "held") in k and ("job_id", "80") in k for k in held)


def test_table_without_new_columns_still_takes_rows(receivers, cli, event):
    """Fields are added to the event within a schema version: a table made
    before a field existed keeps taking rows (the field is not stored)."""
    receivers.ch("CREATE TABLE IF NOT EXISTS default.old_events (event_id String, "
                 "job_id UInt32, attempt UInt32, end_time DateTime) ENGINE = Log")
    cli.emit(event(job_id=90, energy_joules=12.5), f"metrics_url={receivers.clickhouse_url}",
             CH, "clickhouse_table=default.old_events", "--wait", check=0)
    got = receivers.query("SELECT event_id, job_id FROM default.old_events WHERE job_id = 90")
    assert got == [{"event_id": "alpha:90:1", "job_id": 90}]
    assert cli.entries(dead=True) == []


def test_full_spool_refuses_new_event_keeps_old(cli, event, spool):
    """At the bound the new event is refused (and said so), the spooled
    ones are kept; an alert still gets in (reserve)."""
    dead = f"metrics_url=http://127.0.0.1:{free_port()}/"
    for i in range(2):
        cli.emit(event(f"f{i}.json", job_id=200 + i), dead, "spool_max_entries=2", "--no-send",
                 check=0)
    p = cli.emit(event("f2.json", job_id=202), dead, "spool_max_entries=2", "--no-send",
                 check=1)
    assert f"spool {spool} is full (2 entries" in p.stderr
    assert "metrics alpha:202:1 not spooled" in p.stderr
    assert [e["event_id"] for e in cli.entries()] == ["alpha:200:1", "alpha:201:1"]
    p = cli.emit(event("f3.json", job_id=203, action="held"),
                 f"alert_url=http://127.0.0.1:{free_port()}/", "spool_max_entries=2",
                 "--alert", "--no-send", check=0)
    assert [e["kind"] for e in cli.entries()] == ["metrics", "metrics", "alert"]


def test_flush_finds_plugstack_from_slurm_conf(cli, event, tmp_path):
    """flush without --config reads the plugin's line from SLURM_CONF's
    PlugStackConfig=, else plugstack.conf beside SLURM_CONF: the spool it
    reports is the one that file names."""
    import subprocess
    from conftest import CLI
    etc = tmp_path / "etc"
    other = tmp_path / "elsewhere"
    etc.mkdir()
    other.mkdir()
    sp_named, sp_beside = tmp_path / "sp-named", tmp_path / "sp-beside"
    (other / "ps.conf").write_text(
        f"optional /usr/lib/slurm/resilience.so spool_dir={sp_named}\n")
    (etc / "plugstack.conf").write_text(
        f"optional /usr/lib/slurm/resilience.so spool_dir={sp_beside}\n")
    conf = etc / "slurm.conf"

    def flush(env_conf):
        env = dict(os.environ, SLURM_CONF=str(env_conf))
        return subprocess.run([CLI, "flush"], capture_output=True, text=True,
                              timeout=30, env=env, stdin=subprocess.DEVNULL)
    conf.write_text(f"ClusterName=x\n  plugstackconfig = {other}/ps.conf # site\n")
    p = flush(conf)
    assert p.returncode == 0, p.stderr
    assert f"left in {sp_named} " in p.stdout, p.stdout
    conf.write_text("ClusterName=x\n")
    p = flush(conf)
    assert p.returncode == 0, p.stderr
    assert f"left in {sp_beside} " in p.stdout, p.stdout
    # --config wins over SLURM_CONF
    p = subprocess.run([CLI, "flush", "--config", str(other / "ps.conf")], capture_output=True,
                       text=True, timeout=30, stdin=subprocess.DEVNULL,
                       env=dict(os.environ, SLURM_CONF=str(conf)))
    assert f"left in {sp_named} " in p.stdout, p.stdout
