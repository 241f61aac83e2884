/* facts.c - see include/facts.h */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "facts.h"

/* A file is kept this long after its attempt's end (a step can start a
 * little after the end Slurm announced, e.g. during KillWait). */
#define RS_FACTS_SLACK 3600
/* Files without an end time (no time limit) are swept after this: a
 * later step of such a job then asks slurmctld once more. */
#define RS_FACTS_MAX_AGE 86400

int rs_facts_format(const rs_facts_t *f, char *buf, size_t len)
{
	int n = snprintf(buf, len, "v1 uid=%u restart=%" PRIu32 " nnodes=%" PRIu32
			 " batch=%d end=%lld limit=%" PRIu32 " cluster=%s\n",
			 (unsigned)f->uid, f->restart_count, f->nnodes,
			 f->batch ? 1 : 0, (long long)f->end_time, f->time_limit,
			 f->cluster);

	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static int _num(const char *v, unsigned long long max, unsigned long long *out)
{
	char *end;

	if (*v < '0' || *v > '9')
		return -1;
	errno = 0;
	*out = strtoull(v, &end, 10);
	return errno || (*end && *end != '\n') || *out > max ? -1 : 0;
}

int rs_facts_parse(const char *line, rs_facts_t *f, rs_err_t *err)
{
	char buf[512], *tok, *save = NULL;
	unsigned seen = 0;

	memset(f, 0, sizeof(*f));
	if (strlen(line) >= sizeof(buf) || strncmp(line, "v1 ", 3))
		return rs_err_set(err, EINVAL, "facts: not a v1 line");
	snprintf(buf, sizeof(buf), "%s", line + 3);
	for (tok = strtok_r(buf, " \n", &save); tok;
	     tok = strtok_r(NULL, " \n", &save)) {
		static const char *const keys[] = { "uid", "restart", "nnodes",
			"batch", "end", "limit", "cluster" };
		char *eq = strchr(tok, '=');
		unsigned long long v = 0;
		unsigned k;

		if (!eq)
			return rs_err_set(err, EINVAL, "facts: '%s' is not key=value", tok);
		*eq++ = '\0';
		for (k = 0; k < 7 && strcmp(tok, keys[k]); k++)
			;
		if (k == 7 || (seen & (1u << k)))
			return rs_err_set(err, EINVAL, "facts: unexpected key '%s'", tok);
		seen |= 1u << k;
		if (k == 6) {
			if (strlen(eq) >= sizeof(f->cluster))
				return rs_err_set(err, EINVAL, "facts: cluster too long");
			snprintf(f->cluster, sizeof(f->cluster), "%s", eq);
			continue;
		}
		if (_num(eq, k == 4 ? (unsigned long long)INT64_MAX : UINT32_MAX, &v))
			return rs_err_set(err, EINVAL, "facts: bad value for '%s'", tok);
		switch (k) {
		case 0: f->uid = (uid_t)v; break;
		case 1: f->restart_count = (uint32_t)v; break;
		case 2: f->nnodes = (uint32_t)v; break;
		case 3: f->batch = v != 0; break;
		case 4: f->end_time = (time_t)v; break;
		default: f->time_limit = (uint32_t)v; break;
		}
	}
	if (seen != 0x7f)
		return rs_err_set(err, EINVAL, "facts: incomplete line");
	return 0;
}

int rs_facts_identifier(const char *s)
{
	const char *c;

	if (!s || !*s)
		return 0;
	for (c = s; *c; c++)
		if (!(*c == '-' || *c == '_' || (*c >= '0' && *c <= '9') ||
		      (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')))
			return 0;
	return 1;
}

int rs_facts_path(const char *dir, const char *cluster, uint32_t job,
		  uint32_t restart, char *buf, size_t len)
{
	int n;

	if (!rs_facts_identifier(cluster))
		return -EINVAL;
	n = snprintf(buf, len, "%s/%s.%" PRIu32 ".a%" PRIu32 ".facts", dir,
		     cluster, job, restart);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

static int _trusted(const struct stat *st, uid_t owner)
{
	return st->st_uid == owner && !(st->st_mode & 022);
}

/* A facts file's text (NUL-terminated, no symlink followed) and its
 * stat.  0 / -errno. */
static int _read_facts_file(const char *path, char *buf, size_t len,
			    struct stat *st)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), e;

	if (fd < 0)
		return -errno;
	n = fstat(fd, st) < 0 ? -1 : read(fd, buf, len - 1);
	e = errno;
	close(fd);
	if (n < 0)
		return -e;
	buf[n] = '\0';
	return 0;
}

int rs_facts_load(const char *path, uid_t owner, uid_t uid, uint32_t restart,
		  time_t now, rs_facts_t *f, rs_err_t *err)
{
	char buf[512], dir[4096], *slash;
	struct stat st;
	int rc;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = '\0';
	rc = _read_facts_file(path, buf, sizeof(buf), &st);
	if (rc)
		return rc == -ENOENT ? -ENOENT
		       : rs_err_set(err, -rc, "%s: %s", path, strerror(-rc));
	if (!S_ISREG(st.st_mode) || !_trusted(&st, owner) ||
	    stat(slash ? dir : ".", &st) < 0 || !_trusted(&st, owner))
		return rs_err_set(err, EPERM, "%s: not a file of uid %u in a folder "
				  "only it can write", path, (unsigned)owner);
	rc = rs_facts_parse(buf, f, err);
	if (rc)
		return rc;
	if (f->uid != uid || f->restart_count != restart ||
	    (f->end_time && f->end_time + RS_FACTS_SLACK < now))
		return rs_err_set(err, ESTALE, "%s: of another job or attempt", path);
	return 0;
}

int rs_facts_sweep(const char *dir, time_t now)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int removed = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d))) {
		size_t l = strlen(e->d_name);
		char path[4096], buf[512];
		rs_facts_t f;
		struct stat st;
		int old;

		if (l < 7 || strcmp(e->d_name + l - 6, ".facts") ||
		    snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) >=
		    (int)sizeof(path) ||
		    _read_facts_file(path, buf, sizeof(buf), &st))
			continue;
		if (rs_facts_parse(buf, &f, NULL))
			old = st.st_mtime + RS_FACTS_MAX_AGE < now;
		else if (f.end_time)
			old = f.end_time + RS_FACTS_SLACK < now;
		else
			old = st.st_mtime + RS_FACTS_MAX_AGE < now;
		if (old && unlink(path) == 0)
			removed++;
	}
	closedir(d);
	return removed;
}

