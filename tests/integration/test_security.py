"""Issue 11: the attacks the plugin defends against, one test each, on the
real cluster.  The victim is the test user (`rstest`), the attacker a
second unprivileged user (`rsother`, the `attacker` fixture); both submit
ordinary jobs and run ordinary commands, nothing else.

What a user must not be able to do through the plugin:

 1. test_status_pipe_flood - flood the slurmd log (and keep root looping
    in task_exit) by writing forged status lines into one's own saver's
    status pipe, from processes that outlive the job.
 2. test_scratch_squatted_by_another_user - pre-create another user's
    next scratch folder (scratch=/tmp/x_%j) to read their data or plant
    files in their checkpoint.
    test_scratch_symlink_swapped_before_restore - swap the scratch path
    for a symlink so that the victim's restore writes into (and replaces
    files in) a folder of the attacker's choice.
    test_setuid_bit_never_saved_or_restored - get a setuid/setgid file
    back from a checkpoint (save and restore drop those bits).
    test_default_scratch_squatted - the same squatting on the default
    per-job scratch (no scratch=): <TMPDIR or /tmp>/resilience-<cluster>-
    <jobid>-<node>.
 3. test_forged_log_lines - write whole fake lines (for other jobs) into
    the slurmd log through a status line's percent-decoded error= field.
 4. test_private_folder_squatted - pre-create another user's private
    folder (/tmp/.resilience-<uid>) so that their resilient jobs fail;
    the private folders live under RUNDIR (/run/slurm-resilience/u<uid>).
 5. test_rundir_empty_after_jobs_end - fill /run on a node with short
    jobs: nothing of an ended job stays in RUNDIR.
 6. test_state_dir_symlink_refused - make root write the ledger into a
    root-owned folder of the attacker's choice through a missing state_dir
    under a user-writable parent.
 7. test_ckpt_roots_dotdot_bypass_refused - escape ckpt_roots with
    ROOT/symlink/../x.
 8. test_min_every_enforced_on_node_via_env,
    test_max_retries_enforced_on_node_via_env - skip the site caps by
    handing the SPEC to the node in the environment variable Slurm reads
    SPANK options from (_SLURM_SPANK_OPTION_resilience_resilience).
 9. test_ledger_rewrite_cannot_raise_retry_budget - more requeues than
    the site allows by rewriting one's own ledger (manifest.json).
10. test_restore_killed_by_time_bound_not_reported_as_restored - a restore
    cut by its time bound (restore_timeout=) must not leave later steps
    believing they were restored.
11. test_stale_state_dir_ledger_not_inherited - a ledger left in
    state_dir by an earlier job with the same id (job ids restart) must
    not be applied to a new job.
12. test_cli_fifo_manifest_does_not_hang_root - hang root's CLI with a
    FIFO manifest.json in one's folder.
    test_cli_escapes_terminal_sequences_from_ledger - inject terminal
    escape sequences and newlines into root's CLI output from a ledger.
13. test_nan_in_ledger_keeps_event_and_alert - hide one's exhausted
    retries from the operators (no event, no alert) with NaN in one's own
    ledger.

Findings 14 and 15 of the issue (undefined behaviour on hostile JSON,
privsep descriptors, clang builds) are unit-level: tests/unit, tests/fuzz.

Job ids are sequential: where the attacker has to know the victim's next
job id, the victim's job is submitted held (--hold), the attacker acts,
and the job is released; that is the same as guessing the next id,
without the race.
"""
import glob
import json
import os
import re
import shutil
import stat
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from cluster import ensure_user

RUNDIR = "/run/slurm-resilience"
HELD = ("job_requeued_in_held_state", "JobHeldAdmin", "JobHeldUser")
DONE = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL",
        "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL", "DEADLINE")
SPANK_ENV = "_SLURM_SPANK_OPTION_resilience_resilience"


# ------------------------------------------------------------ helpers --

def _uniq():
    return uuid.uuid4().hex[:10]


def _gens(path):
    try:
        return sorted(d for d in os.listdir(path) if d.startswith("gen-"))
    except (FileNotFoundError, NotADirectoryError):
        return []


def _wait_gen(cluster, path, n=1, timeout=30):
    cluster.wait_for(lambda: len(_gens(path)) >= n and
                     os.path.islink(os.path.join(path, "latest")), timeout,
                     "%d generation(s) in %s" % (n, path))


def _submit_held(cluster, script, args, user=None, env=None):
    """The victim's next job, held: its id is known before it can run."""
    return cluster.sbatch(script, ["--hold"] + list(args), user=user, env=env)


def _release(cluster, j):
    r = cluster.run(["scontrol", "release", str(j)])
    assert r.returncode == 0, r.stderr


def _final(cluster, j, timeout=90, max_restarts=None):
    """Until the job is held, or done and not coming back.  With
    max_restarts: stop as soon as Slurm's restart count goes over it (the
    caller asserts on it)."""
    def done():
        info = cluster.job(j)
        if max_restarts is not None and int(info.get("Restarts", "0")) > max_restarts:
            return True
        return (info.get("Reason") in HELD or
                info.get("JobState") in ("COMPLETED", "FAILED", "CANCELLED"))
    cluster.wait_for(done, timeout, "job %d to end or be held (%s)" %
                     (j, cluster.job(j).get("JobState")))
    return cluster.job(j)


def _log_path(cluster, node):
    return os.path.join(cluster.dir, "slurmd-%s.log" % node)


def _log_sizes(cluster):
    return {n: os.path.getsize(_log_path(cluster, n))
            if os.path.exists(_log_path(cluster, n)) else 0
            for n in cluster.nodes}


def _log_since(cluster, node, offset, cap=8 << 20):
    """What the node's slurmd log gained since offset (at most cap bytes)."""
    try:
        with open(_log_path(cluster, node), "rb") as f:
            f.seek(offset)
            return f.read(cap).decode(errors="replace")
    except FileNotFoundError:
        return ""


