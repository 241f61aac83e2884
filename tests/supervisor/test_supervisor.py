"""Process-level tests of build/resilience-supervisor, without Slurm.

Every test drives the real binary and looks at what a parent (slurmstepd)
would see: the raw wait status, the bytes on stdout/stderr, files on disk.
Modes:
  direct  the application alone (the reference)
  argv    resilience-supervisor [opts] -- app        (Slurm >= 23.11)
  pid     adopt: fork, child execs app, parent execs
          resilience-supervisor [opts] --pid CHILD    (Slurm 22.05)
"""
import json
import os
import re
import resource
import signal
import struct
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("RS_BUILD", ROOT / "build"))
SUP = str(BUILD / "resilience-supervisor")
ADOPT = str(BUILD / "tests" / "supervisor-adopt")
MEASURE = BUILD / "tests" / "supervisor-measurements.txt"

FWD = ["--role", "forward"]
SUPERVISED = ["argv", "pid"]
ALL_MODES = ["direct"] + SUPERVISED


def command(mode, app, opts=FWD, child_delay="0.02"):
    if mode == "direct":
        return list(app)
    if mode == "argv":
        return [SUP, *opts, "--", *app]
    return [ADOPT, "--child-delay", child_delay, SUP, *opts, "--", *app]


class Proc:
    """A process with its stdout/stderr in files and its raw wait status."""

    def __init__(self, tmp, argv, core=False, cwd=None, name="p"):
        self.out_path = tmp / f"{name}.out"
        self.err_path = tmp / f"{name}.err"

        def pre():
            if core:
                try:
                    resource.setrlimit(resource.RLIMIT_CORE,
                                       (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
                except (ValueError, OSError):  # not root: as far as allowed
                    hard = resource.getrlimit(resource.RLIMIT_CORE)[1]
                    resource.setrlimit(resource.RLIMIT_CORE, (hard, hard))

        with open(self.out_path, "wb") as o, open(self.err_path, "wb") as e:
            self.p = subprocess.Popen(argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL,
                                      cwd=cwd or tmp, preexec_fn=pre)
        self.pid = self.p.pid
        self.status = None

    def wait(self, timeout=30):
        deadline = time.monotonic() + timeout
        while True:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid == self.pid:
                self.status = st
                self.p.returncode = 0  # reaped by us; keep Popen quiet
                return st
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                self.p.returncode = 0
                raise AssertionError(f"{self.p.args} still running after {timeout}s")
            time.sleep(0.005)

    @property
    def out(self):
        return self.out_path.read_bytes()

    @property
    def err(self):
        return self.err_path.read_bytes()


def decode(st):
    """What a parent can tell from a wait status."""
    if os.WIFEXITED(st):
        return ("exit", os.WEXITSTATUS(st))
    return ("signal", os.WTERMSIG(st), bool(os.WCOREDUMP(st)))


def wait_for(pred, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def children_of(pid):
    kids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        # comm may contain spaces: fields after the last ')'
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid:
            kids.append(int(d))
    return kids


def vmrss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def measure(text):
    MEASURE.parent.mkdir(parents=True, exist_ok=True)
    with open(MEASURE, "a") as f:
        f.write(text + "\n")


def status_lines(path):
    if not path.exists():
        return []
    return [dict(kv.split("=", 1) for kv in line.split()[2:]) | {"event": line.split()[1]}
            for line in path.read_text().splitlines()]


# --------------------------------------------------------- exit status ---

EXIT_CASES = {
    "exit0": "exit 0",
    "exit7": "exit 7",
    "exit255": "exit 255",
    "segv": "kill -SEGV $$",
    "kill": "kill -KILL $$",
    "term": "kill -TERM $$",
    "abrt": "kill -ABRT $$",
}


@pytest.mark.parametrize("case", sorted(EXIT_CASES))
@pytest.mark.parametrize("mode", SUPERVISED)
def test_exit_status_identical(tmp_path, mode, case):
    app = ["bash", "-c", EXIT_CASES[case]]
    ref = Proc(tmp_path, command("direct", app), name="ref")
    ref_st = ref.wait()
    sup = Proc(tmp_path, command(mode, app), name="sup")
    sup_st = sup.wait()
    # The whole raw status: exit code, signal, core flag (no core here:
    # RLIMIT_CORE is whatever the test runner has; see the core test).
    if os.WCOREDUMP(ref_st):
        pytest.skip("the runner allows core dumps; covered by test_core_dump_*")
    assert sup_st == ref_st, (decode(sup_st), decode(ref_st))
    assert sup.err == b""


@pytest.mark.parametrize("mode", SUPERVISED)
def test_core_dump_keeps_the_application_core(tmp_path, mode):
    """The app dumps core: same signal, the app's core survives, no core of
    the supervisor's own (it would overwrite a core named plain 'core');
    the core flag is the one bit not reproduced (docs/supervisor.md)."""
    pattern = Path("/proc/sys/kernel/core_pattern").read_text().strip()
    if pattern.startswith("|"):
        pytest.skip(f"core_pattern is a pipe ({pattern}): no core file to look at")
    app = ["bash", "-c", "kill -SEGV $$"]
    refdir = tmp_path / "ref"
    refdir.mkdir()
    ref = Proc(tmp_path, command("direct", app), core=True, cwd=refdir, name="ref")
    ref_st = ref.wait()
    if not os.WCOREDUMP(ref_st):
        pytest.skip("this machine does not write core files even with RLIMIT_CORE unlimited")
    supdir = tmp_path / "sup"
    supdir.mkdir()
    sup = Proc(tmp_path, command(mode, app), core=True, cwd=supdir, name="sup")
    sup_st = sup.wait()
    assert os.WIFSIGNALED(sup_st) and os.WTERMSIG(sup_st) == signal.SIGSEGV
    assert not os.WCOREDUMP(sup_st)
    cores = [p for p in supdir.iterdir() if p.name.startswith("core")]
    assert len(cores) == 1, cores
    fname, pid = core_owner(cores[0])
    assert fname == "bash"
    assert pid != sup.pid
    assert re.fullmatch(rb"resilience: the application \(pid \d+\) was killed by signal 11 "
                        rb"\(Segmentation fault\) and dumped core; the supervisor dies of the "
                        rb"same signal without a core of its own\n", sup.err), sup.err


def core_owner(path):
    """(pr_fname, pr_pid) from the NT_PRPSINFO note of an x86-64 ELF core."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF"
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        ptype, _, off, _, _, filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if ptype != 4:  # PT_NOTE
            continue
        pos = off
        while pos < off + filesz:
            namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
            desc = pos + 12 + ((namesz + 3) & ~3)
            if ntype == 3:  # NT_PRPSINFO
                pid, = struct.unpack_from("<i", data, desc + 24)
                fname = data[desc + 40:desc + 56].split(b"\0")[0].decode()
                return fname, pid
            pos = desc + ((descsz + 3) & ~3)
    raise AssertionError("no NT_PRPSINFO note")


def test_pid_mode_child_already_gone(tmp_path):
    """The application exits before the supervisor even starts."""
    p = Proc(tmp_path, [ADOPT, "--parent-delay", "0.3", SUP, *FWD, "--", "bash", "-c", "exit 5"])
    assert decode(p.wait()) == ("exit", 5)


def test_pid_not_a_child(tmp_path):
    me = os.getpid()  # the supervisor's parent, not its child
    p = Proc(tmp_path, [SUP, *FWD, "--pid", str(me)])
    assert decode(p.wait()) == ("exit", 1)
    assert p.err == (f"resilience: supervisor: pid {me} is not a child of the supervisor: "
                     f"No child processes\n").encode()


def test_exec_failure_like_slurmstepd(tmp_path):
    p = Proc(tmp_path, [SUP, *FWD, "--", "/nonexistent/prog"])
    assert decode(p.wait()) == ("exit", 2)  # errno, as slurmstepd's exec_task
    assert p.err == b"resilience: execve(): /nonexistent/prog: No such file or directory\n"


@pytest.mark.parametrize("mode", SUPERVISED)
def test_bad_options_still_run_the_application(tmp_path, mode):
    opts = ["--role", "forward", "--grace", "soon"]
    p = Proc(tmp_path, command(mode, ["bash", "-c", "echo out; exit 9"], opts))
    assert decode(p.wait()) == ("exit", 9)
    assert p.out == b"out\n"
    assert p.err == (b"resilience: supervisor: --grace: seconds 'soon': expected a non-negative "
                     b"decimal number\nresilience: supervisor: checkpoints disabled, "
                     b"forwarding signals only\n")


def test_nothing_to_supervise(tmp_path):
    p = Proc(tmp_path, [SUP, *FWD])
    assert decode(p.wait()) == ("exit", 2)
    assert b"nothing to supervise" in p.err


# ------------------------------------------------------------- output ---

@pytest.mark.parametrize("mode", SUPERVISED)
def test_stdout_stderr_untouched(tmp_path, mode):
    # Binary, NULs, no final newline, and enough to fill pipes many times.
    script = (r"printf 'a\0b\377\n'; head -c 3000000 /dev/zero | tr '\0' x; "
              r"printf 'err\0\001' >&2; printf tail; exit 3")
    ref = Proc(tmp_path, command("direct", ["bash", "-c", script]), name="ref")
    ref_st = ref.wait()
    sup = Proc(tmp_path, command(mode, ["bash", "-c", script]), name="sup")
    sup_st = sup.wait()
    assert sup_st == ref_st
    assert sup.out == ref.out and len(ref.out) > 3000000
    assert sup.err == ref.err == b"err\0\001"


@pytest.mark.parametrize("mode", SUPERVISED)
def test_stdout_closed_by_app_reaches_eof(tmp_path, mode):
    """The supervisor holds no copy of stdout: a reader sees EOF when the
    application closes it, not when the supervisor exits."""
    app = ["bash", "-c", "echo hi; exec >&-; sleep 2"]
    p = subprocess.Popen(command(mode, app), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    t0 = time.monotonic()
    data = p.stdout.read()
    elapsed = time.monotonic() - t0
    p.wait()
    assert data == b"hi\n"
    assert elapsed < 1.5, elapsed


# ---------------------------------------------------------- signals ---

TRAP_APP = r"""
log=$1
trap 'echo "got USR1" >> $log' USR1
trap 'echo "got USR2" >> $log' USR2
trap 'echo "got HUP" >> $log' HUP
trap 'echo "got RTMIN+1" >> $log' RTMIN+1
trap 'echo "got TERM" >> $log; exit 42' TERM
echo started >> $log
for i in $(seq 300); do sleep 0.05; done
exit 0
"""


def lines(path):
    return path.read_text().splitlines() if path.exists() else []


@pytest.mark.parametrize("mode", ALL_MODES)
def test_signals_forwarded_to_user_trap(tmp_path, mode):
    log = tmp_path / "trap.log"
    p = Proc(tmp_path, command(mode, ["bash", "-c", TRAP_APP, "app", str(log)]))
    wait_for(lambda: "started" in lines(log), what="app start")
    expected = ["started"]
    for sig, name in ((signal.SIGUSR1, "USR1"), (signal.SIGUSR2, "USR2"),
                      (signal.SIGHUP, "HUP"), (signal.SIGRTMIN + 1, "RTMIN+1")):
        os.kill(p.pid, sig)
        expected.append(f"got {name}")
        wait_for(lambda: lines(log) == expected, what=f"trap for {name}: {lines(log)}")
    t0 = time.monotonic()
    os.kill(p.pid, signal.SIGTERM)
    assert decode(p.wait()) == ("exit", 42)
    assert time.monotonic() - t0 < 1.0
    assert lines(log) == expected + ["got TERM"]
    assert p.err == b""


@pytest.mark.parametrize("mode", ALL_MODES)
def test_signal_goes_to_the_app_not_its_children(tmp_path, mode):
    """Like a B: signal without a supervisor: the task pid gets it, its
    children do not (a child without a USR1 handler would die of it)."""
    log = tmp_path / "log"
    app = ["bash", "-c", f"trap 'echo usr1 >> {log}' USR1; "
           f"bash -c 'sleep 1; echo child-done >> {log}' & "
           f"echo started >> {log}; wait $!; wait $!; echo app-done >> {log}"]
    p = Proc(tmp_path, command(mode, app))
    wait_for(lambda: "started" in lines(log), what="app start")
    os.kill(p.pid, signal.SIGUSR1)
    assert decode(p.wait()) == ("exit", 0)
    assert lines(log) == ["started", "usr1", "child-done", "app-done"]


@pytest.mark.parametrize("mode", SUPERVISED)
def test_signal_kills_app_like_without_supervisor(tmp_path, mode):
    """A signal the app does not handle kills it; the supervisor dies the
    same way: a parent cannot tell the difference."""
    log = tmp_path / "log"
    app = ["bash", "-c", f"echo started > {log}; sleep 20 & wait"]
    p = Proc(tmp_path, command(mode, app))
    wait_for(lambda: log.exists(), what="app start")
    os.kill(p.pid, signal.SIGUSR2)
    st = p.wait()
    assert decode(st) == ("signal", signal.SIGUSR2, False)


@pytest.mark.parametrize("mode", SUPERVISED)
def test_sigstop_app_is_not_our_exit(tmp_path, mode):
    """A stopped application is not a finished one; SIGCONT is forwarded."""
    log = tmp_path / "log"
    app = ["bash", "-c", f"trap 'echo cont >> {log}' CONT; echo started >> {log}; "
           f"for i in $(seq 40); do sleep 0.05; done; exit 4"]
    p = Proc(tmp_path, command(mode, app))
    wait_for(lambda: "started" in lines(log), what="app start")
    app_pid = children_of(p.pid)[0]
    os.kill(app_pid, signal.SIGSTOP)
    time.sleep(0.2)
    assert os.waitpid(p.pid, os.WNOHANG) == (0, 0)
    os.kill(p.pid, signal.SIGCONT)
    assert decode(p.wait()) == ("exit", 4)
    assert "cont" in lines(log)


# ------------------------------------------------------ checkpoints ---

CKPT_APP = r"""
# $1 log, $2 scratch, $3 ready file, $4 exit code, $5 milliseconds to run
log=$1 scratch=$2 ready=$3
n=0
on_usr1() {
  n=$((n+1))
  echo "usr1 $n $(date +%s.%N)" >> $log
  echo "state $n" > $scratch/state
  touch $ready
}
trap on_usr1 USR1
echo started >> $log
end=$(( $(date +%s%N) + $5 * 1000000 ))
while [ $(date +%s%N) -lt $end ]; do sleep 0.05; done
exit $4
"""


@pytest.fixture
def job(tmp_path):
    d = {
        "scratch": tmp_path / "scratch",
        "ckpt": tmp_path / "ckpt",
        "ready": tmp_path / "ready",
        "status": tmp_path / "status",
        "log": tmp_path / "app.log",
    }
    d["scratch"].mkdir()
    (d["scratch"] / "data").write_text("initial\n")
    return d


def saver_opts(job, *extra):
    return ["--ckpt", str(job["ckpt"]), "--scratch", str(job["scratch"]),
            "--ready", str(job["ready"]), "--status", str(job["status"]),
            "--job", "42", "--attempt", "1", "--node", "n1", *extra]


def ckpt_app(job, code=0, seconds=3):
    return ["bash", "-c", CKPT_APP, "app", str(job["log"]), str(job["scratch"]),
            str(job["ready"]), str(code), str(int(seconds * 1000))]


def generations(ckpt):
    return sorted(p.name for p in ckpt.glob("gen-*")) if ckpt.exists() else []


SAVED_RE = re.compile(rb"resilience: checkpoint gen-(\d{6}) saved: \d+ files, [\d.]+ (B|KiB|MiB) "
                      rb"copied, [\d.]+ (B|KiB|MiB) linked, \d+\.\d\d s\n")


@pytest.mark.parametrize("mode", SUPERVISED)
def test_warning_ready_generation(tmp_path, job, mode):
    # A stale ready file from an earlier attempt must not count.
    job["ready"].touch()
    p = Proc(tmp_path, command(mode, ckpt_app(job, code=3), saver_opts(job, "--grace", "20")))
    wait_for(lambda: "started" in lines(job["log"]), what="app start")
    t0 = time.monotonic()
    os.kill(p.pid, signal.SIGUSR1)
    wait_for(lambda: generations(job["ckpt"]), what="a generation")
    took = time.monotonic() - t0
    assert decode(p.wait()) == ("exit", 3)
    # Saved at the ready file, not after the 20 s grace.
    assert took < 5, took
    assert generations(job["ckpt"]) == ["gen-000001"]
    gen = job["ckpt"] / "gen-000001" / "node-0"
    assert (gen / "state").read_text() == "state 1\n"
    assert (gen / "data").read_text() == "initial\n"
    assert os.readlink(job["ckpt"] / "latest") == "gen-000001"
    assert SAVED_RE.fullmatch(p.err), p.err
    st = status_lines(job["status"])
    assert [s["event"] for s in st] == ["warning", "save", "exit"]
    assert st[0]["reason"] == "signal" and st[0]["seq"] == "1"
    assert st[1]["result"] == "ok" and st[1]["gen"] == "1" and st[1]["published"] == "1"
    assert st[1]["job"] == "42" and st[1]["attempt"] == "1" and st[1]["node"] == "n1"
    assert st[2]["code"] == "3"
    assert int(st[0]["pid"]) == p.pid
    manifest = json.loads((job["ckpt"] / "manifest.json").read_text())
    assert "signal" in json.dumps(manifest)


def test_app_ignoring_the_signal_saved_after_grace(tmp_path, job):
    app = ["bash", "-c", f"trap '' USR1; echo started > {job['log']}; sleep 4; exit 6"]
    p = Proc(tmp_path, command("argv", app, saver_opts(job, "--grace", "1.5")))
    wait_for(lambda: job["log"].exists(), what="app start")
    t0 = time.monotonic()
    os.kill(p.pid, signal.SIGUSR1)
    wait_for(lambda: generations(job["ckpt"]), what="a generation")
    took = time.monotonic() - t0
    assert 1.4 < took < 3.5, took
    assert decode(p.wait()) == ("exit", 6)
    st = status_lines(job["status"])
    assert [s["event"] for s in st] == ["warning", "save", "exit"]


def test_app_exit_during_grace_saves_at_once(tmp_path, job):
    app = ["bash", "-c", f"trap 'echo final > {job['scratch']}/state; exit 8' USR1; "
           f"echo started > {job['log']}; sleep 20 & wait"]
    p = Proc(tmp_path, command("argv", app, saver_opts(job, "--grace", "30")))
    wait_for(lambda: job["log"].exists(), what="app start")
    t0 = time.monotonic()
    os.kill(p.pid, signal.SIGUSR1)
    assert decode(p.wait()) == ("exit", 8)
    assert time.monotonic() - t0 < 5
    assert (job["ckpt"] / "gen-000001" / "node-0" / "state").read_text() == "final\n"


@pytest.fixture(scope="session")
def big_scratch(tmp_path_factory):
    """Big enough that a save takes a while (to act on the save child)."""
    d = tmp_path_factory.mktemp("big")
    with open(d / "blob", "wb") as f:
        chunk = os.urandom(1 << 20)
        for _ in range(300):
            f.write(chunk)
    return d


def save_child(sup_pid, app_pid, timeout=10):
    def find():
        kids = [k for k in children_of(sup_pid) if k != app_pid]
        return kids[0] if kids else None
    return wait_for(find, timeout, "the save child")


def test_second_signal_during_save_one_save(tmp_path, job, big_scratch):
    job["scratch"] = big_scratch
    log = job["log"]
    app = ["bash", "-c", f"trap 'echo usr1 >> {log}' USR1; echo started >> {log}; "
           f"for i in $(seq 100); do sleep 0.05; done"]
    p = Proc(tmp_path, command("argv", app, saver_opts(job, "--grace", "0")))
    wait_for(lambda: "started" in lines(log), what="app start")
    app_pid = children_of(p.pid)[0]
    os.kill(p.pid, signal.SIGUSR1)
    saver = save_child(p.pid, app_pid)
    os.kill(saver, signal.SIGSTOP)  # hold the save so the 2nd signal lands in it
    # bash merges a USR1 still pending: let the first trap run
    wait_for(lambda: lines(log).count("usr1") == 1, what="first signal forwarded")
    os.kill(p.pid, signal.SIGUSR1)
    wait_for(lambda: lines(log).count("usr1") == 2, what="both signals forwarded")
    os.kill(saver, signal.SIGCONT)
    assert decode(p.wait()) == ("exit", 0)
    st = status_lines(job["status"])
    assert [s["event"] for s in st] == ["warning", "save", "exit"], st
    assert generations(job["ckpt"]) == ["gen-000001"]


def test_second_signal_while_waiting_one_save(tmp_path, job):
    log = job["log"]
    app = ["bash", "-c", f"trap 'echo usr1 >> {log}' USR1; echo started >> {log}; "
           f"for i in $(seq 60); do sleep 0.05; done"]
    p = Proc(tmp_path, command("pid", app, saver_opts(job, "--grace", "1")))
    wait_for(lambda: "started" in lines(log), what="app start")
    for _ in range(3):
        os.kill(p.pid, signal.SIGUSR1)
        time.sleep(0.1)
    assert decode(p.wait()) == ("exit", 0)
    assert lines(log).count("usr1") >= 1  # bash may merge pending USR1s
    assert [s["event"] for s in status_lines(job["status"])] == ["warning", "save", "exit"]
    assert generations(job["ckpt"]) == ["gen-000001"]


def test_sigterm_forwarded_at_once_during_save(tmp_path, job, big_scratch):
    """Time limit while saving: TERM reaches the app at once, the save goes
    on, and the task ends with the app's status after it."""
    job["scratch"] = big_scratch
    log = job["log"]
    app = ["bash", "-c", f"trap 'echo term $(date +%s.%N) >> {log}; exit 143' TERM; "
           f"trap 'echo usr1 >> {log}' USR1; echo started >> {log}; "
           f"while :; do sleep 0.05; done"]
    p = Proc(tmp_path, command("argv", app, saver_opts(job, "--grace", "0")))
    wait_for(lambda: "started" in lines(log), what="app start")
    app_pid = children_of(p.pid)[0]
    os.kill(p.pid, signal.SIGUSR1)
    saver = save_child(p.pid, app_pid)
    os.kill(saver, signal.SIGSTOP)
    sent = time.time()
    os.kill(p.pid, signal.SIGTERM)
    got = wait_for(lambda: [l for l in lines(log) if l.startswith("term")], what="TERM trap")
    assert float(got[0].split()[1]) - sent < 0.5
    time.sleep(0.3)
    assert os.waitpid(p.pid, os.WNOHANG) == (0, 0), "supervisor left before the save ended"
    os.kill(saver, signal.SIGCONT)
    assert decode(p.wait()) == ("exit", 143)
    assert generations(job["ckpt"]) == ["gen-000001"]


def test_save_timeout_kills_the_save(tmp_path, job, big_scratch):
    job["scratch"] = big_scratch
    app = ["bash", "-c", f"echo started > {job['log']}; sleep 3; exit 0"]
    p = Proc(tmp_path, command("argv", app, saver_opts(job, "--grace", "0",
                                                        "--save-timeout", "0.5")))
    wait_for(lambda: job["log"].exists(), what="app start")
    app_pid = children_of(p.pid)[0]
    os.kill(p.pid, signal.SIGUSR1)
    os.kill(save_child(p.pid, app_pid), signal.SIGSTOP)
    assert decode(p.wait()) == ("signal", signal.SIGUSR1, False)  # sleep died of USR1
    assert p.err == (f"resilience: checkpoint of {big_scratch} into {job['ckpt']} failed: "
                     f"timed out after 0.5 s (--save-timeout)\n").encode()
    st = status_lines(job["status"])
    assert st[1]["result"] == "fail" and "timed%20out" in st[1]["error"]
    assert generations(job["ckpt"]) == []


def test_engine_crash_reported_task_survives(tmp_path, job, big_scratch):
    job["scratch"] = big_scratch
    log = job["log"]
    app = ["bash", "-c", f"trap 'echo usr1 >> {log}' USR1; echo started >> {log}; "
           f"for i in $(seq 40); do sleep 0.05; done; exit 5"]
    p = Proc(tmp_path, command("argv", app, saver_opts(job, "--grace", "0")))
    wait_for(lambda: "started" in lines(log), what="app start")
    app_pid = children_of(p.pid)[0]
    os.kill(p.pid, signal.SIGUSR1)
    # SIGKILL stands for a crash or the OOM killer: the save child blocks
    # every other signal sent to it (a step-wide SIGTERM must not stop it).
    os.kill(save_child(p.pid, app_pid), signal.SIGKILL)
    assert decode(p.wait()) == ("exit", 5)
    assert p.err == (f"resilience: checkpoint of {big_scratch} into {job['ckpt']} failed: "
                     f"the save process died of signal 9 (Killed)\n").encode()
    assert generations(job["ckpt"]) == []


def test_save_failure_reported(tmp_path, job):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    job["ckpt"] = blocker / "ckpt"  # under a regular file: cannot exist
    app = ["bash", "-c", f"echo started > {job['log']}; sleep 0.5; exit 0"]
    p = Proc(tmp_path, command("argv", app, saver_opts(job, "--grace", "0")))
    wait_for(lambda: job["log"].exists(), what="app start")
    os.kill(p.pid, signal.SIGUSR1)
    p.wait()
    assert re.fullmatch(rf"resilience: checkpoint of {job['scratch']} into {job['ckpt']} "
                        rf"failed: .+\n".encode(), p.err), p.err
    st = status_lines(job["status"])
    assert st[1]["event"] == "save" and st[1]["result"] == "fail" and st[1]["error"]


def test_forward_role_never_saves(tmp_path, job):
    opts = saver_opts(job, "--grace", "0")
    opts[opts.index("--ckpt"):opts.index("--ckpt")] = ["--role", "forward"]
    log = job["log"]
    app = ["bash", "-c", f"trap 'echo usr1 >> {log}' USR1; echo started >> {log}; "
           f"for i in $(seq 10); do sleep 0.05; done"]
    p = Proc(tmp_path, command("argv", app, opts))
    wait_for(lambda: "started" in lines(log), what="app start")
    os.kill(p.pid, signal.SIGUSR1)
    assert decode(p.wait()) == ("exit", 0)
    assert "usr1" in lines(log)
    assert not job["ckpt"].exists()
    assert [s["event"] for s in status_lines(job["status"])] == ["exit"]


# ------------------------------------------------- lead and periodic ---

def test_lead_warning_without_signal(tmp_path, job):
    end = time.time() + 2.5
    p = Proc(tmp_path, command("argv", ckpt_app(job, code=0, seconds=3.5),
                               saver_opts(job, "--grace", "1", "--lead", "1.5",
                                          "--end-time", f"{end:.3f}")))
    assert decode(p.wait()) == ("exit", 0)
    st = status_lines(job["status"])
    assert [s["event"] for s in st] == ["warning", "save", "exit"], st
    assert st[0]["reason"] == "lead"
    assert abs(float(st[0]["time"]) - (end - 1.5)) < 0.3
    assert [l.split()[0] for l in lines(job["log"])] == ["started", "usr1"]
    assert (job["ckpt"] / "gen-000001" / "node-0" / "state").read_text() == "state 1\n"
    assert "lead" in (job["ckpt"] / "manifest.json").read_text()


def test_lead_not_sent_after_a_warning(tmp_path, job):
    end = time.time() + 2.0
    p = Proc(tmp_path, command("argv", ckpt_app(job, seconds=3),
                               saver_opts(job, "--grace", "1", "--lead", "1",
                                          "--end-time", f"{end:.3f}")))
    wait_for(lambda: "started" in lines(job["log"]), what="app start")
    os.kill(p.pid, signal.SIGUSR1)
    assert decode(p.wait()) == ("exit", 0)
    st = status_lines(job["status"])
    assert [(s["event"], s.get("reason")) for s in st] == \
        [("warning", "signal"), ("save", "signal"), ("exit", None)]
    assert [l.split()[0] for l in lines(job["log"])] == ["started", "usr1"]


def test_end_time_file_moves_the_lead(tmp_path, job):
    endf = tmp_path / "end"
    endf.write_text(f"{time.time() + 1000:.0f}\n")
    p = Proc(tmp_path, command("argv", ckpt_app(job, seconds=6),
                               saver_opts(job, "--grace", "1", "--lead", "1",
                                          "--end-time-file", str(endf))))
    wait_for(lambda: "started" in lines(job["log"]), what="app start")
    time.sleep(1)
    assert status_lines(job["status"]) == []
    # TimeLimit shortened: the end is now 3 s away; lead fires within a
    # file poll (2 s) of end - 1.
    tmp = tmp_path / "end.tmp"
    tmp.write_text(f"{time.time() + 3:.3f}\n")
    tmp.rename(endf)
    t0 = time.time()
    wait_for(lambda: status_lines(job["status"]), timeout=5, what="lead warning")
    assert time.time() - t0 < 4.5
    assert decode(p.wait()) == ("exit", 0)
    st = status_lines(job["status"])
    assert [(s["event"], s.get("reason")) for s in st] == \
        [("warning", "lead"), ("save", "lead"), ("exit", None)]


def test_periodic_checkpoints_never_overlap(tmp_path, job):
    p = Proc(tmp_path, command("argv", ckpt_app(job, seconds=3.6),
                               saver_opts(job, "--grace", "0.3", "--every", "1", "--keep", "10")))
    assert decode(p.wait()) == ("exit", 0)
    st = status_lines(job["status"])
    events = [(s["event"], s.get("reason"), s.get("seq")) for s in st]
    n = sum(1 for e in events if e[0] == "save")
    assert n >= 2, events
    # warning k, save k, warning k+1, ...: a new one only after the last ended
    expect = []
    for k in range(1, n + 1):
        expect += [("warning", "periodic", str(k)), ("save", "periodic", str(k))]
    assert events == expect + [("exit", None, None)]
    assert all(s["result"] == "ok" for s in st if s["event"] == "save")
    assert len(generations(job["ckpt"])) == n


def test_forward_role_sends_lead_warning_too(tmp_path, job):
    end = time.time() + 1.5
    opts = ["--role", "forward", "--lead", "1", "--end-time", f"{end:.3f}"]
    p = Proc(tmp_path, command("pid", ckpt_app(job, seconds=2), opts))
    assert decode(p.wait()) == ("exit", 0)
    assert [l.split()[0] for l in lines(job["log"])] == ["started", "usr1"]
    assert not job["ckpt"].exists()


# ----------------------------------------------------------------- size ---

@pytest.mark.parametrize("mode", SUPERVISED)
def test_rss_small(tmp_path, job, mode):
    p = Proc(tmp_path, command(mode, ckpt_app(job, seconds=1.5), saver_opts(job, "--grace", "0")))
    wait_for(lambda: "started" in lines(job["log"]), what="app start")
    idle = vmrss_kib(p.pid)
    os.kill(p.pid, signal.SIGUSR1)
    wait_for(lambda: generations(job["ckpt"]), what="a generation")
    after = vmrss_kib(p.pid)
    p.wait()
    measure(f"supervisor VmRSS ({mode} mode, saver): {idle} KiB idle, {after} KiB after a save")
    assert idle <= 2048 and after <= 2048, (idle, after)


# ---------------------------------------------------------- status pipe ---

def test_status_fd_gets_the_lines_and_the_app_never_holds_it(tmp_path):
    """The plugin hands the saver the write end of a pipe (--status-fd) and
    drains it when the task ends: the lines must arrive whole, and the
    application must not inherit the fd (a reader would never see EOF)."""
    r, w = os.pipe()
    os.set_blocking(w, False)
    app = ["bash", "-c", f"[ -e /proc/$$/fd/{w} ] && echo holds || echo free; exit 3"]
    p = subprocess.run([SUP, *FWD, "--status-fd", str(w), "--", *app],
                       pass_fds=(w,), capture_output=True, timeout=30)
    os.close(w)
    os.set_blocking(r, False)
    data = os.read(r, 65536).decode()
    os.close(r)
    assert p.returncode == 3, p.stderr
    assert p.stdout.decode() == "free\n"
    lines = data.splitlines()
    assert len(lines) == 1 and lines[0].startswith("rs1 exit ") and "code=3" in lines[0], data
