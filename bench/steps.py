"""Job steps: what the plugin adds to `srun -n1 true` (issue 4).

Starts a private one-node Slurm cluster (tests/integration/cluster.py),
makes ONE exclusive allocation as the test user (`salloc --no-shell`), and
times many `srun --jobid=J -n1 true` steps in it, in these configurations,
round-robin (ROUNDS rounds x STEPS steps per configuration, WARMUP untimed
steps at the start of every block) so drift of a shared machine cancels:

  a  plugin not loaded (plugstack.conf empty)
  b  plugin loaded, step without --resilience
  d  (diagnostic) plugin loaded, --resilience=retries=1: the plugin is
     active in slurmstepd (slurm_load_job RPC, environment) but there is no
     checkpoint folder, so no supervisor
  c  plugin loaded, --resilience=ckpt=DIR,scratch=DIR,lead=0 on srun: the
     supervisor in front of the task
  i  (diagnostic) as c but with the default lead: each step's saver also
     gets an end-time poller (a background process)
  e  (diagnostic) an empty SPANK plugin instead of resilience.so
  f  (diagnostic) the same empty plugin linked to libcurl and json-c
  j  (diagnostic) the same empty plugin linked to json-c only
  k  (diagnostic) the empty plugin registering one option, as ours does
  g  (diagnostic) resilience.so loaded by slurmstepd only (srun gets a
     slurm.conf whose PlugStackConfig is an empty file)
  h  (diagnostic) resilience.so loaded by srun only

plugstack.conf is rewritten from the root side between blocks: srun reads
it at start and every new slurmstepd reads it again, so one allocation
serves all configurations.  Each step is timed inside one shell running as
the user (bash $EPOCHREALTIME around srun), so user switching and Python
are not in the figure.  Also: VmRSS of the resilience-supervisor process of
a running `srun sleep` step, and the latency of slurm_load_job() (the RPC
the plugin makes once per step of a resilient job) called from a process
on the node.

Every wait is bounded; the cluster is always torn down.
    bench/steps.sh            (ROUNDS=8 STEPS=40 WARMUP=2 by default)
    CONFIGS=a,b,c bench/steps.sh   only these (a is always measured)
    MODE=interleave CONFIGS=a,b,c,e bench/steps.sh
                              configurations in turn for every step
"""
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from cluster import Cluster  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "8"))
STEPS = int(os.environ.get("STEPS", "40"))
WARMUP = int(os.environ.get("WARMUP", "2"))
STEP_TIMEOUT = 30          # seconds, bound on one step (whole block bound)
RSS_SAMPLES = int(os.environ.get("RSS_SAMPLES", "3"))

# Times each step; prints "t0 t1 rc" per step.  $EPOCHREALTIME: no fork.
LOOP = r'''
J=$1; N=$2; W=$3; shift 3
for ((i = 0; i < W + N; i++)); do
	t0=$EPOCHREALTIME
	srun --jobid="$J" -n1 "$@" true
	rc=$?
	t1=$EPOCHREALTIME
	[ $i -ge $W ] && echo "$t0 $t1 $rc"
done
exit 0
'''


# MODE=interleave: one loop takes the configurations in turn for EVERY
# step (rotating the order each time), rewriting plugstack.conf before
# each srun (the file is made writable for the run), so drift of a shared
# machine hits all configurations alike.  Prints "name t0 t1 rc".
ILOOP = r'''
J=$1; N=$2; W=$3; PS=$4; D=$5; shift 5
names=("$@"); k=${#names[@]}
for ((i = 0; i < W + N; i++)); do
	for ((j = 0; j < k; j++)); do
		n=${names[$(( (i + j) % k ))]}
		cat "$D/plugstack.$n" > "$PS"
		mapfile -t A < "$D/args.$n"
		t0=$EPOCHREALTIME
		srun --jobid="$J" -n1 "${A[@]}" true
		rc=$?
		t1=$EPOCHREALTIME
		[ $i -ge $W ] && echo "$n $t0 $t1 $rc"
	done
done
exit 0
'''