def _job_res_lines(text, j):
    return [line for line in text.splitlines()
            if "resilience" in line and ("[%d." % j in line or "job %d:" % j in line)]


def _rm(path):
    """Remove a test's own path as root (a file, symlink or folder)."""
    if os.path.islink(path) or os.path.isfile(path):
        os.unlink(path)
    elif os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)


def _files_under(path):
    out = []
    for d, dirs, files in os.walk(path):
        out += [os.path.join(d, f) for f in files + dirs]
    return out


def _cli(cluster, *args, timeout=10):
    return subprocess.run([os.path.join(os.path.dirname(cluster.plugin),
                                        "slurm-resilience")] + list(args),
                          env=cluster.env, capture_output=True, timeout=timeout)


def _victim_dir(cluster, userdir, name):
    d = os.path.join(userdir, name)
    os.makedirs(d)
    shutil.chown(d, cluster.user.pw_name, cluster.user.pw_name)
    return d


# ----------------------------------------------------- 1. pipe flood --

FLOOD = r"""#!/bin/bash
fd=$(tr '\0' '\n' < /proc/$PPID/cmdline | grep -A1 -x -- --status-fd | tail -1)
echo "supervisor=$PPID status-fd=$fd"
python3 - "$PPID" "$fd" "%(pidfile)s" <<'PY'
import fcntl, os, sys
ppid, fd, pidfile = sys.argv[1:4]
line = (b"rs1 save time=1.000 pid=1 attempt=1 part=0 nparts=1 reason=signal "
        b"seq=1 result=ok gen=1 published=1 files=1 copied=1 linked=0 "
        b"seconds=0.010\n") * 64
pids = []
for i in range(4):
    pid = os.fork()
    if pid == 0:
        os.setsid()
        w = os.open("/proc/%%s/fd/%%s" %% (ppid, fd), os.O_WRONLY)
        try:
            fcntl.fcntl(w, 1031, 1 << 20)       # F_SETPIPE_SZ
        except OSError:
            pass
        null = os.open("/dev/null", os.O_RDWR)
        for f in (0, 1, 2):
            os.dup2(null, f)
        try:
            while True:
                os.write(w, line)
        except OSError:
            os._exit(0)
    pids.append(pid)
with open(pidfile, "w") as f:
    f.write(" ".join(map(str, pids)))
PY
echo "writers=$(cat %(pidfile)s)"
sleep 5
echo script-ends
"""


def test_status_pipe_flood(cluster, plugstack, attacker):
    """A job opens its own saver's status pipe (--status-fd N, through
    /proc/$PPID/fd/N), raises it to 1 MiB (F_SETPIPE_SZ) and writes forged
    "checkpoint saved" lines from 4 processes that outlive the script
    (setsid).  Must hold: the slurmd log gains at most 20 resilience lines
    for the job, and the job ends when its script ends (task_exit reads a
    bounded amount): done within 30 s of the script's end, and it leaves
    RUNNING within 150 s (--time=1 plus KillWait) in any case.  The
    writers are killed by PID at the end."""
    pidfile = os.path.join(attacker.work, "writers-%s" % _uniq())
    sizes = _log_sizes(cluster)
    with plugstack():
        j = attacker.sbatch(FLOOD % {"pidfile": pidfile}, [
            "--time=1", "--resilience=ckpt=%s/ck-%%j,scratch=%s/s-%%j,lead=0"
            % (attacker.work, attacker.work)])
        t0 = time.time()
        try:
            info = cluster.wait_state(j, "RUNNING", 30)
            node = info["BatchHost"]
            cluster.wait_for(lambda: os.path.exists(pidfile) and
                             open(pidfile).read().strip(), 30, "the writers")
            attacker.spawned += [int(p) for p in open(pidfile).read().split()]
            cluster.wait_for(lambda: "script-ends" in cluster.output(j), 30,
                             "the script's end")
            t_end = time.time()
            lines, state = [], "RUNNING"
            while time.time() - t0 < 150:
                lines = _job_res_lines(_log_since(cluster, node, sizes[node]), j)
                state = cluster.state(j)
                if len(lines) > 20 or state in DONE:
                    break
                time.sleep(0.5)
            lines = _job_res_lines(_log_since(cluster, node, sizes[node]), j)
            grown = os.path.getsize(_log_path(cluster, node)) - sizes[node]
        finally:
            attacker.kill_spawned()
    assert len(lines) <= 20, "%d resilience lines for job %d (log grew %d bytes): %s" % (
        len(lines), j, grown, lines[:3])
    assert state in DONE, "job %d still %s %.0f s after it started" % (j, state, time.time() - t0)
    cluster.wait_done(j, 5)
    ended = time.time()
    assert ended - t_end < 30, "the job ended %.0f s after its script" % (ended - t_end)


# ----------------------------------------------- 2. scratch squatting --

SQUAT_VICTIM = r"""#!/bin/bash
trap 'echo victim-secret > "$RESILIENCE_SCRATCH/victim-data"; touch "$RESILIENCE_CKPT_READY"' USR1
echo "scratch=$RESILIENCE_SCRATCH"
echo victim-secret > "$RESILIENCE_SCRATCH/victim-data"
for i in $(seq 1 60); do sleep 0.5; done
"""


