/* ckpt_tree.c - see include/ckpt_tree.h */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt_tree.h"
#include "safedir.h"

/* Modes that are reproduced, in both directions (save and restore):
 * never setuid or setgid, which would let whoever planted a file in a
 * scratch or a checkpoint (issue #11) get a setuid binary owned by the
 * job's user; directories keep the sticky bit (a shared /tmp-like folder
 * inside scratch), files lose it. */
#define FILE_MODE(m) ((mode_t)(m) & 0777)
#define DIR_MODE(m)  ((mode_t)(m) & 01777)

#define COPY_BUF (1u << 20)
/* copy_file_range chunk: the unit of early writeback for large files */
#define WB_CHUNK (8 << 20)

static struct {
	rs_ckpt_warn_fn fn;
	void *arg;
} g_warn;

void rs_ckpt_set_warn(rs_ckpt_warn_fn fn, void *arg)
{
	g_warn.fn = fn;
	g_warn.arg = arg;
}

void rs_ckpt_warn(const char *fmt, ...)
{
	static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	char msg[RS_ERR_MAX];
	va_list ap;

	if (!g_warn.fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* Copy workers warn concurrently; the hook need not be reentrant. */
	pthread_mutex_lock(&mu);
	g_warn.fn(g_warn.arg, msg);
	pthread_mutex_unlock(&mu);
}

/* A directory whose entries are still to be copied, waiting for a worker.
 * Holds its three fds; mode and mtime are applied when it is done. */
struct job {
	int s, d, p;          /* source, destination, previous-gen (or -1) */
	int fresh, owned;     /* owned: close the fds and set attributes;
	                       * the root job (on the caller's stack) is not */
	unsigned depth;
	mode_t mode;
	struct timespec mtime;
	char *rel;
	struct job *next;
};

/* Queued directories beyond this are copied by the thread that found them
 * (depth first), which bounds the fds the queue holds (3 per job). */
#define QUEUE_MAX 64

/* What the copy workers share.  mu guards the queue, busy, and the first
 * error; files and stop are read without it (atomics). */
struct shared {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct job *head, *tail;
	size_t qlen;
	unsigned busy;
	unsigned nthreads;
	int stop;
	int rc;
	rs_err_t err;
	unsigned long files;  /* entries done, all workers: the fault hook */
};

/* State of one walk. rel is the path below the roots, for messages. */
struct walk {
	struct shared *sh;
	const rs_ckpt_tree_opts_t *o;
	rs_ckpt_stats_t *st;
	rs_err_t *err;
	const char *src_root;
	const char *dst_root;
	char rel[PATH_MAX];
	size_t rel_len;
	char *buf;         /* read/write fallback buffer, allocated on demand */
	int cfr_broken;    /* copy_file_range refused once: stop trying */
	unsigned max_depth;
};

static double _now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int _push(struct walk *w, const char *name, size_t *saved)
{
	size_t n = strlen(name);

	*saved = w->rel_len;
	if (w->rel_len + 1 + n + 1 > sizeof(w->rel))
		return rs_err_set(w->err, ENAMETOOLONG, "copy %s/%s/%s: path "
				  "too long", w->src_root, w->rel, name);
	if (w->rel_len)
		w->rel[w->rel_len++] = '/';
	memcpy(w->rel + w->rel_len, name, n + 1);
	w->rel_len += n;
	return 0;
}

static void _pop(struct walk *w, size_t saved)
{
	w->rel_len = saved;
	w->rel[saved] = '\0';
}

/* One more entry handled; the fault hook lets the fault tests kill the
 * process at an exact point of a save (never set outside tests). */
static void _tick(struct walk *w)
{
	unsigned long n = __atomic_add_fetch(&w->sh->files, 1,
					     __ATOMIC_RELAXED);

	w->st->files++;
	if (w->o->fault_after_files && n >= w->o->fault_after_files)
		raise(SIGKILL);
}

static void _changed(struct walk *w, const char *what)
{
	w->st->changed++;
	rs_ckpt_warn("checkpoint: %s/%s %s while being read; the checkpoint "
		     "holds what was read", w->src_root, w->rel, what);
}

static int _fsync_timed(struct walk *w, int fd, const char *what)
{
	double t0 = _now();
	int rc = 0;

	if (fsync(fd) < 0)
		rc = rs_err_set(w->err, errno, "fsync %s/%s: %s", what, w->rel,
				strerror(errno));
	w->st->sync_seconds += _now() - t0;
	return rc;
}

/* Make room for name in a directory we did not create ourselves (restore
 * into an existing scratch): a non-directory is unlinked, a directory is
 * removed unless keep_dir and the new entry is a directory too. */
static int _clear_slot(struct walk *w, int ddir, const char *name,
		       int keep_dir, int *is_dir)
{
	struct stat st;

	*is_dir = 0;
	if (fstatat(ddir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return rs_err_set(w->err, errno, "stat %s/%s: %s", w->dst_root,
				  w->rel, strerror(errno));
	}
	if (S_ISDIR(st.st_mode)) {
		if (keep_dir) {
			*is_dir = 1;
			return 0;
		}
		return rs_ckpt_tree_remove(ddir, name, w->err);
	}
	if (unlinkat(ddir, name, 0) < 0 && errno != ENOENT)
		return rs_err_set(w->err, errno, "replace %s/%s: %s",
				  w->dst_root, w->rel, strerror(errno));
	return 0;
}

/* Copy [off, off+len) of in to the same offsets of out.  Returns bytes
 * copied (less than len if in shrank) or -errno. */
/* Start writing [off, off+len) of out to disk now, without waiting.  The
 * final syncfs() then finds most data already written: the disk works
 * while we copy the next files instead of after the last one
 * (docs/performance.md).  Only for large pieces: thousands of small files
 * are better left to syncfs, which writes them in one sorted batch.  Only
 * a hint: errors surface at the syncfs. */
static void _kick(struct walk *w, int out, off_t off, off_t len)
{
	if (len >= (1 << 20) && w->o->sync == RS_CKPT_SYNC_SYNCFS &&
	    w->o->early_writeback)
		sync_file_range(out, off, len, SYNC_FILE_RANGE_WRITE);
}

static int64_t _copy_range(struct walk *w, int in, int out, off_t off,
			   off_t len)
{
	off_t done = 0;

	while (!w->cfr_broken && done < len) {
		loff_t ioff = off + done, ooff = off + done;
		size_t chunk = (size_t)(len - done > WB_CHUNK ? WB_CHUNK
					: len - done);
		ssize_t n = copy_file_range(in, &ioff, out, &ooff, chunk, 0);
		if (n > 0) {
			_kick(w, out, off + done, n);
			done += n;
			continue;
		}
		if (n == 0)
			return done; /* end of file came early: it shrank */
		if (errno == EINTR)
			continue;
		/* Not supported between these files (other file system,
		 * old kernel, special file system): read/write instead. */
		if (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
		    errno == EOPNOTSUPP || errno == EBADF) {
			w->cfr_broken = 1;
			break;
		}
		return -errno;
	}
	if (done < len && !w->buf) {
		w->buf = malloc(COPY_BUF);
		if (!w->buf)
			return -ENOMEM;
	}
	while (done < len) {
		size_t chunk = (size_t)(len - done > COPY_BUF ? COPY_BUF
					: len - done);
		ssize_t n = pread(in, w->buf, chunk, off + done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return done;
		for (ssize_t p = 0; p < n; ) {
			ssize_t m = pwrite(out, w->buf + p, (size_t)(n - p),
					   off + done + p);
			if (m < 0 && errno == EINTR)
				continue;
			if (m < 0)
				return -errno;
			p += m;
		}
		_kick(w, out, off + done, n);
		done += n;
	}
	return done;
}

/* Copy the data of in (stat st) to out, keeping holes.  *copied gets the
 * data bytes written; *shrank is set when in ended before st->st_size. */
static int _copy_data(struct walk *w, int in, int out, const struct stat *st,
		      uint64_t *copied, int *shrank)
{
	off_t size = st->st_size, off = 0;
	int64_t n;

	*copied = 0;
	*shrank = 0;
	/* Fewer allocated blocks than the size says: there are holes worth
	 * looking for.  A dense file goes in one copy_file_range run. */
	if ((off_t)st->st_blocks * 512 < size) {
		while (off < size) {
			off_t data = lseek(in, off, SEEK_DATA), hole;
			if (data < 0 && errno == ENXIO)
				break;  /* only a hole is left */
			if (data < 0)
				goto dense; /* SEEK_DATA unsupported */
			hole = lseek(in, data, SEEK_HOLE);
			if (hole < 0)
				goto dense;
			if (hole > size)
				hole = size;
			n = _copy_range(w, in, out, data, hole - data);
			if (n < 0)
				return (int)n;
			*copied += (uint64_t)n;
			if (n < hole - data) {
				*shrank = 1;
				break;
			}
			off = hole;
		}
		/* The tail hole has no data to write: the size makes it. */
		if (ftruncate(out, size) < 0)
			return -errno;
		return 0;
	}
dense:
	n = _copy_range(w, in, out, off, size - off);
	if (n < 0)
		return (int)n;
	*copied += (uint64_t)n;
	if (n < size - off)
		*shrank = 1;
	return 0;
}

static int _same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static int _copy_file(struct walk *w, int sdir, int ddir, int pdir,
		      const char *name, const struct stat *pre, int fresh)
{
	struct timespec times[2];
	struct stat st, post, ps;
	uint64_t copied = 0;
	int in = -1, out = -1, rc = 0, shrank = 0, is_dir;

	/* Unchanged since the previous generation: a hard link costs one
	 * metadata operation instead of a data copy.  Same type, mode, size
	 * and mtime to the nanosecond (the previous copy was given the
	 * source's mtime, or an impossible one if it changed while read). */
	if (pdir >= 0 &&
	    fstatat(pdir, name, &ps, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (ps.st_mode & (S_IFMT | 0777)) ==
	    (pre->st_mode & (S_IFMT | 0777)) && ps.st_size == pre->st_size &&
	    _same_time(&ps.st_mtim, &pre->st_mtim)) {
		if (linkat(pdir, name, ddir, name, 0) == 0) {
			w->st->bytes_linked += (uint64_t)pre->st_size;
			w->st->bytes += (uint64_t)pre->st_size;
			_tick(w);
			return 0;
		}
		/* EMLINK (too many links), EXDEV, a pruned generation: copy. */
	}
	/* O_NONBLOCK: if the file was swapped for a FIFO since fstatat,
	 * opening it must not hang the checkpoint. */
	in = openat(sdir, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
		    O_CLOEXEC | O_NOCTTY);
	if (in < 0) {
		if (errno == ENOENT || errno == ELOOP) {
			_changed(w, "vanished");
			goto out;
		}
		rc = rs_err_set(w->err, errno, "read %s/%s: %s", w->src_root,
				w->rel, strerror(errno));
		goto out;
	}
	if (fstat(in, &st) < 0) {
		rc = rs_err_set(w->err, errno, "stat %s/%s: %s", w->src_root,
				w->rel, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		_changed(w, "changed type");
		goto out;
	}
	if (!fresh && (rc = _clear_slot(w, ddir, name, 0, &is_dir)) < 0)
		goto out;
	out = openat(ddir, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
		     O_CLOEXEC, 0600);
	if (out < 0) {
		rc = rs_err_set(w->err, errno, "create %s/%s: %s", w->dst_root,
				w->rel, strerror(errno));
		goto out;
	}
	rc = _copy_data(w, in, out, &st, &copied, &shrank);
	w->st->bytes_copied += copied;
	if (rc < 0) {
		rc = rs_err_set(w->err, -rc, "copy %s/%s to %s/%s: %s",
				w->src_root, w->rel, w->dst_root, w->rel,
				strerror(-rc));
		goto out;
	}
	times[0].tv_sec = 0;
	times[0].tv_nsec = UTIME_OMIT;
	times[1] = st.st_mtim;
	if (fstat(in, &post) < 0 || shrank || post.st_size != st.st_size ||
	    !_same_time(&post.st_mtim, &st.st_mtim) ||
	    !_same_time(&post.st_ctim, &st.st_ctim)) {
		_changed(w, "changed");
		/* An mtime the source never had, so the next save copies the
		 * file again instead of hard-linking a torn copy. */
		if (times[1].tv_nsec > 0) {
			times[1].tv_nsec--;
		} else {
			times[1].tv_sec--;
			times[1].tv_nsec = 999999999;
		}
	}
	if (fchmod(out, FILE_MODE(st.st_mode)) < 0 || futimens(out, times) < 0) {
		rc = rs_err_set(w->err, errno, "set mode/mtime of %s/%s: %s",
				w->dst_root, w->rel, strerror(errno));
		goto out;
	}
	if (w->o->sync == RS_CKPT_SYNC_FSYNC &&
	    (rc = _fsync_timed(w, out, w->dst_root)) < 0)
		goto out;
	/* close() is where NFS and some parallel file systems report a
	 * failed write. */
	if (close(out) < 0) {
		out = -1;
		rc = rs_err_set(w->err, errno, "write %s/%s: %s", w->dst_root,
				w->rel, strerror(errno));
		goto out;
	}
	out = -1;
	w->st->bytes += (uint64_t)st.st_size;
	_tick(w);
out:
	if (out >= 0)
		close(out);
	if (in >= 0)
		close(in);
	return rc;
}

static int _copy_symlink(struct walk *w, int sdir, int ddir, const char *name,
			 const struct stat *pre, int fresh)
{
	char target[PATH_MAX + 1];
	struct timespec times[2];
	ssize_t n;
	int rc, is_dir;

	n = readlinkat(sdir, name, target, sizeof(target));
	if (n < 0 && (errno == ENOENT || errno == EINVAL)) {
		_changed(w, "vanished");
		return 0;
	}
	if (n < 0)
		return rs_err_set(w->err, errno, "read link %s/%s: %s",
				  w->src_root, w->rel, strerror(errno));
	if ((size_t)n >= sizeof(target))
		return rs_err_set(w->err, ENAMETOOLONG, "read link %s/%s: "
				  "target too long", w->src_root, w->rel);
	target[n] = '\0';
	if (!fresh && (rc = _clear_slot(w, ddir, name, 0, &is_dir)) < 0)
		return rc;
	/* The link itself, never what it points to: a link to /etc/shadow
	 * stays a link to /etc/shadow. */
	if (symlinkat(target, ddir, name) < 0)
		return rs_err_set(w->err, errno, "create symlink %s/%s: %s",
				  w->dst_root, w->rel, strerror(errno));
	times[0].tv_sec = 0;
	times[0].tv_nsec = UTIME_OMIT;
	times[1] = pre->st_mtim;
	if (utimensat(ddir, name, times, AT_SYMLINK_NOFOLLOW) < 0)
		return rs_err_set(w->err, errno, "set mtime of %s/%s: %s",
				  w->dst_root, w->rel, strerror(errno));
	_tick(w);
	return 0;
}

/* Names of a directory, read in one go so no DIR stream stays open while
 * we recurse (that would cost one more fd per level). */
static int _list(int dirfd, char ***names_out, size_t *n_out)
{
	char **names = NULL, **grown;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d = NULL;
	int fd, rc = 0;

	*names_out = NULL;
	*n_out = 0;
	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			rc = -errno;
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			grown = realloc(names, cap * sizeof(*names));
			if (!grown) {
				rc = -ENOMEM;
				break;
			}
			names = grown;
		}
		names[n] = strdup(de->d_name);
		if (!names[n]) {
			rc = -ENOMEM;
			break;
		}
		n++;
	}
	closedir(d);
	if (rc < 0) {
		while (n)
			free(names[--n]);
		free(names);
		return rc;
	}
	*names_out = names;
	*n_out = n;
	return 0;
}

static void _free_list(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

static int _copy_dir(struct walk *w, int sdir, int ddir, int pdir, int fresh,
		     unsigned depth);

/* Hand a directory to the queue if there are other workers and room.
 * Returns 0 if queued (the job owns the fds), -1 if the caller must copy
 * it itself. */
static int _enqueue(struct walk *w, int s, int d, int p, int fresh,
		    unsigned depth, const struct stat *st)
{
	struct shared *sh = w->sh;
	struct job *j;

	if (sh->nthreads < 2 || __atomic_load_n(&sh->qlen, __ATOMIC_RELAXED) >=
	    QUEUE_MAX)
		return -1;
	j = calloc(1, sizeof(*j));
	if (!j)
		return -1;
	j->rel = strdup(w->rel);
	if (!j->rel) {
		free(j);
		return -1;
	}
	j->s = s;
	j->d = d;
	j->p = p;
	j->fresh = fresh;
	j->owned = 1;
	j->depth = depth;
	j->mode = st->st_mode;
	j->mtime = st->st_mtim;
	pthread_mutex_lock(&sh->mu);
	if (sh->tail)
		sh->tail->next = j;
	else
		sh->head = j;
	sh->tail = j;
	sh->qlen++;
	pthread_cond_signal(&sh->cv);
	pthread_mutex_unlock(&sh->mu);
	return 0;
}

static void _free_job(struct job *j)
{
	if (!j->owned)
		return; /* the root: the caller's fds and memory */
	if (j->p >= 0)
		close(j->p);
	close(j->d);
	close(j->s);
	free(j->rel);
	free(j);
}

/* Copy one queued directory's entries, then give it its mode and mtime
 * (its subdirectories' contents do not change its mtime, so they need
 * not be finished). */
static int _run_job(struct walk *w, struct job *j)
{
	struct timespec times[2];
	int rc;

	snprintf(w->rel, sizeof(w->rel), "%s", j->rel);
	w->rel_len = strlen(w->rel);
	rc = _copy_dir(w, j->s, j->d, j->p, j->fresh, j->depth);
	if (rc < 0 || !j->owned)
		return rc;
	times[0].tv_sec = 0;
	times[0].tv_nsec = UTIME_OMIT;
	times[1] = j->mtime;
	if (fchmod(j->d, DIR_MODE(j->mode)) < 0 || futimens(j->d, times) < 0)
		return rs_err_set(w->err, errno, "set mode/mtime of %s/%s: %s",
				  w->dst_root, w->rel, strerror(errno));
	if (w->o->sync == RS_CKPT_SYNC_FSYNC &&
	    (rc = _fsync_timed(w, j->d, w->dst_root)) < 0)
		return rc;
	_tick(w);
	return 0;
}

/* Take jobs until the queue is empty and nobody is busy (nothing more can
 * arrive), or until a worker failed. */
static void _work(struct walk *w)
{
	struct shared *sh = w->sh;
	struct job *j;
	int rc;

	pthread_mutex_lock(&sh->mu);
	for (;;) {
		while (!sh->head && sh->busy > 0 && !sh->stop)
			pthread_cond_wait(&sh->cv, &sh->mu);
		if (sh->stop || !sh->head)
			break;
		j = sh->head;
		sh->head = j->next;
		if (!sh->head)
			sh->tail = NULL;
		sh->qlen--;
		sh->busy++;
		pthread_mutex_unlock(&sh->mu);
		rc = _run_job(w, j);
		_free_job(j);
		pthread_mutex_lock(&sh->mu);
		sh->busy--;
		if (rc < 0 && !sh->stop) {
			sh->rc = rc;
			sh->err = *w->err;
		}
		if (rc < 0)
			__atomic_store_n(&sh->stop, 1, __ATOMIC_RELAXED);
		if (sh->stop || (!sh->head && sh->busy == 0))
			pthread_cond_broadcast(&sh->cv);
	}
	pthread_mutex_unlock(&sh->mu);
}

static void *_worker(void *arg)
{
	_work(arg);
	return NULL;
}

static int _copy_subdir(struct walk *w, int sdir, int ddir, int pdir,
			const char *name, int fresh, unsigned depth)
{
	struct timespec times[2];
	struct stat st;
	int cs = -1, cd = -1, cp = -1, rc = 0, child_fresh = 1, is_dir = 0;

	if (depth >= w->max_depth)
		return rs_err_set(w->err, ELOOP, "copy %s/%s: directories "
				  "nested deeper than %u levels", w->src_root,
				  w->rel, w->max_depth);
	cs = openat(sdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	if (cs < 0) {
		if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) {
			_changed(w, "vanished");
			return 0;
		}
		return rs_err_set(w->err, errno, "open directory %s/%s: %s",
				  w->src_root, w->rel, strerror(errno));
	}
	if (fstat(cs, &st) < 0) {
		rc = rs_err_set(w->err, errno, "stat %s/%s: %s", w->src_root,
				w->rel, strerror(errno));
		goto out;
	}
	if (!fresh) {
		rc = _clear_slot(w, ddir, name, 1, &is_dir);
		if (rc < 0)
			goto out;
		child_fresh = !is_dir;
	}
	/* 0700 while we fill it: the source's mode (maybe read-only) is
	 * applied once its contents are in. */
	if (child_fresh && mkdirat(ddir, name, 0700) < 0) {
		rc = rs_err_set(w->err, errno, "create directory %s/%s: %s",
				w->dst_root, w->rel, strerror(errno));
		goto out;
	}
	cd = openat(ddir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	if (cd < 0) {
		rc = rs_err_set(w->err, errno, "open directory %s/%s: %s",
				w->dst_root, w->rel, strerror(errno));
		goto out;
	}
	if (!child_fresh)
		fchmod(cd, 0700); /* restore into an existing read-only dir */
	if (pdir >= 0)
		cp = openat(pdir, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			    O_CLOEXEC);
	/* Another worker may take it: it then owns the three fds and
	 * applies mode and mtime when its entries are in. */
	if (_enqueue(w, cs, cd, cp, child_fresh, depth + 1, &st) == 0)
		return 0;
	rc = _copy_dir(w, cs, cd, cp, child_fresh, depth + 1);
	if (rc < 0)
		goto out;
	times[0].tv_sec = 0;
	times[0].tv_nsec = UTIME_OMIT;
	times[1] = st.st_mtim;
	if (fchmod(cd, DIR_MODE(st.st_mode)) < 0 || futimens(cd, times) < 0) {
		rc = rs_err_set(w->err, errno, "set mode/mtime of %s/%s: %s",
				w->dst_root, w->rel, strerror(errno));
		goto out;
	}
	if (w->o->sync == RS_CKPT_SYNC_FSYNC &&
	    (rc = _fsync_timed(w, cd, w->dst_root)) < 0)
		goto out;
	_tick(w);
out:
	if (cp >= 0)
		close(cp);
	if (cd >= 0)
		close(cd);
	close(cs);
	return rc;
}

static int _copy_dir(struct walk *w, int sdir, int ddir, int pdir, int fresh,
		     unsigned depth)
{
	char **names = NULL;
	size_t n = 0, saved;
	struct stat st;
	int rc;

	rc = _list(sdir, &names, &n);
	if (rc < 0) {
		rc = rs_err_set(w->err, -rc, "list %s/%s: %s", w->src_root,
				w->rel, strerror(-rc));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		const char *name = names[i];

		if (__atomic_load_n(&w->sh->stop, __ATOMIC_RELAXED)) {
			rc = -ECANCELED; /* another worker failed: its error */
			goto out;
		}
		rc = _push(w, name, &saved);
		if (rc < 0)
			goto out;
		if (fstatat(sdir, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno == ENOENT) {
				_changed(w, "vanished");
				_pop(w, saved);
				continue;
			}
			rc = rs_err_set(w->err, errno, "stat %s/%s: %s",
					w->src_root, w->rel, strerror(errno));
			goto out;
		}
		if (S_ISREG(st.st_mode))
			rc = _copy_file(w, sdir, ddir, pdir, name, &st, fresh);
		else if (S_ISDIR(st.st_mode))
			rc = _copy_subdir(w, sdir, ddir, pdir, name, fresh,
					  depth);
		else if (S_ISLNK(st.st_mode))
			rc = _copy_symlink(w, sdir, ddir, name, &st, fresh);
		else {
			w->st->skipped++;
			rs_ckpt_warn("checkpoint: skipping %s/%s: %s cannot be "
				     "checkpointed", w->src_root, w->rel,
				     S_ISSOCK(st.st_mode) ? "a socket" :
				     S_ISFIFO(st.st_mode) ? "a FIFO" :
				     "a device");
		}
		if (rc < 0)
			goto out;
		_pop(w, saved);
	}
out:
	_free_list(names, n);
	return rc;
}

static unsigned _nthreads(const rs_ckpt_tree_opts_t *o)
{
	long n = o->threads;

	if (n <= 0) {
		n = sysconf(_SC_NPROCESSORS_ONLN);
		if (n > 4)
			n = 4; /* beyond this the directory locks serialise */
	}
	if (n < 1)
		n = 1;
	if (n > 16)
		n = 16;
	return (unsigned)n;
}

int rs_ckpt_tree_copy(int src_fd, int dst_fd, const char *src_path,
		      const char *dst_path, const rs_ckpt_tree_opts_t *opts,
		      rs_ckpt_stats_t *stats, rs_err_t *err)
{
	struct shared sh;
	struct walk *ws = NULL;
	rs_ckpt_stats_t *sts = NULL;
	rs_err_t *errs = NULL;
	pthread_t *tids = NULL;
	struct job root = { .s = src_fd, .d = dst_fd, .p = opts->prev_fd };
	struct timespec times[2];
	struct stat st;
	unsigned nt, started = 0;
	double t0, tc = _now();
	int rc = 0;

	memset(&sh, 0, sizeof(sh));
	pthread_mutex_init(&sh.mu, NULL);
	pthread_cond_init(&sh.cv, NULL);
	nt = _nthreads(opts);
	if (fstat(src_fd, &st) < 0) {
		rc = rs_err_set(err, errno, "stat %s: %s", src_path,
				strerror(errno));
		goto out;
	}
	ws = calloc(nt, sizeof(*ws));
	sts = calloc(nt, sizeof(*sts));
	errs = calloc(nt, sizeof(*errs));
	tids = calloc(nt, sizeof(*tids));
	root.rel = strdup("");
	if (!ws || !sts || !errs || !tids || !root.rel) {
		rc = rs_err_set(err, ENOMEM, "copy %s: out of memory",
				src_path);
		goto out;
	}
	for (unsigned i = 0; i < nt; i++) {
		ws[i].sh = &sh;
		ws[i].o = opts;
		ws[i].st = &sts[i];
		ws[i].err = &errs[i];
		ws[i].src_root = src_path;
		ws[i].dst_root = dst_path;
		ws[i].max_depth = opts->max_depth ? opts->max_depth
			: RS_CKPT_TREE_MAX_DEPTH;
	}
	/* The root is a job like any other, but its fds are the caller's
	 * and its attributes are set below, after everything. */
	root.fresh = opts->dst_fresh;
	sh.head = sh.tail = &root;
	sh.qlen = 1;
	sh.nthreads = nt;
	for (unsigned i = 1; i < nt; i++) {
		if (pthread_create(&tids[i], NULL, _worker, &ws[i]) != 0)
			break; /* fewer workers: still correct */
		started++;
	}
	sh.nthreads = started + 1;
	_work(&ws[0]);
	for (unsigned i = 1; i <= started; i++)
		pthread_join(tids[i], NULL);
	/* After a failure, queued directories still hold fds. */
	while (sh.head) {
		struct job *j = sh.head;
		sh.head = j->next;
		_free_job(j);
	}
	for (unsigned i = 0; i < nt; i++) {
		stats->files += sts[i].files;
		stats->bytes += sts[i].bytes;
		stats->bytes_copied += sts[i].bytes_copied;
		stats->bytes_linked += sts[i].bytes_linked;
		stats->skipped += sts[i].skipped;
		stats->changed += sts[i].changed;
		stats->sync_seconds += sts[i].sync_seconds;
		free(ws[i].buf);
	}
	/* fsync time summed over workers can exceed the wall time. */
	if (stats->sync_seconds > _now() - tc)
		stats->sync_seconds = _now() - tc;
	if (sh.rc < 0) {
		if (err)
			*err = sh.err;
		rc = sh.rc;
		goto out;
	}
	if (opts->set_root_attrs) {
		times[0].tv_sec = 0;
		times[0].tv_nsec = UTIME_OMIT;
		times[1] = st.st_mtim;
		if (fchmod(dst_fd, DIR_MODE(st.st_mode)) < 0 ||
		    futimens(dst_fd, times) < 0) {
			rc = rs_err_set(err, errno, "set mode/mtime of %s: %s",
					dst_path, strerror(errno));
			goto out;
		}
	}
	t0 = _now();
	if (opts->sync == RS_CKPT_SYNC_FSYNC && fsync(dst_fd) < 0) {
		rc = rs_err_set(err, errno, "fsync %s: %s", dst_path,
				strerror(errno));
		goto out;
	}
	/* One flush of the whole destination file system: far fewer journal
	 * commits than an fsync per file (docs/performance.md). */
	if (opts->sync == RS_CKPT_SYNC_SYNCFS && syncfs(dst_fd) < 0) {
		rc = rs_err_set(err, errno, "syncfs %s: %s", dst_path,
				strerror(errno));
		goto out;
	}
	stats->sync_seconds += _now() - t0;
out:
	free(root.rel);
	free(tids);
	free(errs);
	free(sts);
	free(ws);
	pthread_cond_destroy(&sh.cv);
	pthread_mutex_destroy(&sh.mu);
	return rc;
}

int rs_ckpt_tree_remove(int dirfd, const char *name, rs_err_t *err)
{
	char **names = NULL;
	struct stat st;
	size_t n = 0;
	int fd = -1, rc = 0;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		return rs_err_set(err, errno, "remove %s: %s", name,
				  strerror(errno));
	}
	if (!S_ISDIR(st.st_mode)) {
		if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
			return rs_err_set(err, errno, "remove %s: %s", name,
					  strerror(errno));
		return 0;
	}
	/* Checkpointed directories keep their source mode, maybe read-only:
	 * make them writable (they are ours) so their entries can go.  On a
	 * descriptor (fchmodat would follow a symlink swapped in since the
	 * fstatat); an O_PATH one, as 0000 cannot be opened for reading. */
	if ((st.st_mode & 0700) != 0700) {
		int pfd = openat(dirfd, name, O_PATH | O_DIRECTORY |
				 O_NOFOLLOW | O_CLOEXEC);
		char pp[64];

		if (pfd >= 0) {
			if (rs_safedir_fd_path(pfd, pp, sizeof(pp)) == 0)
				chmod(pp, 0700);
			close(pfd);
		}
	}
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		return rs_err_set(err, errno, "remove %s: %s", name,
				  strerror(errno));
	}
	rc = _list(fd, &names, &n);
	if (rc < 0) {
		rc = rs_err_set(err, -rc, "remove %s: %s", name, strerror(-rc));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		rc = rs_ckpt_tree_remove(fd, names[i], err);
		if (rc < 0)
			goto out;
	}
	if (unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
		rc = rs_err_set(err, errno, "remove %s: %s", name,
				strerror(errno));
out:
	_free_list(names, n);
	close(fd);
	return rc;
}