def interleaved(c, job, names, udir, rounds, steps, warmup):
    """Times per configuration, and per-round medians (a round = `steps`
    consecutive steps of each configuration)."""
    d = os.path.join(c.dir, "interleave")
    os.makedirs(d, exist_ok=True)
    for n in names:
        configure(c, n)
        shutil.copy(c.plugstack, os.path.join(d, "plugstack." + n))
        with open(os.path.join(d, "args." + n), "w") as f:
            f.write("".join(a + "\n" for a in step_args(n, udir)))
    os.chmod(d, 0o755)
    os.chmod(c.plugstack, 0o666)
    try:
        rc, out, err = user_cmd(
            c, ["bash", "-c", ILOOP, "loop", str(job), str(rounds * steps),
                str(warmup), c.plugstack, d] + names,
            timeout=STEP_TIMEOUT * (rounds * steps + warmup) * len(names))
    finally:
        os.chmod(c.plugstack, 0o644)
    times = {n: [] for n in names}
    for line in out.split("\n"):
        f = line.split()
        if len(f) != 4 or f[0] not in times:
            continue
        if f[3] != "0":
            raise RuntimeError("config %s: a step failed: %s" % (f[0], err[-2000:]))
        times[f[0]].append(float(f[2]) - float(f[1]))
    for n in names:
        if len(times[n]) != rounds * steps:
            raise RuntimeError("config %s: %d of %d steps: %s" % (
                n, len(times[n]), rounds * steps, err[-2000:]))
    per_round = {n: [statistics.median(times[n][r * steps:(r + 1) * steps])
                     for r in range(rounds)] for n in names}
    return times, per_round


def user_cmd(c, argv, timeout, conf=None, **popen_kw):
    """Run argv as the test user in its own process group; kill the group
    when it outlives timeout."""
    full = ["runuser", "-u", c.user.pw_name, "--", "env",
            "SLURM_CONF=" + (conf or c.conf)] + list(argv)
    p = subprocess.Popen(full, env=c.env, cwd=c.work, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True,
                         start_new_session=True, **popen_kw)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.communicate(timeout=10)
        raise RuntimeError("timed out after %ss: %s" % (timeout, argv))
    return p.returncode, out, err


# Diagnostic plugins: an empty SPANK plugin, and the same linked against
# libcurl and json-c like resilience.so: separates Slurm's cost of having
# any plugin from the cost of loading our library's dependencies.
EMPTY_C = r'''
#include <slurm/spank.h>
#include <slurm/slurm_version.h>
const char plugin_name[] = "empty";
const char plugin_type[] = "spank";
const unsigned int plugin_version = SLURM_VERSION_NUMBER;
int slurm_spank_init(spank_t sp, int ac, char **av)
{ (void)sp; (void)ac; (void)av; return 0; }
'''
# (k): the empty plugin registering one option, as resilience.so does:
# what Slurm charges for an option, whatever the plugin does with it.
OPTION_C = EMPTY_C.replace("int slurm_spank_init(spank_t sp, int ac, char **av)\n"
                           "{ (void)sp; (void)ac; (void)av; return 0; }", r'''
static int cb(int v, const char *a, int r) { (void)v; (void)a; (void)r; return 0; }
static struct spank_option opt = { "bench-option", "X", "bench", 1, 0, cb };
int slurm_spank_init(spank_t sp, int ac, char **av)
{
	(void)ac; (void)av;
	if (spank_context() == S_CTX_LOCAL || spank_context() == S_CTX_ALLOCATOR ||
	    spank_context() == S_CTX_REMOTE)
		spank_option_register(sp, &opt);
	return 0;
}
''')
EMPTY = {}


def build_empty(c):
    src = os.path.join(c.dir, "empty.c")
    with open(src, "w") as f:
        f.write(EMPTY_C)
    with open(os.path.join(c.dir, "option.c"), "w") as f:
        f.write(OPTION_C)
    for name, libs in (("e", []), ("f", ["-Wl,--no-as-needed", "-lcurl",
                                         "-ljson-c"]),
                       ("j", ["-Wl,--no-as-needed", "-ljson-c"]), ("k", [])):
        so = os.path.join(c.dir, "empty-%s.so" % name)
        subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", so,
                        os.path.join(c.dir, "option.c") if name == "k" else src]
                       + libs, check=True, timeout=120)
        EMPTY[name] = so


# (g)/(h): srun takes PlugStackConfig from the slurm.conf in its own
# SLURM_CONF, slurmstepd from slurmd's.  A copy of slurm.conf for srun
# whose PlugStackConfig is another file lets one side load the plugin and
# the other not: which half of the cost is srun's, which slurmstepd's.
ALT = {}


