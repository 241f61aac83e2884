/*
 * supervisor_main.c - resilience-supervisor: the process between slurmstepd
 * and the job's application.  See docs/supervisor.md.
 *
 *   resilience-supervisor [OPTIONS] -- PROG [ARGS...]   fork, exec PROG
 *   resilience-supervisor [OPTIONS] --pid PID           adopt child PID
 *
 * All signals are blocked from the first instruction and read from a
 * signalfd, so one poll() loop sees signals, child exits and deadlines, and
 * nothing runs in signal-handler context.  Decisions are made by the pure
 * code in supervise.c; this file only carries them out.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "err.h"
#include "supervise.h"

/* How often the ready file is looked for while waiting, and the end-time
 * file re-read (it should live on a node-local file system). */
#define READY_POLL_S     0.1
/* ... and while idle, for an answer to a warning another step's task got
 * (a one-node job's srun step: docs/spec.md). */
#define IDLE_READY_POLL_S 0.5
#define END_FILE_POLL_S  2.0
/* Upper bound on any single sleep, so a clock or logic slip cannot hang. */
#define MAX_SLEEP_S      60.0

/* What the save child sends back through its pipe: one write, below
 * PIPE_BUF, so it arrives whole or not at all. */
struct save_result {
	int rc;
	rs_ckpt_stats_t st;
	char msg[RS_ERR_MAX];
};

static struct {
	rs_supervise_opts_t o;
	rs_supervise_sm_t sm;
	int sfd;              /* signalfd for every signal */
	sigset_t orig_mask;   /* the mask we were started with (PROG gets it) */
	int chld_ignored;     /* SIGCHLD was SIG_IGN at start (PROG gets it) */
	pid_t self, my_pgrp;
	pid_t app;            /* the application */
	int app_done, app_status;
	pid_t save_pid;       /* the save child, or 0 */
	int save_fd;          /* read end of its result pipe, or -1 */
	int save_aborted;     /* killed for running past --save-timeout */
	double save_t0;
	double end_unix;      /* last end time seen (0 = unknown) */
	double next_end_check;
	double fast_until;    /* re-read the end-time file often until then */
	int status_warned;    /* one complaint about the status file is enough */
	double ready_seen;    /* a ready file not newer than this (realtime)
			       * is no new answer: set at start and after
			       * every save */
} S = { .sfd = -1, .save_fd = -1 };

static double _now(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double _mono(void) { return _now(CLOCK_MONOTONIC); }
static double _real(void) { return _now(CLOCK_REALTIME); }

/* One line to stderr, in one write(2) so it does not interleave with the
 * application's output mid-line. */
static void _say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void _say(const char *fmt, ...)
{
	char buf[2048];
	va_list ap;
	int n = snprintf(buf, sizeof(buf), "resilience: ");

	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(STDERR_FILENO, buf, (size_t)n) < 0) {
		/* nowhere left to complain */
	}
}

static void _write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t w = write(fd, buf, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		buf += w;
		len -= (size_t)w;
	}
}

/* ------------------------------------------------------- status file --- */

static void _status_fill(rs_supervise_status_t *st, rs_supervise_status_event_t ev)
{
	memset(st, 0, sizeof(*st));
	st->event = ev;
	st->time = _real();
	st->pid = S.self;
	snprintf(st->job, sizeof(st->job), "%s", S.o.job_id ? S.o.job_id : "");
	snprintf(st->node, sizeof(st->node), "%s", S.o.node ? S.o.node : "");
	st->attempt = S.o.attempt;
	st->part = S.o.part;
	st->nparts = S.o.nparts;
	st->reason = S.sm.reason;
	st->seq = S.sm.seq;
	st->gen = -1;
}

static void _status_append(const rs_supervise_status_t *st)
{
	char line[RS_SUPERVISE_STATUS_MAX];
	int n, fd;

	if (!S.o.status && S.o.status_fd < 0)
		return;
	n = rs_supervise_status_format(st, line, sizeof(line));
	if (n < 0)
		return;
	/* The plugin's pipe (non-blocking, drained by slurmstepd when the
	 * task ends): one write of at most PIPE_BUF bytes stays whole; when
	 * the pipe is full the line is lost for the slurmd log only (the job's
	 * stderr has it), never waited for. */
	if (S.o.status_fd >= 0) {
		ssize_t w = write(S.o.status_fd, line, (size_t)n);

		if (w != n && !S.status_warned++)
			_say("status pipe: %s", w < 0 ? strerror(errno) : "short write");
	}
	if (!S.o.status)
		return;
	fd = open(S.o.status, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		if (!S.status_warned++)
			_say("status file %s: %s", S.o.status, strerror(errno));
		return;
	}
	/* O_APPEND + one write: concurrent supervisors' lines stay whole. */
	if (write(fd, line, (size_t)n) != n && !S.status_warned++)
		_say("status file %s: short write", S.o.status);
	close(fd);
}