def test_scratch_squatted_by_another_user(cluster, plugstack, userdir, attacker):
    """scratch=/tmp/<x>_%j (the old documented pattern): the attacker
    pre-creates the victim's next scratch folder, 0777 and theirs, with a
    planted file.  Must hold: the victim's job is refused (FAILED, its
    output names the folder and says it is not the user's own), no victim
    data lands in the attacker's folder, and the planted file is in no
    generation of the victim's checkpoint."""
    base = "/tmp/rs-squat-%s" % _uniq()
    ck = os.path.join(userdir, "ck")
    with plugstack():
        j = _submit_held(cluster, SQUAT_VICTIM, [
            "--resilience=ckpt=%s,scratch=%s_%%j,lead=0,grace=5" % (ck, base)])
        squat = "%s_%d" % (base, j)
        try:
            r = attacker.sh("mkdir %s && chmod 0777 %s && echo planted > %s/planted "
                            "&& chmod 0666 %s/planted" % (squat, squat, squat, squat))
            assert r.returncode == 0, r.stderr
            _release(cluster, j)
            cluster.wait_for(lambda: cluster.state(j) in DONE or
                             "scratch=" in cluster.output(j), 30, "the job to start or end")
            if cluster.state(j) not in DONE:
                # It runs in the attacker's folder: let it checkpoint.
                cluster.run(["scancel", "-b", "--signal=USR1", str(j)])
                try:
                    _wait_gen(cluster, ck, 1, timeout=20)
                finally:
                    cluster.run(["scancel", str(j)])
            info = cluster.wait_done(j, 30)
            inside = sorted(os.listdir(squat))
            data = {f: open(os.path.join(squat, f), errors="replace").read()
                    for f in inside if os.path.isfile(os.path.join(squat, f))}
        finally:
            _rm(squat)
    out = cluster.output(j)
    planted = [p for p in _files_under(ck) if os.path.basename(p) == "planted"]
    assert inside == ["planted"], inside
    assert not [f for f, t in data.items() if "victim-secret" in t], data
    assert planted == [], planted
    assert info["JobState"] == "FAILED", (info["JobState"], out)
    lines = [line for line in out.splitlines() if squat in line]
    assert lines and any("own" in line for line in lines), out


SWAP_VICTIM = r"""#!/bin/bash
trap 'touch "$RESILIENCE_CKPT_READY"' USR1
echo "attempt=$RESILIENCE_ATTEMPT restored=${RESILIENCE_RESTORED_FROM:-none}"
if [ "$RESILIENCE_ATTEMPT" = 1 ]; then
  echo from-checkpoint > "$RESILIENCE_SCRATCH/precious.txt"
  until [ -e "$RESILIENCE_CKPT_DIR/latest" ]; do sleep 0.2; done
  sleep 1
  rm -rf "$RESILIENCE_SCRATCH"           # tidy: the job's tmp is gone
  echo scratch-removed
  for i in $(seq 1 120); do sleep 0.5; done
fi
echo attempt-done
"""


def test_scratch_symlink_swapped_before_restore(cluster, plugstack, userdir, attacker):
    """The victim's scratch (/tmp/<x>_%j) is gone between two attempts;
    the attacker puts a symlink in its place, pointing to a folder in the
    victim's own tree that holds a precious file with the same name as a
    file of the checkpoint; the job is requeued and would restore into
    it.  Must hold: the precious file is intact, and the job is refused
    with a message that names the path and says "symbolic link"."""
    base = "/tmp/rs-swap-%s" % _uniq()
    ck = os.path.join(userdir, "ck")
    home = _victim_dir(cluster, userdir, "precious")
    precious = os.path.join(home, "precious.txt")
    with open(precious, "w") as f:
        f.write("PRECIOUS\n")
    shutil.chown(precious, cluster.user.pw_name, cluster.user.pw_name)
    link = None
    with plugstack():
        j = cluster.sbatch(SWAP_VICTIM, [
            "--requeue", "--open-mode=append",
            "--resilience=ckpt=%s,scratch=%s_%%j,lead=0,grace=10" % (ck, base)])
        link = "%s_%d" % (base, j)
        try:
            cluster.wait_for(lambda: "attempt=1" in cluster.output(j), 30, "attempt 1")
            time.sleep(1)
            cluster.run(["scancel", "-b", "--signal=USR1", str(j)])
            _wait_gen(cluster, ck, 1, timeout=30)
            cluster.wait_for(lambda: "scratch-removed" in cluster.output(j), 20,
                             "the victim to remove its scratch")
            r = attacker.sh("ln -s %s %s" % (home, link))
            assert r.returncode == 0, r.stderr
            r = cluster.run(["scontrol", "requeue", str(j)])
            assert r.returncode == 0, r.stderr
            cluster.wait_for(lambda: cluster.job(j).get("Restarts") == "1", 30, "the requeue")
            info = cluster.wait_done(j, 60)
        finally:
            _rm(link)
    out = cluster.output(j)
    with open(precious) as f:
        assert f.read() == "PRECIOUS\n", "the restore wrote through the attacker's symlink"
    assert info["JobState"] == "FAILED", (info["JobState"], out)
    assert any(link in line and "symbolic link" in line for line in out.splitlines()), out


SETUID_VICTIM = r"""#!/bin/bash
trap 'touch "$RESILIENCE_CKPT_READY"' USR1
echo "attempt=$RESILIENCE_ATTEMPT restored=${RESILIENCE_RESTORED_FROM:-none}"
if [ "$RESILIENCE_ATTEMPT" = 1 ]; then
  cp /bin/true "$RESILIENCE_SCRATCH/tool" && chmod 6755 "$RESILIENCE_SCRATCH/tool"
  echo "mode=$(stat -c %a "$RESILIENCE_SCRATCH/tool")"
  until [ -e "$RESILIENCE_CKPT_DIR/latest" ]; do sleep 0.2; done
  sleep 1
  rm -f "$RESILIENCE_SCRATCH/tool"      # the restore must create it afresh
  echo emptied
  for i in $(seq 1 120); do sleep 0.5; done
fi
echo "restored-mode=$(stat -c %a "$RESILIENCE_SCRATCH/tool" 2>&1)"
"""