def make_alt_conf(c):
    ALT["plugstack"] = os.path.join(c.dir, "plugstack-srun.conf")
    ALT["conf"] = os.path.join(c.dir, "slurm-srun.conf")
    with open(c.conf) as f:
        text = f.read()
    text = re.sub(r"(?m)^PlugStackConfig=.*$",
                  "PlugStackConfig=" + ALT["plugstack"], text)
    with open(ALT["conf"], "w") as f:
        f.write(text)


def srun_conf(c, name):
    """slurm.conf for srun in configuration name."""
    if name not in ("g", "h"):
        return c.conf
    with open(ALT["plugstack"], "w") as f:
        if name == "h":
            f.write("optional %s\n" % c.plugin)
    return ALT["conf"]


def configure(c, name):
    if name in ("g", "h"):
        c.set_plugin_args("", enabled=(name == "g"))
        return
    if name in EMPTY:
        with open(c.plugstack, "w") as f:
            f.write("optional %s\n" % EMPTY[name])
        return
    c.set_plugin_args("", enabled=(name != "a"))


def step_args(name, udir):
    if name == "c":
        return ["--resilience=ckpt=%s/ckpt-%%j,scratch=%s/scratch,lead=0"
                % (udir, udir)]
    if name == "i":
        return ["--resilience=ckpt=%s/ckpt-%%j,scratch=%s/scratch"
                % (udir, udir)]
    if name == "d":
        return ["--resilience=retries=1"]
    return []


def block(c, job, name, udir, n, warmup):
    configure(c, name)
    rc, out, err = user_cmd(
        c, ["bash", "-c", LOOP, "loop", str(job), str(n), str(warmup)] +
        step_args(name, udir), timeout=STEP_TIMEOUT * (n + warmup),
        conf=srun_conf(c, name))
    times, bad = [], 0
    for line in out.split("\n"):
        f = line.split()
        if len(f) != 3:
            continue
        if f[2] != "0":
            bad += 1
        times.append(float(f[1]) - float(f[0]))
    if bad or len(times) != n:
        raise RuntimeError("config %s: %d of %d steps failed: %s" %
                           (name, bad, len(times), err[-2000:]))
    return times


def sanity(c, job, udir):
    """Each configuration is what it claims to be."""
    configure(c, "a")
    rc, out, err = user_cmd(c, ["srun", "--jobid=%d" % job, "-n1",
                                "--resilience=retries=1", "true"], 60)
    assert rc != 0 and "resilience" in err, \
        "(a): --resilience accepted although the plugin is not loaded"
    configure(c, "b")
    rc, out, err = user_cmd(c, ["srun", "--jobid=%d" % job, "-n1", "bash", "-c",
                                "echo ${RESILIENCE_ATTEMPT:-none} "
                                "$(cat /proc/$PPID/comm)"], 60)
    assert rc == 0 and out.split()[0] == "none" and \
        "resilience" not in out, ("(b)", out, err)
    configure(c, "g")
    rc, out, err = user_cmd(c, ["srun", "--jobid=%d" % job, "-n1",
                                "--resilience=retries=1", "true"], 60,
                            conf=srun_conf(c, "g"))
    assert rc != 0 and "resilience" in err, "(g): srun loaded the plugin"
    configure(c, "h")
    rc, out, err = user_cmd(c, ["srun", "--jobid=%d" % job, "-n1",
                                "--resilience=retries=1", "bash", "-c",
                                "echo ${RESILIENCE_ATTEMPT:-none}"], 60,
                            conf=srun_conf(c, "h"))
    assert rc == 0 and out.split() == ["none"], ("(h)", out, err)
    for name, want_attempt, sup in (("d", "1", False), ("c", "1", True)):
        configure(c, name)
        rc, out, err = user_cmd(
            c, ["srun", "--jobid=%d" % job, "-n1"] + step_args(name, udir) +
            ["bash", "-c", "echo ${RESILIENCE_ATTEMPT:-none} "
             "$(cat /proc/$PPID/comm)"], 60)
        f = out.split()
        assert rc == 0 and f[0] == want_attempt and \
            (f[1].startswith("resilience-sup") == sup), ("(%s)" % name, out, err)


