/*
 * plugin_restore.c - this node's part of the latest generation, restored
 * into scratch before the tasks start, once per attempt and node.
 *
 * Claims, in the checkpoint folder every node sees (the user's):
 *   .restoring-JOB-aN-nK  made (O_EXCL) before the restore starts
 *   .restored-JOB-aN-nK   the same file, renamed once the restore is done
 * A later step of the attempt on the node finds `.restored-` and only
 * says where scratch came from.  A restore killed by its time bound
 * leaves `.restoring-`: a step that finds it older than the bound takes
 * the restore over; a younger one means a restore is running elsewhere,
 * and the step says nothing was restored rather than claim it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "plugin_job.h"
#include "privsep.h"
#include "text.h"

struct restore_op {
	rs_job_t *j;
	unsigned part;
	char claim[PATH_MAX + 96];  /* .restoring-... */
	char done[PATH_MAX + 96];   /* .restored-... */
};

/* The child writes one line back: "gen PATH" (restored now), "skip PATH"
 * (restored earlier in this attempt), "busy" (another step is at it),
 * or "none" (nothing to restore for this node). */
static int _restore_child(void *arg, int out_fd, rs_err_t *err)
{
	struct restore_op *op = arg;
	rs_job_t *j = op->j;
	rs_ckpt_stats_t st;
	struct stat cs;
	char path[PATH_MAX];
	long gen = -1;
	int fd, rc;

	if (rs_ckpt_latest(j->ckpt, path, sizeof(path), &gen, NULL)) {
		dprintf(out_fd, "none");
		return 0;
	}
	if (lstat(op->done, &cs) == 0 && S_ISREG(cs.st_mode)) {
		dprintf(out_fd, "skip %s", path);
		return 0;
	}
	fd = open(op->claim, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		  O_CLOEXEC, 0600);
	if (fd < 0 && errno == EEXIST && lstat(op->claim, &cs) == 0 &&
	    S_ISREG(cs.st_mode) &&
	    cs.st_mtime + rs_job_restore_timeout_ms(j) / 1000 + 5 < time(NULL)) {
		/* Left by a restore that was killed: take it over. */
		unlink(op->claim);
		fd = open(op->claim, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
			  O_CLOEXEC, 0600);
	}
	if (fd < 0 && errno == EEXIST) {
		dprintf(out_fd, "busy");
		return 0;
	}
	if (fd < 0)
		return rs_err_set(err, errno, "claim %s: %s", op->claim,
				  strerror(errno));
	close(fd);
	rc = rs_ckpt_restore(j->ckpt, j->scratch, gen, op->part, &st, err);
	if (rc == -ENOENT) {
		/* This node had no part in that generation: nothing to do. */
		unlink(op->claim);
		dprintf(out_fd, "none");
		return 0;
	}
	if (rc) {
		unlink(op->claim);
		return rc;
	}
	if (rename(op->claim, op->done) < 0)
		return rs_err_set(err, errno, "claim %s: %s", op->done,
				  strerror(errno));
	dprintf(out_fd, "gen %s", path);
	return 0;
}

void rs_restore_node(rs_job_t *j, spank_t sp)
{
	struct restore_op op;
	uint32_t nodeid = 0;
	char out[PATH_MAX + 32], safe[2 * PATH_MAX];
	const char *gen;
	size_t n = 0;
	rs_err_t err;

	spank_get_item(sp, S_JOB_NODEID, &nodeid);
	op.j = j;
	op.part = nodeid;
	snprintf(op.claim, sizeof(op.claim), "%s/.restoring-%s-a%u-n%u",
		 j->ckpt, j->job_str, j->f.restart_count + 1, nodeid);
	snprintf(op.done, sizeof(op.done), "%s/.restored-%s-a%u-n%u",
		 j->ckpt, j->job_str, j->f.restart_count + 1, nodeid);
	if (rs_privsep_run(j->uid, j->gid, rs_job_restore_timeout_ms(j),
			   _restore_child, &op, out, sizeof(out), &n, &err)) {
		slurm_error("resilience: job %u: restore from %s into %s "
			    "failed: %s", j->job_id, j->ckpt, j->scratch,
			    rs_text_escape_str(safe, sizeof(safe), err.msg));
		fprintf(stderr, "resilience: warning: restore from %s failed, "
			"the job starts without its checkpoint: %s\n", j->ckpt,
			rs_text_escape_str(safe, sizeof(safe), err.msg));
		return;
	}
	if (!strcmp(out, "busy")) {
		slurm_info("resilience: job %u: a restore into %s is still "
			   "running in another step; this one starts without "
			   "RESILIENCE_RESTORED_FROM", j->job_id, j->scratch);
		return;
	}
	if (strncmp(out, "gen ", 4) && strncmp(out, "skip ", 5))
		return;
	gen = out + (out[0] == 'g' ? 4 : 5);
	spank_setenv(sp, "RESILIENCE_RESTORED_FROM", gen, 1);
	j->restored_gen = rs_ckpt_gen_number(strrchr(gen, '/') ?
					     strrchr(gen, '/') + 1 : gen);
	if (out[0] == 'g')
		slurm_info("resilience: job %u: restored %s into %s (node part "
			   "%u)", j->job_id, rs_text_escape_str(safe, sizeof(safe),
								gen),
			   j->scratch, op.part + 1);
}