/* ----------------------------------------------------------- the save --- */

/* The engine's warnings (a part that stands in for an ended task, files
 * that changed while read, leftovers removed) go to the job's stderr. */
static void _ckpt_warn(void *arg, const char *msg)
{
	(void)arg;
	_say("%s", msg);
}

static void _save_child(int wfd)
{
	struct save_result res;
	rs_ckpt_meta_t meta = {
		.job_id = S.o.job_id,
		.attempt = S.o.attempt,
		.seq = S.sm.seq,
		.node = S.o.node,
		.reason = rs_supervise_reason_name(S.sm.reason),
		.part = S.o.part,
		.nparts = S.o.nparts,
	};
	rs_err_t err;

	/* A save must not outlive its task: Slurm considers the step over. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() != S.self)
		_exit(1);
	close(S.sfd);
	rs_ckpt_set_warn(_ckpt_warn, NULL);
	memset(&res, 0, sizeof(res));
	rs_err_clear(&err);
	res.rc = rs_ckpt_save(S.o.scratch, S.o.ckpt_dir, S.o.keep, &meta, &res.st, &err);
	snprintf(res.msg, sizeof(res.msg), "%s", err.msg);
	_write_all(wfd, (const char *)&res, sizeof(res));
	_exit(0);
}

/* Which of pid's signal masks (/proc/PID/status: SigBlk, SigIgn, SigCgt)
 * have sig: a bitwise OR of MASK_*, 0 if none or unknown. */
#define MASK_BLK 1
#define MASK_IGN 2
#define MASK_CGT 4

static int _sig_masks(pid_t pid, int sig)
{
	static const char *const names[] = { "SigBlk:", "SigIgn:", "SigCgt:" };
	char path[64], line[256];
	unsigned long long mask, bit = 1ULL << (sig - 1);
	int in = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		for (int i = 0; i < 3; i++)
			if (!strncmp(line, names[i], 7) &&
			    sscanf(line + 7, " %llx", &mask) == 1 && (mask & bit))
				in |= 1 << i;
	fclose(f);
	return in;
}

/* 1 if pid catches or ignores sig, so sending it cannot kill the process. */
static int _catches(pid_t pid, int sig)
{
	return (_sig_masks(pid, sig) & (MASK_CGT | MASK_IGN)) != 0;
}

/* 1 if pid has a handler for sig or blocks it (it waits for it with
 * sigwait or a signalfd, as srun and this supervisor do), so the signal
 * asks it to do something rather than ending it. */
static int _handles(pid_t pid, int sig)
{
	return (_sig_masks(pid, sig) & (MASK_CGT | MASK_BLK)) != 0;
}

static void _touch(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

	if (fd >= 0)
		close(fd);
}

/* The parent of pid (/proc/PID/stat: "pid (comm) state ppid ..."; comm may
 * hold spaces and parentheses, so read after the last ')'), or -1. */
static pid_t _parent_of(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	long ppid;
	int fd;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || sscanf(p + 1, " %*c %ld", &ppid) != 1)
		return -1;
	return (pid_t)ppid;
}

#define BELOW_MAX 4096

/*
 * A warning for a batch script that does not handle it (it would die of
 * it, and the job with it): deliver it instead to every process below the
 * script that handles it.  srun does (it forwards the signal to its
 * step's tasks on every node, where each node's supervisor saves its
 * part), and so does an application the script started itself.  This is
 * what `--signal=SIG@T` without `B:` does, and what the tutorial's job
 * expected of its `trap`.  Returns how many processes got it.
 */
