"""A private, real Slurm cluster on loopback for integration tests.

munge (the machine's, started if needed), one slurmctld and N slurmd
(Debian's build allows several slurmd on one host), state, spool, logs and
plugstack.conf in a temporary folder, the built plugin loaded from the
build tree.  Jobs are submitted as an ordinary user.  Every wait is
bounded; stop() always tears everything down.

Usable from pytest (tests/integration/conftest.py) and from the demo.
"""
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("RS_BUILD", os.path.join(ROOT, "build"))
# RS_INSTALLED=1: load the plugin a package installed (RS_PLUGIN, default
# Debian's Slurm plugin folder), which finds its helpers where the package
# put them; BUILD is not used for the plugin (make check-package).
INSTALLED = os.environ.get("RS_INSTALLED") == "1"
INSTALLED_PLUGIN = os.environ.get(
    "RS_PLUGIN", "/usr/lib/x86_64-linux-gnu/slurm-wlm/resilience.so")
TEST_USER = os.environ.get("RS_TEST_USER", "rstest")
# A second unprivileged user: the attacker of tests/integration/test_security.py.
OTHER_USER = os.environ.get("RS_OTHER_USER", "rsother")
# Held (flock) by the one cgroup cluster of the machine: Cluster(cgroup=True).
CGROUP_LOCK = "/run/rs-test-cgroup-cluster.lock"


def _free_port_block(n):
    """n consecutive free TCP ports on loopback."""
    for base in range(17000 + (os.getpid() % 200) * 10, 30000, 10):
        ok = True
        for p in range(base, base + n):
            s = socket.socket()
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return base
    raise RuntimeError("no free ports")


def ensure_user(name=TEST_USER):
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", name], check=True)
        return pwd.getpwnam(name)


def slurm_version(env=None):
    """(major, minor) of the slurmctld first in PATH, e.g. (22, 5)."""
    try:
        out = subprocess.run(["slurmctld", "-V"], capture_output=True, text=True,
                             env=env, timeout=10).stdout
        m = re.search(r"(\d+)\.(\d+)", out)
        return (int(m.group(1)), int(m.group(2)))
    except (OSError, AttributeError, subprocess.TimeoutExpired):
        return (0, 0)


def preempt_user_signal_setting(version):
    """The slurm.conf line that makes Slurm send a job's --signal at
    preemption: each release's own slurm.conf(5) (22.05:
    SlurmctldParameters=preempt_send_user_signal; 24.11 and 25.11:
    PreemptParameters=send_user_signal, a key 22.05's parser refuses)."""
    if version >= (23, 2):
        return "PreemptParameters=send_user_signal"
    return "SlurmctldParameters=preempt_send_user_signal"


def ensure_munge():
    """Start the machine's munged if it is not answering."""
    if subprocess.run(["sh", "-c", "munge -n | unmunge"],
                      capture_output=True).returncode == 0:
        return
    key = "/etc/munge/munge.key"
    if not os.path.exists(key):
        os.makedirs("/etc/munge", exist_ok=True)
        with open(key, "wb") as f:
            f.write(os.urandom(1024))
    shutil.chown(key, "munge", "munge")
    os.chmod(key, 0o400)
    for d in ("/run/munge", "/var/lib/munge", "/var/log/munge"):
        os.makedirs(d, exist_ok=True)
        shutil.chown(d, "munge", "munge")
    subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"],
                   check=True)
    deadline = time.time() + 10
    while time.time() < deadline:
        if subprocess.run(["sh", "-c", "munge -n | unmunge"],
                          capture_output=True).returncode == 0:
            return
        time.sleep(0.2)
    raise RuntimeError("munged did not come up")


def _proc_read(pid, what):
    try:
        with open("/proc/%d/%s" % (pid, what), "rb") as f:
            return f.read()
    except OSError:
        return b""


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def _ancestors():
    """This process and its ancestors: never counted as a cluster's."""
    pids, pid = set(), os.getpid()
    while pid > 1 and pid not in pids:
        pids.add(pid)
        stat = _proc_read(pid, "stat")
        try:
            pid = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (ValueError, IndexError):
            break
    return pids