def test_setuid_bit_never_saved_or_restored(cluster, plugstack, userdir):
    """The victim's own scratch holds a file with mode 6755 (setuid and
    setgid, the victim's own).  After a checkpoint, a requeue and a
    restore, neither the generation's copy nor the restored file has the
    setuid or setgid bit (a restored setuid binary of the victim is what
    the attacker was after)."""
    ck = os.path.join(userdir, "ck")
    with plugstack():
        j = cluster.sbatch(SETUID_VICTIM, [
            "--requeue", "--open-mode=append",
            "--resilience=ckpt=%s,scratch=%s/s_%%j,lead=0,grace=10" % (ck, userdir)])
        cluster.wait_for(lambda: "mode=6755" in cluster.output(j), 30, "the setuid file")
        cluster.run(["scancel", "-b", "--signal=USR1", str(j)])
        _wait_gen(cluster, ck, 1, timeout=30)
        saved = os.lstat(os.path.join(ck, "latest", "node-0", "tool")).st_mode
        cluster.wait_for(lambda: "emptied" in cluster.output(j), 20, "the empty scratch")
        r = cluster.run(["scontrol", "requeue", str(j)])
        assert r.returncode == 0, r.stderr
        cluster.wait_for(lambda: "restored-mode=" in cluster.output(j), 60, "attempt 2")
        info = cluster.wait_done(j, 30)
    restored = os.lstat(os.path.join(userdir, "s_%d" % j, "tool")).st_mode
    out = cluster.output(j)
    assert "attempt=2 restored=%s/gen-000001" % ck in out, out
    assert not saved & (stat.S_ISUID | stat.S_ISGID), "generation copy mode %o" % saved
    assert not restored & (stat.S_ISUID | stat.S_ISGID), "restored mode %o" % restored
    assert info["JobState"] == "COMPLETED", info


def test_default_scratch_squatted(cluster, plugstack, userdir, attacker):
    """No scratch=: the plugin uses a per-job folder it creates for the
    user (0700), <TMPDIR or /tmp>/resilience-<ClusterName>-<jobid>-<node>.
    The attacker pre-creates that folder (for every node, 0777, theirs,
    with a planted file).  Must hold: the victim's job is refused (FAILED,
    the folder named in its output) and the attacker's folders receive
    nothing."""
    ck = os.path.join(userdir, "ck")
    mark = "victim-data-%s" % _uniq()
    script = ("#!/bin/bash\necho \"scratch=$RESILIENCE_SCRATCH\"\n"
              "echo victim-secret > \"$RESILIENCE_SCRATCH/%s\"\nsleep 2\n" % mark)
    squats = []
    with plugstack():
        j = _submit_held(cluster, script, ["--resilience=ckpt=%s,lead=0" % ck],
                         env={"TMPDIR": "/tmp"})
        squats = ["/tmp/resilience-%s-%d-%s" % (cluster.name, j, n) for n in cluster.nodes]
        try:
            for s in squats:
                r = attacker.sh("mkdir %s && chmod 0777 %s && echo planted > %s/planted"
                                % (s, s, s))
                assert r.returncode == 0, r.stderr
            _release(cluster, j)
            info = cluster.wait_done(j, 40)
            contents = {s: sorted(os.listdir(s)) for s in squats}
        finally:
            for s in squats:
                _rm(s)
            _rm(os.path.join("/tmp", mark))   # the old default scratch was /tmp
    out = cluster.output(j)
    assert all(c == ["planted"] for c in contents.values()), contents
    assert info["JobState"] == "FAILED", (info["JobState"], out)
    node = info["BatchHost"]
    assert "/tmp/resilience-%s-%d-%s" % (cluster.name, j, node) in out, out


# --------------------------------------------------- 3. forged lines --

FORGE = r"""#!/bin/bash
fd=$(tr '\0' '\n' < /proc/$PPID/cmdline | grep -A1 -x -- --status-fd | tail -1)
echo "rs1 save time=1.000 pid=$$ attempt=1 part=0 nparts=1 reason=signal seq=1 \
result=fail gen=-1 published=0 files=0 copied=0 linked=0 seconds=0.000 \
error=disk%%20full%%0A%(forged)s" > /proc/$PPID/fd/$fd && echo wrote
"""


def test_forged_log_lines(cluster, plugstack, attacker):
    """A job writes to its own saver's status pipe a failed-save line
    whose error= percent-decodes to "disk full\\n[date] [999.batch]
    resilience: job 999: checkpoint gen-000042 ... saved".  Must hold: no
    line of the slurmd log starts with the forged text; if the error is
    logged at all, its newline arrives escaped (\\x0a) on the job's own
    line."""
    tag = "FORGED-%s" % _uniq()
    forged = ("[2026-01-01T00:00:00.000] [999.batch] resilience: job 999: checkpoint "
              "gen-000042 (signal, part 1/1, published) saved: 1 files, %s" % tag)
    enc = forged.replace(" ", "%20")
    sizes = _log_sizes(cluster)
    with plugstack():
        j = attacker.sbatch(FORGE % {"forged": enc}, [
            "--resilience=ckpt=%s/ck-%%j,scratch=%s/s-%%j,lead=0"
            % (attacker.work, attacker.work)])
        info = cluster.wait_done(j, 30)
        time.sleep(1)
    assert "wrote" in cluster.output(j), cluster.output(j)
    log = _log_since(cluster, info["BatchHost"], sizes[info["BatchHost"]])
    starts = [line for line in log.splitlines() if line.startswith(forged[:40])]
    assert starts == [], starts
    for line in log.splitlines():
        if tag in line:
            assert "\\x0a" in line and "job %d" % j in line, line


# ------------------------------------------------- 4. private folder --

PRIVATE_VICTIM = r"""#!/bin/bash
trap 'echo state > "$RESILIENCE_SCRATCH/state"; touch "$RESILIENCE_CKPT_READY"' USR1
echo "ready=$RESILIENCE_CKPT_READY"
for i in $(seq 1 60); do sleep 0.5; done
"""


