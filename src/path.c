/* path.c - see include/path.h */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "path.h"

int rs_path_normalize(const char *path, char *out, size_t len, rs_err_t *err)
{
	size_t n = 0;
	const char *p = path;

	if (!path || path[0] != '/')
		return rs_err_set(err, EINVAL, "'%s' is not an absolute path",
				  path ? path : "(null)");
	if (len < 2)
		return rs_err_set(err, ENAMETOOLONG, "path buffer too small");
	out[0] = '\0';
	while (*p) {
		const char *start;
		size_t clen;

		while (*p == '/')
			p++;
		if (!*p)
			break;
		start = p;
		while (*p && *p != '/')
			p++;
		clen = (size_t)(p - start);
		if (clen == 1 && start[0] == '.')
			continue;
		if (clen == 2 && start[0] == '.' && start[1] == '.') {
			/* Back to the previous '/', never above the root. */
			while (n > 0 && out[n - 1] != '/')
				n--;
			if (n > 0)
				n--;
			out[n] = '\0';
			continue;
		}
		if (n + 1 + clen + 1 > len)
			return rs_err_set(err, ENAMETOOLONG,
					  "path '%s' is too long", path);
		out[n++] = '/';
		memcpy(out + n, start, clen);
		n += clen;
		out[n] = '\0';
	}
	if (n == 0) {
		out[0] = '/';
		out[1] = '\0';
	}
	return 0;
}

int rs_path_is_under(const char *path, const char *root)
{
	size_t rl = strlen(root);

	if (!strcmp(root, "/"))
		return path[0] == '/';
	if (strncmp(path, root, rl))
		return 0;
	return path[rl] == '\0' || path[rl] == '/';
}

int rs_path_resolve(const char *path, char *out, size_t len, rs_err_t *err)
{
	char norm[PATH_MAX], prefix[PATH_MAX], real[PATH_MAX];
	char joined[PATH_MAX * 2];
	size_t cut;
	int rc;

	rc = rs_path_normalize(path, norm, sizeof(norm), err);
	if (rc)
		return rc;
	/* Walk up until a prefix exists; realpath that, keep the rest. */
	snprintf(prefix, sizeof(prefix), "%s", norm);
	cut = strlen(prefix);
	for (;;) {
		if (realpath(prefix, real))
			break;
		if (errno != ENOENT && errno != ENOTDIR)
			return rs_err_set(err, errno, "resolve %s: %s", prefix,
					  strerror(errno));
		while (cut > 0 && prefix[cut - 1] != '/')
			cut--;
		if (cut <= 1) {
			snprintf(real, sizeof(real), "/");
			cut = 0;
			break;
		}
		prefix[--cut] = '\0';
	}
	snprintf(joined, sizeof(joined), "%s/%s", real, norm + cut);
	return rs_path_normalize(joined, out, len, err);
}

int rs_path_mkdir_p(const char *path, rs_err_t *err)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);
	char *p;

	if (n == 0 || n >= sizeof(buf))
		return rs_err_set(err, ENAMETOOLONG, "create %s: path too long",
				  path);
	memcpy(buf, path, n + 1);
	for (p = buf + 1; ; p++) {
		char c;

		if (*p != '/' && *p != '\0')
			continue;
		c = *p;
		*p = '\0';
		if (mkdir(buf, 0700) < 0 && errno != EEXIST)
			return rs_err_set(err, errno, "create directory %s: %s",
					  buf, strerror(errno));
		*p = c;
		if (c == '\0')
			break;
	}
	return 0;
}
