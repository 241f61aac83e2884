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
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <slurm/slurm.h>
#include <slurm/slurm_errno.h>
#include <slurm/spank.h>

#include "err.h"
#include "ledger.h"
#include "manifest.h"
#include "path.h"
#include "pattern.h"
#include "policy.h"
#include "privsep.h"
#include "requeue.h"
#include "spec.h"

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
	uint32_t job_id, step_id, restart_count;
	uid_t uid;
	gid_t gid;
	char job_str[32];           /* job id as the ledger keys it */
	rs_ledger_sum_t sum;        /* what the ledger said at attempt start */
	int have_sum;
	time_t start;
} g;

/* Bound on any file work done on behalf of slurmstepd. */
#define RS_FILE_TIMEOUT_MS 20000

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
	if (rs_policy_check_spec(&g.pol, &g.spec, &err)) {
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
	pw = getpwuid(uid);
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
RS_EXPORT int slurm_spank_init_post_opt(spank_t sp, int ac, char **av)
{
	rs_err_t err;

	(void)ac;
	(void)av;
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
	/* Slurm 22.05 never fills S_SLURM_RESTART_COUNT for the batch step
	 * (only the task environment gets SLURM_RESTART_COUNT, at exec):
	 * ask slurmctld, once per attempt. */
	if (g.step_id == RS_BATCH_STEP) {
		job_info_msg_t *msg = NULL;

		if (!slurm_load_job(&msg, g.job_id, SHOW_ALL) && msg &&
		    msg->record_count)
			g.restart_count = msg->job_array[0].restart_cnt;
		else
			slurm_error("resilience: job %u: cannot load the job's "
				    "restart count: %s", g.job_id,
				    slurm_strerror(slurm_get_errno()));
		if (msg)
			slurm_free_job_info_msg(msg);
	} else if (spank_get_item(sp, S_SLURM_RESTART_COUNT,
				  &g.restart_count) != ESPANK_SUCCESS) {
		g.restart_count = 0;
	}
	spank_get_item(sp, S_JOB_UID, &g.uid);
	spank_get_item(sp, S_JOB_GID, &g.gid);
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
	unsigned attempt = g.restart_count + 1;

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

/* In the privsep child: update the ledger, send the summary back. */
static int _ledger_child(void *arg, int out_fd, rs_err_t *err)
{
	int rc = rs_manifest_update(g.ledger_dir, _ledger_cb, arg, err);

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
	return g.have_sum ? g.sum.retries_used : g.restart_count;
}

/*
 * slurmstepd, as the job's user (effective uid), before tasks fork.
 * Re-checks the expanded checkpoint folder against ckpt_roots with the
 * user's privileges (symlinks resolved), and exports the job's variables.
 */
RS_EXPORT int slurm_spank_user_init(spank_t sp, int ac, char **av)
{
	char norm[RS_SPEC_MAX + 1], attempt[16];
	rs_err_t err;

	(void)ac;
	(void)av;
	if (!g.active || g.failed)
		return 0;
	if (g.ckpt[0] && rs_policy_check_ckpt_path(&g.pol, g.ckpt, &err)) {
		g.failed = 1;
		g.fail_err = err;
		slurm_error("resilience: job %u: %s", g.job_id, err.msg);
		return 0;
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
	snprintf(attempt, sizeof(attempt), "%u", g.restart_count + 1);
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
	}
	return 0;
}

/*
 * In each task process, as the job's user, just before exec.  The only
 * place a job that asked for resilience and cannot get it is failed: with
 * the reason on the task's stderr, without touching the node's state.
 * Slurm ignores errors of `optional` plugins, so the task leaves itself,
 * exactly as slurmstepd would for a `required` one (_exit(1) before exec).
 */
RS_EXPORT int slurm_spank_task_init(spank_t sp, int ac, char **av)
{
	(void)sp;
	(void)ac;
	(void)av;
	if (!g.active || !g.failed)
		return 0;
	fprintf(stderr, "resilience: error: %s\n", g.fail_err.msg);
	fflush(stderr);
	_exit(1);
}

/* ------------------------------------------------ end of an attempt --- */

/* What Slurm says about the job now (slurmctld RPC, bounded by Slurm's
 * MessageTimeout). */
static int _job_facts(rs_attempt_end_t *end, int *requeue_allowed,
		      int *batch)
{
	job_info_msg_t *msg = NULL;
	uint32_t st;

	if (slurm_load_job(&msg, g.job_id, SHOW_ALL) || !msg ||
	    !msg->record_count) {
		if (msg)
			slurm_free_job_info_msg(msg);
		return -1;
	}
	st = msg->job_array[0].job_state;
	end->timed_out = (st & JOB_STATE_BASE) == JOB_TIMEOUT;
	end->preempted = (st & JOB_STATE_BASE) == JOB_PREEMPTED;
	end->cancelled = (st & JOB_STATE_BASE) == JOB_CANCELLED;
	*requeue_allowed = msg->job_array[0].requeue != 0;
	*batch = msg->job_array[0].batch_flag != 0;
	slurm_free_job_info_msg(msg);
	return 0;
}

static void _set_admin_comment(const char *text)
{
	job_desc_msg_t upd;

	slurm_init_job_desc_msg(&upd);
	upd.job_id = g.job_id;
	upd.admin_comment = (char *)text;
	if (slurm_update_job(&upd))
		slurm_error("resilience: job %u: cannot set AdminComment: %s",
			    g.job_id, slurm_strerror(slurm_get_errno()));
}

/* Slurm's own begin time for the requeued job (cred_expire + 1 s from
 * the requeue): never set an earlier one, the new launch credential must
 * be newer than the revoked one. */
static time_t _slurm_begin_time(void)
{
	job_info_msg_t *msg = NULL;
	time_t t = 0;

	if (!slurm_load_job(&msg, g.job_id, SHOW_ALL) && msg &&
	    msg->record_count)
		t = msg->job_array[0].start_time;
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
		if (slurm_get_errno() != ESLURM_JOB_NOT_PENDING)
			break;
		usleep(100000);
	}
	slurm_error("resilience: job %u: cannot delay the next attempt by "
		    "%us: %s", g.job_id, delay, slurm_strerror(slurm_get_errno()));
}

static void _act(const rs_decision_t *d)
{
	int rc = 0;

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
			    slurm_strerror(slurm_get_errno()));
}

