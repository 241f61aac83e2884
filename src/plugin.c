/*
 * plugin.c - the SPANK glue.  Thin on purpose: each hook says where it runs
 * and calls into the pure modules (spec, policy, pattern, path, ...).
 *
 * Rules that keep the node safe (docs/design.md explains them):
 *  - No hook ever returns an error in a context where that could drain the
 *    node (slurmd, remote init/init_post_opt/exit).  A job that asked for
 *    resilience and cannot get it is failed from slurm_spank_task_init,
 *    with the reason on its stderr.
 *  - A job without --resilience (and no site default) returns from every
 *    hook after one flag test.
 *  - Every symbol is hidden except the plugin identity and the hooks: the
 *    plugin is loaded into sbatch/srun/slurmstepd, which have globals of
 *    their own.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>
#include <slurm/spank.h>

#include "ckpt.h"
#include "err.h"
#include "event.h"
#include "facts.h"
#include "launch.h"
#include "ledger.h"
#include "manifest.h"
#include "path.h"
#include "pattern.h"
#include "policy.h"
#include "privsep.h"
#include "requeue.h"
#include "spec.h"
#include "supervise.h"

#define RS_EXPORT __attribute__((visibility("default")))

RS_EXPORT const char plugin_name[] = "resilience";
RS_EXPORT const char plugin_type[] = "spank";
RS_EXPORT const unsigned int plugin_version = SLURM_VERSION_NUMBER;

/* Step ids with a special meaning (slurm.h names differ across versions). */
#define RS_BATCH_STEP  0xfffffffbu
#define RS_EXTERN_STEP 0xfffffffcu

/* All plugin state: one struct per process that loads the plugin. */
static struct {
	rs_policy_t pol;
	int pol_ok;                 /* plugstack arguments parsed cleanly */
	rs_err_t pol_err;
	int opt_given;              /* --resilience seen in this process */
	char opt_text[RS_SPEC_MAX + 1];
	rs_spec_t spec;             /* effective SPEC (user's or default) */
	int active;                 /* this job asked for resilience */
	int failed;                 /* asked, but cannot be honoured here */
	rs_err_t fail_err;
	char ckpt[PATH_MAX];        /* expanded paths */
	char scratch[PATH_MAX];
	char ledger_dir[PATH_MAX];  /* where the attempt history lives, or "" */
	uint32_t job_id, step_id;
	uid_t uid;
	gid_t gid;
	char job_str[32];           /* job id as the ledger keys it */
	rs_ledger_sum_t sum;        /* what the ledger said at attempt start */
	int have_sum;
	time_t start;
	rs_facts_t f;               /* the job's facts (facts.h): restart
				     * count, end time, nodes, batch, limit,
				     * ClusterName (private file names) */
	int facts_fresh;            /* this step asked slurmctld (not the
				     * node's facts file) */
	char ready[PATH_MAX];       /* RESILIENCE_CKPT_READY */
	int st_pipe[2];             /* the saver supervisor's status lines */
	char endfile[PATH_MAX];     /* the attempt's end time, kept current */
	char supervisor[PATH_MAX];  /* resilience-supervisor, or "" */
	int metrics_ok;             /* site metrics configured and usable */
	long restored_gen;          /* generation restored this attempt, -1 */
	rs_energy_sample_t energy0; /* RAPL counters at attempt start */
	int have_energy;
} g;

/* Bound on any file work done on behalf of slurmstepd. */
#define RS_FILE_TIMEOUT_MS 20000

/*
 * The submission's own options, for checks the SPANK API cannot do at
 * submit: sbatch/salloc/srun's command line (/proc/self/cmdline), then the
 * batch script's #SBATCH lines (the command line wins, as in sbatch).
 * Best effort, used for refusals that name what they saw and a warning.
 * `name` is a long option ("--time"), `shrt` its short letter or 0.
 * Returns 1 and the value (or "" for a flag) if found, else 0.
 */
static int _scan_tokens(char **tok, int n, const char *name, char shrt,
			char *val, size_t len)
{
	size_t nl = strlen(name);
	int i;

	for (i = 0; i < n; i++) {
		const char *t = tok[i], *v = NULL;

		if (!strncmp(t, name, nl) && t[nl] == '=')
			v = t + nl + 1;
		else if (!strcmp(t, name))
			v = i + 1 < n ? tok[i + 1] : "";
		else if (shrt && t[0] == '-' && t[1] == shrt)
			v = t[2] ? t + 2 : (i + 1 < n ? tok[i + 1] : "");
		if (v) {
			snprintf(val, len, "%s", v);
			return 1;
		}
	}
	return 0;
}

static int _submit_option(const char *name, char shrt, char *val, size_t len)
{
	char buf[65536], line[1024], *tok[512], *p, *script = NULL;
	int n = 0, found = 0;
	ssize_t got;
	FILE *f;
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	got = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (got <= 0)
		return 0;
	buf[got] = '\0';
	for (p = buf; p < buf + got && n < 512; p += strlen(p) + 1) {
		tok[n++] = p;
		if (p[0] != '-' && p != buf)
			script = p;
	}
	if (_scan_tokens(tok + 1, n - 1, name, shrt, val, len))
		return 1;
	if (!script || access(script, R_OK) || !(f = fopen(script, "re")))
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		char *save = NULL, *t;

		if (line[0] != '#' && line[0] != '\n')
			break;
		if (strncmp(line, "#SBATCH", 7))
			continue;
		n = 0;
		for (t = strtok_r(line + 7, " \t\n", &save); t && n < 64;
		     t = strtok_r(NULL, " \t\n", &save))
			tok[n++] = t;
		found = _scan_tokens(tok, n, name, shrt, val, len);
	}
	fclose(f);
	return found;
}

/* The time limit the submission asked for, in seconds; 0 if unknown. */
static uint32_t _submit_time_limit(void)
{
	static const char *const envs[] = { "SBATCH_TIMELIMIT",
		"SALLOC_TIMELIMIT", "SLURM_TIMELIMIT" };
	char v[64];
	uint32_t secs = 0;
	size_t i;

	if (_submit_option("--time", 't', v, sizeof(v)) &&
	    !rs_parse_slurm_time(v, &secs))
		return secs;
	for (i = 0; i < sizeof(envs) / sizeof(envs[0]); i++)
		if (getenv(envs[i]) && !rs_parse_slurm_time(getenv(envs[i]), &secs))
			return secs;
	return 0;
}

static int _opt_cb(int val, const char *optarg, int remote);

static struct spank_option rs_option = {
	"resilience", "SPEC",
	"Survive time limits, preemption and failures: checkpoint, requeue, "
	"report. --resilience=help prints the grammar.",
	1, 0, _opt_cb
};

/*
 * Option callback.  Runs in sbatch/salloc (allocator), srun (local) and
 * slurmstepd (remote, with the value the user gave at submit).  Refusing
 * here makes sbatch exit non-zero before anything is queued; in remote
 * context it never refuses (that could drain the node).
 */
