/*
 * plugin_launch.c - the supervisor in front of a task (slurmstepd, in the
 * task process, as the user, just before exec).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launch.h"
#include "plugin_job.h"

/* Fill the supervisor's command line for this task. */
static int _argv(rs_job_t *j, spank_t sp, pid_t adopt, char **argv,
		 int *argc, char *buf, size_t len)
{
	uint32_t nodeid = 0, nnodes = 1;
	int local = 0;
	rs_launch_t l;
	const char *node = getenv("SLURMD_NODENAME");

	spank_get_item(sp, S_JOB_NODEID, &nodeid);
	spank_get_item(sp, S_JOB_NNODES, &nnodes);
	spank_get_item(sp, S_TASK_ID, &local);
	memset(&l, 0, sizeof(l));
	l.supervisor = j->supervisor;
	l.spec = &j->spec;
	l.ckpt = j->ckpt;
	l.scratch = j->scratch;
	l.ready = j->ready;
	l.job = j->job_str;
	l.node = node ? node : "unknown";
	l.attempt = j->f.restart_count + 1;
	l.part = nodeid;
	l.nparts = nnodes ? nnodes : 1;
	l.saver = local == 0 && rs_job_step_saves(j);
	l.batch_script = j->step_id == RS_BATCH_STEP;
	/* This is the task process (in both launch modes): its parent is
	 * the slurmstepd, which signals every process of a step but the
	 * batch step's (proctrack).  The supervisor must not pass those on. */
	if (!l.batch_script)
		l.stepd = getppid();
	/* The status pipe goes to the saver only: it is close-on-exec
	 * everywhere else, so the application never holds it. */
	if (l.saver && j->st_pipe[1] > 2 &&
	    fcntl(j->st_pipe[1], F_SETFD, 0) == 0)
		l.status_fd = j->st_pipe[1];
	l.end_time = (double)j->f.end_time;
	l.lead = rs_spec_effective_lead(&j->spec, j->f.time_limit);
	l.end_time_file = j->endfile[0] ? j->endfile : NULL;
	l.adopt = adopt;
	return rs_launch_argv(&l, argv, argc, buf, len);
}

#if HAVE_SPANK_PREPEND_TASK_ARGV
/* Slurm >= 23.11: slurmstepd execs the supervisor, which runs the task. */
void rs_launch_supervisor(rs_job_t *j, spank_t sp)
{
	char *argv[RS_LAUNCH_MAX_ARGS], buf[16384];
	int argc = 0;
	spank_err_t rc;

	if (_argv(j, sp, 0, argv, &argc, buf, sizeof(buf))) {
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
void rs_launch_supervisor(rs_job_t *j, spank_t sp)
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
	if (_argv(j, sp, child, argv, &argc, buf, sizeof(buf)) == 0)
		execv(argv[0], argv);
	fprintf(stderr, "resilience: error: cannot run %s: %s; the job runs "
			"without checkpoints\n", j->supervisor, strerror(errno));
	sigprocmask(SIG_SETMASK, &old, NULL);
	_wait_and_mirror(child);
}
#endif
