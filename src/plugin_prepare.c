/*
 * plugin_prepare.c - the job's paths and folders on a node (see
 * plugin_job.h): expansion of the SPEC's patterns, the folders root makes
 * for the user (the private folder in RUNDIR) and checks (state_dir), and
 * what the user's own bounded child does before the tasks start.
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pattern.h"
#include "plugin_job.h"
#include "privsep.h"
#include "rundir.h"
#include "safedir.h"


/* An expanded path ($VARIABLEs are the job's): absolute, no "." or "..". */
static int _check_expanded(const char *key, const char *path, rs_err_t *err)
{
	if (path[0] != '/')
		return rs_err_set(err, EINVAL, "%s=%s is not an absolute path "
				  "once expanded: give an absolute path", key,
				  path);
	return rs_spec_check_path(key, path, err);
}

/* $NAME in ckpt=/scratch=: the job's own environment. */
static int _job_env(void *arg, const char *name, char *buf, size_t len)
{
	return spank_getenv((spank_t)arg, name, buf, (int)len) ==
	       ESPANK_SUCCESS ? 0 : -ENOENT;
}

int rs_prepare_paths(rs_job_t *j, spank_t sp, rs_err_t *err)
{
	char job[32], arr_job[32], arr_task[32], node[256], name[256];
	char tmpdir[PATH_MAX];
	uint32_t aj = 0, at = 0;
	struct passwd *pw;
	rs_pattern_ctx_t ctx;
	int rc;

	spank_get_item(sp, S_JOB_ARRAY_ID, &aj);
	spank_get_item(sp, S_JOB_ARRAY_TASK_ID, &at);
	snprintf(job, sizeof(job), "%u", j->job_id);
	snprintf(arr_job, sizeof(arr_job), "%u", aj ? aj : j->job_id);
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
	pw = strstr(j->spec.ckpt, "%u") || strstr(j->spec.scratch, "%u") ?
	     getpwuid(j->uid) : NULL;
	ctx.job_id = job;
	ctx.array_job_id = arr_job;
	ctx.array_task_id = arr_task;
	ctx.user = pw ? pw->pw_name : NULL;
	ctx.job_name = name;
	ctx.node = node;
	ctx.env = _job_env;
	ctx.env_arg = sp;

	j->ckpt[0] = j->scratch[0] = '\0';
	if (j->spec.ckpt[0]) {
		rc = rs_pattern_expand(j->spec.ckpt, &ctx, j->ckpt,
				       sizeof(j->ckpt), err);
		if (rc || (rc = _check_expanded("ckpt", j->ckpt, err)))
			return rc;
	}
	if (j->spec.scratch[0]) {
		rc = rs_pattern_expand(j->spec.scratch, &ctx, j->scratch,
				       sizeof(j->scratch), err);
		if (rc)
			return rc;
		return _check_expanded("scratch", j->scratch, err);
	}
	/* No scratch=: a folder of this job's own in TMPDIR (or /tmp), never
	 * TMPDIR itself, which other users' files may share.  A squatted
	 * one is refused when it is opened (rs_prepare_user). */
	if (spank_getenv(sp, "TMPDIR", tmpdir, sizeof(tmpdir)) !=
	    ESPANK_SUCCESS || tmpdir[0] != '/')
		snprintf(tmpdir, sizeof(tmpdir), "/tmp");
	if (snprintf(j->scratch, sizeof(j->scratch), "%s/resilience-%s-%u-%s",
		     tmpdir, rs_rundir_token(j->f.cluster), j->job_id,
		     rs_rundir_token(node)) >=
	    (int)sizeof(j->scratch))
		return rs_err_set(err, ENAMETOOLONG, "scratch in TMPDIR=%s: path "
				  "too long; give scratch=", tmpdir);
	return 0;
}

int rs_prepare_root(rs_job_t *j, rs_err_t *err)
{
	int rc, fd;

	if (j->ckpt[0]) {
		rc = rs_rundir_user(RS_RUNDIR, j->uid, j->gid, j->privdir,
				    sizeof(j->privdir), err);
		if (rc)
			return rc;
		const char *node = getenv("SLURMD_NODENAME");

		if (rs_rundir_job_files(RS_RUNDIR, j->uid, j->f.cluster,
					j->job_id, node ? node : "", j->ready, j->endfile,
					sizeof(j->ready)))
			return rs_err_set(err, ENAMETOOLONG, "%s: path too long",
					  RS_RUNDIR);
		snprintf(j->ledger_dir, sizeof(j->ledger_dir), "%s", j->ckpt);
		return 0;
	}
	if (!j->pol.state_dir[0])
		return 0;
	/* state_dir is root's: every folder on its way root's and writable
	 * by nobody else, no symlink (a user must not be able to steer
	 * root's writes).  Unsafe: no history, the job still runs. */
	fd = rs_safedir_open(j->pol.state_dir, 0, RS_SAFEDIR_STRICT |
			     RS_SAFEDIR_CREATE, "state_dir", err);
	if (fd < 0) {
		slurm_error("resilience: job %u: state_dir is unsafe, no attempt "
			    "history is kept (tell your administrator): %s",
			    j->job_id, err->msg);
		return 0;
	}
	/* Users read their own history (`slurm-resilience status JOBID`). */
	if (fchmod(fd, 0755) < 0)
		rs_err_set(err, errno, "chmod 0755 %s: %s", j->pol.state_dir,
			   strerror(errno));
	close(fd);
	/* One folder per cluster and job: a new job never reads another's
	 * (job ids restart after a state reset, wrap at MaxJobId, and two
	 * clusters may share state_dir); attempt 1 starts a new history. */
	if (snprintf(j->ledger_dir, sizeof(j->ledger_dir), "%s/%s.%u",
		     j->pol.state_dir, rs_rundir_token(j->f.cluster), j->job_id) >=
	    (int)sizeof(j->ledger_dir))
		j->ledger_dir[0] = '\0';
	j->ledger_root = 1;
	return 0;
}

/* In the privsep child, as the user: everything on user paths before the
 * tasks start. */
static int _user_child(void *arg, int out_fd, rs_err_t *err)
{
	rs_job_t *j = arg;
	int rc, fd;

	(void)out_fd;
	/* ckpt_roots again, after expansion, with symlinks resolved. */
	rc = rs_policy_check_ckpt_path(&j->pol, j->ckpt, err);
	if (rc)
		return rc;
	/* The application finds its scratch folder (the user's own, 0700 if
	 * new) on every node, restored or empty; a folder that is someone
	 * else's, a symlink, or writable by others is refused. */
	fd = rs_safedir_open(j->scratch, j->uid, RS_SAFEDIR_CREATE, "scratch",
			     err);
	if (fd < 0)
		return fd;
	close(fd);
	/* Only what slurmctld just said: a kept copy may be older than what
	 * the end-time poller has written since. */
	if (j->f.end_time && j->facts_fresh)
		rs_poller_write_end(j, j->f.end_time);
	return 0;
}

int rs_prepare_user(rs_job_t *j, rs_err_t *err)
{
	return rs_privsep_run(j->uid, j->gid, rs_job_file_timeout_ms(j),
			      _user_child, j, NULL, 0, NULL, err);
}