class Cluster:
    def __init__(self, nodes=3, plugin_args="", extra_conf="", plugin=True,
                 cgroup=False):
        self.nnodes = nodes
        # cgroup=True: proctrack/cgroup + task/cgroup (cgroup/v1), as most
        # sites run; see _cgroup_conf().
        self.cgroup = cgroup
        self._cgroup_lock = None
        self.dir = tempfile.mkdtemp(prefix="rs-cluster-")
        # Job ids restart at 1 in every cluster: a name of its own keeps
        # two clusters on one machine (a bench beside a test run) apart.
        self.name = "rs" + os.path.basename(self.dir)[-8:].lower().replace("_", "x")
        os.chmod(self.dir, 0o755)
        self.conf = os.path.join(self.dir, "slurm.conf")
        self.plugstack = os.path.join(self.dir, "plugstack.conf")
        self.work = os.path.join(self.dir, "work")   # user-writable
        self.extra_conf = extra_conf
        self.plugin = (INSTALLED_PLUGIN if INSTALLED
                       else os.path.join(BUILD, "resilience.so"))
        self.procs = []
        self.user = ensure_user()
        self.other_users = []   # users whose jobs cancel_all() also cancels
        # RS_END_POLL_SECONDS: slurmstepd inherits slurmd's environment;
        # the plugin polls time-limit changes every 2 s here, not 30 s.
        self.env = dict(os.environ, SLURM_CONF=self.conf, RS_END_POLL_SECONDS="2")
        self.set_plugin_args(plugin_args, enabled=plugin)

    # ---------------------------------------------------------- config --
    def set_plugin_args(self, args="", enabled=True):
        """Rewrite plugstack.conf: sbatch and every new slurmstepd read it
        afresh, so no restart is needed."""
        with open(self.plugstack, "w") as f:
            if enabled:
                f.write("optional %s %s\n" % (self.plugin, args))
        self.plugin_args = args

    def _write_conf(self):
        host = socket.gethostname()
        base = _free_port_block(2 + self.nnodes)
        self.ctld_port = base
        d = self.dir
        nodes = "n[1-%d]" % self.nnodes if self.nnodes > 1 else "n1"
        ports = ("%d-%d" % (base + 2, base + 1 + self.nnodes)
                 if self.nnodes > 1 else str(base + 2))
        last = "n%d" % self.nnodes
        preempt_signal = preempt_user_signal_setting(slurm_version(self.env))
        conf = f"""
ClusterName={self.name}
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={base}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=5
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool-%n
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd-%n.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
{self._track_conf()}
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=300
SchedulerParameters=bf_interval=1
SlurmdParameters=config_overrides
PlugStackConfig={self.plugstack}
NodeName={nodes} NodeHostname={host} NodeAddr=127.0.0.1 Port={ports} CPUs=2 RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
PartitionName=gh-accelerated Nodes=ALL MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
# Preemption (tests/integration/test_shapes.py): a job in `preempt-high`
# preempts one in `preempt-low` (PriorityTier), which gets GraceTime and is
# requeued.  Only jobs submitted to preempt-high preempt anything: the
# other partitions keep the default PriorityTier=1 and never preempt each
# other.
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
{preempt_signal}
PartitionName=preempt-low Nodes={last} MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=20 PreemptMode=REQUEUE OverSubscribe=NO
PartitionName=preempt-high Nodes={last} MaxTime=INFINITE State=UP PriorityTier=10 OverSubscribe=NO
{self.extra_conf}
"""
        with open(self.conf, "w") as f:
            f.write(conf)
        if self.cgroup:
            with open(os.path.join(d, "cgroup.conf"), "w") as f:
                f.write(self._cgroup_conf())
        os.makedirs(os.path.join(d, "state"), exist_ok=True)
        os.makedirs(self.work, exist_ok=True)
        shutil.chown(self.work, self.user.pw_name, self.user.pw_name)
        self.nodes = ["n%d" % i for i in range(1, self.nnodes + 1)]

    def _track_conf(self):
        if self.cgroup:
            return "ProctrackType=proctrack/cgroup\nTaskPlugin=task/cgroup,task/affinity"
        return "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none"

    @staticmethod
    def _cgroup_conf():
        """cgroup/v1 (the controllers mounted under /sys/fs/cgroup here;
        22.05, 24.11 and 25.11 all ship cgroup_v1.so).  Each slurmd of a
        multiple-slurmd build keeps its jobs under slurm_<node>/ of each
        controller: two cgroup clusters with the same node names on one
        machine would share those folders, hence CGROUP_LOCK."""
        return ("CgroupPlugin=cgroup/v1\n"
                "CgroupMountpoint=/sys/fs/cgroup\n"
                "ConstrainCores=yes\n"
                "ConstrainRAMSpace=yes\n"
                "AllowedRAMSpace=100\n"
                "ConstrainDevices=no\n")

    def _take_cgroup_lock(self, timeout):
        """One cgroup cluster per machine at a time (see _cgroup_conf):
        waits for another test run's to stop."""
        import fcntl
        f = open(CGROUP_LOCK, "a")
        deadline = time.time() + timeout
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.time() > deadline:
                    f.close()
                    raise RuntimeError("another cgroup test cluster holds %s"
                                       % CGROUP_LOCK)
                time.sleep(1)
        self._cgroup_lock = f

    # --------------------------------------------------------- lifecycle --
    def start(self, timeout=60):
        ensure_munge()
        if self.cgroup:
            self._take_cgroup_lock(timeout * 10)
        self._write_conf()
        for n in self.nodes:
            os.makedirs(os.path.join(self.dir, "spool-" + n), exist_ok=True)
        self._spawn(["slurmctld", "-D", "-i", "-f", self.conf])
        self.wait_for(lambda: self.run(["scontrol", "ping"]).stdout.find("UP") >= 0,
                      timeout, "slurmctld to answer")
        self.slurmd_procs = {}
        for n in self.nodes:
            self.slurmd_procs[n] = self._spawn(["slurmd", "-D", "-f", self.conf, "-N", n])
        self.wait_for(self._all_idle, timeout, "nodes to become idle")
        return self

    def restart_slurmd(self, node, timeout=90):
        """Start a node's slurmd again (after a test killed it) and wait
        until the node is back in service (ReturnToService=2)."""
        self.slurmd_procs[node] = self._spawn(["slurmd", "-D", "-f", self.conf, "-N", node])
        self.wait_for(lambda: self.node_states().get(node) in ("idle", "mix", "alloc"),
                      timeout, "node %s back" % node)

    def stop_slurmctld(self):
        """Stop slurmctld as an upgrade or a failover does (SIGTERM: it
        saves its state); start_slurmctld() brings it back."""
        for p in self.procs:
            if p.args[0] == "slurmctld" and p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(30)

    def start_slurmctld(self, timeout=60):
        self._spawn(["slurmctld", "-D", "-i", "-f", self.conf])
        self.wait_for(lambda: self.run(["scontrol", "ping"]).stdout.find("UP") >= 0,
                      timeout, "slurmctld to answer again")

    def _spawn(self, argv):
        log = open(os.path.join(self.dir, os.path.basename(argv[0]) + ".out"), "ab")
        p = subprocess.Popen(argv, env=self.env, stdout=log, stderr=log,
                             start_new_session=True)
        self.procs.append(p)
        return p

    def _all_idle(self):
        # A node in two partitions has two lines: one state per node.
        out = self.run(["sinfo", "-h", "-N", "-o", "%N %t"]).stdout.split("\n")
        states = dict(l.split()[:2] for l in out if l.strip())
        return len(states) == self.nnodes and all(s == "idle" for s in states.values())

    def stop(self):
        for p in self.procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.time() + 15
        for p in self.procs:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        # slurmstepd processes (and the jobs' processes) are not in our
        # process groups: found by what names this cluster, killed by PID.
        self.kill(self.own_pids())
        self.procs = []
        if self._cgroup_lock:
            self._cgroup_lock.close()   # releases the flock
            self._cgroup_lock = None

    @property
    def slurm_bin(self):
        """The folder of the Slurm client commands this cluster runs with
        (the first sbatch in its PATH), for tests that set a job's PATH."""
        return os.path.dirname(shutil.which("sbatch", path=self.env.get("PATH"))
                               or "/usr/bin/sbatch")

    # --------------------------------------------------- own processes --
    def own_pids(self, job=None):
        """PIDs of this cluster's processes, never another cluster's nor
        anything else on the machine: daemons, slurmstepds, job processes,
        supervisors and pollers, found in /proc by what names this
        cluster's folder: the environment (SLURM_CONF, which the daemons,
        slurmstepd's children and the jobs inherit), the command line,
        the working folder or an open file (slurmstepd overwrites its
        command line and environment with its title, but keeps its node's
        log open).  job: only that job's (slurmstepd by its title
        "slurmstepd: [JOB.STEP]", the others by SLURM_JOB_ID in their
        environment or "--job JOB" on their command line)."""
        d = os.fsencode(self.dir)
        conf = b"SLURM_CONF=" + os.fsencode(self.conf) + b"\0"
        skip = _ancestors()
        pids = []
        for e in os.listdir("/proc"):
            if not e.isdigit() or int(e) in skip:
                continue
            pid = int(e)
            env = _proc_read(pid, "environ")
            cmd = _proc_read(pid, "cmdline")
            if not self._names_us(pid, d, conf, env, cmd):
                continue
            if job is not None:
                j = str(job).encode()
                if not (cmd.startswith(b"slurmstepd: [" + j + b".") or
                        b"\0SLURM_JOB_ID=" + j + b"\0" in b"\0" + env or
                        b"\0--job\0" + j + b"\0" in b"\0" + cmd):
                    continue
            pids.append(pid)
        return pids

    @staticmethod
    def _names_us(pid, d, conf, env, cmd):
        if conf in env or d + b"/" in cmd:
            return True
        for link in ["cwd"] + ["fd/" + f for f in
                               _listdir("/proc/%d/fd" % pid)]:
            try:
                if os.fsencode(os.readlink("/proc/%d/%s" % (pid, link))
                               ).startswith(d + b"/"):
                    return True
            except OSError:
                pass
        return False

    @staticmethod
    def cmdline(pid):
        """A process's command line, arguments joined by spaces."""
        return _proc_read(pid, "cmdline").replace(b"\0", b" ").decode(
            errors="replace").strip()

    @staticmethod
    def kill(pids, sig=signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)
        # The plugin's recorded decisions for this cluster (decision.h):
        # the default spool is the machine's, the folder is this cluster's.
        shutil.rmtree("/var/spool/slurm-resilience/decisions-" + self.name,
                      ignore_errors=True)

    # ------------------------------------------------------------ running --
    def run(self, argv, user=None, check=False, timeout=60, input=None, cwd=None,
            env=None):
        """Run a Slurm client command, as root or as `user`.  `env`: extra
        environment variables for the command (a dict)."""
        extra = ["%s=%s" % kv for kv in (env or {}).items()]
        if user:
            argv = ["runuser", "-u", user, "--", "env",
                    "SLURM_CONF=" + self.conf,
                    # The release chosen by PATH (make integration
                    # SLURM_PREFIX=...), whatever runuser does with PATH.
                    "PATH=" + self.env.get("PATH", os.defpath)] + extra + list(argv)
        elif extra:
            argv = ["env"] + extra + list(argv)
        return subprocess.run(argv, env=self.env, capture_output=True,
                              text=True, timeout=timeout, check=check,
                              input=input, cwd=cwd or self.work)

    def as_user(self, argv, **kw):
        return self.run(argv, user=self.user.pw_name, **kw)

    def user_work(self, name):
        """A work folder of user `name` (created, theirs, 0755): the test
        user's is self.work, another user's is work-<name>."""
        if name == self.user.pw_name:
            return self.work
        d = os.path.join(self.dir, "work-" + name)
        if not os.path.isdir(d):
            os.makedirs(d)
            shutil.chown(d, name, name)
            os.chmod(d, 0o755)
        return d

    def sbatch(self, script, args=(), check=True, user=None, **kw):
        """Submit `script` (text) as the test user (or `user`, whose
        output then goes to its user_work folder); return job id or the
        CompletedProcess when check=False."""
        user = user or self.user.pw_name
        work = self.user_work(user)
        path = tempfile.mktemp(prefix="job-", suffix=".sh", dir=work)
        with open(path, "w") as f:
            f.write(script)
        shutil.chown(path, user)
        kw.setdefault("cwd", work)
        r = self.run(["sbatch", "--parsable", "-o",
                      os.path.join(work, "slurm-%j.out")] +
                     list(args) + [path], user=user, **kw)
        if not check:
            return r
        assert r.returncode == 0, "sbatch failed: %s %s" % (r.stdout, r.stderr)
        return int(r.stdout.strip().split(";")[0])

    def output(self, job_id):
        import glob
        name = "slurm-%d.out" % job_id
        for p in [os.path.join(self.work, name)] + sorted(
                glob.glob(os.path.join(self.dir, "work-*", name))):
            try:
                with open(p, errors="replace") as f:
                    return f.read()
            except FileNotFoundError:
                pass
        return ""

    def job(self, job_id):
        """scontrol show job as a dict ({} if the job is unknown)."""
        r = self.run(["scontrol", "show", "job", str(job_id)])
        if r.returncode:
            return {}
        d = {}
        for line in r.stdout.splitlines():
            line = line.strip()
            # Free-text fields stand alone on their line (they may
            # contain "key=value" themselves).
            for free in ("AdminComment=", "Comment=", "SystemComment="):
                if line.startswith(free):
                    d[free[:-1]] = line[len(free):]
                    break
            else:
                for m in re.finditer(r"(\w[\w:/]*)=(.*?)(?= \w[\w:/]*=|$)", line):
                    d.setdefault(m.group(1), m.group(2))
        return d

    def state(self, job_id):
        return self.job(job_id).get("JobState", "UNKNOWN")

    def wait_state(self, job_id, states, timeout=60):
        states = set([states] if isinstance(states, str) else states)
        self.wait_for(lambda: self.state(job_id) in states, timeout,
                      "job %d to reach %s (now %s)" % (job_id, states,
                                                        self.state(job_id)))
        return self.job(job_id)

    def wait_done(self, job_id, timeout=60):
        return self.wait_state(job_id, {"COMPLETED", "FAILED", "CANCELLED",
                                        "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                                        "PREEMPTED", "BOOT_FAIL", "DEADLINE"},
                               timeout)

    def cancel_all(self, timeout=60):
        """Leave no job behind for the next test (a failed test may)."""
        if not self.queue():
            return
        self.run(["scancel", "-u", self.user.pw_name])
        for other in self.other_users:
            self.run(["scancel", "-u", other])
        self.wait_for(lambda: not [l for l in self.queue()
                                   if "COMPLETING" not in l], timeout,
                      "the queue to drain")
        self.wait_for(lambda: not self.queue(), timeout, "jobs to complete")

    def queue(self):
        r = self.run(["squeue", "-h", "-o", "%i %T"])
        return [l for l in r.stdout.split("\n") if l.strip()]

    def slurmd_log(self, node="n1"):
        try:
            with open(os.path.join(self.dir, "slurmd-%s.log" % node),
                      errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def node_states(self):
        out = self.run(["sinfo", "-h", "-N", "-o", "%N %t %E"]).stdout
        return {l.split()[0]: l.split()[1] for l in out.split("\n") if l.strip()}

    @staticmethod
    def wait_for(pred, timeout, what):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if pred():
                return
            time.sleep(0.25)
        raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