static int _warn_below(pid_t top, int sig)
{
	pid_t pids[BELOW_MAX], parents[BELOW_MAX], below[BELOW_MAX];
	size_t n = 0, nb = 0, i, k;
	struct dirent *e;
	int sent = 0, grew = 1;
	DIR *d = opendir("/proc");

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < BELOW_MAX) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);

		if (*end || pid <= 1 || pid == top || pid == S.self)
			continue;
		pids[n] = (pid_t)pid;
		parents[n] = _parent_of((pid_t)pid);
		n++;
	}
	closedir(d);
	below[nb++] = top;
	/* Grow the set of descendants until nothing new joins (no tree is
	 * deeper than the number of processes). */
	while (grew) {
		grew = 0;
		for (i = 0; i < n; i++) {
			if (pids[i] <= 0)
				continue;
			for (k = 0; k < nb; k++)
				if (parents[i] == below[k])
					break;
			if (k == nb || nb == BELOW_MAX)
				continue;
			below[nb++] = pids[i];
			pids[i] = 0;
			grew = 1;
		}
	}
	for (k = 1; k < nb; k++)
		if (_handles(below[k], sig) && kill(below[k], sig) == 0)
			sent++;
	return sent;
}


static void _report_save(const struct save_result *res, const char *why)
{
	rs_supervise_status_t st;
	char line[RS_ERR_MAX + 512];

	_status_fill(&st, RS_SUPERVISE_ST_SAVE);
	if (res && res->rc == 0) {
		st.ok = 1;
		st.gen = res->st.gen;
		st.published = res->st.published;
		st.files = res->st.files;
		st.copied = res->st.bytes_copied;
		st.linked = res->st.bytes_linked;
		st.seconds = res->st.seconds;
	} else {
		st.ok = 0;
		st.seconds = _mono() - S.save_t0;
		if (res)
			snprintf(st.error, sizeof(st.error), "%s",
				 res->msg[0] ? res->msg : strerror(-res->rc));
		else
			snprintf(st.error, sizeof(st.error), "%s", why);
	}
	rs_supervise_format_save(&st, S.o.scratch, S.o.ckpt_dir, line, sizeof(line));
	_write_all(STDERR_FILENO, line, strlen(line));
	_status_append(&st);
}

static void _start_save(void)
{
	int p[2];
	pid_t pid;

	S.save_t0 = _mono();
	S.save_aborted = 0;
	if (pipe2(p, O_CLOEXEC) < 0) {
		char why[128];

		snprintf(why, sizeof(why), "pipe: %s", strerror(errno));
		_report_save(NULL, why);
		S.ready_seen = _real();
		rs_supervise_sm_event(&S.sm, RS_SUPERVISE_EV_SAVE_DONE, _mono());
		return;
	}
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		_save_child(p[1]);
	}
	close(p[1]);
	if (pid < 0) {
		char why[128];

		snprintf(why, sizeof(why), "fork: %s", strerror(errno));
		close(p[0]);
		_report_save(NULL, why);
		S.ready_seen = _real();
		rs_supervise_sm_event(&S.sm, RS_SUPERVISE_EV_SAVE_DONE, _mono());
		return;
	}
	S.save_pid = pid;
	S.save_fd = p[0];
}

/* The save child was reaped with status ws: collect what it sent. */
static void _finish_save(int ws)
{
	struct save_result res;
	ssize_t r;
	char why[256];

	do {
		r = read(S.save_fd, &res, sizeof(res));
	} while (r < 0 && errno == EINTR);
	close(S.save_fd);
	S.save_fd = -1;
	S.save_pid = 0;
	if (r == (ssize_t)sizeof(res)) {
		_report_save(&res, NULL);
	} else {
		if (S.save_aborted)
			snprintf(why, sizeof(why), "timed out after %g s (--save-timeout)",
				 S.o.save_timeout);
		else if (WIFSIGNALED(ws))
			snprintf(why, sizeof(why), "the save process died of signal %d (%s)",
				 WTERMSIG(ws), strsignal(WTERMSIG(ws)));
		else
			snprintf(why, sizeof(why), "the save process exited with %d without a result",
				 WEXITSTATUS(ws));
		_report_save(NULL, why);
	}
	S.ready_seen = _real();
	rs_supervise_sm_event(&S.sm, RS_SUPERVISE_EV_SAVE_DONE, _mono());
}

/* -------------------------------------------------------------- events --- */