static int _opt_cb(int val, const char *optarg, int remote)
{
	rs_err_t err;
	int rc;

	(void)val;
	g.opt_given = 1;
	snprintf(g.opt_text, sizeof(g.opt_text), "%s", optarg ? optarg : "");
	rc = rs_spec_parse(optarg, &g.spec, &err);
	if (remote) {
		if (rc) {
			g.failed = 1;
			g.fail_err = err;
		}
		return 0;
	}
	if (rc) {
		slurm_error("resilience: invalid --resilience: %s", err.msg);
		return -1;
	}
	if (g.spec.help) {
		fputs(rs_spec_help(), stdout);
		fflush(stdout);
		exit(0);
	}
	if (g.spec.off)
		return 0;
	if (!g.pol_ok) {
		slurm_error("resilience: this cluster's resilience plugin is "
			    "misconfigured, so --resilience cannot be honoured "
			    "(tell your administrator): %s", g.pol_err.msg);
		return -1;
	}
	if (rs_policy_check_spec(&g.pol, &g.spec, &err) ||
	    rs_spec_check_time_limit(&g.spec, _submit_time_limit(), &err)) {
		slurm_error("resilience: invalid --resilience: %s", err.msg);
		return -1;
	}
	return 0;
}

/*
 * Every context (sbatch, salloc, srun, slurmstepd, slurmd, prolog).
 * Parses the site policy and registers --resilience.  Never fails: a bad
 * plugstack argument is logged here and refused later, only for jobs that
 * ask for resilience.
 */
RS_EXPORT int slurm_spank_init(spank_t sp, int ac, char **av)
{
	spank_context_t ctx = spank_context();

	memset(&g, 0, sizeof(g));
	g.st_pipe[0] = g.st_pipe[1] = -1;
	g.pol_ok = rs_policy_parse(ac, av, &g.pol, &g.pol_err) == 0;
	if (!g.pol_ok)
		slurm_error("resilience: plugstack.conf: bad argument for "
			    "resilience.so: %s", g.pol_err.msg);
	if (ctx == S_CTX_LOCAL || ctx == S_CTX_ALLOCATOR ||
	    ctx == S_CTX_REMOTE) {
		spank_err_t rc = spank_option_register(sp, &rs_option);

		if (rc != ESPANK_SUCCESS)
			slurm_error("resilience: cannot register --resilience: "
				    "%s", spank_strerror(rc));
	}
	return 0;
}

/* Expand the SPEC's paths for this job and node (slurmstepd). */
static int _expand_paths(spank_t sp, rs_err_t *err)
{
	char job[32], arr_job[32], arr_task[32], node[256], name[256];
	char tmpdir[PATH_MAX];
	uint32_t aj = 0, at = 0;
	struct passwd *pw;
	uid_t uid = (uid_t)-1;
	rs_pattern_ctx_t ctx;
	int rc;

	spank_get_item(sp, S_JOB_UID, &uid);
	spank_get_item(sp, S_JOB_ARRAY_ID, &aj);
	spank_get_item(sp, S_JOB_ARRAY_TASK_ID, &at);
	snprintf(job, sizeof(job), "%u", g.job_id);
	snprintf(arr_job, sizeof(arr_job), "%u", aj ? aj : g.job_id);
	snprintf(arr_task, sizeof(arr_task), "%u", aj ? at : 0);
	/* slurmstepd puts its node's name in its own environment (several
	 * slurmd may share a host, so the host name is not the node name);
	 * the job's copy only gets it just before exec. */
	if (getenv("SLURMD_NODENAME"))
		snprintf(node, sizeof(node), "%s", getenv("SLURMD_NODENAME"));
	else if (gethostname(node, sizeof(node)))
		snprintf(node, sizeof(node), "unknown");
	if (spank_getenv(sp, "SLURM_JOB_NAME", name, sizeof(name)) !=
	    ESPANK_SUCCESS)
		name[0] = '\0';
	/* The user's name only if a pattern needs it: NSS is not free. */
	pw = strstr(g.spec.ckpt, "%u") || strstr(g.spec.scratch, "%u") ?
	     getpwuid(uid) : NULL;
	ctx.job_id = job;
	ctx.array_job_id = arr_job;
	ctx.array_task_id = arr_task;
	ctx.user = pw ? pw->pw_name : NULL;
	ctx.job_name = name;
	ctx.node = node;

	g.ckpt[0] = g.scratch[0] = '\0';
	if (g.spec.ckpt[0]) {
		rc = rs_pattern_expand(g.spec.ckpt, &ctx, g.ckpt,
				       sizeof(g.ckpt), err);
		if (rc)
			return rc;
	}
	if (g.spec.scratch[0])
		return rs_pattern_expand(g.spec.scratch, &ctx, g.scratch,
					 sizeof(g.scratch), err);
	if (spank_getenv(sp, "TMPDIR", tmpdir, sizeof(tmpdir)) ==
	    ESPANK_SUCCESS && tmpdir[0] == '/')
		snprintf(g.scratch, sizeof(g.scratch), "%s", tmpdir);
	else
		snprintf(g.scratch, sizeof(g.scratch), "/tmp");
	return 0;
}

/*
 * slurmstepd (remote), as root, after options are known; also sbatch,
 * salloc and srun.  Decides whether this job is resilient (its own SPEC,
 * or the site default unless it said `off`).  Never returns an error in
 * remote context.
 */
/* A program of ours: beside resilience.so (a build tree), else where
 * `make install` puts it (dir).  out gets "" if neither exists. */
static void _find_helper(const char *name, const char *dir, char *out,
			 size_t len)
{
	Dl_info info;
	char here[PATH_MAX - 64];
	struct stat st;

	if (dladdr((void *)_find_helper, &info) && info.dli_fname) {
		char *slash;

		snprintf(here, sizeof(here), "%s", info.dli_fname);
		slash = strrchr(here, '/');
		if (slash) {
			*slash = '\0';
			snprintf(out, len, "%s/%s", here, name);
			if (!stat(out, &st) && S_ISREG(st.st_mode))
				return;
		}
	}
	snprintf(out, len, "%s/%s", dir, name);
	if (stat(out, &st) || !S_ISREG(st.st_mode))
		out[0] = '\0';
}

/* The configuration the hosting Slurm program read (srun, slurmstepd, ...:
 * libslurm's global).  Not in the public API, but slurm.h declares its
 * type, and a SPANK plugin is built for one Slurm version anyway.  Weak:
 * if a Slurm ever stops exporting it, the plugin falls back to the job's
 * environment. */
extern slurm_conf_t slurm_conf __attribute__((weak, visibility("default")));

/* The cluster this node belongs to, as slurmstepd knows it; else what the
 * step's environment says (srun sets it in new allocations, sbatch and
 * salloc in the job's environment).  0 if found. */
static int _node_cluster(spank_t sp, char *buf, size_t len)
{
	if (&slurm_conf && slurm_conf.cluster_name && slurm_conf.cluster_name[0]) {
		snprintf(buf, len, "%s", slurm_conf.cluster_name);
		return 0;
	}
	return spank_getenv(sp, "SLURM_CLUSTER_NAME", buf, (int)len) ==
	       ESPANK_SUCCESS ? 0 : -1;
}

