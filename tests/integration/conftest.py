"""pytest fixtures: one private real Slurm cluster per test session.

The plugin's site policy is set per test through the `plugstack` fixture:
sbatch and each new slurmstepd read plugstack.conf afresh, so changing it
needs no restart.
"""
import contextlib
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cluster import Cluster  # noqa: E402


@pytest.fixture(scope="session")
def cluster():
    # Four nodes: the tutorial's reference job asks for --nodes=4.
    # RS_CGROUP=1: proctrack/cgroup + task/cgroup (make integration-cgroup).
    c = Cluster(nodes=int(os.environ.get("RS_NODES", "4")),
                cgroup=os.environ.get("RS_CGROUP", "") not in ("", "0"))
    try:
        c.start()
        yield c
    finally:
        c.stop()
        if os.environ.get("RS_KEEP_CLUSTER"):
            print("cluster left in", c.dir)
        else:
            c.cleanup()


@pytest.fixture
def plugstack(cluster):
    """Call with plugin arguments; restored to none after the test."""
    @contextlib.contextmanager
    def _cm(args="", enabled=True):
        cluster.set_plugin_args(args, enabled)
        try:
            yield cluster
        finally:
            cluster.set_plugin_args("")
            cluster.cancel_all()
    cluster.set_plugin_args("")
    return _cm


@pytest.fixture
def userdir(cluster, request):
    """A fresh folder owned by the test user, under the cluster's work dir."""
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix=request.node.name[:40] + "-", dir=cluster.work)
    shutil.chown(d, cluster.user.pw_name, cluster.user.pw_name)
    os.chmod(d, 0o755)
    return d


class Attacker:
    """A second unprivileged user on the cluster (tests/integration/
    test_security.py).  Runs commands and jobs as that user; processes it
    starts outside Slurm are recorded by PID (`spawned`) and killed by PID
    when the test ends, never by user name."""

    def __init__(self, cluster, name):
        import pwd
        from cluster import ensure_user
        self.cluster = cluster
        self.pw = ensure_user(name)
        self.name = name
        self.uid = self.pw.pw_uid
        self.gid = self.pw.pw_gid
        self.work = cluster.user_work(name)
        self.spawned = []
        if name not in cluster.other_users:
            cluster.other_users.append(name)
        assert pwd.getpwnam(name).pw_uid != cluster.user.pw_uid

    def run(self, argv, **kw):
        return self.cluster.run(argv, user=self.name, **kw)

    def sh(self, cmd, **kw):
        """A shell command as this user (cwd: its work folder)."""
        kw.setdefault("cwd", self.work)
        return self.run(["bash", "-c", cmd], **kw)

    def sbatch(self, script, args=(), **kw):
        return self.cluster.sbatch(script, args, user=self.name, **kw)

    def kill_spawned(self):
        import signal
        for pid in self.spawned:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.spawned = []


@pytest.fixture
def attacker(cluster):
    """The attacker: a second unprivileged user (`rsother`; RS_OTHER_USER),
    created like the test user.  The test user (`rstest`) is the victim."""
    from cluster import OTHER_USER
    a = Attacker(cluster, OTHER_USER)
    try:
        yield a
    finally:
        a.kill_spawned()


def pytest_report_header(config):
    """Which Slurm the suite runs on (the first slurmctld in PATH: make
    integration SLURM_PREFIX=... puts that release first)."""
    import shutil
    import subprocess
    ctld = shutil.which("slurmctld") or "slurmctld"
    try:
        v = subprocess.run([ctld, "-V"], capture_output=True, text=True,
                           timeout=10).stdout.strip()
    except OSError as e:
        v = str(e)
    track = ("proctrack/cgroup + task/cgroup (RS_CGROUP)"
             if os.environ.get("RS_CGROUP", "") not in ("", "0")
             else "proctrack/linuxproc")
    return "slurm: %s (%s), %s" % (v, ctld, track)