/*
 * slurmstepd, as root, when a task ends.  For the batch script: classify
 * how the attempt ended, decide (requeue policy), record it in the ledger
 * as the user, tell the person in AdminComment, and act.
 */
RS_EXPORT int slurm_spank_task_exit(spank_t sp, int ac, char **av)
{
	rs_attempt_end_t end = { 0, 0, 0, 0 };
	rs_decide_in_t in;
	rs_decision_t d;
	rs_ledger_end_t fin;
	struct ledger_op op = { 1, NULL, &fin };
	char line[256];
	rs_outcome_t o;
	rs_err_t err;
	int status = 0, exit_code, sig, requeue_allowed = 1, batch = 1;

	(void)ac;
	(void)av;
	if (!g.active || g.failed || g.step_id != RS_BATCH_STEP)
		return 0;
	spank_get_item(sp, S_TASK_EXIT_STATUS, &status);
	end.wait_status = status;
	if (_job_facts(&end, &requeue_allowed, &batch))
		slurm_error("resilience: job %u: cannot load job state: %s",
			    g.job_id, slurm_strerror(slurm_get_errno()));
	o = rs_requeue_classify(&end, &exit_code, &sig);

	memset(&in, 0, sizeof(in));
	in.spec = &g.spec;
	in.max_retries = g.pol.max_retries;
	in.max_requeues = g.pol.max_requeues;
	in.max_backoff = g.pol.max_backoff;
	in.outcome = o;
	in.exit_code = exit_code;
	in.retries_used = _retries_used();
	in.requeues = g.restart_count;
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
			    "%s: %s", g.job_id, g.restart_count + 1,
			    g.ledger_dir, err.msg);

	rs_requeue_summary(g.restart_count + 1,
			   _retry_budget() + 1 + (g.have_sum ? g.sum.continuations : 0) +
			   (d.action == RS_ACTION_CONTINUED),
			   o, exit_code, sig, &d, line, sizeof(line));
	slurm_info("%s (%s)", line, d.why);
	if (d.action != RS_ACTION_COMPLETED)
		_set_admin_comment(line);
	_act(&d);
	return 0;
}