/*
 * json-c, for a resilient job only.  resilience.so is not linked against
 * it: SPANK loads the plugin into every srun and slurmstepd, whether the
 * job wants resilience or not, and a NEEDED json-c cost each of them its
 * load (~0.3 ms a step, bench/steps.sh).  Slurm dlopens plugins RTLD_LAZY,
 * so the plugin's calls into json-c bind at their first call, by which
 * time this has put the library in the global scope.  Before any fork:
 * children inherit it.
 */
static int _load_jsonc(rs_err_t *err)
{
	if (dlopen(RS_JSONC_SONAME, RTLD_NOW | RTLD_GLOBAL))
		return 0;
	return rs_err_set(err, ENOENT, "cannot load %s on this node: %s",
			  RS_JSONC_SONAME, dlerror());
}

/* The job's record from slurmctld (one RPC, bounded by Slurm's
 * MessageTimeout), or NULL (then *msg is NULL too); the caller frees *msg
 * with slurm_free_job_info_msg. */
static slurm_job_info_t *_load_job(job_info_msg_t **msg)
{
	*msg = NULL;
	if (slurm_load_job(msg, g.job_id, SHOW_ALL) || !*msg ||
	    !(*msg)->record_count) {
		if (*msg)
			slurm_free_job_info_msg(*msg);
		*msg = NULL;
		return NULL;
	}
	return &(*msg)->job_array[0];
}

/* Ask slurmctld about the job. */
static int _facts_from_slurmctld(void)
{
	job_info_msg_t *msg;
	slurm_job_info_t *j = _load_job(&msg);

	if (!j)
		return -1;
	g.f.restart_count = j->restart_cnt;
	g.f.end_time = j->end_time;
	g.f.nnodes = j->num_nodes;
	g.f.batch = j->batch_flag != 0;
	if (j->time_limit != INFINITE && j->time_limit != NO_VAL)
		g.f.time_limit = j->time_limit * 60;
	snprintf(g.f.cluster, sizeof(g.f.cluster), "%s", j->cluster ? j->cluster : "");
	slurm_free_job_info_msg(msg);
	return 0;
}

/* Keep what slurmctld said for the later steps of this attempt on this
 * node.  Best effort: without the file, each step asks slurmctld. */
static void _facts_store(void)
{
	rs_err_t err;

	g.f.uid = g.uid;
	if (rs_facts_store(RS_RUNDIR, g.job_id, &g.f, &err))
		slurm_debug("resilience: job %u: %s", g.job_id, err.msg);
}

/*
 * An srun step: the facts the first step of this attempt on this node
 * kept.  The attempt comes from the step's environment (the batch
 * script's SLURM_RESTART_COUNT, which srun passes on; absent = 0), the
 * cluster from slurmstepd's configuration: if either is off, the file is
 * simply not found or does not match, and the step asks slurmctld.
 * Returns 0 if the facts were found.
 */
static int _facts_from_node(spank_t sp)
{
	char v[32], cluster[sizeof(g.f.cluster)], path[PATH_MAX];
	uint32_t restart = 0;
	rs_facts_t f;

	if (_node_cluster(sp, cluster, sizeof(cluster)))
		return -1;
	if (spank_getenv(sp, "SLURM_RESTART_COUNT", v, sizeof(v)) ==
	    ESPANK_SUCCESS)
		restart = (uint32_t)strtoul(v, NULL, 10);
	if (rs_facts_path(RS_RUNDIR, cluster, g.job_id, restart, path,
			  sizeof(path)) ||
	    rs_facts_load(path, 0, g.uid, restart, time(NULL), &f, NULL) ||
	    strcmp(f.cluster, cluster))
		return -1;
	g.f = f;
	return 0;
}

RS_EXPORT int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	rs_err_t err;
	char v[64];

	(void)ac;
	(void)av;
	if (spank_context() == S_CTX_ALLOCATOR && g.opt_given && !g.spec.off &&
	    g.spec.retries && (getenv("SBATCH_NO_REQUEUE") ||
				_submit_option("--no-requeue", 0, v, sizeof(v))))
		slurm_info("resilience: warning: the job is submitted with "
			   "--no-requeue, so retries=%u will not be used",
			   g.spec.retries);
	if (!spank_remote(sp))
		return 0;
	if (!g.opt_given) {
		if (!g.pol_ok || !g.pol.default_spec[0])
			return 0;
		if (rs_spec_parse(g.pol.default_spec, &g.spec, &err))
			return 0; /* validated by rs_policy_parse already */
	}
	if (g.spec.off)
		return 0;
	g.active = 1;
	if (g.failed) {
		slurm_error("resilience: --resilience unusable on this node: %s",
			    g.fail_err.msg);
		return 0;
	}
	if (!g.pol_ok) {
		g.failed = 1;
		rs_err_set(&g.fail_err, EINVAL,
			   "site policy is misconfigured on this node: %s",
			   g.pol_err.msg);
		return 0;
	}
	spank_get_item(sp, S_JOB_ID, &g.job_id);
	spank_get_item(sp, S_JOB_STEPID, &g.step_id);
	if (g.step_id == RS_EXTERN_STEP) {
		g.active = 0;
		return 0;
	}
	if (_load_jsonc(&err)) {
		g.failed = 1;
		g.fail_err = err;
		slurm_error("resilience: job %u: %s", g.job_id, err.msg);
		return 0;
	}
	spank_get_item(sp, S_JOB_UID, &g.uid);
	spank_get_item(sp, S_JOB_GID, &g.gid);
	{
		/* Children as the user get the job's own groups, as its
		 * tasks do (setgroups: no NSS lookup in slurmstepd). */
		gid_t *gids = NULL;
		int ngids = 0;

		if (spank_get_item(sp, S_JOB_SUPPLEMENTARY_GIDS, &gids,
				   &ngids) == ESPANK_SUCCESS && gids && ngids > 0)
			rs_privsep_set_groups(gids, ngids);
	}
	/* Slurm 22.05 never fills S_SLURM_RESTART_COUNT for the batch step
	 * (only the task environment gets SLURM_RESTART_COUNT, at exec), and
	 * the supervisor needs the attempt's end time: the batch step asks
	 * slurmctld (it decides the requeue: its facts must be exact), so
	 * does the first step of an attempt on each node; later srun steps
	 * read what it kept (facts.h). */
	if (g.step_id == RS_BATCH_STEP || _facts_from_node(sp)) {
		if (_facts_from_slurmctld() == 0) {
			g.facts_fresh = 1;
			_facts_store();
		} else {
			slurm_error("resilience: job %u: cannot load the job's "
				    "state: %s", g.job_id,
				    slurm_strerror(errno));
			if (spank_get_item(sp, S_SLURM_RESTART_COUNT,
					   &g.f.restart_count) != ESPANK_SUCCESS)
				g.f.restart_count = 0;
		}
	}
	snprintf(g.job_str, sizeof(g.job_str), "%u", g.job_id);
	g.start = time(NULL);
	if (_expand_paths(sp, &err)) {
		g.failed = 1;
		g.fail_err = err;
		return 0;
	}
	/* The ledger: in the checkpoint folder (as the user), else in the
	 * site's state_dir (root's), else nowhere (retries are then counted
	 * from Slurm's restart count). */
	if (g.ckpt[0])
		snprintf(g.ledger_dir, sizeof(g.ledger_dir), "%s", g.ckpt);
	else if (g.pol.state_dir[0])
		snprintf(g.ledger_dir, sizeof(g.ledger_dir), "%s/%u",
			 g.pol.state_dir, g.job_id);
	g.restored_gen = -1;
	if (g.step_id == RS_BATCH_STEP && g.spec.metrics &&
	    (g.pol.metrics.url || g.pol.metrics.alert_url)) {
		/* Root-owned secret files are checked here, as root; a bad one
		 * costs the job its metrics, never the job itself. */
		char cli[PATH_MAX];

		if (rs_metrics_conf_check(&g.pol.metrics, &err))
			slurm_error("resilience: job %u: metrics disabled: %s",
				    g.job_id, err.msg);
		else
			g.metrics_ok = 1;
		/* The detached sender execs the CLI (libcurl lives there). */
		_find_helper("slurm-resilience", RS_BINDIR, cli, sizeof(cli));
		if (cli[0])
			g.pol.metrics.flush_cmd = strdup(cli);
		g.have_energy = !rs_event_energy_sample(NULL, &g.energy0, NULL);
	}
	return 0;
}

