/* manifest.c - see include/manifest.h */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "manifest.h"
#include "path.h"
#include "safedir.h"

int rs_manifest_open_dir(const char *ckpt_dir, int create, rs_err_t *err)
{
	if (!ckpt_dir || !*ckpt_dir)
		return rs_err_set(err, EINVAL, "checkpoint folder: empty path");
	/* Someone else's folder could hold generations planted for us to
	 * restore, or could be pruned under its owner's feet; a symlink or a
	 * folder others can write to could be swapped: safedir refuses all
	 * three, and creates what is missing 0700. */
	return rs_safedir_open(ckpt_dir, geteuid(),
			       create ? RS_SAFEDIR_CREATE : 0,
			       "checkpoint folder", err);
}

int rs_manifest_open_dir_read(const char *ckpt_dir, rs_err_t *err)
{
	struct stat st;
	int fd, rc;

	fd = rs_manifest_open_dir(ckpt_dir, 0, err);
	/* Reading is not using: an operator (root) may read any job's
	 * history and generations; only writers must own the folder.  Still
	 * never through a symlink at the end, and a folder only. */
	if (fd != -EPERM || geteuid() != 0)
		return fd;
	fd = open(ckpt_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return rs_err_set(err, errno, "open checkpoint folder %s: %s",
				  ckpt_dir, errno == ELOOP ?
				  "is a symbolic link" : strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode)) {
		rc = rs_err_set(err, ENOTDIR, "checkpoint folder %s is not a "
				"folder", ckpt_dir);
		close(fd);
		return rc;
	}
	rs_err_clear(err);
	return fd;
}

int rs_manifest_lock_timeout_ms(void)
{
	const char *s = getenv("RS_CKPT_LOCK_TIMEOUT");
	char *end = NULL;
	long v;

	if (!s || !*s)
		return 30000;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 1 || v > 3600)
		return 30000;
	return (int)(v * 1000);
}

static double _now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int rs_manifest_lock(int dirfd, const char *dir_path, int timeout_ms,
		     int *lockfd, rs_err_t *err)
{
	double deadline = _now() + timeout_ms / 1000.0;
	long sleep_us = 1000;
	int fd;

	*lockfd = -1;
	fd = openat(dirfd, RS_MANIFEST_LOCK,
		    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return rs_err_set(err, errno, "open lock %s/%s: %s", dir_path,
				  RS_MANIFEST_LOCK, strerror(errno));
	/* Poll with LOCK_NB rather than block: a holder that hangs (a node
	 * stuck on a dead file server) must not hang us with it. */
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			break;
		if (errno != EWOULDBLOCK && errno != EINTR) {
			int e = errno;
			close(fd);
			return rs_err_set(err, e, "lock %s/%s: %s", dir_path,
					  RS_MANIFEST_LOCK, strerror(e));
		}
		if (_now() >= deadline) {
			close(fd);
			return rs_err_set(err, ETIMEDOUT,
					  "lock %s/%s: still held by another "
					  "process after %d ms; giving up",
					  dir_path, RS_MANIFEST_LOCK, timeout_ms);
		}
		usleep(sleep_us);
		if (sleep_us < 50000)
			sleep_us *= 2;
	}
	*lockfd = fd;
	return 0;
}

void rs_manifest_unlock(int lockfd)
{
	if (lockfd >= 0)
		close(lockfd); /* closing the only fd drops the flock */
}

int rs_manifest_read_json_at(int dirfd, const char *dir_path,
			     const char *name, json_object **obj,
			     rs_err_t *err)
{
	return rs_manifest_read_json_max_at(dirfd, dir_path, name,
					    RS_MANIFEST_MAX_BYTES, obj, err);
}

