/*
 * plugin_poller.c - the attempt's end time for the supervisors, and the
 * poller that keeps it current when `scontrol update TimeLimit=...` moves
 * it (see plugin_job.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "plugin_job.h"
#include "privsep.h"

void rs_poller_write_end(const rs_job_t *j, time_t end)
{
	char tmp[PATH_MAX + 16];
	int fd;

	if (!j->endfile[0])
		return;
	snprintf(tmp, sizeof(tmp), "%s.%ld", j->endfile, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0)
		return;
	dprintf(fd, "%ld\n", (long)end);
	close(fd);
	if (rename(tmp, j->endfile) < 0)
		unlink(tmp);
}

/* Seconds since the end-time file was last written, or -1. */
static long _end_file_age(const rs_job_t *j)
{
	struct stat st;

	if (stat(j->endfile, &st) < 0)
		return -1;
	return (long)difftime(time(NULL), st.st_mtime);
}

/*
 * A small detached process (as the user, double-forked so slurmstepd
 * never waits for it) asks slurmctld every RS_END_POLL_SECONDS (30 s; the
 * variable is read from slurmd's environment, for tests) and rewrites the
 * end-time file, which the supervisors re-read.  One per step that saves
 * with a lead, living as long as that step: it holds the read end of a
 * pipe whose write end only slurmstepd keeps (close-on-exec), and leaves
 * when that end closes, or when the attempt is over.  A step that read
 * the node's kept facts has its poller ask at once unless the end-time
 * file was written within the period (every poll rewrites it).
 */
void rs_poller_spawn(const rs_job_t *j)
{
	const char *e = getenv("RS_END_POLL_SECONDS");
	unsigned every = e && atoi(e) > 0 ? (unsigned)atoi(e) : 30;
	uint32_t restarts = j->f.restart_count;
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
	if (rs_privsep_become(j->uid, j->gid))
		_exit(0);
	if (j->facts_fresh) {
		now = 0;
	} else {
		long age = _end_file_age(j);

		now = age < 0 || age >= (long)every;
	}
	for (;;) {
		struct pollfd pfd = { life[0], POLLIN, 0 };
		job_info_msg_t *msg;
		slurm_job_info_t *r;
		int over = 1;

		if (!now) {
			int n = poll(&pfd, 1, (int)every * 1000);

			if (n > 0 || (n < 0 && errno != EINTR))
				_exit(0); /* the step is over */
		}
		now = 0;
		if ((r = rs_ctld_load(j->job_id, &msg))) {
			over = (r->job_state & JOB_STATE_BASE) != JOB_RUNNING ||
			       r->restart_cnt != restarts;
			if (!over && r->end_time)
				rs_poller_write_end(j, r->end_time);
		}
		if (msg)
			slurm_free_job_info_msg(msg);
		if (over)
			_exit(0);
	}
}
