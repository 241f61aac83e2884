/*
 * plugin_status.c - the saver supervisor's status lines, read by
 * slurmstepd (root) when the task ends, for the slurmd log.
 *
 * The job's own processes can write to the pipe as well (the supervisor
 * runs as the user; /proc/PID/fd is theirs), keep writing after the task
 * ended, and enlarge the pipe: so the read is bounded in bytes and
 * lines, never waits, and every text that reaches the log is escaped.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "plugin_job.h"
#include "supervise.h"
#include "text.h"

/* One status line: checkpoints only.  Returns 1 if it was logged. */
static int _log_line(const rs_job_t *j, const char *line)
{
	rs_supervise_status_t st;
	char copied[32], why[512];

	if (rs_supervise_status_parse(line, &st, NULL) ||
	    st.event != RS_SUPERVISE_ST_SAVE)
		return 0;
	rs_supervise_format_bytes(st.copied, copied, sizeof(copied));
	if (st.ok && st.gen < 0)
		slurm_info("resilience: job %u: checkpoint part %u/%u (%s) saved, "
			   "generation pending the other nodes: %llu files, %s "
			   "copied, %.2f s", j->job_id, st.part + 1, st.nparts,
			   rs_supervise_reason_name(st.reason),
			   (unsigned long long)st.files, copied, st.seconds);
	else if (st.ok)
		slurm_info("resilience: job %u: checkpoint gen-%06ld (%s, part "
			   "%u/%u%s) saved: %llu files, %s copied, %.2f s",
			   j->job_id, st.gen, rs_supervise_reason_name(st.reason),
			   st.part + 1, st.nparts,
			   st.published ? ", published" : "",
			   (unsigned long long)st.files, copied, st.seconds);
	else
		slurm_error("resilience: job %u: checkpoint (%s) failed: %s",
			    j->job_id, rs_supervise_reason_name(st.reason),
			    rs_text_escape_str(why, sizeof(why), st.error));
	return 1;
}

void rs_status_drain(rs_job_t *j)
{
	char buf[2 * RS_SUPERVISE_STATUS_MAX];
	size_t n = 0, total = 0;
	int lines = 0;

	if (j->st_pipe[0] < 0)
		return;
	while (total < RS_STATUS_MAX_BYTES && lines < RS_STATUS_MAX_LINES) {
		size_t want = sizeof(buf) - 1 - n;
		ssize_t r;
		char *line = buf, *nl;

		if (want > RS_STATUS_MAX_BYTES - total)
			want = RS_STATUS_MAX_BYTES - total;
		r = read(j->st_pipe[0], buf + n, want);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		total += (size_t)r;
		n += (size_t)r;
		buf[n] = '\0';
		while (lines < RS_STATUS_MAX_LINES && (nl = strchr(line, '\n'))) {
			*nl = '\0';
			lines += _log_line(j, line);
			line = nl + 1;
		}
		n -= (size_t)(line - buf);
		memmove(buf, line, n);
		if (n == sizeof(buf) - 1)
			n = 0; /* no line is that long: drop the garbage */
	}
	if (total >= RS_STATUS_MAX_BYTES || lines >= RS_STATUS_MAX_LINES)
		slurm_info("resilience: job %u: more status lines than a task "
			   "writes (%zu bytes, %d checkpoint lines): the rest is "
			   "not read", j->job_id, total, lines);
	/* Closing the read end: a writer still at it gets EPIPE. */
	close(j->st_pipe[0]);
	j->st_pipe[0] = -1;
}
