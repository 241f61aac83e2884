/* rundir.c - see include/rundir.h */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "facts.h"
#include "rundir.h"

/* Private files (ready, end time) of a job that never reached its end
 * hook (slurmstepd killed, node rebooted without emptying /run). */
#define RS_RUNDIR_PRIVATE_MAX_AGE 86400
/* Temp files of a writer killed between write and rename. */
#define RS_RUNDIR_TMP_MAX_AGE 3600
#define RS_RUNDIR_STAMP ".swept"

int rs_rundir_open(const char *rundir, rs_err_t *err)
{
	struct stat st;
	int fd;

	if (mkdir(rundir, 0711) < 0 && errno != EEXIST)
		return rs_err_set(err, errno, "create %s: %s", rundir,
				  strerror(errno));
	fd = open(rundir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return rs_err_set(err, errno, "open %s: %s", rundir,
				  strerror(errno));
	if (fstat(fd, &st) < 0 || st.st_uid != 0 || (st.st_mode & 022)) {
		close(fd);
		return rs_err_set(err, EPERM, "%s is not a folder of root's that "
				  "only root can write: remove it (it is "
				  "recreated at the next job)", rundir);
	}
	/* Users traverse it to reach their own private folder; listing it
	 * would show other users' job ids. */
	if ((st.st_mode & 0777) != 0711 && fchmod(fd, 0711) < 0) {
		close(fd);
		return rs_err_set(err, errno, "chmod 0711 %s: %s", rundir,
				  strerror(errno));
	}
	return fd;
}

static int _user_name(uid_t uid, char *buf, size_t len)
{
	int n = snprintf(buf, len, "u%u", (unsigned)uid);

	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

int rs_rundir_user(const char *rundir, uid_t uid, gid_t gid, char *path,
		   size_t len, rs_err_t *err)
{
	char name[32];
	struct stat st;
	int rfd, fd = -1, rc = 0, made = 0;

	if (_user_name(uid, name, sizeof(name)) ||
	    snprintf(path, len, "%s/%s", rundir, name) >= (int)len)
		return rs_err_set(err, ENAMETOOLONG, "%s: path too long", rundir);
	rfd = rs_rundir_open(rundir, err);
	if (rfd < 0)
		return rfd;
	if (mkdirat(rfd, name, 0700) == 0)
		made = 1;
	else if (errno != EEXIST) {
		rc = rs_err_set(err, errno, "create %s: %s", path, strerror(errno));
		goto out;
	}
	fd = openat(rfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		rc = rs_err_set(err, errno, "open %s: %s", path, strerror(errno));
		goto out;
	}
	/* Only root creates entries in RUNDIR: a folder we did not just make
	 * is ours from an earlier job of this user (or root's, half made). */
	if (made || (fstat(fd, &st) == 0 && st.st_uid == 0)) {
		if (fchown(fd, uid, gid) < 0 || fchmod(fd, 0700) < 0) {
			rc = rs_err_set(err, errno, "give %s to uid %u: %s", path,
					(unsigned)uid, strerror(errno));
			goto out;
		}
	}
	if (fstat(fd, &st) < 0 || st.st_uid != uid ||
	    (st.st_mode & 07777) != 0700)
		rc = rs_err_set(err, EPERM, "%s is not the private folder of uid "
				"%u (owner %u, mode %04o): remove it", path,
				(unsigned)uid, (unsigned)st.st_uid,
				(unsigned)(st.st_mode & 07777));
out:
	if (fd >= 0)
		close(fd);
	close(rfd);
	return rc;
}

/* Cluster names are Slurm identifiers; anything else is not put in a
 * file name. */
const char *rs_rundir_token(const char *s)
{
	return s && strlen(s) <= 63 && rs_facts_identifier(s) ? s : "_";
}

int rs_rundir_job_files(const char *rundir, uid_t uid, const char *cluster,
			uint32_t job, const char *node, char *ready, char *end, size_t len)
{
	const char *c = rs_rundir_token(cluster), *n = rs_rundir_token(node);

	if (snprintf(ready, len, "%s/u%u/%s.%" PRIu32 ".%s.ready", rundir,
		     (unsigned)uid, c, job, n) >= (int)len ||
	    snprintf(end, len, "%s/u%u/%s.%" PRIu32 ".%s.end", rundir,
		     (unsigned)uid, c, job, n) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

/* A listing of the open folder dfd from its start (a dup shares the
 * offset of an earlier listing), or NULL. */
static DIR *_list(int dfd)
{
	int fd = dup(dfd);
	DIR *d;

	if (fd < 0)
		return NULL;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return NULL;
	}
	rewinddir(d);
	return d;
}

/* Remove the entries of dfd whose names start with prefix (and, if
 * suffix is given, end with it).  unlinkat never follows a symlink. */
static int _unlink_prefixed(int dfd, const char *prefix, const char *suffix)
{
	size_t pl = strlen(prefix), sl = suffix ? strlen(suffix) : 0;
	struct dirent *e;
	int n = 0;
	DIR *d = _list(dfd);

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);

		if (l < pl + sl || strncmp(e->d_name, prefix, pl) ||
		    (sl && strcmp(e->d_name + l - sl, suffix)))
			continue;
		if (unlinkat(dfd, e->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	return n;
}

int rs_rundir_write_end(const char *endfile, time_t end)
{
	char tmp[PATH_MAX + 16];
	int fd, rc = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.%ld", endfile, (long)getpid()) >=
	    (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0)
		return -errno;
	if (dprintf(fd, "%ld\n", (long)end) < 0)
		rc = -errno;
	if (close(fd) < 0 && !rc)
		rc = -errno;
	if (!rc && rename(tmp, endfile) < 0)
		rc = -errno;
	if (rc)
		unlink(tmp);
	return rc;
}

int rs_rundir_job_end(const char *rundir, uid_t uid, const char *cluster,
		      uint32_t job)
{
	char prefix[96], name[32];
	const char *c = rs_rundir_token(cluster);
	int rfd, ufd, n = 0, r;

	rfd = open(rundir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rfd < 0)
		return errno == ENOENT ? 0 : -errno;
	/* CLUSTER.JOB.aN.facts, every attempt (and their temp files). */
	snprintf(prefix, sizeof(prefix), "%s.%" PRIu32 ".a", c, job);
	r = _unlink_prefixed(rfd, prefix, NULL);
	if (r > 0)
		n += r;
	/* u<uid>/CLUSTER.JOB.ready, .end and the poller's temp files: the
	 * folder is the user's, so open it without following a symlink and
	 * only unlink in it. */
	if (_user_name(uid, name, sizeof(name)) == 0 &&
	    (ufd = openat(rfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			  O_CLOEXEC)) >= 0) {
		struct stat st;

		snprintf(prefix, sizeof(prefix), "%s.%" PRIu32 ".", c, job);
		if (fstat(ufd, &st) == 0 && st.st_uid == uid) {
			r = _unlink_prefixed(ufd, prefix, NULL);
			if (r > 0)
				n += r;
		}
		close(ufd);
	}
	close(rfd);
	return n;
}

/* Entries of dfd older than max_age (by mtime), optionally only those
 * whose names contain `infix`. */
static int _unlink_old(int dfd, time_t now, time_t max_age, const char *infix)
{
	struct dirent *e;
	int n = 0;
	DIR *d = _list(dfd);

	if (!d)
		return 0;
	while ((e = readdir(d))) {
		struct stat st;

		if (e->d_name[0] == '.' || (infix && !strstr(e->d_name, infix)) ||
		    fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    S_ISDIR(st.st_mode) || st.st_mtime + max_age >= now)
			continue;
		if (unlinkat(dfd, e->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	return n;
}

int rs_rundir_sweep(const char *rundir, time_t now)
{
	struct stat st;
	struct dirent *e;
	DIR *d;
	int rfd, fd, n = 0, r;

	rfd = open(rundir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rfd < 0)
		return 0;
	if (fstatat(rfd, RS_RUNDIR_STAMP, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    st.st_mtime + RS_RUNDIR_SWEEP_EVERY > now && st.st_mtime <= now) {
		close(rfd);
		return 0;
	}
	fd = openat(rfd, RS_RUNDIR_STAMP, O_WRONLY | O_CREAT | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
	if (fd >= 0) {
		futimens(fd, NULL);
		close(fd);
	}
	r = rs_facts_sweep(rundir, now);
	if (r > 0)
		n += r;
	n += _unlink_old(rfd, now, RS_RUNDIR_TMP_MAX_AGE, ".tmp");
	if ((d = _list(rfd))) {
		while ((e = readdir(d))) {
			int ufd;

			if (e->d_name[0] != 'u')
				continue;
			ufd = openat(rfd, e->d_name, O_RDONLY | O_DIRECTORY |
				     O_NOFOLLOW | O_CLOEXEC);
			if (ufd < 0)
				continue;
			n += _unlink_old(ufd, now, RS_RUNDIR_PRIVATE_MAX_AGE, NULL);
			close(ufd);
		}
		closedir(d);
	}
	close(rfd);
	return n;
}
