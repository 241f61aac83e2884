/*
 * send_secret.c - reading the metrics secret files (token, ClickHouse
 * credentials).  Apart from send.c so that what only reads them (the
 * plugin, which checks them as root) never loads libcurl.  See send.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "send.h"

/* ------------------------------------------------------------ secrets --- */

int rs_send_read_secret(const char *path, const char *what, char *buf, size_t size,
			rs_err_t *err)
{
	struct stat st;
	size_t got = 0;
	int fd = -1, rc = 0;

	if (size)
		buf[0] = '\0';
	if (!path || !path[0])
		return rs_err_set(err, EINVAL, "%s: no file given", what);
	if (size < 2)
		return rs_err_set(err, EINVAL, "%s %s: no room", what, path);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		if (e == ELOOP)
			return rs_err_set(err, EPERM, "%s %s: is a symlink; refused", what, path);
		return rs_err_set(err, e, "%s %s: %s", what, path, strerror(e));
	}
	if (fstat(fd, &st) < 0) {
		rc = rs_err_set(err, errno, "%s %s: %s", what, path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = rs_err_set(err, EPERM, "%s %s: not a regular file; refused", what, path);
		goto out;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077)) {
		rc = rs_err_set(err, EPERM, "%s %s: owner uid %u, mode %04o; refused: it must be "
				"owned by uid %u (root on a node) and not accessible to group or "
				"others (chmod 600)", what, path, (unsigned)st.st_uid,
				(unsigned)(st.st_mode & 07777), (unsigned)geteuid());
		goto out;
	}
	if ((size_t)st.st_size >= size) {
		rc = rs_err_set(err, EINVAL, "%s %s: %lld bytes, longer than %zu", what, path,
				(long long)st.st_size, size - 1);
		goto out;
	}
	while (got < size - 1) {
		ssize_t r = read(fd, buf + got, size - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = rs_err_set(err, errno, "%s %s: read: %s", what, path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	buf[got] = '\0';
	while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r' ||
			   buf[got - 1] == ' ' || buf[got - 1] == '\t'))
		buf[--got] = '\0';
	if (got == 0) {
		rc = rs_err_set(err, EINVAL, "%s %s: empty", what, path);
		goto out;
	}
	/* A control character would end or forge an HTTP header line. */
	for (size_t i = 0; i < got; i++) {
		if ((unsigned char)buf[i] < 0x20 || buf[i] == 0x7f) {
			rc = rs_err_set(err, EINVAL, "%s %s: more than one line, or a control "
					"character; expected one line", what, path);
			goto out;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	if (rc)
		explicit_bzero(buf, size);
	return rc;
}

int rs_send_read_credentials(const char *path, const char *what, char *user,
			     size_t usize, char *pass, size_t psize, rs_err_t *err)
{
	char line[RS_SEND_SECRET_MAX];
	char *colon;
	int rc;

	if (usize)
		user[0] = '\0';
	if (psize)
		pass[0] = '\0';
	rc = rs_send_read_secret(path, what, line, sizeof(line), err);
	if (rc)
		return rc;
	colon = strchr(line, ':');
	if (!colon || colon == line) {
		rc = rs_err_set(err, EINVAL, "%s %s: expected one line user:password", what, path);
		goto out;
	}
	*colon = '\0';
	if (strlen(line) >= usize || strlen(colon + 1) >= psize) {
		rc = rs_err_set(err, EINVAL, "%s %s: user or password too long", what, path);
		goto out;
	}
	memcpy(user, line, strlen(line) + 1);
	memcpy(pass, colon + 1, strlen(colon + 1) + 1);
out:
	explicit_bzero(line, sizeof(line));
	return rc;
}
