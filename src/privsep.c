/* privsep.c - see include/privsep.h */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "privsep.h"
#include "text.h"

static long _now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* The job's supplementary groups, when the caller knows them (-1: ask NSS). */
static gid_t *groups;
static int ngroups = -1;

int rs_privsep_set_groups(const gid_t *gids, int n)
{
	gid_t *copy = NULL;

	if (n > 0) {
		copy = malloc(sizeof(*copy) * (size_t)n);
		if (!copy)
			return -ENOMEM;
		memcpy(copy, gids, sizeof(*copy) * (size_t)n);
	}
	free(groups);
	groups = copy;
	ngroups = n < 0 ? -1 : n;
	return 0;
}

/* Become uid/gid for good.  slurmstepd may have only changed the
 * effective ids (seteuid) before calling us: get root back first. */
int rs_privsep_become(uid_t uid, gid_t gid)
{
	struct passwd *pw;

	if (geteuid() != 0 && seteuid(0) < 0)
		return -errno;
	if (uid == RS_PRIVSEP_ROOT)
		return getegid() != 0 && setegid(0) < 0 ? -errno : 0;
	if (ngroups >= 0) {
		/* The groups Slurm gives the job's tasks: exact, and no NSS
		 * lookup (initgroups asks every group source: ~0.7 ms with
		 * libnss_systemd, much more with LDAP or SSSD). */
		if (setgroups((size_t)ngroups, groups) < 0)
			return -errno;
	} else {
		pw = getpwuid(uid);
		if (pw ? initgroups(pw->pw_name, gid) < 0
		       : setgroups(1, &gid) < 0)
			return -errno;
	}
	if (setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return -errno;
	if (setuid(0) == 0)
		return -EPERM; /* root must be gone for good */
	return 0;
}

/* In the child: descriptors it keeps (see rs_privsep_run). */
enum { OUT_FD = 3, ERR_FD = 4, FIRST_CLOSED = 5 };

/* Close every descriptor >= from.  Async-signal-safe (we may be the child
 * of a multi-threaded slurmstepd): close_range (Linux 5.9+), else the
 * entries of /proc/self/fd read with getdents64, else every number below
 * RLIMIT_NOFILE. */
static void _close_from(int from)
{
	char buf[4096];
	struct rlimit rl;
	long max = 1L << 20;
	int dfd, again = 1;

	if (close_range((unsigned)from, ~0U, 0) == 0)
		return;
	dfd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		/* Closing while listing may skip entries: list again until
		 * a pass closes nothing. */
		while (again) {
			long n;

			again = 0;
			if (lseek(dfd, 0, SEEK_SET) < 0)
				break;
			while ((n = syscall(SYS_getdents64, dfd, buf, sizeof(buf))) > 0) {
				for (long off = 0; off < n;) {
					struct rs_dirent64 {
						uint64_t ino;
						int64_t off;
						unsigned short reclen;
						unsigned char type;
						char name[];
					} *d = (void *)(buf + off);
					long fd = 0;
					const char *c = d->name;

					off += d->reclen;
					if (*c < '0' || *c > '9')
						continue;
					for (; *c >= '0' && *c <= '9'; c++)
						fd = fd * 10 + (*c - '0');
					if (fd >= from && fd != dfd && fd < INT_MAX) {
						close((int)fd);
						again = 1;
					}
				}
			}
			if (n < 0)
				break;
		}
		close(dfd);
		if (!again)
			return;
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (long)rl.rlim_cur < max)
		max = (long)rl.rlim_cur;
	for (long i = from; i < max; i++)
		close((int)i);
}

/*
 * In the child, before it becomes the user: its result pipes as OUT_FD and
 * ERR_FD, stdio on /dev/null, nothing else.  slurmstepd's log, its sockets
 * to slurmd and the job's pipes must not reach code running as the user
 * (who could ptrace it once it has the user's ids).  0 or -errno.
 */
