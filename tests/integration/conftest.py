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
    c = Cluster(nodes=int(os.environ.get("RS_NODES", "4")))
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
