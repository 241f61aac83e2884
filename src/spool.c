/* spool.c - see include/spool.h */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "spool.h"

#define HEADER_MAX 2048
#define DEAD_DIR "dead"
#define LOCK_FILE ".lock"

struct rs_spool {
	char *dir;
	int dfd;          /* the spool folder */
	int dead_fd;      /* dead/ */
	int lock_fd;      /* .lock while held, else -1 */
	rs_spool_limits_t lim;
};

/* Entry names are unique within the machine: time, pid, and a counter for
 * several puts by one process within the same nanosecond. */
static unsigned put_seq;

static const char *_kind_name(rs_spool_kind_t k)
{
	return k == RS_SPOOL_ALERT ? "alert" : k == RS_SPOOL_DECISION ? "decision"
					   : "metrics";
}

/* A folder we may trust: a real directory (O_NOFOLLOW), owned by us, not
 * writable by group or others (so nobody else can plant or swap entries). */
static int _check_dir(int fd, const char *path, rs_err_t *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return rs_err_set(err, errno, "spool %s: %s", path, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return rs_err_set(err, ENOTDIR, "spool %s: not a directory", path);
	if (st.st_uid != geteuid())
		return rs_err_set(err, EPERM, "spool %s: owned by uid %u, must be owned by "
				  "uid %u (root on a node)", path, (unsigned)st.st_uid,
				  (unsigned)geteuid());
	if (st.st_mode & (S_IWGRP | S_IWOTH))
		return rs_err_set(err, EPERM, "spool %s: mode %04o is group/world-writable",
				  path, (unsigned)(st.st_mode & 07777));
	return 0;
}

static int _open_dir(int at, const char *name, const char *shown, int create,
		     int *out, rs_err_t *err)
{
	int fd, rc;

	fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		if (mkdirat(at, name, 0700) < 0 && errno != EEXIST)
			return rs_err_set(err, errno, "spool %s: mkdir: %s", shown, strerror(errno));
		fd = openat(at, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		int e = errno;
		struct stat st;
		/* O_NOFOLLOW on a symlink gives ELOOP (or ENOTDIR with
		 * O_DIRECTORY): say what it means. */
		if ((e == ELOOP || e == ENOTDIR) &&
		    fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
			return rs_err_set(err, EPERM, "spool %s: is a symlink", shown);
		return rs_err_set(err, e, "spool %s: %s", shown, strerror(e));
	}
	rc = _check_dir(fd, shown, err);
	if (rc) {
		close(fd);
		return rc;
	}
	*out = fd;
	return 0;
}

int rs_spool_open(const char *dir, const rs_spool_limits_t *limits, int create,
		  rs_spool_t **out, rs_err_t *err)
{
	rs_spool_t *sp = NULL;
	char shown[4096];
	int rc;

	*out = NULL;
	if (!dir || !dir[0])
		return rs_err_set(err, EINVAL, "spool: no folder given (spool_dir=)");
	sp = calloc(1, sizeof(*sp));
	if (!sp)
		return rs_err_set(err, ENOMEM, "spool %s: out of memory", dir);
	sp->dfd = sp->dead_fd = sp->lock_fd = -1;
	sp->dir = strdup(dir);
	if (!sp->dir) {
		rc = rs_err_set(err, ENOMEM, "spool %s: out of memory", dir);
		goto out;
	}
	sp->lim.max_entries = limits && limits->max_entries ? limits->max_entries
							    : RS_SPOOL_DEFAULT_MAX_ENTRIES;
	sp->lim.max_bytes = limits && limits->max_bytes ? limits->max_bytes
							: RS_SPOOL_DEFAULT_MAX_BYTES;
	rc = _open_dir(AT_FDCWD, dir, dir, create, &sp->dfd, err);
	if (rc)
		goto out;
	snprintf(shown, sizeof(shown), "%s/%s", dir, DEAD_DIR);
	rc = _open_dir(sp->dfd, DEAD_DIR, shown, 1, &sp->dead_fd, err);
	if (rc)
		goto out;
	*out = sp;
	sp = NULL;
out:
	rs_spool_close(sp);
	return rc;
}

void rs_spool_close(rs_spool_t *sp)
{
	if (!sp)
		return;
	rs_spool_unlock(sp);
	if (sp->dead_fd >= 0)
		close(sp->dead_fd);
	if (sp->dfd >= 0)
		close(sp->dfd);
	free(sp->dir);
	free(sp);
}

const char *rs_spool_dir(const rs_spool_t *sp)
{
	return sp->dir;
}

/* Parse an entry name: "e-<sec>-<nsec>-<pid>-<seq>-<len>".  Returns 1 and
 * the payload length if it is one. */
static int _parse_name(const char *name, uint64_t *len)
{
	unsigned long long sec, nsec, pid, seq, l;
	int end = 0;

	if (strncmp(name, "e-", 2) != 0)
		return 0;
	if (sscanf(name, "e-%12llu-%9llu-%10llu-%10llu-%10llu%n", &sec, &nsec, &pid, &seq,
		   &l, &end) != 5 || name[end] != '\0')
		return 0;
	if (len)
		*len = l;
	return 1;
}

static int _name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void rs_spool_names_free(char **names, size_t n)
{
	for (size_t i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
}

/* Walk the entries of folder fd: names (optional, sorted), count, bytes. */
static int _scan(rs_spool_t *sp, int fd, const char *shown, char ***names, size_t *n,
		 uint64_t *bytes, rs_err_t *err)
{
	DIR *d = NULL;
	struct dirent *de;
	char **v = NULL;
	size_t cnt = 0, cap = 0;
	uint64_t total = 0;
	int dup_fd, rc = 0;

	(void)sp;
	/* fdopendir takes the fd over: give it a duplicate, rewound. */
	dup_fd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dup_fd < 0)
		return rs_err_set(err, errno, "spool %s: %s", shown, strerror(errno));
	d = fdopendir(dup_fd);
	if (!d) {
		rc = rs_err_set(err, errno, "spool %s: %s", shown, strerror(errno));
		close(dup_fd);
		return rc;
	}
	errno = 0;
	while ((de = readdir(d))) {
		uint64_t len = 0;

		if (!_parse_name(de->d_name, &len))
			continue;
		cnt++;
		total += len;
		if (!names)
			continue;
		if (cnt > cap) {
			size_t ncap = cap ? cap * 2 : 64;
			char **nv = realloc(v, ncap * sizeof(*v));
			if (!nv) {
				cnt--;
				rc = rs_err_set(err, ENOMEM, "spool %s: out of memory", shown);
				goto out;
			}
			v = nv;
			cap = ncap;
		}
		v[cnt - 1] = strdup(de->d_name);
		if (!v[cnt - 1]) {
			cnt--;
			rc = rs_err_set(err, ENOMEM, "spool %s: out of memory", shown);
			goto out;
		}
	}
	if (names && cnt)
		qsort(v, cnt, sizeof(*v), _name_cmp);
out:
	closedir(d);
	if (rc) {
		rs_spool_names_free(v, cnt);
		return rc;
	}
	if (names)
		*names = v;
	if (n)
		*n = cnt;
	if (bytes)
		*bytes = total;
	return 0;
}

int rs_spool_list(rs_spool_t *sp, int dead, char ***names, size_t *n, rs_err_t *err)
{
	*names = NULL;
	*n = 0;
	return _scan(sp, dead ? sp->dead_fd : sp->dfd, sp->dir, names, n, NULL, err);
}

int rs_spool_usage(rs_spool_t *sp, size_t *entries, uint64_t *bytes, rs_err_t *err)
{
	return _scan(sp, sp->dfd, sp->dir, NULL, entries, bytes, err);
}

/* Header values are single lines: a newline would end the field early and
 * let a value forge the next field. */
static int _one_line(const char *s)
{
	return !strpbrk(s, "\r\n");
}

/* Write the header and payload of e as a new temp file in folder fd, fsync
 * it, rename it to name, fsync the folder.  Nothing is left on failure. */
static int _write_entry(int fd, const char *shown, const char *name,
			const rs_spool_entry_t *e, rs_err_t *err)
{
	char hdr[HEADER_MAX], tmp[128], why[sizeof(e->last_error)];
	struct timespec ts;
	size_t hlen, done = 0;
	int tfd = -1, rc = 0, n;

	/* last_error comes from receivers: fold newlines rather than refuse. */
	snprintf(why, sizeof(why), "%s", e->last_error);
	for (char *p = why; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	n = snprintf(hdr, sizeof(hdr),
		     "rs-spool 1\nkind %s\nformat %s\nevent_id %s\npath %s\n"
		     "attempts %u\ncreated %" PRId64 "\nnext_try %" PRId64 "\n"
		     "last_error %s\n\n",
		     _kind_name(e->kind), e->format, e->event_id, e->path, e->attempts,
		     e->created, e->next_try, why);
	if (n < 0 || (size_t)n >= sizeof(hdr))
		return rs_err_set(err, EINVAL, "spool %s: entry header too long", shown);
	hlen = (size_t)n;
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(tmp, sizeof(tmp), ".tmp-%d-%u-%ld", (int)getpid(),
		 __atomic_add_fetch(&put_seq, 1, __ATOMIC_RELAXED), ts.tv_nsec);
	tfd = openat(fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (tfd < 0)
		return rs_err_set(err, errno, "spool %s: create %s: %s", shown, tmp, strerror(errno));
	while (done < hlen + e->len) {
		const char *p = done < hlen ? hdr + done : e->payload + (done - hlen);
		size_t left = done < hlen ? hlen - done : e->len - (done - hlen);
		ssize_t w = write(tfd, p, left);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = rs_err_set(err, errno, "spool %s: write %s: %s", shown, tmp,
					strerror(errno));
			goto out;
		}
		done += (size_t)w;
	}
	if (fsync(tfd) < 0) {
		rc = rs_err_set(err, errno, "spool %s: fsync %s: %s", shown, tmp, strerror(errno));
		goto out;
	}
	if (close(tfd) < 0) {
		tfd = -1;
		rc = rs_err_set(err, errno, "spool %s: close %s: %s", shown, tmp, strerror(errno));
		goto out;
	}
	tfd = -1;
	if (renameat(fd, tmp, fd, name) < 0) {
		rc = rs_err_set(err, errno, "spool %s: rename %s: %s", shown, name, strerror(errno));
		goto out;
	}
	/* The rename is durable only once the folder is on disk. */
	if (fsync(fd) < 0)
		return rs_err_set(err, errno, "spool %s: fsync folder: %s", shown, strerror(errno));
	return 0;
out:
	if (tfd >= 0)
		close(tfd);
	unlinkat(fd, tmp, 0);
	return rc;
}

int rs_spool_put(rs_spool_t *sp, rs_spool_entry_t *e, rs_err_t *err)
{
	struct timespec ts;
	uint64_t bytes = 0, max_bytes = sp->lim.max_bytes;
	size_t count = 0;
	unsigned long max_entries = sp->lim.max_entries;
	char name[sizeof(e->name)];
	int rc;

	if (!e->payload || e->len == 0)
		return rs_err_set(err, EINVAL, "spool %s: empty payload for %s", sp->dir,
				  e->event_id);
	if (e->len > RS_SPOOL_MAX_PAYLOAD)
		return rs_err_set(err, EINVAL, "spool %s: payload of %zu bytes for %s is over "
				  "the %u-byte limit", sp->dir, e->len, e->event_id,
				  RS_SPOOL_MAX_PAYLOAD);
	if (!_one_line(e->format) || !_one_line(e->event_id) || !_one_line(e->path) ||
	    strpbrk(e->format, " ") || !e->format[0])
		return rs_err_set(err, EINVAL, "spool %s: entry field with a newline or empty "
				  "format", sp->dir);
	rc = rs_spool_usage(sp, &count, &bytes, err);
	if (rc)
		return rc;
	if (e->kind == RS_SPOOL_ALERT) {
		max_entries += max_entries / 10 ? max_entries / 10 : 1;
		max_bytes += max_bytes / 10 ? max_bytes / 10 : RS_SPOOL_MAX_PAYLOAD;
	}
	if (count + 1 > max_entries || bytes + e->len > max_bytes)
		return rs_err_set(err, ENOSPC, "spool %s is full (%zu entries, %" PRIu64
				  " bytes; bounds %lu entries, %" PRIu64 " bytes): %s %s not "
				  "spooled", sp->dir, count, bytes, sp->lim.max_entries,
				  sp->lim.max_bytes, _kind_name(e->kind), e->event_id);
	clock_gettime(CLOCK_REALTIME, &ts);
	snprintf(name, sizeof(name), "e-%012lld-%09ld-%d-%u-%zu", (long long)ts.tv_sec,
		 ts.tv_nsec, (int)getpid(), __atomic_add_fetch(&put_seq, 1, __ATOMIC_RELAXED),
		 e->len);
	e->attempts = 0;
	e->created = ts.tv_sec;
	e->last_error[0] = '\0';
	rc = _write_entry(sp->dfd, sp->dir, name, e, err);
	if (rc)
		return rc;
	snprintf(e->name, sizeof(e->name), "%s", name);
	return 0;
}

void rs_spool_entry_free(rs_spool_entry_t *e)
{
	if (!e)
		return;
	free(e->payload);
	e->payload = NULL;
	e->len = 0;
}

/* "key value\n" at *p: copy value (bounded) and advance.  0 or -EINVAL. */
static int _hdr_field(const char **p, const char *end, const char *key, char *val,
		      size_t size)
{
	size_t klen = strlen(key);
	const char *nl;

	if ((size_t)(end - *p) < klen + 1 || memcmp(*p, key, klen) != 0 || (*p)[klen] != ' ')
		return -EINVAL;
	*p += klen + 1;
	nl = memchr(*p, '\n', (size_t)(end - *p));
	if (!nl || (size_t)(nl - *p) >= size)
		return -EINVAL;
	memcpy(val, *p, (size_t)(nl - *p));
	val[nl - *p] = '\0';
	*p = nl + 1;
	return 0;
}

static int _hdr_num(const char **p, const char *end, const char *key, int64_t lo,
		    int64_t *v)
{
	char buf[32], *e = NULL;
	long long x;

	if (_hdr_field(p, end, key, buf, sizeof(buf)))
		return -EINVAL;
	errno = 0;
	x = strtoll(buf, &e, 10);
	if (errno || e == buf || *e || x < lo)
		return -EINVAL;
	*v = x;
	return 0;
}

int rs_spool_read(rs_spool_t *sp, const char *name, int dead, rs_spool_entry_t *e,
		  rs_err_t *err)
{
	int fd = -1, dfd = dead ? sp->dead_fd : sp->dfd, rc = 0;
	char *buf = NULL, kind[16];
	const char *p, *end;
	struct stat st;
	int64_t attempts = 0;
	size_t got = 0;

	memset(e, 0, sizeof(*e));
	if (!_parse_name(name, NULL))
		return rs_err_set(err, EINVAL, "spool %s: '%s' is not an entry name", sp->dir, name);
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		int x = errno;
		if (x == ELOOP)
			return rs_err_set(err, EPERM, "spool %s: entry %s is a symlink", sp->dir, name);
		return rs_err_set(err, x, "spool %s: entry %s: %s", sp->dir, name, strerror(x));
	}
	if (fstat(fd, &st) < 0) {
		rc = rs_err_set(err, errno, "spool %s: entry %s: %s", sp->dir, name, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		rc = rs_err_set(err, EPERM, "spool %s: entry %s is not a regular file owned by "
				"uid %u", sp->dir, name, (unsigned)geteuid());
		goto out;
	}
	if (st.st_size <= 0 || (uint64_t)st.st_size > RS_SPOOL_MAX_PAYLOAD + HEADER_MAX) {
		rc = rs_err_set(err, EINVAL, "spool %s: entry %s has an impossible size %lld",
				sp->dir, name, (long long)st.st_size);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		rc = rs_err_set(err, ENOMEM, "spool %s: out of memory", sp->dir);
		goto out;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = rs_err_set(err, errno, "spool %s: read %s: %s", sp->dir, name,
					strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	p = buf;
	end = buf + got;
	{
		char magic[16];
		if (_hdr_field(&p, end, "rs-spool", magic, sizeof(magic)) || strcmp(magic, "1") ||
		    _hdr_field(&p, end, "kind", kind, sizeof(kind)) ||
		    (strcmp(kind, "metrics") && strcmp(kind, "alert") &&
		     strcmp(kind, "decision")) ||
		    _hdr_field(&p, end, "format", e->format, sizeof(e->format)) ||
		    _hdr_field(&p, end, "event_id", e->event_id, sizeof(e->event_id)) ||
		    _hdr_field(&p, end, "path", e->path, sizeof(e->path)) ||
		    _hdr_num(&p, end, "attempts", 0, &attempts) || attempts > 1000000 ||
		    _hdr_num(&p, end, "created", 0, &e->created) ||
		    _hdr_num(&p, end, "next_try", 0, &e->next_try) ||
		    _hdr_field(&p, end, "last_error", e->last_error, sizeof(e->last_error)) ||
		    p >= end || *p != '\n') {
			rc = rs_err_set(err, EINVAL, "spool %s: entry %s: malformed header",
					sp->dir, name);
			goto out;
		}
	}
	p++;
	e->kind = strcmp(kind, "alert") == 0	? RS_SPOOL_ALERT
		  : strcmp(kind, "decision") == 0 ? RS_SPOOL_DECISION
						   : RS_SPOOL_METRICS;
	e->attempts = (unsigned)attempts;
	e->len = (size_t)(end - p);
	if (e->len == 0) {
		rc = rs_err_set(err, EINVAL, "spool %s: entry %s has no payload", sp->dir, name);
		goto out;
	}
	/* Payload moves to the front of the buffer so e owns one block. */
	memmove(buf, p, e->len);
	buf[e->len] = '\0';
	e->payload = buf;
	buf = NULL;
	snprintf(e->name, sizeof(e->name), "%s", name);
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	if (rc)
		memset(e, 0, sizeof(*e));
	return rc;
}

int rs_spool_done(rs_spool_t *sp, const char *name, rs_err_t *err)
{
	if (!_parse_name(name, NULL))
		return rs_err_set(err, EINVAL, "spool %s: '%s' is not an entry name", sp->dir, name);
	if (unlinkat(sp->dfd, name, 0) < 0 && errno != ENOENT)
		return rs_err_set(err, errno, "spool %s: remove %s: %s", sp->dir, name,
				  strerror(errno));
	/* Not fsync'd: if the removal is lost in a crash the entry is sent
	 * again, and receivers drop the duplicate by event_id. */
	return 0;
}

int rs_spool_retry(rs_spool_t *sp, rs_spool_entry_t *e, int64_t next_try,
		   const char *why, rs_err_t *err)
{
	if (!_parse_name(e->name, NULL))
		return rs_err_set(err, EINVAL, "spool %s: '%s' is not an entry name", sp->dir,
				  e->name);
	e->attempts++;
	e->next_try = next_try;
	snprintf(e->last_error, sizeof(e->last_error), "%s", why ? why : "");
	return _write_entry(sp->dfd, sp->dir, e->name, e, err);
}

int rs_spool_dead(rs_spool_t *sp, rs_spool_entry_t *e, const char *why, rs_err_t *err)
{
	char shown[4096];
	size_t count = 0;
	int rc;

	if (!_parse_name(e->name, NULL))
		return rs_err_set(err, EINVAL, "spool %s: '%s' is not an entry name", sp->dir,
				  e->name);
	snprintf(shown, sizeof(shown), "%s/%s", sp->dir, DEAD_DIR);
	rc = _scan(sp, sp->dead_fd, shown, NULL, &count, NULL, err);
	if (rc)
		return rc;
	if (count >= sp->lim.max_entries) {
		rc = rs_spool_done(sp, e->name, err);
		if (rc)
			return rc;
		return rs_err_set(err, ENOSPC, "spool %s is full (%zu entries): %s %s deleted, "
				  "not kept (%s)", shown, count, _kind_name(e->kind), e->event_id,
				  why ? why : "");
	}
	snprintf(e->last_error, sizeof(e->last_error), "%s", why ? why : "");
	rc = _write_entry(sp->dead_fd, shown, e->name, e, err);
	if (rc)
		return rc;
	return rs_spool_done(sp, e->name, err);
}

int rs_spool_requeue_dead(rs_spool_t *sp, size_t *moved, rs_err_t *err)
{
	char **names = NULL;
	size_t n = 0;
	int rc;

	*moved = 0;
	rc = rs_spool_list(sp, 1, &names, &n, err);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		rs_spool_entry_t e;

		rc = rs_spool_read(sp, names[i], 1, &e, err);
		if (rc == -ENOENT)
			continue;
		if (rc)
			goto out;
		/* Same name: it keeps its place in the order of creation. */
		e.attempts = 0;
		e.next_try = 0;
		e.last_error[0] = '\0';
		rc = _write_entry(sp->dfd, sp->dir, e.name, &e, err);
		rs_spool_entry_free(&e);
		if (rc)
			goto out;
		if (unlinkat(sp->dead_fd, names[i], 0) < 0 && errno != ENOENT) {
			rc = rs_err_set(err, errno, "spool %s/%s: remove %s: %s", sp->dir, DEAD_DIR,
					names[i], strerror(errno));
			goto out;
		}
		(*moved)++;
	}
out:
	rs_spool_names_free(names, n);
	return rc;
}

int rs_spool_lock(rs_spool_t *sp, long wait_ms, rs_err_t *err)
{
	struct timespec start, now;
	struct stat st;
	long nap_ms = 5;
	int fd;

	if (sp->lock_fd >= 0)
		return 0;
	fd = openat(sp->dfd, LOCK_FILE, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return rs_err_set(err, errno, "spool %s: lock: %s", sp->dir, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		close(fd);
		return rs_err_set(err, EPERM, "spool %s: lock file is not a regular file owned "
				  "by uid %u", sp->dir, (unsigned)geteuid());
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
			sp->lock_fd = fd;
			return 0;
		}
		if (errno != EWOULDBLOCK && errno != EINTR) {
			int e = errno;
			close(fd);
			return rs_err_set(err, e, "spool %s: lock: %s", sp->dir, strerror(e));
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		long spent = (now.tv_sec - start.tv_sec) * 1000 +
			     (now.tv_nsec - start.tv_nsec) / 1000000;
		if (spent >= wait_ms) {
			close(fd);
			return rs_err_set(err, EBUSY, "spool %s: another flush holds the lock",
					  sp->dir);
		}
		/* Polling, not a blocking flock: the wait must have a bound.  The
		 * nap grows from 5 to 50 ms: many jobs ending at once on a node
		 * behind a hanging receiver must not spin. */
		long ms = nap_ms < wait_ms - spent ? nap_ms : wait_ms - spent;
		struct timespec nap = { 0, ms * 1000 * 1000 };
		nanosleep(&nap, NULL);
		if (nap_ms < 50)
			nap_ms *= 2;
	}
}

void rs_spool_unlock(rs_spool_t *sp)
{
	if (sp && sp->lock_fd >= 0) {
		close(sp->lock_fd); /* releases the flock */
		sp->lock_fd = -1;
	}
}

int rs_spool_clean_tmp(rs_spool_t *sp, int64_t max_age_s, rs_err_t *err)
{
	DIR *d = NULL;
	struct dirent *de;
	time_t now = time(NULL);
	int fd, removed = 0;

	fd = openat(sp->dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return rs_err_set(err, errno, "spool %s: %s", sp->dir, strerror(errno));
	d = fdopendir(fd);
	if (!d) {
		int e = errno;
		close(fd);
		return rs_err_set(err, e, "spool %s: %s", sp->dir, strerror(e));
	}
	while ((de = readdir(d))) {
		struct stat st;

		if (strncmp(de->d_name, ".tmp-", 5) != 0)
			continue;
		if (fstatat(sp->dfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if ((int64_t)(now - st.st_mtime) < max_age_s)
			continue;
		if (unlinkat(sp->dfd, de->d_name, 0) == 0)
			removed++;
	}
	closedir(d);
	return removed;
}
