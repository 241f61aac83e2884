/*
 * plugin_history.c - the attempt history (ledger.h) of a job, read and
 * written from slurmstepd: in the checkpoint folder as the user, or in
 * the site's state_dir as root; always in a bounded child.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "manifest.h"
#include "ckpt.h"
#include "plugin_job.h"
#include "privsep.h"
#include "safedir.h"
#include "text.h"

enum op_mode { OP_BEGIN, OP_END, OP_READ };

struct ledger_op {
	rs_job_t *j;
	enum op_mode mode;
	const char *nodes;
	const rs_ledger_end_t *fin;
};

static int _ledger_cb(json_object *root, void *arg, rs_err_t *err)
{
	struct ledger_op *op = arg;
	rs_job_t *j = op->j;
	unsigned attempt = j->f.restart_count + 1;

	if (op->mode == OP_END)
		return rs_ledger_end(root, j->job_str, attempt, op->fin, err);
	if (op->mode == OP_READ) {
		rs_ledger_summarize(root, j->job_str, attempt, &j->sum);
		return RS_MANIFEST_UNCHANGED;
	}
	if (rs_ledger_begin(root, j->job_str, attempt, op->nodes, j->start,
			    &j->spec, j->pol.max_retries, NULL, err))
		return -EINVAL;
	rs_ledger_summarize(root, j->job_str, attempt, &j->sum);
	return 0;
}

/* As the user, at the attempt's end: the restore claims of this job's
 * attempts so far (`.restored-JOB-aN-nK`, `.restoring-...`); earlier ones
 * are there when an attempt ended without this hook (a node failure). */
static void _drop_restore_claims(const rs_job_t *j)
{
	static const char *const kinds[] = { ".restored-", ".restoring-" };
	char prefix[64];
	struct dirent *e;
	size_t k;
	DIR *d;

	if (!(d = opendir(j->ckpt)))
		return;
	for (k = 0; k < 2; k++) {
		int n = snprintf(prefix, sizeof(prefix), "%s%s-a", kinds[k],
				 j->job_str);

		if (n <= 0 || n >= (int)sizeof(prefix))
			continue;
		rewinddir(d);
		while ((e = readdir(d))) {
			char *end;
			unsigned long a;

			if (strncmp(e->d_name, prefix, (size_t)n))
				continue;
			a = strtoul(e->d_name + n, &end, 10);
			if (end != e->d_name + n && !strncmp(end, "-n", 2) &&
			    a <= j->f.restart_count + 1)
				unlinkat(dirfd(d), e->d_name, 0);
		}
	}
	closedir(d);
}

/* state_dir/<cluster>.<job>, made by root under a state_dir checked on
 * the way (rs_prepare_root did it once; a child checks again). */
static int _root_ledger_dir(const rs_job_t *j, rs_err_t *err)
{
	const char *name = strrchr(j->ledger_dir, '/') + 1;
	struct stat st;
	int fd, rc = 0;

	fd = rs_safedir_open(j->pol.state_dir, 0, RS_SAFEDIR_STRICT,
			     "state_dir", err);
	if (fd < 0)
		return fd;
	if (mkdirat(fd, name, 0755) < 0 && errno != EEXIST)
		rc = rs_err_set(err, errno, "create %s: %s", j->ledger_dir,
				strerror(errno));
	else if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		 !S_ISDIR(st.st_mode) || st.st_uid != 0)
		rc = rs_err_set(err, EPERM, "%s is not a folder of root's",
				j->ledger_dir);
	else if ((st.st_mode & 07777) != 0755)
		fchmodat(fd, name, 0755, 0);
	close(fd);
	return rc;
}