static int _only_pipes(int out, int errfd)
{
	int nul;

	/* Move errfd out of the way of OUT_FD, then place both. */
	if (errfd == OUT_FD && (errfd = fcntl(errfd, F_DUPFD, FIRST_CLOSED)) < 0)
		return -errno;
	if (out != OUT_FD ? dup2(out, OUT_FD) < 0
			  : fcntl(OUT_FD, F_SETFD, 0) < 0)
		return -errno;
	if (errfd != ERR_FD ? dup2(errfd, ERR_FD) < 0
			    : fcntl(ERR_FD, F_SETFD, 0) < 0)
		return -errno;
	nul = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (nul < 0)
		return -errno;
	for (int fd = 0; fd < 3; fd++)
		if (nul != fd && dup2(nul, fd) < 0)
			return -errno;
	_close_from(FIRST_CLOSED);
	return 0;
}

/* Wait for pid until the monotonic time deadline (ms), never blocking:
 * 1 reaped (status in *status), 0 still there at the deadline. */
static int _reap_until(pid_t pid, int *status, long deadline)
{
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid || (r < 0 && errno != EINTR))
			return 1; /* reaped, or not ours to wait for (ECHILD) */
		if (_now_ms() >= deadline)
			return 0;
		usleep(10000);
	}
}