static void _act(rs_supervise_action_t a)
{
	rs_supervise_status_t st;

	switch (a) {
	case RS_SUPERVISE_NONE:
		return;
	case RS_SUPERVISE_BEGIN:
		/* A stale ready file is no answer to this warning: only one
		 * touched after the last save counts (_ready_is_new).  Not
		 * removed here: in a step, the application heard the warning
		 * from slurmstepd when we did, and may have answered already. */
		if (S.sm.reason != RS_SUPERVISE_SIGNAL && !S.app_done) {
			/* A self-timed warning must not kill an application that
			 * never asked for it: the signal's default action ends
			 * the process.  Such an application cannot write its
			 * state on request anyway, so save what is there now. */
			if (_catches(S.app, S.o.signal))
				kill(S.app, S.o.signal);
			else if (S.o.batch_script &&
				 _warn_below(S.app, S.o.signal) > 0)
				; /* an application below will say when */
			else if (S.sm.saver && S.o.ready)
				_touch(S.o.ready);
		}
		if (S.sm.saver) {
			_status_fill(&st, RS_SUPERVISE_ST_WARNING);
			_status_append(&st);
		}
		return;
	case RS_SUPERVISE_SAVE:
		_start_save();
		return;
	case RS_SUPERVISE_ABORT_SAVE:
		if (S.save_pid > 0) {
			S.save_aborted = 1;
			kill(S.save_pid, SIGKILL);
		}
		return;
	}
}

static void _feed(rs_supervise_event_t ev)
{
	_act(rs_supervise_sm_event(&S.sm, ev, _mono()));
}

/* Reap every child that is done; the signalfd's SIGCHLD only says "some". */
static void _reap(void)
{
	for (;;) {
		int ws;
		pid_t pid = waitpid(-1, &ws, WNOHANG);

		if (pid < 0 && errno == EINTR)
			continue;
		if (pid <= 0)
			return;
		if (pid == S.app && !S.app_done) {
			S.app_done = 1;
			S.app_status = ws;
			_feed(RS_SUPERVISE_EV_APP_EXIT);
		} else if (pid == S.save_pid) {
			_finish_save(ws);
		}
		/* Anything else: an orphan we inherited; reaping it is our job. */
	}
}

static void _forward(const struct signalfd_siginfo *si)
{
	int sig = (int)si->ssi_signo;
	pid_t app_pgrp = 0;

	if (S.app_done)
		return; /* its pid may already belong to someone else */
	if (si->ssi_code == SI_KERNEL)
		app_pgrp = getpgid(S.app);
	if (!rs_supervise_should_forward(sig, si->ssi_code, (pid_t)si->ssi_pid,
					 S.self, S.app, S.my_pgrp, app_pgrp, S.o.stepd))
		return;
	if (si->ssi_code == SI_QUEUE) {
		/* Keep the value sigqueue(3) senders attached. */
		union sigval v = { .sival_ptr = (void *)(uintptr_t)si->ssi_ptr };

		sigqueue(S.app, sig, v);
	} else {
		kill(S.app, sig);
	}
}

/*
 * SIGTERM may be Slurm's preemption notice (GraceTime: TERM, and the end
 * time moved to now + GraceTime).  Ask the end-time poller to look now
 * (a byte into its FIFO, END_FILE.poke, made by `slurm-resilience
 * poll-end`) and re-read the end-time file every 0.25 s for 10 s, so the
 * lead warning of the shortened window comes within about a second, not a
 * poll period later (supervise.h, rs_supervise_sm_set_end).
 */
static void _poke_poller(void)
{
	char p[PATH_MAX];
	struct stat st;
	int fd;

	if (!S.o.end_time_file || S.o.lead <= 0 || S.app_done ||
	    snprintf(p, sizeof(p), "%s.poke", S.o.end_time_file) >= (int)sizeof(p))
		return;
	fd = open(p, O_WRONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		/* A full FIFO means a poke is pending anyway. */
		if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
			(void)!write(fd, "p", 1);
		close(fd);
	}
	S.fast_until = _mono() + 10;
	S.next_end_check = _mono() + 0.25;
}