int rs_facts_store(const char *dir, uint32_t job, const rs_facts_t *f,
		   rs_err_t *err)
{
	char path[4096], tmp[4200], line[512];
	struct stat st;
	size_t len;
	int fd, rc;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return rs_err_set(err, errno, "create %s: %s", dir, strerror(errno));
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
	    (st.st_mode & 022))
		return rs_err_set(err, EPERM, "%s: not a folder only uid %u can "
				  "write", dir, (unsigned)geteuid());
	rc = rs_facts_path(dir, f->cluster, job, f->restart_count, path,
			   sizeof(path));
	if (rc)
		return rs_err_set(err, -rc, "facts: no file name for cluster '%s'",
				  f->cluster);
	if (rs_facts_format(f, line, sizeof(line)))
		return rs_err_set(err, ENOSPC, "facts: line too long");
	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return rs_err_set(err, errno, "%s: %s", tmp, strerror(errno));
	len = strlen(line);
	if (write(fd, line, len) != (ssize_t)len) {
		close(fd);
		unlink(tmp);
		return rs_err_set(err, EIO, "%s: short write", tmp);
	}
	close(fd);
	if (rename(tmp, path) < 0) {
		rc = rs_err_set(err, errno, "%s: %s", path, strerror(errno));
		unlink(tmp);
		return rc;
	}
	return 0;
}
