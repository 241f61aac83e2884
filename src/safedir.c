/*
 * safedir.c - see include/safedir.h.
 *
 * A walk in the manner of OpenSSH's safe_path() and systemd's chase(),
 * without openat2() (RHEL 8 nodes run 4.18): one component at a time,
 * every directory opened with O_NOFOLLOW relative to its parent's
 * descriptor and judged by fstat() on the descriptor we will go on from,
 * so what is checked is what is used.  Intermediate folders are opened
 * O_PATH (search permission is all a walk needs: /home may be 0711); the
 * final one O_RDONLY.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safedir.h"

/* Symlinks followed in one walk (the kernel allows 40). */
#define HOPS_MAX 32
/* Times a component may change under us (mkdir race, a folder swapped for
 * a symlink between fstatat and openat) before we give up. */
#define RACE_MAX 8

struct walk {
	const char *path;   /* as given, for messages */
	const char *what;   /* role of the folder, for messages */
	uid_t owner;
	int flags;
	char shown[PATH_MAX];  /* the folders walked so far, for messages */
	rs_err_t *err;
};

static const char *_what(const struct walk *w)
{
	return w->what ? w->what : "folder";
}

/* Append "/name" to what the messages show (truncation only shortens a
 * message). */
static void _shown_push(struct walk *w, const char *name)
{
	size_t n = strlen(w->shown);

	if (n == 1)  /* "/" */
		n = 0;
	snprintf(w->shown + n, sizeof(w->shown) - n, "/%s", name);
}

static void _shown_pop(struct walk *w)
{
	char *s = strrchr(w->shown, '/');

	if (s && s != w->shown)
		*s = '\0';
	else
		snprintf(w->shown, sizeof(w->shown), "/");
}

/* Rules for a folder on the way (not the final one). */
static int _check_mid(const struct walk *w, const struct stat *st)
{
	unsigned mode = (unsigned)st->st_mode & 07777;

	if (w->flags & RS_SAFEDIR_STRICT) {
		if (st->st_uid != 0 && st->st_uid != w->owner)
			return rs_err_set(w->err, EPERM, "%s %s: folder %s on "
					  "the way is owned by uid %u, not by "
					  "root or uid %u: move the %s to a "
					  "folder only root or its owner "
					  "controls", _what(w), w->path,
					  w->shown, (unsigned)st->st_uid,
					  (unsigned)w->owner, _what(w));
		/* A root-owned sticky folder (/tmp) is writable by others,
		 * but nobody else can rename or replace what root or the
		 * owner keeps in it; the next component is judged in turn. */
		if ((mode & 022) && !((mode & S_ISVTX) && st->st_uid == 0))
			return rs_err_set(w->err, EPERM, "%s %s: folder %s on "
					  "the way has mode %04o (writable by "
					  "group or others): run chmod go-w %s "
					  "or move the %s", _what(w), w->path,
					  w->shown, mode, w->shown, _what(w));
		return 0;
	}
	/* Anyone may rename or replace what is in a world-writable folder
	 * unless the sticky bit (as on /tmp) protects its entries. */
	if ((mode & 002) && !(mode & S_ISVTX))
		return rs_err_set(w->err, EPERM, "%s %s: folder %s on the way "
				  "is writable by everyone and has no sticky "
				  "bit (mode %04o), so anyone can swap what is "
				  "in it: run chmod +t %s or choose another "
				  "folder", _what(w), w->path, w->shown, mode,
				  w->shown);
	return 0;
}

/* Rules for the folder itself, on its open descriptor. */
static int _check_final(const struct walk *w, const struct stat *st)
{
	unsigned mode = (unsigned)st->st_mode & 07777;

	if (!S_ISDIR(st->st_mode))
		return rs_err_set(w->err, ENOTDIR, "%s %s is not a folder",
				  _what(w), w->path);
	if (st->st_uid != w->owner)
		return rs_err_set(w->err, EPERM, "%s %s is owned by uid %u, "
				  "not by you (uid %u): remove it or choose "
				  "another folder", _what(w), w->path,
				  (unsigned)st->st_uid, (unsigned)w->owner);
	if (mode & 022)
		return rs_err_set(w->err, EPERM, "%s %s has mode %04o: others "
				  "can write to it; run chmod go-w %s or "
				  "choose another folder", _what(w), w->path,
				  mode, w->path);
	return 0;
}

/* Split off the first component of *rest (skipping '/'s) into name.
 * Returns 1 with a component, 0 at the end, -ENAMETOOLONG. */
static int _next(const char **rest, char *name, size_t len)
{
	const char *p = *rest, *s;

	while (*p == '/')
		p++;
	if (!*p) {
		*rest = p;
		return 0;
	}
	s = p;
	while (*p && *p != '/')
		p++;
	if ((size_t)(p - s) >= len)
		return -ENAMETOOLONG;
	memcpy(name, s, (size_t)(p - s));
	name[p - s] = '\0';
	*rest = p;
	return 1;
}

static int _is_last(const char *rest)
{
	while (*rest == '/')
		rest++;
	return !*rest;
}