/* In the privsep child: update the ledger, send the summary back. */
static int _ledger_child(void *arg, int out_fd, rs_err_t *err)
{
	struct ledger_op *op = arg;
	rs_job_t *j = op->j;
	int rc;

	if (j->ledger_root && (rc = _root_ledger_dir(j, err)))
		return rc;
	/* The attempt is over on this node: its restore claims go. */
	if (op->mode == OP_END && !j->ledger_root)
		_drop_restore_claims(j);
	rc = rs_manifest_update(j->ledger_dir, _ledger_cb, op, err);
	if (!rc && j->ledger_root) {
		/* The history is the user's to read, like what squeue shows;
		 * only root writes it. */
		char m[PATH_MAX + 32];

		snprintf(m, sizeof(m), "%s/%s", j->ledger_dir, RS_MANIFEST_NAME);
		chmod(m, 0644);
	}
	if (!rc && write(out_fd, &j->sum, sizeof(j->sum)) != sizeof(j->sum))
		rc = rs_err_set(err, EIO, "ledger: short write");
	/* The attempt is over: staging it left (a checkpoint some node never
	 * finished, the parts of tasks that ended early) goes now, after the
	 * summary is sent (this child's time bound covers both). */
	if (!rc && op->mode == OP_END && !j->ledger_root && j->ckpt[0]) {
		unsigned removed = 0;
		rs_err_t e;

		rs_ckpt_drop_attempt(j->ckpt, j->job_str, j->f.restart_count + 1,
				     &removed, &e);
	}
	return rc;
}

/* Read-modify-write the ledger with the right privileges, bounded.  The
 * checkpoint folder is the user's: the work runs as the user.  state_dir
 * is the site's: it runs as root. */
static int _update(rs_job_t *j, struct ledger_op *op, rs_err_t *err)
{
	char buf[sizeof(rs_ledger_sum_t) + 1];
	size_t n = 0;
	int rc;

	if (!j->ledger_dir[0])
		return -ENOENT;
	rc = rs_privsep_run(j->ledger_root ? RS_PRIVSEP_ROOT : j->uid, j->gid,
			    rs_job_file_timeout_ms(j), _ledger_child, op, buf,
			    sizeof(buf), &n, err);
	if (!rc && n == sizeof(j->sum)) {
		/* The child ran as the user, who can ptrace it: what comes
		 * back is checked like any other user byte. */
		rs_ledger_sum_t s;

		memcpy(&s, buf, sizeof(s));
		s.last_reason[sizeof(s.last_reason) - 1] = '\0';
		if (!rs_text_is_printable(s.last_reason))
			s.last_reason[0] = '\0';
		if (!isfinite(s.last_seconds) || s.last_seconds < 0 ||
		    s.last_seconds > 1e9)
			s.last_seconds = 0;
		if (s.last_gen < -1)
			s.last_gen = -1;
		j->sum = s;
		j->have_sum = 1;
	}
	return rc;
}

int rs_history_begin(rs_job_t *j, const char *nodes, rs_err_t *err)
{
	struct ledger_op op = { j, OP_BEGIN, nodes, NULL };

	return _update(j, &op, err);
}

int rs_history_read(rs_job_t *j, rs_err_t *err)
{
	struct ledger_op op = { j, OP_READ, NULL, NULL };

	return _update(j, &op, err);
}

int rs_history_end(rs_job_t *j, const rs_ledger_end_t *fin, rs_err_t *err)
{
	struct ledger_op op = { j, OP_END, NULL, fin };

	return _update(j, &op, err);
}

unsigned rs_history_retry_budget(const rs_job_t *j)
{
	unsigned r = j->spec.retries;

	if (j->pol.max_retries >= 0 && r > j->pol.max_retries)
		r = (unsigned)j->pol.max_retries;
	return r;
}

unsigned rs_history_retries_used(const rs_job_t *j)
{
	unsigned used;

	if (!j->have_sum)
		return j->f.restart_count;
	used = j->sum.retries_used;
	/* A ledger in the user's folder can be edited: never count fewer
	 * retries than AdminComment, which only root and operators set. */
	return used > j->trusted_retries ? used : j->trusted_retries;
}