/* ------------------------------------------------------ the ledger --- */

struct ledger_op {
	int mode;                   /* 0: begin + summarize, 1: record the
				     * end, 2: summarize only */
	const char *nodes;
	const rs_ledger_end_t *fin;
};

static int _ledger_cb(json_object *root, void *arg, rs_err_t *err)
{
	struct ledger_op *op = arg;
	unsigned attempt = g.f.restart_count + 1;

	if (op->mode == 1)
		return rs_ledger_end(root, g.job_str, attempt, op->fin, err);
	if (op->mode == 2) {
		rs_ledger_summarize(root, g.job_str, attempt, &g.sum);
		return RS_MANIFEST_UNCHANGED;
	}
	if (rs_ledger_begin(root, g.job_str, attempt, op->nodes, g.start,
			    &g.spec, g.pol.max_retries, NULL, err))
		return -EINVAL;
	rs_ledger_summarize(root, g.job_str, attempt, &g.sum);
	return 0;
}

/* As the user, at the attempt's end: the restore claims of this job's
 * attempts so far (`.restored-JOB-aN-nK`, one per node and attempt) have
 * done their work; earlier ones are there when an attempt ended without
 * this hook (a node failure). */
static void _drop_restore_claims(void)
{
	char prefix[64];
	struct dirent *e;
	DIR *d;
	int n = snprintf(prefix, sizeof(prefix), ".restored-%s-a", g.job_str);

	if (n <= 0 || n >= (int)sizeof(prefix) || !(d = opendir(g.ckpt)))
		return;
	while ((e = readdir(d))) {
		char *end;
		unsigned long a;

		if (strncmp(e->d_name, prefix, (size_t)n))
			continue;
		a = strtoul(e->d_name + n, &end, 10);
		if (end != e->d_name + n && !strncmp(end, "-n", 2) &&
		    a <= g.f.restart_count + 1)
			unlinkat(dirfd(d), e->d_name, 0);
	}
	closedir(d);
}

/* In the privsep child: update the ledger, send the summary back. */
static int _ledger_child(void *arg, int out_fd, rs_err_t *err)
{
	int rc;

	/* state_dir's history is the user's to read (`slurm-resilience
	 * status JOBID`), like what squeue shows: folders 0755, file 0644.
	 * Only root writes it. */
	if (!g.ckpt[0])
		mkdir(g.pol.state_dir, 0755);
	/* The attempt is over on this node: its ready file goes (the
	 * supervisor also ignores a stale one). */
	if (((struct ledger_op *)arg)->mode == 1 && g.ckpt[0]) {
		if (g.ready[0])
			unlink(g.ready);
		_drop_restore_claims();
	}
	rc = rs_manifest_update(g.ledger_dir, _ledger_cb, arg, err);
	if (!rc && !g.ckpt[0]) {
		char m[PATH_MAX + 32];

		snprintf(m, sizeof(m), "%s/%s", g.ledger_dir, RS_MANIFEST_NAME);
		chmod(g.ledger_dir, 0755);
		chmod(m, 0644);
	}

	if (!rc && write(out_fd, &g.sum, sizeof(g.sum)) != sizeof(g.sum))
		rc = rs_err_set(err, EIO, "ledger: short write");
	return rc;
}

/* Read-modify-write the ledger with the right privileges, bounded.  The
 * checkpoint folder is the user's: the work runs as the user.  state_dir
 * is the site's: it runs as root. */
static int _ledger_update(struct ledger_op *op, rs_err_t *err)
{
	char buf[sizeof(rs_ledger_sum_t) + 1];
	size_t n = 0;
	int own = g.ckpt[0] != '\0';
	int rc;

	if (!g.ledger_dir[0])
		return -ENOENT;
	rc = rs_privsep_run(own ? g.uid : RS_PRIVSEP_ROOT, g.gid, RS_FILE_TIMEOUT_MS,
			    _ledger_child, op, buf, sizeof(buf), &n, err);
	if (!rc && n == sizeof(g.sum)) {
		memcpy(&g.sum, buf, sizeof(g.sum));
		g.have_sum = 1;
	}
	return rc;
}

static unsigned _retry_budget(void)
{
	unsigned r = g.spec.retries;

	if (g.pol.max_retries >= 0 && r > g.pol.max_retries)
		r = (unsigned)g.pol.max_retries;
	return r;
}

/* Retries used so far: from the ledger, or (without one) every earlier
 * requeue counted as a retry. */
static unsigned _retries_used(void)
{
	return g.have_sum ? g.sum.retries_used : g.f.restart_count;
}

/* ------------------------------------------- checkpoints in the job --- */

/* Whether this step's local task 0 saves this node's part.  One saver per
 * node and job, so a warning gives one checkpoint: in a one-node batch job
 * the batch script's supervisor saves and srun steps only forward; in a
 * job on several nodes the srun steps that span the nodes save every
 * node's part and the batch script's supervisor only forwards; a job
 * without a batch script (salloc, srun) saves from its steps
 * (docs/design.md). */
static int _step_saves(void)
{
	if (g.step_id == RS_BATCH_STEP)
		return g.f.nnodes <= 1;
	return !(g.f.batch && g.f.nnodes <= 1);
}

/* Names of the ready and end-time files, in the user's private folder
 * (/tmp/.resilience-<uid>). */
static void _private_names(void)
{
	char dir[256];

	rs_launch_private_dir(g.uid, dir, sizeof(dir));
	/* One ready file per job and node: the application may run in the
	 * batch script or in an srun step, whichever step's supervisor
	 * saves this node's part. */
	snprintf(g.ready, sizeof(g.ready), "%s/%.60s.%u.ready", dir,
		 g.f.cluster, g.job_id);
	snprintf(g.endfile, sizeof(g.endfile), "%s/%.60s.%u.end", dir,
		 g.f.cluster, g.job_id);
}