def test_private_folder_squatted(cluster, plugstack, attacker):
    """The attacker pre-creates the victim's old private folder
    /tmp/.resilience-<victim uid> (0777, theirs).  Must hold: the victim's
    resilient job (ckpt=) runs and checkpoints normally; its ready file
    (RESILIENCE_CKPT_READY) is under /run/slurm-resilience/u<uid>/; the
    squatted folder receives nothing; the attacker cannot create files in
    /run/slurm-resilience.

    The victim here is a user of its own (`rsprivate`, RS_PRIVATE_USER),
    not rstest: /tmp/.resilience-<uid> is shared by every cluster on the
    machine, and squatting rstest's would break other test runs."""
    victim = ensure_user(os.environ.get("RS_PRIVATE_USER", "rsprivate"))
    if victim.pw_name not in cluster.other_users:
        cluster.other_users.append(victim.pw_name)
    work = cluster.user_work(victim.pw_name)
    ck = os.path.join(work, "ck-%s" % _uniq())
    old = "/tmp/.resilience-%d" % victim.pw_uid
    if os.path.lexists(old):
        _rm(old)
    probe = os.path.join(RUNDIR, "attacker-%s" % _uniq())
    made = False
    with plugstack():
        try:
            r = attacker.sh("mkdir %s && chmod 0777 %s" % (old, old))
            assert r.returncode == 0, r.stderr
            j = cluster.sbatch(PRIVATE_VICTIM, [
                "--resilience=ckpt=%s,scratch=%s/s_%%j,lead=0,grace=10" % (ck, work)],
                user=victim.pw_name)
            cluster.wait_for(lambda: cluster.state(j) in DONE or
                             "ready=" in cluster.output(j), 30, "the job to start")
            if cluster.state(j) not in DONE:
                cluster.run(["scancel", "-b", "--signal=USR1", str(j)])
                try:
                    _wait_gen(cluster, ck, 1, timeout=20)
                except AssertionError:
                    pass
                cluster.run(["scancel", str(j)])
            cluster.wait_done(j, 30)
            squatted = os.listdir(old)
            mine = "%s/u%d" % (RUNDIR, attacker.uid)
            # RUNDIR is the machine's: the plugin (root) made u<uid> for
            # any earlier job of the attacker's, here or in another suite.
            before = os.path.isdir(mine)
            a = attacker.sh("touch %s; mkdir %s/u%d" % (probe, RUNDIR, attacker.uid))
            made = (not before and os.path.isdir(mine) and
                    os.stat(mine).st_uid == attacker.uid)
        finally:
            _rm(old)
            if os.path.lexists(probe):
                _rm(probe)
            if made:
                _rm(mine)
    out = cluster.output(j)
    ready = re.search(r"^ready=(.*)$", out, re.M)
    assert _gens(ck) == ["gen-000001"], (_gens(ck), out)
    assert squatted == [], squatted
    assert ready and ready.group(1).startswith("%s/u%d/" % (RUNDIR, victim.pw_uid)), out
    assert "Permission denied" in a.stderr or "No such file" in a.stderr, a.stderr
    assert not made, "the attacker created %s" % mine


# ---------------------------------------------------------- 5. RUNDIR --

def test_rundir_empty_after_jobs_end(cluster, plugstack, userdir):
    """A handful of short resilient jobs (one-node and three-node, with
    srun steps, with and without ckpt=) end.  Must hold: within 30 s of
    their leaving the queue, /run/slurm-resilience holds no file whose
    name contains <ClusterName>.<jobid>. for any of them (facts files,
    u<uid>/ ready and end-time files): nothing grows with the number of
    jobs ever run."""
    spec = "--resilience=ckpt=%s/ck-%%j,scratch=%s/s-%%j-%%n,lead=0" % (userdir, userdir)
    jobs = []
    with plugstack():
        jobs.append(cluster.sbatch("#!/bin/bash\nsrun -n1 true\nsrun -n1 true\n", [spec]))
        jobs.append(cluster.sbatch("#!/bin/bash\nsrun -N3 -n3 true\nsrun -N3 -n3 true\n",
                                   ["-N3", spec]))
        jobs.append(cluster.sbatch("#!/bin/bash\nsrun -n1 true\n", ["--resilience=retries=1"]))
        jobs.append(cluster.sbatch("#!/bin/bash\nsrun -N2 -n2 true\n",
                                   ["-N2", "--resilience=retries=1,ckpt=%s/ck2-%%j,"
                                    "scratch=%s/t-%%j-%%n" % (userdir, userdir)]))
        for j in jobs:
            assert cluster.wait_done(j, 60)["JobState"] == "COMPLETED", cluster.output(j)
        cluster.wait_for(lambda: not [l for l in cluster.queue()
                                      if int(l.split()[0]) in jobs], 30, "jobs to leave")

        def left():
            names = ["%s.%d." % (cluster.name, j) for j in jobs]
            return [p for p in _files_under(RUNDIR)
                    if any(n in os.path.basename(p) for n in names)]
        try:
            cluster.wait_for(lambda: not left(), 30, "RUNDIR to forget the jobs")
        except AssertionError:
            pass
    assert left() == []


# -------------------------------------------------------- 6. state_dir --

def test_state_dir_symlink_refused(cluster, plugstack, attacker):
    """state_dir= names a missing folder under a user-writable parent; the
    attacker creates it as a symlink to a root-owned folder, mode 0700.
    Must hold: nothing is created in that folder (no manifest.json, no
    .lock), its mode stays 0700, the slurmd log names the state_dir as
    unsafe, and the victim's job itself still runs (the ledger is
    disabled, not the job)."""
    target = os.path.join(cluster.dir, "root-only-%s" % _uniq())
    os.makedirs(target, mode=0o700)
    os.chmod(target, 0o700)
    state = os.path.join(attacker.work, "state-%s" % _uniq())
    r = attacker.sh("ln -s %s %s" % (target, state))
    assert r.returncode == 0, r.stderr
    sizes = _log_sizes(cluster)
    with plugstack("state_dir=" + state):
        j = cluster.sbatch("#!/bin/bash\necho ran\n", ["--resilience=retries=1"])
        info = cluster.wait_done(j, 30)
    node = info["BatchHost"]
    log = _log_since(cluster, node, sizes[node])
    assert _files_under(target) == [], _files_under(target)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o700
    assert info["JobState"] == "COMPLETED" and "ran" in cluster.output(j), info
    assert [line for line in log.splitlines()
            if "resilience" in line and state in line], log[-3000:]