/* The user's own path: absolute, no "." or "..", not too long. */
static int _check_syntax(const struct walk *w)
{
	const char *p = w->path;
	char name[NAME_MAX + 1];
	int r;

	if (!p || p[0] != '/')
		return rs_err_set(w->err, EINVAL, "%s '%s' is not an absolute "
				  "path", _what(w), p ? p : "(null)");
	if (strlen(p) >= PATH_MAX)
		return rs_err_set(w->err, ENAMETOOLONG, "%s: path longer than "
				  "%d bytes", _what(w), PATH_MAX - 1);
	while ((r = _next(&p, name, sizeof(name))) == 1)
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			return rs_err_set(w->err, EINVAL, "%s %s: '%s' is not "
					  "allowed in the path; give the "
					  "folder's own path", _what(w),
					  w->path, name);
	if (r < 0)
		return rs_err_set(w->err, ENAMETOOLONG, "%s %s: a name in the "
				  "path is longer than %d bytes", _what(w),
				  w->path, NAME_MAX);
	return 0;
}

/* Open "/" and check it as a folder on the way. */
static int _open_root(struct walk *w)
{
	struct stat st;
	int fd, rc;

	fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return rs_err_set(w->err, errno, "%s %s: open /: %s", _what(w),
				  w->path, strerror(errno));
	snprintf(w->shown, sizeof(w->shown), "/");
	if (fstat(fd, &st) < 0) {
		rc = rs_err_set(w->err, errno, "%s %s: stat /: %s", _what(w),
				w->path, strerror(errno));
		close(fd);
		return rc;
	}
	if ((rc = _check_mid(w, &st)) < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

/* The walk ended on the folder cur itself (path "/", or a symlink on the
 * way whose target ends in "." or ".."): reopen it readable and judge it
 * as the final folder. */
static int _finish_here(struct walk *w, int cur)
{
	struct stat st;
	int fd, rc;

	fd = openat(cur, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return rs_err_set(w->err, errno, "%s %s: %s", _what(w),
				  w->path, strerror(errno));
	if (fstat(fd, &st) < 0)
		rc = rs_err_set(w->err, errno, "%s %s: %s", _what(w), w->path,
				strerror(errno));
	else
		rc = _check_final(w, &st);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	return fd;
}

int rs_safedir_open(const char *path, uid_t owner, int flags,
		    const char *what, rs_err_t *err)
{
	struct walk w = { .path = path, .what = what, .owner = owner,
			  .flags = flags, .err = err };
	char todo[PATH_MAX], next[PATH_MAX], target[PATH_MAX];
	char name[NAME_MAX + 1];
	const char *rest;
	unsigned hops = 0, races = 0;
	int cur = -1, rc, r, e;

	rc = _check_syntax(&w);
	if (rc < 0)
		return rc;
	snprintf(todo, sizeof(todo), "%s", path);
	rest = todo;
	cur = _open_root(&w);
	if (cur < 0)
		return cur;
	for (;;) {
		struct stat st;
		int last, created = 0, nfd;

		r = _next(&rest, name, sizeof(name));
		if (r < 0) {
			rc = rs_err_set(err, ENAMETOOLONG, "%s %s: a name on "
					"the way is too long", _what(&w), path);
			goto fail;
		}
		if (r == 0) {
			/* Only reached when the path (or what a symlink on
			 * the way said) ends at "/" itself. */
			rc = _finish_here(&w, cur);
			close(cur);
			return rc;
		}
		last = _is_last(rest);
		/* ".." only ever comes from a symlink target (the user's
		 * path has none): go up, physically, and check where we
		 * land like any folder on the way. */
		if (!strcmp(name, ".") || !strcmp(name, "..")) {
			if (name[1] == '.') {
				nfd = openat(cur, "..", O_PATH | O_DIRECTORY |
					     O_CLOEXEC);
				if (nfd < 0) {
					rc = rs_err_set(err, errno, "%s %s: "
							"open %s/..: %s",
							_what(&w), path,
							w.shown,
							strerror(errno));
					goto fail;
				}
				close(cur);
				cur = nfd;
				_shown_pop(&w);
				if (fstat(cur, &st) < 0) {
					rc = rs_err_set(err, errno, "%s %s: "
							"stat %s: %s",
							_what(&w), path,
							w.shown,
							strerror(errno));
					goto fail;
				}
				if ((rc = _check_mid(&w, &st)) < 0)
					goto fail;
			}
			if (last) {
				rc = _finish_here(&w, cur);
				close(cur);
				return rc;
			}
			continue;
		}
	again:
		if (fstatat(cur, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT && (flags & RS_SAFEDIR_CREATE)) {
				if (mkdirat(cur, name, 0700) == 0) {
					created = 1;
					goto again;
				}
				if (errno != EEXIST) {
					rc = rs_err_set(err, errno, "%s %s: "
							"create folder %s/%s: "
							"%s", _what(&w), path,
							strcmp(w.shown, "/") ?
							w.shown : "", name,
							strerror(errno));
					goto fail;
				}
				/* Someone made it between our look and our
				 * mkdir: look again, it is not ours. */
				if (++races > RACE_MAX)
					goto raced;
				goto again;
			}
			e = errno;
			_shown_push(&w, name);
			if (e == ENOENT && last && !strcmp(w.shown, path))
				rc = rs_err_set(err, e, "%s %s does not exist",
						_what(&w), path);
			else if (e == ENOENT)
				rc = rs_err_set(err, e, "%s %s: folder %s does "
						"not exist", _what(&w), path,
						w.shown);
			else
				rc = rs_err_set(err, e, "%s %s: %s: %s",
						_what(&w), path, w.shown,
						strerror(e));
			goto fail;
		}
		if (S_ISLNK(st.st_mode)) {
			ssize_t n;

			_shown_push(&w, name);
			if (last) {
				rc = rs_err_set(err, ELOOP, "%s %s is a symbolic "
						"link; give the folder itself",
						_what(&w), path);
				goto fail;
			}
			if (flags & RS_SAFEDIR_STRICT) {
				rc = rs_err_set(err, ELOOP, "%s %s: %s on the "
						"way is a symbolic link; give "
						"the real path", _what(&w),
						path, w.shown);
				goto fail;
			}
			if (st.st_uid != 0 && st.st_uid != owner) {
				rc = rs_err_set(err, EPERM, "%s %s: symbolic "
						"link %s on the way is owned by "
						"uid %u, not by root or you (uid "
						"%u); give the real path",
						_what(&w), path, w.shown,
						(unsigned)st.st_uid,
						(unsigned)owner);
				goto fail;
			}
			if (++hops > HOPS_MAX) {
				rc = rs_err_set(err, ELOOP, "%s %s: more than "
						"%d symbolic links on the way",
						_what(&w), path, HOPS_MAX);
				goto fail;
			}
			n = readlinkat(cur, name, target, sizeof(target) - 1);
			if (n < 0) {
				if (errno == EINVAL && ++races <= RACE_MAX) {
					_shown_pop(&w);
					goto again; /* no longer a link */
				}
				rc = rs_err_set(err, errno, "%s %s: read link "
						"%s: %s", _what(&w), path,
						w.shown, strerror(errno));
				goto fail;
			}
			target[n] = '\0';
			_shown_pop(&w);
			if (n == 0 || snprintf(next, sizeof(next), "%s/%s",
					       target, rest) >=
			    (int)sizeof(next)) {
				rc = rs_err_set(err, n ? ENAMETOOLONG : ENOENT,
						"%s %s: symbolic link %s/%s on "
						"the way is %s", _what(&w),
						path, strcmp(w.shown, "/") ?
						w.shown : "", name,
						n ? "too long to follow" :
						"empty");
				goto fail;
			}
			memcpy(todo, next, sizeof(todo));
			rest = todo;
			if (target[0] == '/') {
				close(cur);
				cur = _open_root(&w);
				if (cur < 0)
					return cur;
			}
			continue;
		}
		if (!S_ISDIR(st.st_mode)) {
			_shown_push(&w, name);
			rc = rs_err_set(err, ENOTDIR, "%s %s: %s is not a "
					"folder", _what(&w), path, w.shown);
			goto fail;
		}
		nfd = openat(cur, name, (last ? O_RDONLY : O_PATH) |
			     O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (nfd < 0) {
			/* Swapped for a symlink or a file since fstatat. */
			if ((errno == ELOOP || errno == ENOTDIR ||
			     errno == ENOENT) && ++races <= RACE_MAX)
				goto again;
			_shown_push(&w, name);
			rc = rs_err_set(err, errno, "%s %s: open %s: %s",
					_what(&w), path, w.shown,
					strerror(errno));
			goto fail;
		}
		close(cur);
		cur = nfd;
		_shown_push(&w, name);
		/* mkdir honours the umask; the contract says 0700. */
		if (created && last && fchmod(cur, 0700) < 0) {
			rc = rs_err_set(err, errno, "%s %s: chmod 0700: %s",
					_what(&w), path, strerror(errno));
			goto fail;
		}
		if (fstat(cur, &st) < 0) {
			rc = rs_err_set(err, errno, "%s %s: stat %s: %s",
					_what(&w), path, w.shown,
					strerror(errno));
			goto fail;
		}
		rc = last ? _check_final(&w, &st) : _check_mid(&w, &st);
		if (rc < 0)
			goto fail;
		if (last)
			return cur;
	}
raced:
	rc = rs_err_set(err, EAGAIN, "%s %s: %s/%s keeps changing while we "
			"look at it; try again", _what(&w), path,
			strcmp(w.shown, "/") ? w.shown : "", name);
fail:
	if (cur >= 0)
		close(cur);
	return rc;
}

int rs_safedir_fd_path(int fd, char *buf, size_t len)
{
	int n;

	if (fd < 0 || !buf)
		return -EINVAL;
	n = snprintf(buf, len, "/proc/self/fd/%d", fd);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	return 0;
}