/* Create (or check) the private folder: the user's, 0700. */
static int _private_dir(rs_err_t *err)
{
	char dir[PATH_MAX - 64];
	struct stat st;

	rs_launch_private_dir(g.uid, dir, sizeof(dir));
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return rs_err_set(err, errno, "create %s: %s", dir,
				  strerror(errno));
	if (lstat(dir, &st) < 0)
		return rs_err_set(err, errno, "%s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode) || st.st_uid != g.uid ||
	    (st.st_mode & 0077))
		return rs_err_set(err, EPERM,
				  "%s is not a private folder of uid %u (owner "
				  "%u, mode %04o): remove it", dir,
				  (unsigned)g.uid, (unsigned)st.st_uid,
				  (unsigned)(st.st_mode & 07777));
	return 0;
}

/* Write the attempt's end time for the supervisors (as the user: temp
 * file + rename, so a reader sees the old or the new value). */
static void _write_end_file(time_t end)
{
	char tmp[PATH_MAX + 16];
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.%ld", g.endfile, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0)
		return;
	dprintf(fd, "%ld\n", (long)end);
	close(fd);
	if (rename(tmp, g.endfile) < 0)
		unlink(tmp);
}

/* Seconds since the end-time file was last written, or -1. */
static long _end_file_age(void)
{
	struct stat st;

	if (stat(g.endfile, &st) < 0)
		return -1;
	return (long)difftime(time(NULL), st.st_mtime);
}

/*
 * `scontrol update TimeLimit=...` moves a running attempt's end: a small
 * detached process (as the user, double-forked so slurmstepd never waits
 * for it) asks slurmctld every RS_END_POLL_SECONDS (30 s; the variable is
 * read from slurmd's environment, for tests) and rewrites the end-time
 * file, which the supervisors re-read.  One per step that saves with a
 * lead, living as long as that step: it holds the read end of a pipe whose
 * write end only slurmstepd keeps (close-on-exec), and leaves when that
 * end closes, or when the attempt is over.  Pollers that lived until the
 * attempt's end piled up, one per step, each asking slurmctld.  A step
 * that read the node's kept facts has its poller ask at once unless the
 * end-time file was written within the period (every poll rewrites it).
 */
static void _spawn_end_poller(void)
{
	const char *e = getenv("RS_END_POLL_SECONDS");
	unsigned every = e && atoi(e) > 0 ? (unsigned)atoi(e) : 30;
	uint32_t restarts = g.f.restart_count;
	int life[2], now;
	pid_t pid;

	if (pipe2(life, O_CLOEXEC) < 0)
		return;
	pid = fork();
	if (pid != 0) {
		close(life[0]);
		if (pid > 0)
			while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
				;
		else
			close(life[1]);
		/* life[1] stays open in slurmstepd until it exits. */
		return;
	}
	close(life[1]);
	setsid();
	if (fork() != 0)
		_exit(0);
	/* Nothing of slurmstepd's but the lifeline: holding the tasks' stdio
	 * pipes would keep an srun step from ending until this poller does. */
	rs_privsep_detach(life[0]);
	if (rs_privsep_become(g.uid, g.gid))
		_exit(0);
	if (g.facts_fresh) {
		now = 0;
	} else {
		long age = _end_file_age();

		now = age < 0 || age >= (long)every;
	}
	for (;;) {
		struct pollfd pfd = { life[0], POLLIN, 0 };
		job_info_msg_t *msg;
		slurm_job_info_t *j;
		int over = 1;

		if (!now) {
			int n = poll(&pfd, 1, (int)every * 1000);

			if (n > 0 || (n < 0 && errno != EINTR))
				_exit(0); /* the step is over */
		}
		now = 0;
		if ((j = _load_job(&msg))) {
			over = (j->job_state & JOB_STATE_BASE) != JOB_RUNNING ||
			       j->restart_cnt != restarts;
			if (!over && j->end_time)
				_write_end_file(j->end_time);
		}
		if (msg)
			slurm_free_job_info_msg(msg);
		if (over)
			_exit(0);
	}
}

/* In a privsep child, as the user, bounded: everything user_init does on
 * user paths before the tasks start.  A hung file system costs the job
 * RS_FILE_TIMEOUT_MS and a clear message, never a hung slurmstepd. */
static int _prepare_child(void *arg, int out_fd, rs_err_t *err)
{
	int rc;

	(void)arg;
	(void)out_fd;
	/* ckpt_roots again, after expansion, with symlinks resolved. */
	rc = rs_policy_check_ckpt_path(&g.pol, g.ckpt, err);
	if (rc)
		return rc;
	rc = _private_dir(err);
	if (rc)
		return rc;
	/* The application finds its scratch folder (the user's, 0700) on
	 * every node, restored or empty. */
	{
		rs_err_t e;

		rc = rs_path_mkdir_p(g.scratch, &e);
		if (rc)
			return rs_err_set(err, -rc, "create scratch %s: %s",
					  g.scratch, e.msg);
	}
	/* Only what slurmctld just said: a kept copy may be older than what
	 * the end-time poller has written since. */
	if (g.f.end_time && g.facts_fresh)
		_write_end_file(g.f.end_time);
	return 0;
}

struct restore_op {
	unsigned part;
	char claim[PATH_MAX + 96];
};

/* In a privsep child, as the user: restore this node's part of the
 * latest generation once per attempt.  The claim file (O_EXCL, in the
 * checkpoint folder every node sees) makes later steps of the same
 * attempt on this node skip it.  Writes "gen PATH", "none" or "skip". */
static int _restore_child(void *arg, int out_fd, rs_err_t *err)
{
	struct restore_op *op = arg;
	rs_ckpt_stats_t st;
	char path[PATH_MAX], line[PATH_MAX + 16];
	long gen = -1;
	int fd, rc;

	if (rs_ckpt_latest(g.ckpt, path, sizeof(path), &gen, NULL)) {
		dprintf(out_fd, "none");
		return 0;
	}
	fd = open(op->claim, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		  O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST) {
		dprintf(out_fd, "skip %s", path);
		return 0;
	}
	if (fd < 0)
		return rs_err_set(err, errno, "claim %s: %s", op->claim,
				  strerror(errno));
	close(fd);
	rc = rs_ckpt_restore(g.ckpt, g.scratch, gen, op->part, &st, err);
	if (rc == -ENOENT) {
		/* This node had no part in that generation: nothing to do. */
		dprintf(out_fd, "none");
		return 0;
	}
	if (rc) {
		unlink(op->claim);
		return rc;
	}
	snprintf(line, sizeof(line), "gen %s", path);
	dprintf(out_fd, "%s", line);
	return 0;
}

static void _restore(spank_t sp)
{
	struct restore_op op;
	uint32_t nodeid = 0;
	char out[PATH_MAX + 32];
	size_t n = 0;
	rs_err_t err;

	spank_get_item(sp, S_JOB_NODEID, &nodeid);
	op.part = nodeid;
	snprintf(op.claim, sizeof(op.claim), "%s/.restored-%s-a%u-n%u",
		 g.ckpt, g.job_str, g.f.restart_count + 1, nodeid);
	if (rs_privsep_run(g.uid, g.gid, RS_FILE_TIMEOUT_MS * 6, _restore_child,
			   &op, out, sizeof(out), &n, &err)) {
		slurm_error("resilience: job %u: restore from %s into %s "
			    "failed: %s", g.job_id, g.ckpt, g.scratch, err.msg);
		return;
	}
	if (!strncmp(out, "gen ", 4) || !strncmp(out, "skip ", 5)) {
		const char *gen = out + (out[0] == 'g' ? 4 : 5);

		spank_setenv(sp, "RESILIENCE_RESTORED_FROM", gen, 1);
		g.restored_gen = rs_ckpt_gen_number(
			strrchr(gen, '/') ? strrchr(gen, '/') + 1 : gen);
		if (out[0] == 'g')
			slurm_info("resilience: job %u: restored %s into %s "
				   "(node part %u)", g.job_id, gen, g.scratch,
				   op.part);
	}
}