# ------------------------------------------------------- 7. ckpt_roots --

def test_ckpt_roots_dotdot_bypass_refused(cluster, plugstack, userdir):
    """ckpt_roots=R; R/link points outside R; the victim submits
    ckpt=R/link/../x (lexically R/x, really outside R).  Must hold: sbatch
    refuses it (non-zero exit, the message names ckpt= and '..'), and
    nothing is created outside R."""
    root = _victim_dir(cluster, userdir, "root")
    out_dir = "/tmp/rs-escape-%s" % _uniq()
    os.makedirs(os.path.join(out_dir, "elsewhere"))
    for d in (out_dir, os.path.join(out_dir, "elsewhere")):
        shutil.chown(d, cluster.user.pw_name, cluster.user.pw_name)
    os.symlink(os.path.join(out_dir, "elsewhere"), os.path.join(root, "link"))
    try:
        with plugstack("ckpt_roots=" + root):
            r = cluster.sbatch("#!/bin/bash\necho ran\n", [
                "--resilience=ckpt=%s/link/../x,scratch=%s/s_%%j,lead=0"
                % (root, userdir)], check=False)
            if r.returncode == 0:
                cluster.wait_done(int(r.stdout.strip().split(";")[0]), 30)
        outside = _files_under(out_dir)
    finally:
        _rm(out_dir)
    assert r.returncode != 0, r.stdout
    assert "ckpt=" in r.stderr and ".." in r.stderr, r.stderr
    assert outside == [os.path.join(out_dir, "elsewhere")], outside


# ------------------------------------------------ 8. caps on the node --

def test_min_every_enforced_on_node_via_env(cluster, plugstack, userdir):
    """Site min_every=15m.  The SPEC (every=10s) reaches the node only in
    the environment variable Slurm reads SPANK options from, exported to
    sbatch without --resilience (sbatch's checks never see it).  Must
    hold: the job fails on the node with an error naming min_every in its
    output, and no periodic generation is written."""
    ck = os.path.join(userdir, "ck")
    script = ("#!/bin/bash\ntrap 'echo s > $RESILIENCE_SCRATCH/s; touch "
              "$RESILIENCE_CKPT_READY' USR1\necho started\n"
              "for i in $(seq 1 50); do sleep 0.5; done\n")
    with plugstack("min_every=15m"):
        j = cluster.sbatch(script, [], env={
            SPANK_ENV: "ckpt=%s,scratch=%s/s_%%j,every=10s,grace=3,lead=0" % (ck, userdir)})
        info = cluster.wait_done(j, 60)
    out = cluster.output(j)
    assert _gens(ck) == [], _gens(ck)
    assert info["JobState"] == "FAILED", (info["JobState"], out)
    assert "min_every" in out, out


def test_max_retries_enforced_on_node_via_env(cluster, plugstack, userdir):
    """Site max_retries=2; retries=9 handed to the node in the SPANK
    environment variable (not through --resilience).  Must hold: at most
    2 retries are used (Slurm's restart count stays <= 2)."""
    state = os.path.join(cluster.dir, "rs-state")
    with plugstack("max_retries=2 state_dir=" + state):
        j = cluster.sbatch("#!/bin/bash\nexit 1\n", [],
                           env={SPANK_ENV: "retries=9,exhausted=fail"})
        info = _final(cluster, j, 90, max_restarts=2)
    assert int(info["Restarts"]) <= 2, info


# ---------------------------------------------- 9. the retry budget --

REWRITE = r"""#!/bin/bash
echo "attempt=$RESILIENCE_ATTEMPT left=$RESILIENCE_RETRIES_LEFT"
python3 - "$RESILIENCE_CKPT_DIR/manifest.json" <<'PY'
import json, os, sys
p = sys.argv[1]
m = json.load(open(p))
for a in m.get("attempts", []):
    a["retry"] = False
    a["exhausted"] = False
    a["retries_left"] = 2
    a["why"] = "nothing to see"
with open(p + ".new", "w") as f:
    json.dump(m, f)
os.rename(p + ".new", p)
PY
exit 1
"""


def test_ledger_rewrite_cannot_raise_retry_budget(cluster, plugstack, userdir):
    """Site max_retries=2, the job's retries=2 with ckpt=; every attempt
    rewrites its own $RESILIENCE_CKPT_DIR/manifest.json to erase its retry
    history (every attempt's retry=false) and exits 1.  Must hold: the
    script runs at most 3 times (2 retries), then the job is held
    (exhausted=hold, the default).  Slurm's restart count is then 3: the
    held requeue counts too (as in test_requeue.py: retries=3 gives
    Restarts=4)."""
    ck = os.path.join(userdir, "ck")
    with plugstack("max_retries=2"):
        j = cluster.sbatch(REWRITE, ["--open-mode=append", "--resilience=ckpt=%s,"
                                     "scratch=%s/s_%%j,retries=2,lead=0" % (ck, userdir)])
        info = _final(cluster, j, 90, max_restarts=3)
        time.sleep(8)                 # longer than Slurm's requeue delay
        info = cluster.job(j)
    runs = re.findall(r"^attempt=\d+", cluster.output(j), re.M)
    assert len(runs) <= 3, cluster.output(j)
    assert int(info["Restarts"]) <= 3, (info["Restarts"], cluster.output(j))
    assert info.get("Reason") in HELD, info


# ------------------------------------------------ 10. cut restore --