static void _on_signal(const struct signalfd_siginfo *si)
{
	int sig = (int)si->ssi_signo;

	if (sig == SIGCHLD && si->ssi_code > 0) {
		_reap();
		return;
	}
	/* Only a warning from outside starts a sequence; the order matters:
	 * the ready file goes before the application hears the signal. */
	if (sig == S.o.signal && si->ssi_pid != (uint32_t)S.self &&
	    si->ssi_pid != (uint32_t)S.app) {
		_feed(RS_SUPERVISE_EV_WARNING);
		if (S.o.batch_script && !S.app_done && !_catches(S.app, sig)) {
			int n = _warn_below(S.app, sig);

			_say("the batch script does not handle %s: the warning "
			     "went to %d process%s under it that do%s, not to "
			     "the script (it would end the job)", strsignal(sig),
			     n, n == 1 ? "" : "es",
			     n ? " (srun passes it to every node's tasks)" : "");
			if (!n && S.sm.saver && S.o.ready)
				_touch(S.o.ready); /* nobody to wait for */
			return;
		}
	}
	_forward(si);
	if (sig == SIGTERM) {
		_feed(RS_SUPERVISE_EV_TERM);
		_poke_poller();
	}
}

static void _read_signals(void)
{
	struct signalfd_siginfo si[16];

	for (;;) {
		ssize_t r = read(S.sfd, si, sizeof(si));

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return;
		for (size_t i = 0; i < (size_t)r / sizeof(si[0]); i++)
			_on_signal(&si[i]);
	}
}

/* End time on the monotonic clock, from a UNIX time. */
static double _end_mono(double end_unix)
{
	return end_unix > 0 ? _mono() + (end_unix - _real()) : 0;
}

static void _check_end_file(void)
{
	char buf[64];
	double end;
	ssize_t n;
	int fd;

	S.next_end_check = _mono() + (_mono() < S.fast_until ? 0.25 : END_FILE_POLL_S);
	fd = open(S.o.end_time_file, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return; /* not written yet: keep what we know */
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return; /* empty: being rewritten in place; "0" says unknown */
	buf[n] = '\0';
	if (rs_supervise_parse_end_time(buf, &end, NULL) < 0)
		return; /* half-written or garbage: try again next time */
	/* Convert only on change: re-converting each time would jitter. */
	if (end != S.end_unix) {
		int was = S.sm.preempted;

		S.end_unix = end;
		rs_supervise_sm_set_end(&S.sm, _end_mono(end));
		if (S.sm.preempted && !was)
			_say("SIGTERM came with the end time moved %.0f s ahead "
			     "(preemption with GraceTime): this is a notice, "
			     "the checkpoint lead applies to the new end",
			     end - _real());
	}
}

/* ------------------------------------------------------------- leaving --- */

/*
 * A task of a multi-node job that exits (by itself, not killed) while the
 * job may go on: save its final scratch once, so that the checkpoints the
 * other nodes still take this attempt are complete without it (ckpt.h,
 * meta.ended).  Bounded: a save that outlasts max(grace, 10 s), at most
 * 120 s, is killed (SIGALRM); the task's exit waits for nothing more.
 */
static void _final_save(void)
{
	rs_ckpt_meta_t meta = {
		.job_id = S.o.job_id,
		.attempt = S.o.attempt,
		.node = S.o.node,
		.reason = "ended",
		.part = S.o.part,
		.nparts = S.o.nparts,
		.ended = 1,
	};
	unsigned bound = S.o.grace > 10 ? (unsigned)S.o.grace : 10;
	pid_t pid;
	int ws;

	if (S.o.role != RS_SUPERVISE_SAVER || S.o.nparts < 2 ||
	    !S.o.ckpt_dir || !S.o.scratch || !S.o.job_id ||
	    !WIFEXITED(S.app_status))
		return;
	if (bound > 120)
		bound = 120;
	pid = fork();
	if (pid < 0) {
		_say("final checkpoint of this node's scratch: fork: %s",
		     strerror(errno));
		return;
	}
	if (pid == 0) {
		rs_ckpt_stats_t st;
		rs_err_t err;
		sigset_t one;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		signal(SIGALRM, SIG_DFL);
		sigemptyset(&one);
		sigaddset(&one, SIGALRM);
		sigprocmask(SIG_UNBLOCK, &one, NULL);
		alarm(bound);
		close(S.sfd);
		rs_ckpt_set_warn(_ckpt_warn, NULL);
		rs_err_clear(&err);
		if (rs_ckpt_save(S.o.scratch, S.o.ckpt_dir, S.o.keep, &meta,
				 &st, &err) < 0) {
			_say("this node's task ended, but its final scratch "
			     "could not be saved (%s): checkpoints the other "
			     "nodes take from now on will not be published",
			     err.msg);
			_exit(1);
		}
		_exit(0);
	}
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(ws))
		_say("this node's task ended; saving its final scratch took "
		     "more than %u s and was stopped: checkpoints the other "
		     "nodes take from now on will not be published", bound);
}