/*
 * slurmstepd, as the job's user (effective uid), before tasks fork.
 * Prepares the user paths (bounded child, as the user): ckpt_roots again
 * with symlinks resolved, the private folder, scratch; opens the attempt
 * in the ledger (batch step); restores; exports the job's variables.
 */
RS_EXPORT int slurm_spank_user_init(spank_t sp, int ac, char **av)
{
	char norm[RS_SPEC_MAX + 1], attempt[16];
	rs_err_t err;

	(void)ac;
	(void)av;
	if (!g.active || g.failed)
		return 0;
	if (g.ckpt[0]) {
		_private_names();
		if (rs_privsep_run(g.uid, g.gid, RS_FILE_TIMEOUT_MS,
				   _prepare_child, NULL, NULL, 0, NULL, &err)) {
			g.failed = 1;
			g.fail_err = err;
			slurm_error("resilience: job %u: %s", g.job_id, err.msg);
			return 0;
		}
		/* The saver's status lines come back through a pipe that
		 * slurmstepd drains when the task ends: no file, no child. */
		if (_step_saves() &&
		    pipe2(g.st_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
			slurm_error("resilience: job %u: status pipe: %s",
				    g.job_id, strerror(errno));
			g.st_pipe[0] = g.st_pipe[1] = -1;
		}
	}
	/* Only the batch step opens an attempt: srun steps inside the job
	 * inherit the batch script's RESILIENCE_* variables, and a job
	 * without a batch step (salloc, srun) is never requeued. */
	if (g.ledger_dir[0] && g.step_id == RS_BATCH_STEP) {
		char nodes[1024] = "";
		struct ledger_op op = { 0, nodes, NULL };

		spank_getenv(sp, "SLURM_JOB_NODELIST", nodes, sizeof(nodes));
		if (_ledger_update(&op, &err))
			slurm_error("resilience: job %u: attempt history in %s: "
				    "%s", g.job_id, g.ledger_dir, err.msg);
	}
	if (rs_spec_format(&g.spec, norm, sizeof(norm)) == 0)
		spank_setenv(sp, "RESILIENCE_SPEC", norm, 1);
	snprintf(attempt, sizeof(attempt), "%u", g.f.restart_count + 1);
	spank_setenv(sp, "RESILIENCE_ATTEMPT", attempt, 1);
	{
		unsigned used = _retries_used(), budget = _retry_budget();

		snprintf(attempt, sizeof(attempt), "%u",
			 used < budget ? budget - used : 0);
		spank_setenv(sp, "RESILIENCE_RETRIES_LEFT", attempt, 1);
	}
	if (g.ckpt[0]) {
		spank_setenv(sp, "RESILIENCE_CKPT_DIR", g.ckpt, 1);
		spank_setenv(sp, "RESILIENCE_SCRATCH", g.scratch, 1);
		spank_setenv(sp, "RESILIENCE_CKPT_READY", g.ready, 1);
		if (g.spec.restore && g.f.restart_count > 0)
			_restore(sp);
		_find_helper("resilience-supervisor", RS_LIBEXECDIR,
			     g.supervisor, sizeof(g.supervisor));
		if (g.f.end_time && _step_saves() &&
		    rs_spec_effective_lead(&g.spec, g.f.time_limit))
			_spawn_end_poller();
		if (!g.supervisor[0]) {
			g.failed = 1;
			rs_err_set(&g.fail_err, ENOENT,
				   "resilience-supervisor not found beside "
				   "resilience.so nor in %s", RS_LIBEXECDIR);
		}
	}
	return 0;
}

/* Fill the supervisor's command line for this task. */
static int _launch_argv(spank_t sp, pid_t adopt, char **argv, int *argc,
			char *buf, size_t len)
{
	uint32_t nodeid = 0, nnodes = 1;
	int local = 0;
	rs_launch_t l;
	const char *node = getenv("SLURMD_NODENAME");

	spank_get_item(sp, S_JOB_NODEID, &nodeid);
	spank_get_item(sp, S_JOB_NNODES, &nnodes);
	spank_get_item(sp, S_TASK_ID, &local);
	memset(&l, 0, sizeof(l));
	l.supervisor = g.supervisor;
	l.spec = &g.spec;
	l.ckpt = g.ckpt;
	l.scratch = g.scratch;
	l.ready = g.ready;
	l.job = g.job_str;
	l.node = node ? node : "unknown";
	l.attempt = g.f.restart_count + 1;
	l.part = nodeid;
	l.nparts = nnodes ? nnodes : 1;
	l.saver = local == 0 && _step_saves();
	/* The status pipe goes to the saver only: it is close-on-exec
	 * everywhere else, so the application never holds it. */
	if (l.saver && g.st_pipe[1] > 2 &&
	    fcntl(g.st_pipe[1], F_SETFD, 0) == 0)
		l.status_fd = g.st_pipe[1];
	l.end_time = (double)g.f.end_time;
	l.lead = rs_spec_effective_lead(&g.spec, g.f.time_limit);
	l.end_time_file = g.endfile[0] ? g.endfile : NULL;
	l.adopt = adopt;
	return rs_launch_argv(&l, argv, argc, buf, len);
}

#if HAVE_SPANK_PREPEND_TASK_ARGV
/* Slurm >= 23.11: slurmstepd execs the supervisor, which runs the task. */
static void _supervise(spank_t sp)
{
	char *argv[RS_LAUNCH_MAX_ARGS], buf[16384];
	int argc = 0;
	spank_err_t rc;

	if (_launch_argv(sp, 0, argv, &argc, buf, sizeof(buf))) {
		fprintf(stderr, "resilience: error: supervisor command line too "
				"long; running without checkpoints\n");
		return;
	}
	rc = spank_prepend_task_argv(sp, argc, (const char **)argv);
	if (rc != ESPANK_SUCCESS)
		fprintf(stderr, "resilience: error: cannot start the supervisor "
				"(%s); running without checkpoints\n",
			spank_strerror(rc));
}
#else
/* Leave exactly as the task did, if the supervisor cannot be exec'd. */
static void _wait_and_mirror(pid_t child)
{
	int st;

	while (waitpid(child, &st, 0) < 0)
		if (errno != EINTR)
			_exit(127);
	if (WIFSIGNALED(st)) {
		signal(WTERMSIG(st), SIG_DFL);
		raise(WTERMSIG(st));
		_exit(128 + WTERMSIG(st));
	}
	_exit(WEXITSTATUS(st));
}

/*
 * Slurm 22.05: fork here, in the task process.  The child returns and
 * slurmstepd execs the application in it; this process, the task pid
 * Slurm signals, execs the supervisor, which adopts the child.  Signals
 * stay blocked across exec so none is lost before the supervisor reads
 * them; the child gets the original mask back.
 */
static void _supervise(spank_t sp)
{
	char *argv[RS_LAUNCH_MAX_ARGS], buf[16384];
	sigset_t all, old;
	int argc = 0;
	pid_t child;

	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old);
	child = fork();
	if (child < 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		fprintf(stderr, "resilience: error: fork: %s; running without "
				"checkpoints\n", strerror(errno));
		return;
	}
	if (child == 0) {
		sigprocmask(SIG_SETMASK, &old, NULL);
		return;
	}
	if (_launch_argv(sp, child, argv, &argc, buf, sizeof(buf)) == 0)
		execv(argv[0], argv);
	fprintf(stderr, "resilience: error: cannot run %s: %s; the job runs "
			"without checkpoints\n", g.supervisor, strerror(errno));
	sigprocmask(SIG_SETMASK, &old, NULL);
	_wait_and_mirror(child);
}
#endif