def supervisor_rss(c, job, udir):
    """VmRSS (and Pss) of the supervisor of a running `srun sleep` step."""
    configure(c, "c")
    full = ["runuser", "-u", c.user.pw_name, "--", "env",
            "SLURM_CONF=" + c.conf, "srun", "--jobid=%d" % job, "-n1"] + \
        step_args("c", udir) + ["sleep", "4"]
    p = subprocess.Popen(full, env=c.env, cwd=c.work, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 20
        pid = None
        while time.time() < deadline and pid is None:
            for d in os.listdir("/proc"):
                if not d.isdigit():
                    continue
                try:
                    with open("/proc/%s/cmdline" % d, "rb") as f:
                        argv = f.read().split(b"\0")
                except OSError:
                    continue
                if argv and argv[0].endswith(b"resilience-supervisor") and \
                        str(job).encode() in argv:
                    pid = d
                    break
            else:
                time.sleep(0.05)
        if pid is None:
            raise RuntimeError("no resilience-supervisor process appeared")
        time.sleep(1.0)   # settled: waiting in its poll loop
        st = {}
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                    st[k] = int(v.split()[0])
        try:
            with open("/proc/%s/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        st["Pss"] = int(line.split()[1])
        except OSError:
            pass
        p.wait(timeout=30)
        return st
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(10)


LOADJOB = r'''
import ctypes, statistics, sys, time
lib = ctypes.CDLL("libslurm.so.38", mode=ctypes.RTLD_GLOBAL)
lib.slurm_init(None)
job = int(sys.argv[1]); n = int(sys.argv[2])
ts = []
for i in range(n):
    msg = ctypes.c_void_p()
    t0 = time.perf_counter()
    rc = lib.slurm_load_job(ctypes.byref(msg), ctypes.c_uint32(job), ctypes.c_uint16(2))
    t1 = time.perf_counter()
    if rc:
        sys.exit("slurm_load_job failed")
    lib.slurm_free_job_info_msg(msg)
    ts.append(t1 - t0)
print(statistics.median(ts), min(ts), max(ts))
'''


DLOPEN = r'''
import ctypes, os, sys, time
ctypes.CDLL("libslurm.so.38", mode=ctypes.RTLD_GLOBAL)
t0 = time.perf_counter()
ctypes.CDLL(sys.argv[1], mode=os.RTLD_LAZY)
print(time.perf_counter() - t0)
'''


def dlopen_cost(path, n=15):
    """Median time of dlopen(path) in a fresh process (what srun and each
    slurmstepd pay once per step)."""
    ts = []
    for _ in range(n):
        r = subprocess.run([sys.executable, "-c", DLOPEN, path],
                           capture_output=True, text=True, timeout=60)
        if r.returncode:
            return None
        ts.append(float(r.stdout))
    return statistics.median(ts)


def load_job_latency(c, job, n=100):
    r = subprocess.run([sys.executable, "-c", LOADJOB, str(job), str(n)],
                       env=c.env, capture_output=True, text=True, timeout=120)
    if r.returncode:
        print("slurm_load_job timing failed: %s" % r.stderr[-500:])
        return None
    return [float(x) for x in r.stdout.split()]


def ms(x):
    return "%.1f ms" % (x * 1e3)


def main():
    names = ["a", "b", "d", "c", "i", "e", "f", "j", "k", "g", "h"]
    if os.environ.get("CONFIGS"):
        want = set(os.environ["CONFIGS"].split(",")) | {"a"}
        names = [n for n in names if n in want]
    label = {
        "a": "(a) plugin not loaded",
        "b": "(b) plugin loaded, no --resilience",
        "d": "(d) --resilience=retries=1 (active, no supervisor)",
        "c": "(c) --resilience=ckpt=,scratch=,lead=0 (supervisor)",
        "i": "(i) --resilience=ckpt=,scratch= (default lead)",
        "e": "(e) an empty SPANK plugin instead",
        "f": "(f) an empty SPANK plugin linked to libcurl, json-c",
        "j": "(j) an empty SPANK plugin linked to json-c",
        "k": "(k) an empty SPANK plugin registering an option",
        "g": "(g) resilience.so loaded by slurmstepd only",
        "h": "(h) resilience.so loaded by srun only",
    }
    c = Cluster(nodes=1)
    job = None
    try:
        build_empty(c)
        c.start()
        make_alt_conf(c)
        udir = os.path.join(c.work, "bench")
        os.makedirs(udir)
        shutil.chown(udir, c.user.pw_name, c.user.pw_name)
        rc, out, err = user_cmd(c, ["salloc", "-N1", "--exclusive",
                                    "--no-shell", "-t", "60"], 60)
        m = re.search(r"Granted job allocation (\d+)", err + out)
        if not m:
            raise RuntimeError("salloc failed: %s %s" % (out, err))
        job = int(m.group(1))
        c.wait_state(job, "RUNNING", 30)
        sanity(c, job, udir)

        times = {n: [] for n in names}
        per_round = {n: [] for n in names}
        load = []
        t_start = time.time()
        interleave = os.environ.get("MODE") == "interleave"
        if interleave:
            bad = [n for n in names if n in ("g", "h")]
            if bad:
                raise RuntimeError("MODE=interleave: (g) and (h) need another "
                                   "slurm.conf for srun; leave them out")
            load.append(os.getloadavg()[0])
            times, per_round = interleaved(c, job, names, udir, ROUNDS, STEPS,
                                           WARMUP)
            load.append(os.getloadavg()[0])
        for r in range(0 if interleave else ROUNDS):
            # Rotate the order too, so no configuration always follows
            # the same one.
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                t = block(c, job, n, udir, STEPS, WARMUP)
                times[n] += t
                per_round[n].append(statistics.median(t))
            load.append(os.getloadavg()[0])
            print("round %d/%d: %s  (load %.2f)" % (
                r + 1, ROUNDS, "  ".join("%s %s" % (n, ms(per_round[n][-1]))
                                         for n in names), load[-1]),
                  flush=True)
        elapsed = time.time() - t_start

        rss = [supervisor_rss(c, job, udir) for _ in range(RSS_SAMPLES)]
        lj = load_job_latency(c, job)
        configure(c, "b")
        dl = [(p, dlopen_cost(p)) for p in
              (c.plugin, EMPTY["e"], EMPTY["f"], "libcurl.so.4",
               "libjson-c.so.5")]

        base = statistics.median(times["a"])
        print()
        print("== srun -n1 true in one allocation (job %d): %d rounds x %d "
              "steps per configuration, %s, %.0f s, load avg %.2f-%.2f"
              % (job, ROUNDS, STEPS, "interleaved step by step" if interleave
                 else "round-robin blocks", elapsed, min(load), max(load)))
        print("%-55s %9s %9s %9s %9s %8s %8s" % (
            "configuration", "median", "p10", "p90", "added", "ratio",
            "[paired]"))
        for n in names:
            t = sorted(times[n])
            med = statistics.median(t)
            q = statistics.quantiles(t, n=10)
            # Interleaved: each step against the (a) step next to it.
            paired = statistics.median(
                [x / y for x, y in zip(times[n], times["a"])] if interleave
                else [x / y for x, y in zip(per_round[n], per_round["a"])])
            print("%-55s %9s %9s %9s %9s %7.3fx %7.3fx" % (
                label[n], ms(med), ms(q[0]), ms(q[-1]),
                "-" if n == "a" else "%+.1f ms" % ((med - base) * 1e3),
                med / base, paired))
        print("targets: (b)/(a) <= 1.01, (c)/(a) <= 1.05   [paired] = %s" % (
            "median of per-step ratios to the neighbouring (a) step"
            if interleave else "median over rounds of round-median ratios"))
        print()
        for i, s in enumerate(rss):
            print("supervisor of a running `srun sleep` step, sample %d: "
                  "VmRSS %d KiB (RssAnon %d, RssFile %d), VmHWM %d KiB, "
                  "Pss %s KiB" % (i + 1, s.get("VmRSS", -1),
                                  s.get("RssAnon", -1), s.get("RssFile", -1),
                                  s.get("VmHWM", -1), s.get("Pss", "?")))
        print("supervisor VmRSS median %d KiB (target <= 2048 KiB)" %
              statistics.median(s["VmRSS"] for s in rss))
        if lj:
            print("slurm_load_job(job, SHOW_ALL) from the node: median %s "
                  "(min %s, max %s, 100 calls)" % (ms(lj[0]), ms(lj[1]),
                                                   ms(lj[2])))
        for p, t in dl:
            print("dlopen(%s) in a fresh process: median %s" %
                  (os.path.basename(p), "?" if t is None else "%.2f ms" % (t * 1e3)))
    finally:
        try:
            if job:
                c.run(["scancel", str(job)], timeout=30)
        except Exception:
            pass
        c.stop()
        if os.environ.get("RS_KEEP_CLUSTER"):
            print("cluster left in", c.dir)
        else:
            c.cleanup()


if __name__ == "__main__":
    main()