static void _leave(void) __attribute__((noreturn));
static void _leave(void)
{
	rs_supervise_exit_t x;
	rs_supervise_status_t st;
	sigset_t one;

	if (rs_supervise_exit_of(S.app_status, &x) < 0)
		_exit(1);
	_status_fill(&st, RS_SUPERVISE_ST_EXIT);
	st.sig = x.sig;
	st.code = x.code;
	st.core = x.core;
	_status_append(&st);
	if (!x.sig)
		_exit(x.code);
	if (x.core)
		_say("the application (pid %d) was killed by signal %d (%s) and dumped core; "
		     "the supervisor dies of the same signal without a core of its own",
		     (int)S.app, x.sig, strsignal(x.sig));
	/* Non-dumpable: the kernel skips our core dump entirely (no file, no
	 * core_pattern helper), so the application's core, often named just
	 * "core" in the same folder, is not overwritten by ours.  The price:
	 * WCOREDUMP is not set on our status; docs/supervisor.md. */
	prctl(PR_SET_DUMPABLE, 0);
	signal(x.sig, SIG_DFL);
	kill(S.self, x.sig);
	sigemptyset(&one);
	sigaddset(&one, x.sig);
	sigprocmask(SIG_UNBLOCK, &one, NULL);
	/* Only reached for signals whose default action is not to terminate. */
	_exit(128 + x.sig);
}

/* --------------------------------------------------------------- setup --- */

static void _restore_for_exec(void)
{
	if (S.chld_ignored)
		signal(SIGCHLD, SIG_IGN);
	sigprocmask(SIG_SETMASK, &S.orig_mask, NULL);
}

/* The supervisor could not set itself up: let the application run anyway. */
static void _exec_unsupervised(char **argv) __attribute__((noreturn));
static void _exec_unsupervised(char **argv)
{
	_say("running %s unsupervised (no signal forwarding, no checkpoints)", argv[0]);
	_restore_for_exec();
	execvp(argv[0], argv);
	_say("execve(): %s: %s", argv[0], strerror(errno));
	_exit(errno);
}

/* Our copies of stdin/stdout would keep the application's pipes open after
 * it closed them (a reader would wait for EOF); stderr stays for our lines. */