CUT = r"""#!/bin/bash
trap 'touch "$RESILIENCE_CKPT_READY"' USR1
check() {
  if [ -n "$RESILIENCE_RESTORED_FROM" ]; then
    echo "$1 restored=$RESILIENCE_RESTORED_FROM marker=$(cat $RESILIENCE_SCRATCH/zz-marker 2>/dev/null || echo none) files=$(ls $RESILIENCE_SCRATCH | wc -l)"
  else
    echo "$1 restored=none"
  fi
}
echo "attempt=$RESILIENCE_ATTEMPT"
if [ "$RESILIENCE_ATTEMPT" = 1 ]; then
  python3 -c '
import os, sys
d = sys.argv[1]
for i in range(%(nfiles)d):
    with open(os.path.join(d, "f%%05d" %% i), "w") as f:
        f.write("x")
with open(os.path.join(d, "zz-marker"), "w") as f:
    f.write("present")
' "$RESILIENCE_SCRATCH"
  echo made
  until [ -e "$RESILIENCE_CKPT_DIR/latest" ]; do sleep 0.2; done
  sleep 1
  find "$RESILIENCE_SCRATCH" -mindepth 1 -delete
  echo emptied
  for i in $(seq 1 240); do sleep 0.5; done
fi
check batch
export -f check
srun -n1 bash -c 'check step'
echo attempt-done
"""


def test_restore_killed_by_time_bound_not_reported_as_restored(cluster, plugstack, userdir):
    """Site restore_timeout=1s.  A generation of 40000 small files (a
    restore takes ~6 s on the test machine) and a marker file; attempt 1
    empties its scratch after the checkpoint; scontrol requeue.  Must
    hold: on attempt 2 no step (the batch script, an srun step after it)
    sees RESILIENCE_RESTORED_FROM unless the generation's content really
    is in its scratch (the marker and all 40001 files).  (A build without
    the restore_timeout= key refuses the submission: the plugin is then
    misconfigured.  The restore is not checked to have been cut: a
    machine that restores 40000 files within 1 s passes trivially.)"""
    nfiles = 40000
    ck = os.path.join(userdir, "ck")
    with plugstack("restore_timeout=1s"):
        r = cluster.sbatch(CUT % {"nfiles": nfiles}, [
            "--requeue", "--open-mode=append",
            "--resilience=ckpt=%s,scratch=%s/s_%%j,lead=0,grace=30" % (ck, userdir)],
            check=False)
        assert r.returncode == 0, r.stderr
        j = int(r.stdout.strip().split(";")[0])
        cluster.wait_for(lambda: "made" in cluster.output(j), 40, "the files")
        cluster.run(["scancel", "-b", "--signal=USR1", str(j)])
        _wait_gen(cluster, ck, 1, timeout=40)
        cluster.wait_for(lambda: "emptied" in cluster.output(j), 20, "the empty scratch")
        r = cluster.run(["scontrol", "requeue", str(j)])
        assert r.returncode == 0, r.stderr
        cluster.wait_for(lambda: cluster.job(j).get("Restarts") == "1", 30, "the requeue")
        cluster.wait_for(lambda: "attempt-done" in cluster.output(j).split("emptied")[-1]
                         or cluster.state(j) in DONE, 60, "attempt 2")
        cluster.run(["scancel", str(j)])
    out = cluster.output(j).split("emptied")[-1]
    for line in out.splitlines():
        if re.match(r"(batch|step) restored=/", line):
            assert "marker=present files=%d" % (nfiles + 1) in line, out


# ---------------------------------------------- 11. stale state_dir --

def test_stale_state_dir_ledger_not_inherited(cluster, plugstack, attacker):
    """state_dir=S (root's).  As in a previous life of the cluster (job
    ids restart, wrap at MaxJobId, or two clusters share S), S holds a
    ledger for the victim's next job id: three attempts that used retries,
    written in the plugin's own format (copied from a real ledger of an
    attacker's job).  The victim's new job (retries=3, no ckpt=) fails
    once.  Must hold: it is requeued as its retry 1 ("retry 1 of 3"), not
    "retries exhausted"."""
    state = os.path.join(cluster.dir, "sd-%s" % _uniq())
    os.makedirs(state, mode=0o755)
    with plugstack("state_dir=" + state):
        ref = attacker.sbatch("#!/bin/bash\n[ $RESILIENCE_ATTEMPT = 1 ] && exit 1\nexit 0\n",
                              ["--resilience=retries=3"])
        cluster.wait_state(ref, "COMPLETED", 60)
        found = [p for p in glob.glob(os.path.join(state, "*", "manifest.json"))
                 if json.load(open(p))["attempts"][0]["job_id"] == str(ref)]
        assert found, os.listdir(state)
        real = json.load(open(found[0]))
        rec = real["attempts"][0]
        assert rec["retry"] is True, real

        j = _submit_held(cluster, "#!/bin/bash\necho attempt=$RESILIENCE_ATTEMPT\n"
                         "[ $RESILIENCE_ATTEMPT = 1 ] && exit 1\nexit 0\n",
                         ["--open-mode=append", "--resilience=retries=3"])
        stale = dict(real, attempts=[])
        for k in range(3):
            a = dict(rec, job_id=str(j), attempt=k + 1, retries_left=2 - k,
                     why="retry %d of 3" % (k + 1), start=rec["start"] - 3600 + k * 60,
                     end=rec["end"] - 3600 + k * 60 + 10)
            stale["attempts"].append(a)
        for name in (str(j), "%s.%d" % (cluster.name, j)):
            d = os.path.join(state, name)
            os.makedirs(d, mode=0o755, exist_ok=True)
            with open(os.path.join(d, "manifest.json"), "w") as f:
                json.dump(stale, f, indent=2)
        sizes = _log_sizes(cluster)
        _release(cluster, j)
        info = _final(cluster, j, 60)
    logs = "".join(_log_since(cluster, n, sizes[n]) for n in cluster.nodes)
    lines = _job_res_lines(logs, j)
    assert not [line for line in lines if "exhausted" in line], lines
    assert [line for line in lines if "retry 1 of 3" in line], lines
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", info


# ------------------------------------------------------- 12. the CLI --