int rs_privsep_run(uid_t uid, gid_t gid, int timeout_ms, rs_privsep_fn fn,
		   void *arg, char *out, size_t out_len, size_t *out_n,
		   rs_err_t *err)
{
	int outp[2] = { -1, -1 }, errp[2] = { -1, -1 };
	size_t got = 0, egot = 0;
	rs_err_t cerr;
	long deadline;
	int status = 0, rc = 0, open_fds = 2;
	pid_t pid;

	if (out_n)
		*out_n = 0;
	if (out && out_len)
		out[0] = '\0';
	memset(&cerr, 0, sizeof(cerr));
	if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0) {
		rc = rs_err_set(err, errno, "privsep: pipe: %s", strerror(errno));
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		rc = rs_err_set(err, errno, "privsep: fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		rs_err_t e;
		int r;

		memset(&e, 0, sizeof(e));
		close(outp[0]);
		close(errp[0]);
		signal(SIGPIPE, SIG_IGN);
		r = _only_pipes(outp[1], errp[1]);
		if (r) {
			/* Not safe to run fn: say why on whichever pipe works. */
			rs_err_set(&e, -r, "privsep: cannot close inherited "
				   "files: %s", strerror(-r));
			if (write(errp[1], e.msg, strlen(e.msg)) < 0 &&
			    write(ERR_FD, e.msg, strlen(e.msg)) < 0)
				r = -EIO;
			_exit(-r & 0xff);
		}
		r = rs_privsep_become(uid, gid);
		if (r)
			rs_err_set(&e, -r, "cannot switch to uid %u: %s",
				   (unsigned)uid, strerror(-r));
		else
			r = fn(arg, OUT_FD, &e);
		if (write(ERR_FD, e.msg, strlen(e.msg)) < 0)
			r = r ? r : -EIO;
		_exit(r ? (-r & 0xff) : 0);
	}
	close(outp[1]);
	close(errp[1]);
	outp[1] = errp[1] = -1;
	deadline = _now_ms() + timeout_ms;
	while (open_fds) {
		struct pollfd pfd[2] = { { outp[0], POLLIN, 0 },
					 { errp[0], POLLIN, 0 } };
		long left = deadline - _now_ms();
		int i;

		if (left <= 0)
			goto timeout;
		if (poll(pfd, 2, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			rc = rs_err_set(err, errno, "privsep: poll: %s",
					strerror(errno));
			goto kill;
		}
		for (i = 0; i < 2; i++) {
			char tmp[512];
			ssize_t n;

			if (pfd[i].fd < 0 || !(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(pfd[i].fd, tmp, sizeof(tmp));
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n <= 0) {
				close(pfd[i].fd);
				if (i == 0)
					outp[0] = -1;
				else
					errp[0] = -1;
				open_fds--;
				continue;
			}
			if (i == 0 && out) {
				size_t room = out_len > got + 1 ? out_len - got - 1 : 0;
				size_t c = (size_t)n < room ? (size_t)n : room;

				memcpy(out + got, tmp, c);
				got += c;
				out[got] = '\0';
			} else if (i == 1) {
				size_t room = sizeof(cerr.msg) - egot - 1;
				size_t c = (size_t)n < room ? (size_t)n : room;

				memcpy(cerr.msg + egot, tmp, c);
				egot += c;
			}
		}
	}
	/* Both pipes closed: the child is exiting, or closed them and goes
	 * on (or hangs); the same deadline holds. */
	if (!_reap_until(pid, &status, deadline))
		goto timeout;
	if (out_n)
		*out_n = got;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		rc = 0;
	else if (WIFEXITED(status)) {
		/* The message may quote a user's file name: it goes to a
		 * log line, so only as printable text. */
		char msg[RS_ERR_MAX];

		if (!rs_text_is_printable(cerr.msg))
			rs_text_escape_str(msg, sizeof(msg), cerr.msg);
		else
			memcpy(msg, cerr.msg, sizeof(msg));
		rc = rs_err_set(err, WEXITSTATUS(status), "%s",
				msg[0] ? msg : strerror(WEXITSTATUS(status)));
	}
	else
		rc = rs_err_set(err, EIO, "privsep: child died of signal %d",
				WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	goto out;
timeout:
	rc = rs_err_set(err, ETIMEDOUT, "gave up after %d ms (file system not "
			"answering?)", timeout_ms);
kill:
	/* A child in uninterruptible sleep (D state, on a dead NFS or Lustre
	 * server) dies only when it wakes: reap it if it goes within
	 * RS_PRIVSEP_REAP_MS, else leave it (a zombie until then). */
	kill(pid, SIGKILL);
	_reap_until(pid, NULL, _now_ms() + RS_PRIVSEP_REAP_MS);
out:
	if (outp[0] >= 0)
		close(outp[0]);
	if (outp[1] >= 0)
		close(outp[1]);
	if (errp[0] >= 0)
		close(errp[0]);
	if (errp[1] >= 0)
		close(errp[1]);
	return rc;
}

/* Reset what a background process inherits from slurmstepd (or any
 * caller): signal dispositions and mask, open files, cwd. */
void rs_privsep_detach(int keep)
{
	struct sigaction sa;
	sigset_t all;
	int fd;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	for (int s = 1; s < NSIG; s++)
		sigaction(s, &sa, NULL); /* fails harmlessly for KILL/STOP/RT */
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL); /* a receiver closing on us is an error code */
	sigaction(SIGHUP, &sa, NULL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	/* Keep nothing of the host's open: sockets to slurmd, the job's
	 * files, pipes whose other end waits for EOF. */
	if (keep < 3 ? close_range(3U, ~0U, 0) != 0
		     : (keep > 3 && close_range(3U, (unsigned)keep - 1, 0) != 0) ||
		       close_range((unsigned)keep + 1, ~0U, 0) != 0) {
		struct rlimit rl;
		long max = 65536;
		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
		    (long)rl.rlim_cur < max)
			max = (long)rl.rlim_cur;
		for (long i = 3; i < max; i++)
			if (i != keep)
				close((int)i);
	}
	if (chdir("/") != 0) {
		/* nothing to do: the flusher uses absolute paths only */
	}
}

/* The cgroup/v1 mount point of the hierarchy with these controllers
 * ("freezer", "cpu,cpuacct", "name=systemd"), from mountinfo: "... MOUNT
 * ... - cgroup SOURCE rw,freezer".  0 or -1. */
static int _cgroup_mount(const char *ctrls, char *mnt, size_t len)
{
	char line[1024];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int found = -1;

	if (!f)
		return -1;
	while (found && fgets(line, sizeof(line), f)) {
		char *dash = strstr(line, " - cgroup "), *opts, *save = NULL, *tok;
		char want[256], point[512];
		int all = 1;

		if (!dash || sscanf(line, "%*s %*s %*s %*s %511s", point) != 1)
			continue;
		opts = strrchr(dash, ' ');
		if (!opts)
			continue;
		opts++;
		opts[strcspn(opts, "\n")] = '\0';
		snprintf(want, sizeof(want), "%s", ctrls);
		for (tok = strtok_r(want, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			size_t n = strlen(tok);
			const char *o = opts;

			while ((o = strstr(o, tok)) &&
			       !((o == opts || o[-1] == ',') && (o[n] == ',' || o[n] == '\0')))
				o += n;
			if (!o)
				all = 0;
		}
		if (all && snprintf(mnt, len, "%s", point) < (int)len)
			found = 0;
	}
	fclose(f);
	return found;
}

/* Leave every cgroup/v1 hierarchy where this process sits in a Slurm job
 * (".../uid_U/job_J/step_S/..."): proctrack/cgroup kills what is left in
 * the step's freezer cgroup when the step ends, and a process left there
 * keeps the job's cgroups from being removed.  The sender moves up to
 * Slurm's root for the node (the part before "/uid_", e.g. /slurm_n1),
 * which no step end touches; it lives at most flush_budget_ms + 2 s
 * there.  cgroup v2 ("0::") is left alone (not tested here; docs/admin.md).
 * Root only; every failure leaves the process where it is. */
void rs_privsep_leave_job_cgroups(void)
{
	char line[1024], mnt[512], path[1024], pid[32];
	FILE *f;

	if (geteuid() != 0 || !(f = fopen("/proc/self/cgroup", "re")))
		return;
	snprintf(pid, sizeof(pid), "%ld", (long)getpid());
	while (fgets(line, sizeof(line), f)) {
		char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
		char *cg, *cut;
		int fd;

		if (!c2 || c2 == c1 + 1)
			continue; /* v2 or malformed */
		*c2 = '\0';
		cg = c2 + 1;
		cg[strcspn(cg, "\n")] = '\0';
		if (!strstr(cg, "/job_") || strstr(cg, ".."))
			continue;
		cut = strstr(cg, "/uid_");
		if (!cut)
			cut = strstr(cg, "/job_");
		*cut = '\0';
		if (_cgroup_mount(c1 + 1, mnt, sizeof(mnt)) ||
		    snprintf(path, sizeof(path), "%s%s/cgroup.procs", mnt, cg) >=
			    (int)sizeof(path))
			continue;
		fd = open(path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd >= 0) {
			if (write(fd, pid, strlen(pid)) < 0) {
				/* stays where it was: best effort */
			}
			close(fd);
		}
	}
	fclose(f);
}

int rs_privsep_spawn_detached(const char *cmd, char *const argv[], unsigned backstop_s)
{
	pid_t pid, w;
	int status;

	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* New session, then fork again: not our child (no zombie, no
		 * wait), out of the caller's process group. */
		setsid();
		pid = fork();
		if (pid != 0)
			_exit(pid < 0 ? 1 : 0);
		rs_privsep_detach(-1);
		rs_privsep_leave_job_cgroups();
		/* The backstop survives exec. */
		if (backstop_s)
			alarm(backstop_s);
		execv(cmd, argv);
		_exit(127);
	}
	/* ECHILD: the host reaped it first (slurmstepd may wait for any). */
	do {
		w = waitpid(pid, &status, 0);
	} while (w < 0 && errno == EINTR);
	if (w == pid && WIFEXITED(status) && WEXITSTATUS(status) != 0)
		return -EAGAIN;
	return 0;
}