static void _drop_stdio(void)
{
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return;
	dup2(fd, STDIN_FILENO);
	dup2(fd, STDOUT_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
}

/* The ready file exists and was touched after the last save (or this
 * supervisor's start): an answer nobody has saved yet. */
static int _ready_is_new(void)
{
	struct stat st;

	if (stat(S.o.ready, &st) < 0)
		return 0;
	return (double)st.st_mtim.tv_sec + st.st_mtim.tv_nsec / 1e9 > S.ready_seen;
}

static int _poll_timeout_ms(void)
{
	double now = _mono();
	double next = rs_supervise_sm_next(&S.sm);
	double wait = MAX_SLEEP_S;

	if (next > 0)
		wait = next - now;
	if (S.sm.phase == RS_SUPERVISE_WAITING && S.o.ready && wait > READY_POLL_S)
		wait = READY_POLL_S;
	if (S.sm.phase == RS_SUPERVISE_IDLE && S.sm.saver && S.o.ready && !S.app_done &&
	    wait > IDLE_READY_POLL_S)
		wait = IDLE_READY_POLL_S;
	if (S.o.end_time_file && !S.app_done && wait > S.next_end_check - now)
		wait = S.next_end_check - now;
	if (wait > MAX_SLEEP_S)
		wait = MAX_SLEEP_S;
	if (wait < 0)
		wait = 0;
	/* Round up: waking a hair early would only spin once more. */
	return (int)(wait * 1000) + 1;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	sigset_t all;
	rs_err_t err;
	int ws;

	/* First of all: from here on no signal is lost or acted on by default. */
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &S.orig_mask);
	S.self = getpid();
	S.my_pgrp = getpgrp();
	S.ready_seen = _real(); /* an older ready file is no answer of ours */

	/* Inherited SIG_IGN for SIGCHLD would make the kernel reap the
	 * application behind our back and lose its status. */
	if (sigaction(SIGCHLD, NULL, &sa) == 0 && sa.sa_handler == SIG_IGN)
		S.chld_ignored = 1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);

	if (rs_supervise_parse(argc, argv, &S.o, &err) < 0) {
		pid_t pid = S.o.pid;
		char **app = S.o.argv;

		_say("supervisor: %s", err.msg);
		if (!pid && !app)
			return 2;
		/* A plugin/supervisor mismatch must not cost the job: still
		 * forward signals and pass the status through, no checkpoints. */
		_say("supervisor: checkpoints disabled, forwarding signals only");
		rs_supervise_opts_init(&S.o);
		S.o.role = RS_SUPERVISE_FORWARD;
		S.o.pid = (pid && app) ? 0 : pid;
		S.o.argv = app;
	}

	/* The status pipe is ours, not the application's. */
	if (S.o.status_fd >= 0 && fcntl(S.o.status_fd, F_SETFD, FD_CLOEXEC) < 0) {
		_say("supervisor: --status-fd %d: %s", S.o.status_fd, strerror(errno));
		S.o.status_fd = -1;
	}

	S.sfd = signalfd(-1, &all, SFD_CLOEXEC | SFD_NONBLOCK);
	if (S.sfd < 0) {
		_say("supervisor: signalfd: %s", strerror(errno));
		if (S.o.argv)
			_exec_unsupervised(S.o.argv);
		/* Adopted child: all we can still do is pass its status on. */
		while (waitpid(S.o.pid, &ws, 0) < 0)
			if (errno != EINTR)
				return 1;
		S.app_status = ws;
		_leave();
	}

	if (S.o.argv) {
		pid_t pid = fork();

		if (pid < 0) {
			_say("supervisor: fork: %s", strerror(errno));
			close(S.sfd);
			_exec_unsupervised(S.o.argv);
		}
		if (pid == 0) {
			_restore_for_exec();
			execvp(S.o.argv[0], S.o.argv);
			/* What slurmstepd itself does when execve fails. */
			_say("execve(): %s: %s", S.o.argv[0], strerror(errno));
			_exit(errno);
		}
		S.app = pid;
	} else {
		pid_t r;

		S.app = S.o.pid;
		do {
			r = waitpid(S.app, &ws, WNOHANG);
		} while (r < 0 && errno == EINTR);
		if (r < 0) {
			_say("supervisor: pid %d is not a child of the supervisor: %s",
			     (int)S.app, strerror(errno));
			return 1;
		}
		if (r == S.app) {
			S.app_done = 1;
			S.app_status = ws;
		}
	}
	_drop_stdio();

	/* --end-time is what was known at start; the file, when given and
	 * readable, overrides it from then on. */
	S.end_unix = S.o.end_time;
	rs_supervise_sm_init(&S.sm, &S.o, _mono(), _end_mono(S.o.end_time));
	if (S.o.end_time_file)
		_check_end_file();
	if (S.app_done)
		_feed(RS_SUPERVISE_EV_APP_EXIT);

	for (;;) {
		struct pollfd pfd = { .fd = S.sfd, .events = POLLIN };
		rs_supervise_action_t a;
		int n;

		_reap();
		while ((a = rs_supervise_sm_event(&S.sm, RS_SUPERVISE_EV_TICK, _mono())))
			_act(a);
		if (S.app_done && S.sm.phase == RS_SUPERVISE_IDLE && !S.save_pid)
			break;
		n = poll(&pfd, 1, _poll_timeout_ms());
		if (n < 0 && errno != EINTR) {
			_say("supervisor: poll: %s", strerror(errno));
			break;
		}
		if (n > 0)
			_read_signals();
		if (S.sm.phase == RS_SUPERVISE_WAITING && S.o.ready &&
		    _ready_is_new())
			_feed(RS_SUPERVISE_EV_READY);
		else if (S.sm.phase == RS_SUPERVISE_IDLE && S.sm.saver && S.o.ready &&
			 !S.app_done && _ready_is_new())
			_feed(RS_SUPERVISE_EV_READY);
		if (S.o.end_time_file && !S.app_done && _mono() >= S.next_end_check)
			_check_end_file();
	}
	if (!S.app_done) {
		/* poll failed: fall back to a plain wait for the application. */
		while (waitpid(S.app, &ws, 0) < 0)
			if (errno != EINTR)
				return 1;
		S.app_status = ws;
	}
	_final_save();
	_leave();
}