int rs_manifest_read_json_max_at(int dirfd, const char *dir_path,
				 const char *name, size_t max_bytes,
				 json_object **obj, rs_err_t *err)
{
	struct json_tokener *tok = NULL;
	json_object *o = NULL;
	char *buf = NULL;
	struct stat st;
	size_t len = 0, size;
	int fd = -1, rc = 0;

	*obj = NULL;
	if (max_bytes > INT_MAX - 1)
		max_bytes = INT_MAX - 1;   /* json_tokener takes an int */
	/* O_NONBLOCK: root's CLI must not hang on a FIFO named
	 * manifest.json; O_NOFOLLOW: nor read a link to /etc/shadow. */
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		    O_CLOEXEC);
	if (fd < 0) {
		rc = rs_err_set(err, errno, "read %s/%s: %s", dir_path, name,
				errno == ELOOP ? "is a symbolic link" :
				strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		rc = rs_err_set(err, errno, "read %s/%s: %s", dir_path, name,
				strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = rs_err_set(err, EBADMSG, "read %s/%s: not a regular file; "
				"remove it", dir_path, name);
		goto out;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > max_bytes) {
		rc = rs_err_set(err, EFBIG, "read %s/%s: %lld bytes, more "
				"than the %zu this file may have; it is not "
				"ours or is damaged", dir_path, name,
				(long long)st.st_size, max_bytes);
		goto out;
	}
	size = (size_t)st.st_size;
	buf = malloc(size + 1);
	if (!buf) {
		rc = rs_err_set(err, ENOMEM, "read %s/%s: out of memory",
				dir_path, name);
		goto out;
	}
	/* At most the size fstat saw: a file that grows is read short and
	 * fails to parse rather than read without end. */
	while (len < size) {
		ssize_t n = read(fd, buf + len, size - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = rs_err_set(err, errno, "read %s/%s: %s", dir_path,
					name, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	tok = json_tokener_new();
	if (!tok) {
		rc = rs_err_set(err, ENOMEM, "parse %s/%s: out of memory",
				dir_path, name);
		goto out;
	}
	o = json_tokener_parse_ex(tok, buf, (int)len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    tok->char_offset != (int)len ||
	    !json_object_is_type(o, json_type_object)) {
		rc = rs_err_set(err, EBADMSG, "parse %s/%s: not a JSON object "
				"(%s)", dir_path, name,
				json_tokener_error_desc(json_tokener_get_error(tok)));
		goto out;
	}
	*obj = o;
	o = NULL;
out:
	json_object_put(o);
	if (tok)
		json_tokener_free(tok);
	free(buf);
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Reject the keys this module owns when they have the wrong shape, so a
 * hand-edited manifest fails loudly instead of being half understood. */
static int _validate(json_object *root, const char *dir_path, rs_err_t *err)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(root, "schema", &v) ||
	    !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) < 1)
		return rs_err_set(err, EBADMSG, "manifest %s/%s: \"schema\" "
				  "missing or not a positive integer", dir_path,
				  RS_MANIFEST_NAME);
	if (json_object_object_get_ex(root, "next_gen", &v) &&
	    (!json_object_is_type(v, json_type_int) ||
	     json_object_get_int64(v) < 1 ||
	     json_object_get_int64(v) > 999999 + 1))
		return rs_err_set(err, EBADMSG, "manifest %s/%s: \"next_gen\" "
				  "is not an integer in 1..1000000", dir_path,
				  RS_MANIFEST_NAME);
	if (json_object_object_get_ex(root, "generations", &v) &&
	    !json_object_is_type(v, json_type_array))
		return rs_err_set(err, EBADMSG, "manifest %s/%s: "
				  "\"generations\" is not an array", dir_path,
				  RS_MANIFEST_NAME);
	return 0;
}

int rs_manifest_read_at(int dirfd, const char *dir_path, json_object **root,
			rs_err_t *err)
{
	json_object *o = NULL;
	int rc;

	*root = NULL;
	rc = rs_manifest_read_json_at(dirfd, dir_path, RS_MANIFEST_NAME, &o,
				      err);
	if (rc == -ENOENT) {
		o = json_object_new_object();
		if (!o)
			return rs_err_set(err, ENOMEM, "manifest: out of memory");
		json_object_object_add(o, "schema",
				       json_object_new_int(RS_MANIFEST_SCHEMA));
		json_object_object_add(o, "next_gen", json_object_new_int(1));
		json_object_object_add(o, "generations",
				       json_object_new_array());
		rs_err_clear(err);
		*root = o;
		return 0;
	}
	if (rc < 0)
		return rc;
	rc = _validate(o, dir_path, err);
	if (rc < 0) {
		json_object_put(o);
		return rc;
	}
	*root = o;
	return 0;
}

int rs_manifest_read(const char *ckpt_dir, json_object **root, rs_err_t *err)
{
	int fd, rc;

	*root = NULL;
	fd = rs_manifest_open_dir_read(ckpt_dir, err);
	if (fd < 0)
		return fd;
	rc = rs_manifest_read_at(fd, ckpt_dir, root, err);
	close(fd);
	return rc;
}

json_object *rs_manifest_generations(json_object *root)
{
	json_object *a = NULL;

	if (json_object_object_get_ex(root, "generations", &a) &&
	    json_object_is_type(a, json_type_array))
		return a;
	a = json_object_new_array();
	json_object_object_add(root, "generations", a);
	return a;
}

static int _write_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int rs_manifest_write_json_at(int dirfd, const char *dir_path,
			      const char *name, json_object *obj,
			      rs_err_t *err)
{
	return rs_manifest_write_json_at2(dirfd, dir_path, name, obj, 1, err);
}

int rs_manifest_write_json_at2(int dirfd, const char *dir_path,
			       const char *name, json_object *obj,
			       int sync_dir, rs_err_t *err)
{
	char tmp[NAME_MAX + 1];
	const char *s;
	size_t len = 0;
	int fd = -1, rc = 0, e;

	/* The pid keeps two writers on different nodes from sharing a temp
	 * name; the caller's lock keeps them from racing on the rename. */
	if (snprintf(tmp, sizeof(tmp), ".%s.tmp-%ld", name,
		     (long)getpid()) >= (int)sizeof(tmp))
		return rs_err_set(err, ENAMETOOLONG, "write %s/%s: name too "
				  "long", dir_path, name);
	s = json_object_to_json_string_length(obj, JSON_C_TO_STRING_PRETTY |
					      JSON_C_TO_STRING_NOSLASHESCAPE,
					      &len);
	if (!s)
		return rs_err_set(err, ENOMEM, "write %s/%s: out of memory",
				  dir_path, name);
	unlinkat(dirfd, tmp, 0);
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		    O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = rs_err_set(err, errno, "write %s/%s: %s", dir_path, tmp,
				strerror(errno));
		goto out;
	}
	if ((e = _write_all(fd, s, len)) < 0 || (e = _write_all(fd, "\n", 1)) < 0) {
		rc = rs_err_set(err, -e, "write %s/%s: %s", dir_path, tmp,
				strerror(-e));
		goto out;
	}
	/* Data durable before the rename makes it visible, or a crash could
	 * leave a zero-length file under the real name. */
	if (fsync(fd) < 0) {
		rc = rs_err_set(err, errno, "fsync %s/%s: %s", dir_path, tmp,
				strerror(errno));
		goto out;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = rs_err_set(err, errno, "write %s/%s: %s", dir_path, tmp,
				strerror(errno));
		goto out;
	}
	fd = -1;
	if (renameat(dirfd, tmp, dirfd, name) < 0) {
		rc = rs_err_set(err, errno, "rename %s/%s to %s: %s", dir_path,
				tmp, name, strerror(errno));
		goto out;
	}
	if (sync_dir && fsync(dirfd) < 0) {
		rc = rs_err_set(err, errno, "fsync %s: %s", dir_path,
				strerror(errno));
		goto out;
	}
out:
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		unlinkat(dirfd, tmp, 0);
	return rc;
}

int rs_manifest_write_at(int dirfd, const char *dir_path, json_object *root,
			 rs_err_t *err)
{
	json_object *v = NULL;

	if (json_object_object_get_ex(root, "schema", &v) &&
	    json_object_get_int64(v) > RS_MANIFEST_SCHEMA)
		return rs_err_set(err, EPROTONOSUPPORT, "write manifest %s/%s: "
				  "schema %lld is newer than this program's (%d);"
				  " not rewriting it", dir_path, RS_MANIFEST_NAME,
				  (long long)json_object_get_int64(v),
				  RS_MANIFEST_SCHEMA);
	if (!v)
		json_object_object_add(root, "schema",
				       json_object_new_int(RS_MANIFEST_SCHEMA));
	return rs_manifest_write_json_at(dirfd, dir_path, RS_MANIFEST_NAME,
					 root, err);
}

int rs_manifest_update(const char *ckpt_dir, rs_manifest_fn fn, void *arg,
		       rs_err_t *err)
{
	json_object *root = NULL;
	int dfd = -1, lfd = -1, rc;

	dfd = rs_manifest_open_dir(ckpt_dir, 1, err);
	if (dfd < 0)
		return dfd;
	rc = rs_manifest_lock(dfd, ckpt_dir, rs_manifest_lock_timeout_ms(),
			      &lfd, err);
	if (rc < 0)
		goto out;
	rc = rs_manifest_read_at(dfd, ckpt_dir, &root, err);
	if (rc < 0)
		goto out;
	rc = fn(root, arg, err);
	if (rc < 0)
		goto out;
	if (rc == RS_MANIFEST_UNCHANGED) {
		rc = 0;
		goto out;
	}
	rc = rs_manifest_write_at(dfd, ckpt_dir, root, err);
out:
	json_object_put(root);
	rs_manifest_unlock(lfd);
	if (dfd >= 0)
		close(dfd);
	return rc;
}

int64_t rs_manifest_num(json_object *o, const char *k, int64_t dflt,
			int64_t lo, int64_t hi)
{
	json_object *v;
	int64_t n;

	if (!o || !json_object_object_get_ex(o, k, &v))
		return dflt;
	switch (json_object_get_type(v)) {
	case json_type_boolean:
		n = json_object_get_boolean(v) ? 1 : 0;
		break;
	case json_type_int:
		/* json-c clamps what does not fit an int64 to its limits;
		 * those are out of every range a caller uses. */
		n = json_object_get_int64(v);
		if (n == INT64_MAX || n == INT64_MIN)
			return dflt;
		break;
	case json_type_double: {
		double d = json_object_get_double(v);

		/* The range first: converting a double outside int64 (or
		 * NaN) is undefined behaviour. */
		if (!isfinite(d) || d < (double)lo || d > (double)hi ||
		    d < -9223372036854775808.0 || d >= 9223372036854775808.0)
			return dflt;
		n = (int64_t)d;
		break;
	}
	default:
		return dflt;
	}
	return n < lo || n > hi ? dflt : n;
}

double rs_manifest_seconds(json_object *o, const char *k, double max)
{
	json_object *v;
	double d;

	if (!o || !json_object_object_get_ex(o, k, &v) ||
	    !(json_object_is_type(v, json_type_double) ||
	      json_object_is_type(v, json_type_int)))
		return 0;
	d = json_object_get_double(v);
	return isfinite(d) && d >= 0 && d <= max ? d : 0;
}