def test_cli_fifo_manifest_does_not_hang_root(cluster, userdir):
    """Root runs the CLI on a user's folder whose manifest.json is a FIFO.
    Must hold: `slurm-resilience status DIR` and `slurm-resilience ckpt
    list DIR` return within 10 s, with an error."""
    fifo = _victim_dir(cluster, userdir, "ck-fifo")
    r = cluster.as_user(["mkfifo", os.path.join(fifo, "manifest.json")])
    assert r.returncode == 0, r.stderr
    results = {}
    for args in (("status", fifo), ("ckpt", "list", fifo)):
        try:
            p = _cli(cluster, *args, timeout=10)
            results[" ".join(args[:-1])] = p.returncode
        except subprocess.TimeoutExpired:
            results[" ".join(args[:-1])] = "hung"
    assert all(rc not in ("hung", 0) for rc in results.values()), results


def test_cli_escapes_terminal_sequences_from_ledger(cluster, userdir):
    """Root runs `slurm-resilience status DIR` on a user's folder whose
    ledger strings (an attempt's "why" and "nodes") hold ESC [31m, an OSC
    sequence (ESC ]0;...BEL) and newlines.  Must hold: the output holds
    no ESC byte and no line that starts with the injected text, and the
    attempt is still shown."""
    esc = _victim_dir(cluster, userdir, "ck-esc")
    now = int(time.time())
    evil = "\x1b[31mRED\x1b]0;pwned\x07\nINJECTED-why"
    manifest = {"schema": 1, "next_gen": 1, "generations": [], "attempts": [{
        "job_id": "4242", "attempt": 1, "nodes": "n1\x1b[2J\nINJECTED-nodes",
        "start": now - 60, "end": now - 50, "outcome": "failed", "exit_code": 1,
        "signal": 0, "checkpoints": 0, "action": "requeued", "delay": 0,
        "retry": True, "exhausted": False, "retries_left": 0, "why": evil}]}
    path = os.path.join(esc, "manifest.json")
    with open(path, "w") as f:
        json.dump(manifest, f)
    shutil.chown(path, cluster.user.pw_name, cluster.user.pw_name)
    p = _cli(cluster, "status", esc, timeout=10)
    text = p.stdout + p.stderr
    assert b"\x1b" not in text, text
    assert not [line for line in text.splitlines() if line.startswith(b"INJECTED")], text
    assert b"4242" in p.stdout, text     # the ledger was shown


# ---------------------------------------------------- 13. NaN ledger --

class _Webhook:
    """A real HTTP server on loopback that keeps every JSON POST."""

    def __init__(self):
        posts = self.posts = []

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                try:
                    posts.append((self.path, json.loads(body)))
                except ValueError:
                    posts.append((self.path, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *a):
                pass
        self.srv = HTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.srv.server_address[1]
        self.t = threading.Thread(target=self.srv.serve_forever, daemon=True)
        self.t.start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


NAN = r"""#!/bin/bash
trap 'touch "$RESILIENCE_CKPT_READY"' USR1
before=$(readlink "$RESILIENCE_CKPT_DIR/latest" 2>/dev/null)
echo "attempt=$RESILIENCE_ATTEMPT waiting"
while [ "$(readlink "$RESILIENCE_CKPT_DIR/latest" 2>/dev/null)" = "$before" ]; do sleep 0.2; done
sleep 1
python3 - "$RESILIENCE_CKPT_DIR/manifest.json" <<'PY'
import json, os, sys
p = sys.argv[1]
m = json.load(open(p))
nan = float("nan")
for g in m.get("generations", []):
    g["seconds"] = nan
for a in m.get("attempts", []):
    for k in ("start", "end", "delay"):
        if k in a:
            a[k] = nan
with open(p + ".new", "w") as f:
    json.dump(m, f)                     # writes NaN, which json-c accepts
os.rename(p + ".new", p)
PY
echo "nan-written=$(grep -c NaN "$RESILIENCE_CKPT_DIR/manifest.json")"
exit 1
"""


def test_nan_in_ledger_keeps_event_and_alert(cluster, plugstack, userdir):
    """Each attempt checkpoints (USR1 from the test), then the job writes
    NaN into numeric fields of its own ledger (every generation's
    "seconds", the attempts' "start", "end", "delay"), fails and exhausts
    its retries (retries=1, exhausted=hold).
    Must hold: the metrics receiver gets both attempts' events, and the
    SlurmJobRetriesExhausted alert arrives.  The receiver is a plain HTTP
    server (metrics_format=json, alert_format=json)."""
    hook = _Webhook()
    spool = os.path.join(cluster.dir, "spool-nan-%s" % _uniq())
    os.makedirs(spool, mode=0o700)
    ck = os.path.join(userdir, "ck")
    args = ("metrics_url=%s/events metrics_format=json alert_url=%s/alerts "
            "alert_format=json spool_dir=%s timeout_ms=2000" % (hook.url, hook.url, spool))
    try:
        with plugstack(args):
            j = cluster.sbatch(NAN, ["--open-mode=append", "--resilience=ckpt=%s,"
                                     "scratch=%s/s_%%j,retries=1,lead=0,grace=10"
                                     % (ck, userdir)])
            for n in (1, 2):
                cluster.wait_for(lambda: "attempt=%d waiting" % n in cluster.output(j),
                                 40, "attempt %d" % n)
                time.sleep(1)
                cluster.run(["scancel", "-b", "--signal=USR1", str(j)])
            info = _final(cluster, j, 60)

            def events():
                return sorted(b.get("attempt") for p, b in hook.posts
                              if p == "/events" and isinstance(b, dict) and
                              b.get("job_id") == j)

            def alerts():
                return [b for p, b in hook.posts if p == "/alerts" and
                        isinstance(b, dict) and str(b.get("job_id")) == str(j)]
            try:
                cluster.wait_for(lambda: events() == [1, 2] and alerts(), 30,
                                 "the events and the alert")
            except AssertionError:
                pass
    finally:
        hook.stop()
    assert info.get("Reason") in HELD, info
    assert events() == [1, 2], (events(), hook.posts)
    assert alerts(), hook.posts