/*
 * In each task process, as the job's user, just before exec.  The only
 * place a job that asked for resilience and cannot get it is failed: with
 * the reason on the task's stderr, without touching the node's state.
 * Slurm ignores errors of `optional` plugins, so the task leaves itself,
 * exactly as slurmstepd would for a `required` one (_exit(1) before exec).
 */
RS_EXPORT int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	(void)ac;
	(void)av;
	if (!g.active)
		return 0;
	if (g.failed) {
		fprintf(stderr, "resilience: error: %s\n", g.fail_err.msg);
		fflush(stderr);
		_exit(1);
	}
	if (g.ckpt[0]) {
		if (g.st_pipe[0] >= 0)
			close(g.st_pipe[0]);
		_supervise(sp);
	}
	return 0;
}

/* ------------------------------------------------ end of an attempt --- */

/* What Slurm says about the job now (slurmctld RPC, bounded by Slurm's
 * MessageTimeout); ev (may be NULL) gets the job's identity for metrics. */
static int _job_facts(rs_attempt_end_t *end, int *requeue_allowed,
		      int *batch, rs_event_t *ev)
{
	job_info_msg_t *msg;
	slurm_job_info_t *j = _load_job(&msg);
	uint32_t st;

	if (!j)
		return -1;
	st = j->job_state;
	/* scontrol requeue (or preemption in REQUEUE mode) leaves the job
	 * pending, or completing with the requeue flag, before we see it. */
	end->requeued = (st & JOB_STATE_BASE) == JOB_PENDING ||
			(st & (JOB_REQUEUE | JOB_REQUEUE_HOLD));
	end->timed_out = (st & JOB_STATE_BASE) == JOB_TIMEOUT;
	end->preempted = (st & JOB_STATE_BASE) == JOB_PREEMPTED;
	end->cancelled = (st & JOB_STATE_BASE) == JOB_CANCELLED;
	*requeue_allowed = j->requeue != 0;
	*batch = j->batch_flag != 0;
	if (ev) {
		struct passwd *pw = getpwuid(j->user_id);

		ev->cluster = strdup(g.pol.metrics.cluster ? g.pol.metrics.cluster
				     : j->cluster ? j->cluster : "unknown");
		ev->job_id = g.job_id;
		if (j->array_task_id != NO_VAL) {
			ev->array_job_id = j->array_job_id;
			ev->array_task_id = j->array_task_id;
		}
		ev->user = pw ? strdup(pw->pw_name) : NULL;
		ev->uid = j->user_id;
		ev->account = j->account ? strdup(j->account) : NULL;
		ev->partition = j->partition ? strdup(j->partition) : NULL;
		ev->qos = j->qos ? strdup(j->qos) : NULL;
		ev->job_name = j->name ? strdup(j->name) : NULL;
		ev->nodes = j->nodes ? strdup(j->nodes) : NULL;
		ev->num_nodes = j->num_nodes;
		ev->num_tasks = j->num_tasks;
		ev->num_cpus = j->num_cpus;
	}
	slurm_free_job_info_msg(msg);
	return 0;
}

/* Spool this attempt's event (and the retries-exhausted alert) and let a
 * detached process deliver it: the job's end never waits for a receiver. */
static void _submit_metrics(rs_event_t *ev, rs_outcome_t o, int exit_code,
			    int sig, const rs_decision_t *d, time_t end)
{
	rs_energy_sample_t e1;
	rs_err_t err;

	ev->attempt = g.f.restart_count + 1;
	ev->restart_count = g.f.restart_count;
	ev->outcome = o;
	ev->exit_code = exit_code;
	ev->signal = sig;
	ev->action = d->action;
	ev->start_time = g.start;
	ev->end_time = end;
	ev->duration_seconds = difftime(end, g.start);
	ev->checkpoints = g.sum.all_checkpoints;
	ev->last_ckpt_generation = g.sum.last_gen;
	ev->last_ckpt_bytes = g.sum.last_bytes;
	ev->last_ckpt_seconds = g.sum.last_seconds;
	ev->last_ckpt_reason = g.sum.last_reason[0] ? strdup(g.sum.last_reason)
						    : NULL;
	ev->restored_from_generation = g.restored_gen;
	ev->ckpt_dir = g.ckpt[0] ? strdup(g.ckpt) : NULL;
	if (g.have_energy && !rs_event_energy_sample(NULL, &e1, NULL) &&
	    !rs_event_energy_joules(&g.energy0, &e1, &ev->energy_joules, NULL))
		ev->has_energy = 1;
	if (rs_metrics_submit(&g.pol.metrics, ev, d->exhausted, &err))
		slurm_error("resilience: job %u: metrics: %s", g.job_id, err.msg);
}

static void _set_admin_comment(const char *text)
{
	job_desc_msg_t upd;

	slurm_init_job_desc_msg(&upd);
	upd.job_id = g.job_id;
	upd.admin_comment = (char *)text;
	if (slurm_update_job(&upd))
		slurm_info("resilience: job %u: AdminComment not set (%s): %s",
			   g.job_id, slurm_strerror(errno), text);
}

/* Slurm's own begin time for the requeued job (cred_expire + 1 s from
 * the requeue): never set an earlier one, the new launch credential must
 * be newer than the revoked one. */
static time_t _slurm_begin_time(void)
{
	job_info_msg_t *msg;
	slurm_job_info_t *j = _load_job(&msg);
	time_t t = j ? j->start_time : 0;

	if (msg)
		slurm_free_job_info_msg(msg);
	return t;
}

/* Push the next attempt's begin time.  slurm_requeue() leaves the job
 * pending at once, so the update is accepted; retry briefly if not. */
static void _set_begin_time(uint32_t delay)
{
	time_t want = time(NULL) + delay, slurms = _slurm_begin_time();
	job_desc_msg_t upd;
	int i;

	if (slurms >= want)
		return; /* Slurm's own delay is already longer */
	for (i = 0; i < 20; i++) {
		slurm_init_job_desc_msg(&upd);
		upd.job_id = g.job_id;
		upd.begin_time = want;
		if (!slurm_update_job(&upd))
			return;
		if (errno != ESLURM_JOB_NOT_PENDING)
			break;
		usleep(100000);
	}
	slurm_error("resilience: job %u: cannot delay the next attempt by "
		    "%us: %s", g.job_id, delay, slurm_strerror(errno));
}

