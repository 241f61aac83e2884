/* path.c - see include/path.h */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Drop the last component of an absolute, symlink-free path ("" is /). */
static void _pop(char *res)
{
	char *sl = strrchr(res, '/');

	if (sl)
		*sl = '\0';
}

int rs_path_resolve(const char *path, char *out, size_t len, rs_err_t *err)
{
	/* res is always free of symlinks and of "." and "..": made of
	 * components looked at one by one (links replaced by their targets)
	 * and of components that do not exist.  So ".." applied to it is
	 * the physical parent: ROOT/link/../x is judged by where link goes,
	 * not collapsed to ROOT/x first. */
	char todo[PATH_MAX * 2], next[PATH_MAX * 2], target[PATH_MAX];
	char res[PATH_MAX], name[NAME_MAX + 1];
	const char *rest;
	unsigned hops = 0;
	int exists = 1;

	if (!path || path[0] != '/')
		return rs_err_set(err, EINVAL, "'%s' is not an absolute path",
				  path ? path : "(null)");
	if (strlen(path) >= sizeof(todo))
		return rs_err_set(err, ENAMETOOLONG, "path '%s' is too long",
				  path);
	snprintf(todo, sizeof(todo), "%s", path);
	rest = todo;
	res[0] = '\0';
	for (;;) {
		struct stat st;
		const char *s;
		size_t rl = strlen(res), nl;
		ssize_t n;

		while (*rest == '/')
			rest++;
		if (!*rest)
			break;
		s = rest;
		while (*rest && *rest != '/')
			rest++;
		nl = (size_t)(rest - s);
		if (nl > NAME_MAX)
			return rs_err_set(err, ENAMETOOLONG, "resolve %s: a "
					  "name is too long", path);
		memcpy(name, s, nl);
		name[nl] = '\0';
		if (!strcmp(name, "."))
			continue;
		if (!strcmp(name, "..")) {
			_pop(res);
			exists = 1;  /* back where things may exist: look */
			continue;
		}
		if (rl + 1 + nl >= sizeof(res))
			return rs_err_set(err, ENAMETOOLONG, "path '%s' is too "
					  "long", path);
		res[rl] = '/';
		memcpy(res + rl + 1, name, nl + 1);
		if (!exists)
			continue;
		if (lstat(res, &st) < 0) {
			if (errno != ENOENT && errno != ENOTDIR)
				return rs_err_set(err, errno, "resolve %s: %s",
						  res, strerror(errno));
			exists = 0;  /* nothing below can be a symlink */
			continue;
		}
		if (!S_ISLNK(st.st_mode))
			continue;
		if (++hops > 40)
			return rs_err_set(err, ELOOP, "resolve %s: too many "
					  "symbolic links", path);
		n = readlink(res, target, sizeof(target) - 1);
		if (n < 0)
			return rs_err_set(err, errno, "resolve %s: %s", res,
					  strerror(errno));
		target[n] = '\0';
		if (snprintf(next, sizeof(next), "%s/%s", target, rest) >=
		    (int)sizeof(next))
			return rs_err_set(err, ENAMETOOLONG, "resolve %s: too "
					  "long", path);
		memcpy(todo, next, sizeof(todo));
		rest = todo;
		if (target[0] == '/')
			res[0] = '\0';
		else
			_pop(res);   /* relative to the link's folder */
	}
	if (snprintf(out, len, "%s", res[0] ? res : "/") >= (int)len)
		return rs_err_set(err, ENAMETOOLONG, "path '%s' is too long",
				  path);
	return 0;
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
