/*
 * cli_poll.c - `slurm-resilience poll-end`, the end-time poller that
 * resilience.so starts for a step that saves with a lead
 * (src/plugin_poller.c).  Not for people: it is a separate program
 * because a child forked inside slurmstepd's user_init must not call
 * libslurm (since 23.11 it would inherit Slurm's auth lock held and
 * abort), while a freshly exec'd program initialises libslurm itself.
 *
 *   slurm-resilience poll-end --job ID --restart N --every S
 *                             --end-file PATH --lifeline-fd FD [--now]
 *
 * Runs as the job's user, detached, stdio on /dev/null.  Every S seconds
 * (at once with --now) it asks slurmctld for the job and rewrites PATH
 * with its end time; it leaves when FD (the read end of a pipe whose
 * write end only slurmstepd holds) reports end of file, or when the
 * attempt is over (the job is no longer running, or its restart count is
 * no longer N).  Exit status 0 when it left for one of those reasons,
 * 2 on a usage error.
 *
 * PATH.poke: a FIFO it makes (mode 0600, the user's own run folder).  A
 * byte written there (the supervisor does, on SIGTERM: Slurm's preemption
 * with GraceTime sends TERM and moves the end time) makes it ask at once,
 * at most once a second, instead of at the next period.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <slurm/slurm.h>

#include "cli.h"
#include "rundir.h"

/* A decimal in [min, max] or -1. */
static long _num(const char *s, long min, long max)
{
	char *end = NULL;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || !*s || *end || v < min || v > max)
		return -1;
	return v;
}

int rs_cli_poll_end(int argc, char **argv)
{
	long job = -1, restart = -1, every = -1, fd = -1;
	const char *endfile = NULL;
	char poke[PATH_MAX];
	struct stat st, pst;
	time_t last = 0;
	int now = 0, i, pk = -1;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--now")) {
			now = 1;
			continue;
		}
		if (!v)
			goto usage;
		if (!strcmp(a, "--job"))
			job = _num(v, 1, UINT32_MAX);
		else if (!strcmp(a, "--restart"))
			restart = _num(v, 0, UINT32_MAX);
		else if (!strcmp(a, "--every"))
			every = _num(v, 1, 86400);
		else if (!strcmp(a, "--lifeline-fd"))
			fd = _num(v, 0, INT_MAX);
		else if (!strcmp(a, "--end-file") && v[0] == '/')
			endfile = v;
		else
			goto usage;
		i++;
	}
	if (job < 0 || restart < 0 || every < 0 || fd < 0 || !endfile ||
	    fcntl((int)fd, F_GETFD) < 0)
		goto usage;
	rs_cli_slurm_init();
	if (snprintf(poke, sizeof(poke), "%s.poke", endfile) < (int)sizeof(poke)) {
		unlink(poke);
		if (mkfifo(poke, 0600) == 0)
			pk = open(poke, O_RDWR | O_NONBLOCK | O_CLOEXEC);
		if (pk >= 0 && fstat(pk, &pst) < 0) {
			close(pk);
			pk = -1;
		}
	}
	for (;;) {
		struct pollfd pfd[2] = { { (int)fd, POLLIN, 0 }, { pk, POLLIN, 0 } };
		job_info_msg_t *msg = NULL;
		slurm_job_info_t *r;
		int over = 1;

		if (!now) {
			int n = poll(pfd, pk >= 0 ? 2 : 1, (int)every * 1000);

			if ((n > 0 && pfd[0].revents) || (n < 0 && errno != EINTR))
				break; /* the step is over */
			if (n < 0)
				continue;
			if (n > 0) {
				char b[64];
				struct timespec ts;

				while (read(pk, b, sizeof(b)) > 0)
					;
				clock_gettime(CLOCK_MONOTONIC, &ts);
				if (ts.tv_sec < last + 1)
					continue; /* just asked */
			}
		}
		now = 0;
		{
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			last = ts.tv_sec;
		}
		if (slurm_load_job(&msg, (uint32_t)job, SHOW_ALL | SHOW_LOCAL) ==
			    0 && msg && msg->record_count) {
			r = &msg->job_array[0];
			over = (r->job_state & JOB_STATE_BASE) != JOB_RUNNING ||
			       r->restart_cnt != (uint32_t)restart;
			if (!over && r->end_time)
				rs_rundir_write_end(endfile, r->end_time);
		}
		if (msg)
			slurm_free_job_info_msg(msg);
		if (over)
			break;
	}
	/* Our FIFO only: a newer poller of the same file may have made its own. */
	if (pk >= 0 && lstat(poke, &st) == 0 && st.st_ino == pst.st_ino &&
	    st.st_dev == pst.st_dev)
		unlink(poke);
	return 0;
usage:
	fprintf(stderr, "usage: slurm-resilience poll-end --job ID --restart N "
			"--every S --end-file PATH --lifeline-fd FD [--now]\n");
	return 2;
}