static void _act(const rs_decision_t *d, rs_outcome_t o)
{
	int rc = 0;

	if (o == RS_OUTCOME_REQUEUED)
		return; /* Slurm did it */
	switch (d->action) {
	case RS_ACTION_REQUEUED:
	case RS_ACTION_CONTINUED:
		rc = slurm_requeue(g.job_id, 0);
		if (!rc && d->delay)
			_set_begin_time(d->delay);
		break;
	case RS_ACTION_HELD:
		rc = slurm_requeue(g.job_id, JOB_REQUEUE_HOLD);
		break;
	default:
		return;
	}
	if (rc)
		slurm_error("resilience: job %u: requeue failed: %s", g.job_id,
			    slurm_strerror(errno));
}

/* One status line of the saver, for the slurmd log: checkpoints only. */
static void _log_status_line(const char *line)
{
	rs_supervise_status_t st;
	char copied[32];

	if (rs_supervise_status_parse(line, &st, NULL) ||
	    st.event != RS_SUPERVISE_ST_SAVE)
		return;
	rs_supervise_format_bytes(st.copied, copied, sizeof(copied));
	if (st.ok && st.gen < 0)
		slurm_info("resilience: job %u: checkpoint part %u/%u (%s) saved, "
			   "generation pending the other nodes: %llu files, %s "
			   "copied, %.2f s", g.job_id, st.part + 1, st.nparts,
			   rs_supervise_reason_name(st.reason),
			   (unsigned long long)st.files, copied, st.seconds);
	else if (st.ok)
		slurm_info("resilience: job %u: checkpoint gen-%06ld (%s, part "
			   "%u/%u%s) saved: %llu files, %s copied, %.2f s",
			   g.job_id, st.gen, rs_supervise_reason_name(st.reason),
			   st.part + 1, st.nparts,
			   st.published ? ", published" : "",
			   (unsigned long long)st.files, copied, st.seconds);
	else
		slurm_error("resilience: job %u: checkpoint (%s) failed: %s",
			    g.job_id, rs_supervise_reason_name(st.reason),
			    st.error);
}

/* The slurmd log gets one line per checkpoint the supervisor took (the
 * job's stderr already has it), from the status pipe: whatever the saver
 * wrote is in it once its task has ended (non-blocking: never waits).
 * Local task 0 only: it is the saver. */
static void _log_supervisor(spank_t sp)
{
	char buf[2 * RS_SUPERVISE_STATUS_MAX];
	size_t n = 0;
	int local = -1;

	spank_get_item(sp, S_TASK_ID, &local);
	if (local != 0 || g.st_pipe[0] < 0)
		return;
	for (;;) {
		ssize_t r = read(g.st_pipe[0], buf + n, sizeof(buf) - 1 - n);
		char *line = buf, *nl;

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
		buf[n] = '\0';
		while ((nl = strchr(line, '\n'))) {
			*nl = '\0';
			_log_status_line(line);
			line = nl + 1;
		}
		n -= (size_t)(line - buf);
		memmove(buf, line, n);
		if (n == sizeof(buf) - 1)
			n = 0; /* no line is that long: drop the garbage */
	}
	close(g.st_pipe[0]);
	g.st_pipe[0] = -1;
}

/*
 * slurmstepd, as root, when a task ends.  For the batch script: classify
 * how the attempt ended, decide (requeue policy), record it in the ledger
 * as the user, tell the person in AdminComment, and act.
 */
RS_EXPORT int slurm_spank_task_exit(spank_t sp, int ac, char **av)
{
	rs_attempt_end_t end = { 0, 0, 0, 0, 0 };
	rs_decide_in_t in;
	rs_decision_t d;
	rs_ledger_end_t fin;
	rs_event_t ev;
	struct ledger_op op = { 1, NULL, &fin };
	char line[256];
	rs_outcome_t o;
	rs_err_t err;
	int status = 0, exit_code, sig, requeue_allowed = 1, batch = 1;
	unsigned allowed;

	(void)ac;
	(void)av;
	if (!g.active || g.failed)
		return 0;
	if (g.ckpt[0])
		_log_supervisor(sp);
	if (g.step_id != RS_BATCH_STEP)
		return 0;
	spank_get_item(sp, S_TASK_EXIT_STATUS, &status);
	end.wait_status = status;
	rs_event_init(&ev);
	if (_job_facts(&end, &requeue_allowed, &batch, g.metrics_ok ? &ev : NULL))
		slurm_error("resilience: job %u: cannot load job state: %s",
			    g.job_id, slurm_strerror(errno));
	o = rs_requeue_classify(&end, &exit_code, &sig);

	memset(&in, 0, sizeof(in));
	in.spec = &g.spec;
	in.max_retries = g.pol.max_retries;
	in.max_requeues = g.pol.max_requeues;
	in.max_backoff = g.pol.max_backoff;
	in.outcome = o;
	in.exit_code = exit_code;
	in.retries_used = _retries_used();
	in.requeues = g.f.restart_count;
	in.requeue_allowed = requeue_allowed;
	in.batch = batch;
	/* Checkpoints taken during this attempt: re-read, the supervisor
	 * saved them after the attempt began. */
	if (g.ledger_dir[0]) {
		struct ledger_op rd = { 2, NULL, NULL };

		if (_ledger_update(&rd, &err) == 0)
			in.warned_ckpt = g.sum.checkpoints > 0;
	}
	rs_requeue_decide(&in, &d);

	fin.end = time(NULL);
	fin.outcome = o;
	fin.exit_code = exit_code;
	fin.sig = sig;
	fin.decision = &d;
	fin.checkpoints = g.sum.all_checkpoints;
	if (g.ledger_dir[0] && _ledger_update(&op, &err))
		slurm_error("resilience: job %u: cannot record attempt %u in "
			    "%s: %s", g.job_id, g.f.restart_count + 1,
			    g.ledger_dir, err.msg);

	allowed = _retry_budget() + 1 +
		  (g.have_sum ? g.sum.continuations : 0) +
		  (d.action == RS_ACTION_CONTINUED);
	if (allowed < g.f.restart_count + 1)
		allowed = g.f.restart_count + 1;
	rs_requeue_summary(g.f.restart_count + 1, allowed, o, exit_code, sig,
			   &d, line, sizeof(line));
	slurm_info("%s (%s)", line, d.why);
	/* Requeue first: a job that hit its time limit is already "finished"
	 * for slurmctld and takes no update until it is pending again.
	 * Then a person reads why in scontrol/sacct; a completed or
	 * cancelled job needs no explanation. */
	_act(&d, o);
	if (d.action != RS_ACTION_COMPLETED && d.action != RS_ACTION_ENDED)
		_set_admin_comment(line);
	if (g.metrics_ok && ev.job_id)
		_submit_metrics(&ev, o, exit_code, sig, &d, fin.end);
	rs_event_free(&ev);
	return 0;
}
