/*
 * plugin_poller.c - the attempt's end time for the supervisors, and the
 * poller that keeps it current when `scontrol update TimeLimit=...` moves
 * it (see plugin_job.h).
 */
#include <errno.h>
#include <limits.h>
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
#include "rundir.h"

void rs_poller_write_end(const rs_job_t *j, time_t end)
{
	if (j->endfile[0])
		rs_rundir_write_end(j->endfile, end);
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
 *
 * The poller is the CLI (`slurm-resilience poll-end`, src/cli_poll.c), a
 * fresh program: since 23.11 user_init runs under Slurm's auth lock, and
 * a child forked here inherits it held, so a libslurm call in the child
 * aborts (auth_g_create: Resource deadlock avoided).  The child only
 * drops privileges and execs; the environment it passes is SLURM_CONF
 * (slurmd's, so the poller reads the same slurm.conf) and a plain PATH.
 */
void rs_poller_spawn(const rs_job_t *j)
{
	const char *e = getenv("RS_END_POLL_SECONDS"), *conf;
	unsigned every = e && atoi(e) > 0 ? (unsigned)atoi(e) : 30;
	char cli[PATH_MAX], a_job[16], a_rs[16], a_ev[16], a_fd[16];
	char env_conf[PATH_MAX + 16];
	char *argv[16], *envp[3];
	int life[2], now, n = 0, ne = 0;
	pid_t pid;

	rs_job_find_helper("slurm-resilience", RS_BINDIR, cli, sizeof(cli));
	if (!cli[0]) {
		slurm_error("resilience: job %u: slurm-resilience not found "
			    "beside resilience.so nor in %s: the checkpoint "
			    "lead will not follow TimeLimit updates",
			    j->job_id, RS_BINDIR);
		return;
	}
	if (j->facts_fresh) {
		now = 0;
	} else {
		long age = _end_file_age(j);

		now = age < 0 || age >= (long)every;
	}
	if (pipe2(life, O_CLOEXEC) < 0)
		return;
	/* Everything the child needs is prepared here: after fork it only
	 * calls async-signal-safe functions and setgroups/setuid. */
	snprintf(a_job, sizeof(a_job), "%u", j->job_id);
	snprintf(a_rs, sizeof(a_rs), "%u", j->f.restart_count);
	snprintf(a_ev, sizeof(a_ev), "%u", every);
	snprintf(a_fd, sizeof(a_fd), "%d", life[0]);
	argv[n++] = "slurm-resilience";
	argv[n++] = "poll-end";
	argv[n++] = "--job";
	argv[n++] = a_job;
	argv[n++] = "--restart";
	argv[n++] = a_rs;
	argv[n++] = "--every";
	argv[n++] = a_ev;
	argv[n++] = "--end-file";
	argv[n++] = (char *)j->endfile;
	argv[n++] = "--lifeline-fd";
	argv[n++] = a_fd;
	if (now)
		argv[n++] = "--now";
	argv[n] = NULL;
	if ((conf = getenv("SLURM_CONF")) &&
	    snprintf(env_conf, sizeof(env_conf), "SLURM_CONF=%s", conf) <
		    (int)sizeof(env_conf))
		envp[ne++] = env_conf;
	envp[ne++] = "PATH=/usr/bin:/bin";
	envp[ne] = NULL;

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
	if (fcntl(life[0], F_SETFD, 0) < 0 ||
	    rs_privsep_become(j->uid, j->gid))
		_exit(0);
	execve(cli, argv, envp);
	_exit(127);
}
