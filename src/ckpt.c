/*
 * ckpt.c - generations, staging, publication, keep, restore and verify.
 * See include/ckpt.h for the contract and docs/checkpoint.md for the
 * protocol; the tree copy itself is in ckpt_tree.c, the manifest and the
 * lock in manifest.c.
 *
 * Commit point of a save: the rename of CKPT_DIR/latest.  Before it, the
 * new generation is either a .staging-* directory or a gen-N directory
 * newer than `latest` (uncommitted: never restored, removed by the next
 * save).  After it, the manifest record is written; a crash between the two
 * leaves `latest` ahead of the manifest, and the next save writes the
 * missing record from the generation's per-part sidecars (node-P.json).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "ckpt_tree.h"
#include "manifest.h"
#include "safedir.h"

#define LATEST        "latest"
#define STAGING       ".staging-"
#define STAGING_SOLO  ".staging-solo-"
#define STAGING_JOB   ".staging-j"
#define ENDED_SUFFIX  "-end"
#define TRASH         ".trash-"
#define GEN_MAX       999999L
#define NPARTS_MAX    100000u
#define STALE_DEFAULT (24 * 3600)

/* ------------------------------------------------------------ helpers -- */

static double _now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Test hook (docs/checkpoint.md, "Fault hooks"): RS_CKPT_FAULT_AT=<point>
 * kills the process with SIGKILL when a save reaches <point>, so the fault
 * tests can check what a crash there leaves behind.  Unset in production. */
static void _fault(const char *point)
{
	const char *at = getenv("RS_CKPT_FAULT_AT");

	if (at && !strcmp(at, point))
		raise(SIGKILL);
}

static unsigned long _env_ulong(const char *name, unsigned long dflt)
{
	const char *s = getenv(name);
	char *end = NULL;
	unsigned long v;

	if (!s || !*s)
		return dflt;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || s[0] == '-')
		return dflt;
	return v;
}

long rs_ckpt_gen_number(const char *name)
{
	const char *p;
	long v = 0;

	if (strncmp(name, "gen-", 4))
		return -1;
	for (p = name + 4; *p; p++) {
		if (*p < '0' || *p > '9' || v > GEN_MAX)
			return -1;
		v = v * 10 + (*p - '0');
	}
	if (p - (name + 4) < 6 || v < 1 || v > GEN_MAX)
		return -1;
	return v;
}

static void _gen_name(char *buf, size_t len, long gen)
{
	snprintf(buf, len, "gen-%06ld", gen);
}

/* Generation `latest` points to, or -1 if there is none. */
static long _latest(int cfd)
{
	char t[NAME_MAX + 1];
	ssize_t n = readlinkat(cfd, LATEST, t, sizeof(t) - 1);

	if (n <= 0)
		return -1;
	t[n] = '\0';
	return rs_ckpt_gen_number(t);
}

static void _hostname(char *buf, size_t len)
{
	if (gethostname(buf, len) < 0 || !buf[0])
		snprintf(buf, len, "localhost");
	buf[len - 1] = '\0';
	/* A hostname never has '/', but this becomes part of a file name. */
	for (char *p = buf; *p; p++)
		if (*p == '/')
			*p = '_';
}

/* Job ids become part of the staging name: keep [A-Za-z0-9_.], map the
 * rest (including '-', our field separator) to '_'. */
static void _sanitize(char *dst, size_t len, const char *src)
{
	size_t i = 0;

	for (; src && *src && i + 1 < len; src++, i++) {
		char c = *src;
		int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			 (c >= '0' && c <= '9') || c == '_' || c == '.';
		dst[i] = ok ? c : '_';
	}
	dst[i] = '\0';
}

static int _is_dir_at(int dfd, const char *name)
{
	struct stat st;

	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	       S_ISDIR(st.st_mode);
}

/* Move dfd/name out of sight (rename to .trash-<name>-<pid>) so a partial
 * deletion can never look like a generation; the caller deletes it. */
static int _to_trash(int cfd, const char *dir_path, const char *name,
		     char *trash, size_t tlen, rs_err_t *err)
{
	if (snprintf(trash, tlen, TRASH "%s-%ld", name, (long)getpid()) >=
	    (int)tlen)
		return rs_err_set(err, ENAMETOOLONG, "remove %s/%s: name too "
				  "long", dir_path, name);
	if (renameat(cfd, name, cfd, trash) < 0) {
		if (errno == ENOENT)
			return 0;
		return rs_err_set(err, errno, "remove %s/%s: %s", dir_path,
				  name, strerror(errno));
	}
	return 0;
}

/* A string list for trash to delete once the lock is released. */
struct names {
	char **v;
	size_t n, cap;
};

static int _names_add(struct names *l, const char *s)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n] = strdup(s);
	if (!l->v[l->n])
		return -ENOMEM;
	l->n++;
	return 0;
}

static void _names_free(struct names *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int _trash(int cfd, const char *dir_path, const char *name,
		  struct names *later, rs_err_t *err)
{
	char t[NAME_MAX + 1];
	int rc = _to_trash(cfd, dir_path, name, t, sizeof(t), err);

	if (rc < 0)
		return rc;
	return _names_add(later, t) < 0 ?
		rs_err_set(err, ENOMEM, "out of memory") : 0;
}

/* Delete trash outside the lock: removing a large generation on a slow
 * file system must not make other nodes' lock waits time out. */
static void _empty_trash(int cfd, const char *dir_path, struct names *l)
{
	rs_err_t e;

	for (size_t i = 0; i < l->n; i++)
		if (rs_ckpt_tree_remove(cfd, l->v[i], &e) < 0)
			rs_ckpt_warn("checkpoint: cleaning up %s/%s: %s",
				     dir_path, l->v[i], e.msg);
}

/* --------------------------------------------------- part sidecars ---- */

static const char *_jstr(json_object *o, const char *k)
{
	json_object *v = NULL;

	if (json_object_object_get_ex(o, k, &v) &&
	    json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	return NULL;
}

/* Manifests and sidecars are files a user can edit: every number from
 * them is checked before it becomes an integer (a double out of range,
 * NaN or infinite converts with undefined behaviour) or is added up. */
#define JINT_MAX RS_MANIFEST_NUM_MAX   /* exact in a double, no sum wraps */

static int64_t _jint(json_object *o, const char *k, int64_t dflt)
{
	return rs_manifest_num(o, k, dflt, -JINT_MAX, JINT_MAX);
}

/* A count from a sidecar: 0 unless a whole number in 0..2^53. */
static uint64_t _jcount(json_object *o, const char *k)
{
	int64_t v = _jint(o, k, 0);

	return v > 0 ? (uint64_t)v : 0;
}

/* A number of seconds: 0 unless finite and in 0..lim. */
static double _jdouble(json_object *o, const char *k, double lim)
{
	return rs_manifest_seconds(o, k, lim);
}

/* Seconds to the millisecond: json-c would print 17 digits. */
static json_object *_jsecs(double v)
{
	char b[32];

	snprintf(b, sizeof(b), "%.3f", v);
	return json_object_new_double_s(v, b);
}

static void _jadd_str(json_object *o, const char *k, const char *s)
{
	json_object_object_add(o, k, s ? json_object_new_string(s) : NULL);
}

/*
 * Is generation directory `name` complete?  Every part 0..nparts-1 has its
 * tree node-P/ and its sidecar node-P.json agreeing on nparts.  Returns 1
 * (and *nparts_out, and the sidecars in *parts_out if not NULL), 0 with a
 * reason in why, or -errno.
 */
static int _complete(int cfd, const char *name, unsigned *nparts_out,
		     json_object **parts_out, char *why, size_t wlen)
{
	json_object *parts = NULL, *sc = NULL;
	char f[64];
	unsigned nparts = 0;
	int gfd = -1, rc = 1;
	rs_err_t e;

	if (parts_out)
		*parts_out = NULL;
	gfd = openat(cfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		     O_CLOEXEC);
	if (gfd < 0) {
		snprintf(why, wlen, "%s", strerror(errno));
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	}
	parts = json_object_new_array();
	for (unsigned p = 0; rc == 1 && (p == 0 || p < nparts); p++) {
		snprintf(f, sizeof(f), "node-%u.json", p);
		if (rs_manifest_read_json_max_at(gfd, name, f,
						 RS_MANIFEST_SIDECAR_MAX_BYTES,
						 &sc, &e) < 0) {
			snprintf(why, wlen, "part %u has no record (%.150s)",
				 p, e.msg);
			rc = 0;
			break;
		}
		int64_t np = _jint(sc, "nparts", 0);
		if (p == 0) {
			if (np < 1 || np > NPARTS_MAX) {
				snprintf(why, wlen, "part 0 record has no "
					 "valid nparts");
				rc = 0;
			}
			nparts = (unsigned)np;
		} else if (np != nparts) {
			snprintf(why, wlen, "part %u says %lld parts, part 0 "
				 "says %u", p, (long long)np, nparts);
			rc = 0;
		}
		snprintf(f, sizeof(f), "node-%u", p);
		if (rc == 1 && !_is_dir_at(gfd, f)) {
			snprintf(why, wlen, "part %u (%s/) is missing", p, f);
			rc = 0;
		}
		if (rc == 1)
			json_object_array_add(parts, sc);
		else
			json_object_put(sc);
		sc = NULL;
	}
	close(gfd);
	if (rc == 1) {
		*nparts_out = nparts;
		if (parts_out) {
			*parts_out = parts;
			parts = NULL;
		}
	}
	json_object_put(parts);
	return rc;
}

/* The manifest record of complete generation `gen`, from its sidecars. */
static int _record(int cfd, const char *dir_path, long gen,
		   json_object **rec_out, rs_err_t *err)
{
	json_object *parts = NULL, *rec = NULL, *nodes = NULL, *p0;
	char name[32], why[256], tbuf[64];
	uint64_t files = 0, bytes = 0, copied = 0, linked = 0, skipped = 0;
	uint64_t changed = 0;
	double secs = 0, tmax = 0;
	unsigned nparts = 0;
	time_t t;
	struct tm tm;
	int rc;

	*rec_out = NULL;
	_gen_name(name, sizeof(name), gen);
	rc = _complete(cfd, name, &nparts, &parts, why, sizeof(why));
	if (rc < 0)
		return rs_err_set(err, -rc, "read %s/%s: %s", dir_path, name,
				  strerror(-rc));
	if (rc == 0)
		return rs_err_set(err, EUCLEAN, "generation %s/%s is "
				  "incomplete: %s", dir_path, name, why);
	nodes = json_object_new_array();
	for (unsigned i = 0; i < nparts; i++) {
		json_object *s = json_object_array_get_idx(parts, i);
		const char *node = _jstr(s, "node");
		/* At most NPARTS_MAX (< 2^17) terms of at most 2^53:
		 * no sum wraps, and each fits an int64 record field. */
		files += _jcount(s, "files");
		bytes += _jcount(s, "bytes");
		copied += _jcount(s, "bytes_copied");
		linked += _jcount(s, "bytes_linked");
		skipped += _jcount(s, "skipped");
		changed += _jcount(s, "changed");
		if (_jdouble(s, "seconds", 1e9) > secs)
			secs = _jdouble(s, "seconds", 1e9);
		/* Up to year 5138: gmtime_r and strftime cope. */
		if (_jdouble(s, "time_unix", 1e11) > tmax)
			tmax = _jdouble(s, "time_unix", 1e11);
		json_object_array_add(nodes, node ?
				      json_object_new_string(node) : NULL);
	}
	p0 = json_object_array_get_idx(parts, 0);
	t = (time_t)tmax;
	if (!gmtime_r(&t, &tm) ||
	    !strftime(tbuf, sizeof(tbuf), "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(tbuf, sizeof(tbuf), "unknown");
	rec = json_object_new_object();
	json_object_object_add(rec, "gen", json_object_new_int64(gen));
	_jadd_str(rec, "dir", name);
	_jadd_str(rec, "time", tbuf);
	json_object_object_add(rec, "time_unix", json_object_new_int64(t));
	_jadd_str(rec, "job_id", _jstr(p0, "job_id"));
	json_object_object_add(rec, "attempt",
			       json_object_new_int64(_jint(p0, "attempt", 0)));
	json_object_object_add(rec, "seq",
			       json_object_new_int64(_jint(p0, "seq", 0)));
	_jadd_str(rec, "reason", _jstr(p0, "reason"));
	json_object_object_add(rec, "nparts", json_object_new_int64(nparts));
	json_object_object_add(rec, "nodes", nodes);
	json_object_object_add(rec, "files", json_object_new_int64((int64_t)files));
	json_object_object_add(rec, "bytes", json_object_new_int64((int64_t)bytes));
	json_object_object_add(rec, "bytes_copied",
			       json_object_new_int64((int64_t)copied));
	json_object_object_add(rec, "bytes_linked",
			       json_object_new_int64((int64_t)linked));
	json_object_object_add(rec, "skipped",
			       json_object_new_int64((int64_t)skipped));
	json_object_object_add(rec, "changed",
			       json_object_new_int64((int64_t)changed));
	json_object_object_add(rec, "seconds", _jsecs(secs));
	json_object_object_add(rec, "parts", parts);
	*rec_out = rec;
	return 0;
}

/* Index of generation gen in the manifest's array, or -1. */
static int _find(json_object *gens, long gen)
{
	size_t n = json_object_array_length(gens);

	for (size_t i = 0; i < n; i++)
		if (_jint(json_object_array_get_idx(gens, i), "gen", -1) == gen)
			return (int)i;
	return -1;
}

/* Insert rec keeping the array sorted by "gen" (oldest first). */
static void _insert_sorted(json_object *gens, json_object *rec)
{
	long gen = (long)_jint(rec, "gen", 0);
	size_t n = json_object_array_length(gens), i;
	json_object *moved = NULL;

	for (i = 0; i < n; i++)
		if (_jint(json_object_array_get_idx(gens, i), "gen", 0) > gen)
			break;
	if (i == n) {
		json_object_array_add(gens, rec);
		return;
	}
	/* json-c 0.15 has no array insert: shift the tail by one. */
	json_object_array_add(gens, NULL);
	for (size_t j = n; j > i; j--) {
		moved = json_object_get(json_object_array_get_idx(gens, j - 1));
		json_object_array_put_idx(gens, j, moved);
	}
	json_object_array_put_idx(gens, i, rec);
}

/* ------------------------------------------------------------- repair -- */

static int _set_latest(int cfd, const char *dir_path, const char *target,
		       rs_err_t *err);

/* Staging-name fields; job staging: .staging-j<job>-a<attempt>-s<seq>,
 * single-part staging: .staging-solo-<pid>-<host>. */
struct stg_key {
	int solo;
	int ended;               /* .staging-j<job>-a<attempt>-end */
	char job[128];
	unsigned long attempt, seq;
	long pid;
	char host[256];
};

static int _parse_staging(const char *name, struct stg_key *k)
{
	const char *p, *a;
	char *end;

	memset(k, 0, sizeof(*k));
	if (!strncmp(name, STAGING_SOLO, strlen(STAGING_SOLO))) {
		p = name + strlen(STAGING_SOLO);
		k->pid = strtol(p, &end, 10);
		if (end == p || *end != '-' || k->pid <= 0)
			return -1;
		snprintf(k->host, sizeof(k->host), "%s", end + 1);
		k->solo = 1;
		return 0;
	}
	if (strncmp(name, STAGING_JOB, strlen(STAGING_JOB)))
		return -1;
	p = name + strlen(STAGING_JOB);
	a = strstr(p, "-a");
	if (!a || (size_t)(a - p) >= sizeof(k->job))
		return -1;
	memcpy(k->job, p, (size_t)(a - p));
	k->job[a - p] = '\0';
	k->attempt = strtoul(a + 2, &end, 10);
	if (end != a + 2 && !strcmp(end, ENDED_SUFFIX)) {
		k->ended = 1;
		return 0;
	}
	if (end == a + 2 || strncmp(end, "-s", 2))
		return -1;
	p = end + 2;
	k->seq = strtoul(p, &end, 10);
	if (end == p || *end)
		return -1;
	return 0;
}

/* now - t without overflow: mtimes are the user's to set (utimensat). */
static time_t _age(time_t now, time_t t)
{
	if (t >= now)
		return 0;
	if (t < 0)
		return now; /* before 1970: as old as can be */
	return now - t;
}

/* Newest mtime of a staging directory and its direct entries: a writer
 * adds node-P.tmp-* and node-P entries there as it goes. */
static time_t _staging_age(int cfd, const char *name, time_t now)
{
	struct stat st;
	struct dirent *de;
	time_t newest = 0;
	DIR *d;
	int fd;

	if (fstatat(cfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	newest = st.st_mtime;
	fd = openat(cfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return _age(now, newest);
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return _age(now, newest);
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, "..") &&
		    fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    st.st_mtime > newest)
			newest = st.st_mtime;
	closedir(d);
	return _age(now, newest);
}

struct ctx {
	const char *dir_path;
	int cfd;
	char host[64];
	char job[64];            /* sanitized job id of this save, or "" */
	unsigned long attempt, seq;
	const char *own_staging; /* never treat as stale */
	int publishing;          /* (job, attempt, seq) was just published */
	struct names trash;      /* delete after unlock */
};

/*
 * Is staging directory `name` left over by a writer that will never finish?
 *  - single-part, this host: its pid is gone (or is us: a previous life of
 *    this process; one save per CKPT_DIR at a time per process);
 *  - same job, older attempt: that attempt is over;
 *  - same job and attempt, older seq, when we publish a newer seq: every
 *    node has finished the newer one, so nobody writes the older one;
 *  - anything not touched for RS_CKPT_STALE_SECONDS (default 24 h): covers
 *    other hosts and other jobs, whose liveness we cannot see.
 */
static int _stale(struct ctx *c, const char *name, time_t now)
{
	struct stg_key k;
	unsigned long stale_s = _env_ulong("RS_CKPT_STALE_SECONDS",
					   STALE_DEFAULT);

	if (c->own_staging && !strcmp(name, c->own_staging))
		return 0;
	if (_parse_staging(name, &k) == 0) {
		if (k.solo && !strcmp(k.host, c->host) &&
		    (k.pid == (long)getpid() ||
		     (kill((pid_t)k.pid, 0) < 0 && errno == ESRCH)))
			return 1;
		if (!k.solo && c->job[0] && !strcmp(k.job, c->job)) {
			if (k.attempt < c->attempt)
				return 1;
			/* The ended parts stay for later seqs. */
			if (c->publishing && k.attempt == c->attempt &&
			    !k.ended && k.seq < c->seq)
				return 1;
		}
	}
	return _staging_age(c->cfd, name, now) > (time_t)stale_s;
}

/*
 * Bring CKPT_DIR back to its invariants after crashes (lock held):
 *  - gen-N newer than `latest`: uncommitted -> removed (N is burnt: next_gen
 *    moves past it, numbers only grow);
 *  - gen-N not newer than `latest`, not in the manifest: if it is `latest`,
 *    its record is missing (crash after the commit) -> written from its
 *    sidecars; otherwise pruned but not yet deleted -> removed;
 *  - manifest records whose directory is gone -> dropped, with a warning;
 *  - stale staging, temp symlinks and temp manifests -> removed.
 * *manifest is the (possibly updated) manifest, written if it changed.
 */
static int _repair(struct ctx *c, json_object **manifest, rs_err_t *err)
{
	json_object *root = NULL, *gens, *rec = NULL;
	struct dirent *de;
	time_t now = time(NULL);
	long latest = _latest(c->cfd), maxgen = 0, g;
	int64_t next;
	int changed = 0, rc = 0, fd = -1;
	char name[32];
	DIR *d = NULL;
	struct names seen = { 0 };

	*manifest = NULL;
	rc = rs_manifest_read_at(c->cfd, c->dir_path, &root, err);
	if (rc < 0)
		return rc;
	gens = rs_manifest_generations(root);
	/* A recorded generation was committed (records are written after
	 * the commit): if `latest` is older or gone (removed by hand), point
	 * it back at the newest recorded one rather than treat everything
	 * newer as uncommitted and delete it. */
	for (size_t i = 0; i < json_object_array_length(gens); i++) {
		g = (long)_jint(json_object_array_get_idx(gens, i), "gen", -1);
		_gen_name(name, sizeof(name), g);
		if (g > latest && _is_dir_at(c->cfd, name)) {
			rc = _set_latest(c->cfd, c->dir_path, name, err);
			if (rc < 0)
				goto out;
			rs_ckpt_warn("checkpoint: %s/latest pointed to %s; "
				     "moved to the newest recorded generation "
				     "%s", c->dir_path, latest > 0 ?
				     "an older generation" : "nothing", name);
			latest = g;
		}
	}
	fd = openat(c->cfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		rc = rs_err_set(err, errno, "list %s: %s", c->dir_path,
				strerror(errno));
		if (fd >= 0)
			close(fd);
		goto out;
	}
	/* Collect first, act after: renaming while readdir runs could make
	 * it return an entry twice or skip one. */
	while ((de = readdir(d)))
		if (_names_add(&seen, de->d_name) < 0) {
			rc = rs_err_set(err, ENOMEM, "out of memory");
			closedir(d);
			goto out;
		}
	closedir(d);
	for (size_t i = 0; i < seen.n; i++) {
		const char *n = seen.v[i];

		if (!strcmp(n, ".") || !strcmp(n, ".."))
			continue;
		if ((g = rs_ckpt_gen_number(n)) > 0) {
			if (g > maxgen)
				maxgen = g;
			if (g > latest) {
				rs_ckpt_warn("checkpoint: removing %s/%s: "
					     "uncommitted (a save was "
					     "interrupted before `latest` moved)",
					     c->dir_path, n);
				rc = _trash(c->cfd, c->dir_path, n, &c->trash,
					    err);
			} else if (_find(gens, g) < 0 && g != latest) {
				rc = _trash(c->cfd, c->dir_path, n, &c->trash,
					    err);
			} else if (_find(gens, g) < 0) {
				rc = _record(c->cfd, c->dir_path, g, &rec, err);
				if (rc < 0)
					goto out;
				_insert_sorted(gens, rec);
				rec = NULL;
				changed = 1;
			}
		} else if (!strncmp(n, TRASH, strlen(TRASH))) {
			rc = _names_add(&c->trash, n) < 0 ? -ENOMEM : 0;
		} else if (!strncmp(n, ".latest.tmp-", 12) ||
			   !strncmp(n, "." RS_MANIFEST_NAME ".tmp-",
				    strlen(RS_MANIFEST_NAME) + 6)) {
			unlinkat(c->cfd, n, 0);
		} else if (!strncmp(n, STAGING, strlen(STAGING)) &&
			   _stale(c, n, now)) {
			rs_ckpt_warn("checkpoint: removing stale %s/%s",
				     c->dir_path, n);
			rc = _trash(c->cfd, c->dir_path, n, &c->trash, err);
		}
		if (rc < 0)
			goto out;
	}
	for (size_t i = json_object_array_length(gens); i-- > 0; ) {
		json_object *r = json_object_array_get_idx(gens, i);
		g = (long)_jint(r, "gen", -1);
		_gen_name(name, sizeof(name), g);
		if (g < 1 || !_is_dir_at(c->cfd, name)) {
			rs_ckpt_warn("checkpoint: %s/%s: listed in the manifest "
				     "but gone; dropping its record",
				     c->dir_path, name);
			json_object_array_del_idx(gens, i, 1);
			changed = 1;
		}
	}
	next = _jint(root, "next_gen", 1);
	if (maxgen + 1 > next || latest + 1 > next) {
		next = maxgen > latest ? maxgen + 1 : latest + 1;
		json_object_object_add(root, "next_gen",
				       json_object_new_int64(next));
		changed = 1;
	}
	if (changed) {
		rc = rs_manifest_write_at(c->cfd, c->dir_path, root, err);
		if (rc < 0)
			goto out;
	}
	*manifest = root;
	root = NULL;
out:
	_names_free(&seen);
	json_object_put(rec);
	json_object_put(root);
	return rc;
}

/* --------------------------------------------------------------- save -- */

static int _open_own_dir(const char *path, int create, rs_err_t *err)
{
	return rs_manifest_open_dir(path, create, err);
}

/* Replace `latest` atomically: a new symlink under a temp name, renamed
 * over the old one (rename is atomic; unlink + symlink is not). */
static int _set_latest(int cfd, const char *dir_path, const char *target,
		       rs_err_t *err)
{
	char tmp[64];

	snprintf(tmp, sizeof(tmp), ".latest.tmp-%ld", (long)getpid());
	unlinkat(cfd, tmp, 0);
	if (symlinkat(target, cfd, tmp) < 0)
		return rs_err_set(err, errno, "create %s/%s: %s", dir_path, tmp,
				  strerror(errno));
	_fault("latest-tmp");
	if (renameat(cfd, tmp, cfd, LATEST) < 0) {
		int e = errno;
		unlinkat(cfd, tmp, 0);
		return rs_err_set(err, e, "replace %s/%s: %s", dir_path, LATEST,
				  strerror(e));
	}
	if (fsync(cfd) < 0)
		return rs_err_set(err, errno, "fsync %s: %s", dir_path,
				  strerror(errno));
	return 0;
}

/* After the commit: record generation gen in the manifest, drop the
 * records beyond `keep` (oldest first), write it, then move the pruned
 * directories to the trash.  Records go before directories, so a crash in
 * between leaves directories the next save removes, never records without
 * data. */
static int _record_and_prune(struct ctx *c, json_object *root, long gen,
			     unsigned keep, rs_err_t *err)
{
	json_object *gens = rs_manifest_generations(root), *rec = NULL;
	struct names prune = { 0 };
	char pn[32];
	size_t n;
	int rc;

	rc = _record(c->cfd, c->dir_path, gen, &rec, err);
	if (rc < 0)
		return rc;
	_insert_sorted(gens, rec);
	json_object_object_add(root, "next_gen", json_object_new_int64(gen + 1));
	for (n = json_object_array_length(gens); n > keep; n--) {
		json_object *r = json_object_array_get_idx(gens, 0);
		_gen_name(pn, sizeof(pn), (long)_jint(r, "gen", 0));
		if (_names_add(&prune, pn) < 0) {
			rc = rs_err_set(err, ENOMEM, "out of memory");
			goto out;
		}
		json_object_array_del_idx(gens, 0, 1);
	}
	rc = rs_manifest_write_at(c->cfd, c->dir_path, root, err);
	if (rc < 0)
		goto out;
	_fault("manifest");
	for (size_t i = 0; i < prune.n && rc == 0; i++) {
		rc = _trash(c->cfd, c->dir_path, prune.v[i], &c->trash, err);
		_fault("prune");
	}
out:
	_names_free(&prune);
	return rc;
}

/* Publish staging directory stg as the next generation and prune (lock
 * held, all parts present).  *gen_out gets its number. */
static int _publish(struct ctx *c, const char *stg, unsigned keep,
		    long *gen_out, rs_err_t *err)
{
	json_object *root = NULL;
	char name[32];
	struct dirent *de;
	long gen;
	int rc, sfd = -1;
	DIR *d = NULL;
	struct names junk = { 0 };

	c->publishing = 1;
	rc = _repair(c, &root, err);
	if (rc < 0)
		goto out;
	/* Writers that died inside this staging left node-P.tmp-* behind;
	 * every part is in, so nobody can still be writing one. */
	sfd = openat(c->cfd, stg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		     O_CLOEXEC);
	if (sfd >= 0 && (d = fdopendir(sfd)) != NULL) {
		while ((de = readdir(d)))
			if (strstr(de->d_name, ".tmp-"))
				_names_add(&junk, de->d_name);
		for (size_t i = 0; i < junk.n; i++)
			rs_ckpt_tree_remove(sfd, junk.v[i], NULL);
		closedir(d);
		sfd = -1;
	} else if (sfd >= 0) {
		close(sfd);
		sfd = -1;
	}
	gen = (long)_jint(root, "next_gen", 1);
	if (gen > GEN_MAX) {
		rc = rs_err_set(err, EOVERFLOW, "publish %s/%s: generation "
				"numbers exhausted (%ld)", c->dir_path, stg,
				GEN_MAX);
		goto out;
	}
	_gen_name(name, sizeof(name), gen);
	/* No fsync here: the one after the `latest` rename, in the same
	 * directory, makes both durable; a crash in between leaves either no
	 * gen-N or an uncommitted one, both repaired by the next save. */
	if (renameat(c->cfd, stg, c->cfd, name) < 0) {
		rc = rs_err_set(err, errno, "publish %s/%s as %s: %s",
				c->dir_path, stg, name, strerror(errno));
		goto out;
	}
	_fault("renamed");
	rc = _set_latest(c->cfd, c->dir_path, name, err);
	if (rc < 0)
		goto out;
	_fault("latest");
	*gen_out = gen;
	/* Committed.  What follows is bookkeeping: if it fails (a full disk
	 * can fail the manifest write), the save still succeeded; the next
	 * save writes the record from the sidecars and prunes (_repair). */
	rc = _record_and_prune(c, root, gen, keep, err);
	if (rc < 0) {
		rs_ckpt_warn("checkpoint %s: gen-%06ld is committed, but: %s",
			     c->dir_path, gen, err->msg);
		rs_err_clear(err);
		rc = 0;
	}
out:
	_names_free(&junk);
	json_object_put(root);
	return rc;
}

/* The generation another node published for (job, attempt, seq), in
 * *gen; -ESTALE if there is none (our staging was removed as stale). */
static int _find_published(struct ctx *c, const rs_ckpt_meta_t *m,
			   long *gen, rs_err_t *err)
{
	json_object *root = NULL, *gens;
	int rc;

	*gen = -1;
	rc = rs_manifest_read_at(c->cfd, c->dir_path, &root, err);
	if (rc < 0)
		return rc;
	gens = rs_manifest_generations(root);
	for (size_t i = json_object_array_length(gens); i-- > 0; ) {
		json_object *r = json_object_array_get_idx(gens, i);
		const char *j = _jstr(r, "job_id");
		if (m->nparts > 1 && j && !strcmp(j, m->job_id) &&
		    _jint(r, "attempt", -1) == m->attempt &&
		    _jint(r, "seq", -1) == m->seq) {
			*gen = (long)_jint(r, "gen", -1);
			break;
		}
	}
	json_object_put(root);
	if (*gen < 0)
		return rs_err_set(err, ESTALE, "checkpoint: %s/" STAGING "... "
				  "for job %s attempt %u seq %u vanished before "
				  "publication (removed as stale?)",
				  c->dir_path, m->job_id ? m->job_id : "-",
				  m->attempt, m->seq);
	return 0;
}

static int _write_sidecar(int sfd, const char *stg_path, unsigned part,
			  const char *host, const rs_ckpt_meta_t *m, const rs_ckpt_stats_t *s,
			  double seconds, rs_err_t *err)
{
	json_object *o = json_object_new_object();
	char name[64];
	int rc;

	if (!o)
		return rs_err_set(err, ENOMEM, "out of memory");
	json_object_object_add(o, "part", json_object_new_int64(part));
	json_object_object_add(o, "nparts", json_object_new_int64(m->nparts));
	_jadd_str(o, "node", m->node ? m->node : host);
	_jadd_str(o, "job_id", m->job_id);
	json_object_object_add(o, "attempt", json_object_new_int64(m->attempt));
	json_object_object_add(o, "seq", json_object_new_int64(m->seq));
	_jadd_str(o, "reason", m->reason ? m->reason : "manual");
	json_object_object_add(o, "files",
			       json_object_new_int64((int64_t)s->files));
	json_object_object_add(o, "bytes",
			       json_object_new_int64((int64_t)s->bytes));
	json_object_object_add(o, "bytes_copied",
			       json_object_new_int64((int64_t)s->bytes_copied));
	json_object_object_add(o, "bytes_linked",
			       json_object_new_int64((int64_t)s->bytes_linked));
	json_object_object_add(o, "skipped",
			       json_object_new_int64((int64_t)s->skipped));
	json_object_object_add(o, "changed",
			       json_object_new_int64((int64_t)s->changed));
	json_object_object_add(o, "seconds", _jsecs(seconds));
	json_object_object_add(o, "sync_seconds", _jsecs(s->sync_seconds));
	json_object_object_add(o, "time_unix",
			       json_object_new_int64((int64_t)time(NULL)));
	snprintf(name, sizeof(name), "node-%u.json", part);
	/* The caller fsyncs the staging directory after renaming the part
	 * into place: that one fsync makes both renames durable. */
	rc = rs_manifest_write_json_at2(sfd, stg_path, name, o, 0, err);
	json_object_put(o);
	return rc;
}

/* 1 if folder `inner` is folder `outer` or below it, judged by what the
 * descriptors are (device and inode, walking up with ".."), not by their
 * names: names can be links, bind mounts or renamed since.  0 if not,
 * -errno if the walk fails. */
static int _fd_within(int inner, int outer)
{
	struct stat o, st, up;
	int cur, next, rc = 0;

	if (fstat(outer, &o) < 0)
		return -errno;
	cur = openat(inner, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cur < 0)
		return -errno;
	for (unsigned depth = 0; depth < 4096; depth++) {
		if (fstat(cur, &st) < 0) {
			rc = -errno;
			break;
		}
		if (st.st_dev == o.st_dev && st.st_ino == o.st_ino) {
			rc = 1;
			break;
		}
		next = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (next < 0) {
			rc = -errno;
			break;
		}
		if (fstat(next, &up) < 0) {
			rc = -errno;
			close(next);
			break;
		}
		close(cur);
		cur = next;
		if (up.st_dev == st.st_dev && up.st_ino == st.st_ino)
			break;  /* "/" (or the root of our chroot) */
	}
	close(cur);
	return rc;
}

/* Refuse CKPT_DIR inside SCRATCH (the save would copy the checkpoints into
 * themselves) and SCRATCH inside CKPT_DIR (a restore could overwrite
 * generations).  On the opened descriptors: what is used is what is
 * judged. */
static int _check_nesting(int sfd, int cfd, const char *scratch,
			  const char *ckpt_dir, rs_err_t *err)
{
	int a = _fd_within(cfd, sfd), b = a == 0 ? _fd_within(sfd, cfd) : a;

	if (a < 0 || b < 0)
		return rs_err_set(err, -(a < 0 ? a : b), "checkpoint %s into "
				  "%s: cannot tell whether one folder is "
				  "inside the other: %s", scratch, ckpt_dir,
				  strerror(-(a < 0 ? a : b)));
	if (a || b)
		return rs_err_set(err, EINVAL, "checkpoint %s into %s: one "
				  "folder is inside the other; choose folders "
				  "apart", scratch, ckpt_dir);
	return 0;
}

/* 1 if the folder fd has no entries, 0 if it has, -errno. */
static int _dir_empty(int fd)
{
	struct dirent *de;
	int dfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 1;
	DIR *d;

	if (dfd < 0)
		return -errno;
	d = fdopendir(dfd);
	if (!d) {
		close(dfd);
		return -errno;
	}
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			rc = 0;
			break;
		}
	closedir(d);
	return rc;
}

static enum rs_ckpt_sync _sync_mode(void)
{
	const char *s = getenv("RS_CKPT_SYNC");

	if (s && !strcmp(s, "fsync"))
		return RS_CKPT_SYNC_FSYNC;
	return RS_CKPT_SYNC_SYNCFS;
}

/*
 * Tasks that end early (lock held).  A node whose task has exited saved
 * its final scratch as part P of .staging-j<job>-a<attempt>-end; every
 * later checkpoint of the attempt takes part P from there (hard links,
 * so it costs no data) instead of waiting for a node that will never
 * write it.  Fills the parts of staging `stgfd` that are missing and
 * present in the ended folder; returns how many, or -errno.
 */
static int _fill_ended(struct ctx *c, int stgfd, const char *stg_path,
		       unsigned nparts, rs_err_t *err)
{
	char ended[NAME_MAX + 1], part[32], tmp[64], side[40];
	int efd, filled = 0, rc = 0;

	snprintf(ended, sizeof(ended), STAGING_JOB "%s-a%lu" ENDED_SUFFIX,
		 c->job, c->attempt);
	efd = openat(c->cfd, ended, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		     O_CLOEXEC);
	if (efd < 0)
		return 0;
	for (unsigned p = 0; p < nparts && rc == 0; p++) {
		rs_ckpt_tree_opts_t o = { .prev_fd = -1 };
		rs_ckpt_stats_t st;
		int src = -1, dst = -1;

		snprintf(part, sizeof(part), "node-%u", p);
		snprintf(side, sizeof(side), "node-%u.json", p);
		if (_is_dir_at(stgfd, part) || !_is_dir_at(efd, part))
			continue;
		snprintf(tmp, sizeof(tmp), "node-%u.tmp-%ld-fill", p,
			 (long)getpid());
		rs_ckpt_tree_remove(stgfd, tmp, NULL);
		unlinkat(stgfd, side, 0);
		if (linkat(efd, side, stgfd, side, 0) < 0) {
			rc = rs_err_set(err, errno, "checkpoint: link %s/%s/%s "
					"into %s: %s", c->dir_path, ended, side,
					stg_path, strerror(errno));
			break;
		}
		src = openat(efd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
			     O_CLOEXEC);
		if (src < 0 || mkdirat(stgfd, tmp, 0700) < 0 ||
		    (dst = openat(stgfd, tmp, O_RDONLY | O_DIRECTORY |
				  O_NOFOLLOW | O_CLOEXEC)) < 0) {
			rc = rs_err_set(err, errno, "checkpoint: %s/%s: %s",
					stg_path, tmp, strerror(errno));
		} else {
			memset(&st, 0, sizeof(st));
			o.prev_fd = src;    /* same tree: every file links */
			o.sync = _sync_mode();
			o.dst_fresh = 1;
			o.set_root_attrs = 1;
			rc = rs_ckpt_tree_copy(src, dst, ended, tmp, &o, &st,
					       err);
			if (rc == 0 && renameat(stgfd, tmp, stgfd, part) < 0)
				rc = rs_err_set(err, errno, "checkpoint: rename "
						"%s/%s: %s", stg_path, tmp,
						strerror(errno));
		}
		if (src >= 0)
			close(src);
		if (dst >= 0)
			close(dst);
		if (rc < 0) {
			rs_ckpt_tree_remove(stgfd, tmp, NULL);
			break;
		}
		filled++;
		rs_ckpt_warn("checkpoint %s: part %u's task has ended; its "
			     "final scratch stands in for it in %s", c->dir_path,
			     p, stg_path);
	}
	close(efd);
	if (rc == 0 && filled && fsync(stgfd) < 0)
		rc = rs_err_set(err, errno, "checkpoint: fsync %s: %s",
				stg_path, strerror(errno));
	return rc < 0 ? rc : filled;
}

/* 1 if every part 0..nparts-1 is complete in staging stgfd. */
static int _all_parts(int stgfd, unsigned nparts)
{
	char f[32];

	for (unsigned p = 0; p < nparts; p++) {
		snprintf(f, sizeof(f), "node-%u", p);
		if (!_is_dir_at(stgfd, f))
			return 0;
	}
	return 1;
}

/*
 * After a node saved its final part (lock held): the newest pending
 * checkpoint of the attempt may now be complete (the other nodes finished
 * it while this one was still ending): publish it.  If every node's task
 * has ended, the attempt is over: its staging and the ended folder go.
 */
static int _after_ended(struct ctx *c, const char *ended, int endfd,
			unsigned nparts, unsigned keep, rs_ckpt_stats_t *stats,
			rs_err_t *err)
{
	char best[NAME_MAX + 1] = "", path[PATH_MAX];
	unsigned long best_seq = 0;
	struct names all = { 0 };
	struct stg_key k;
	struct dirent *de;
	int fd, rc = 0;
	DIR *d;

	fd = openat(c->cfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return rs_err_set(err, errno, "list %s: %s", c->dir_path,
				  strerror(errno));
	}
	while ((de = readdir(d)))
		if (_parse_staging(de->d_name, &k) == 0 && !k.solo &&
		    !k.ended && !strcmp(k.job, c->job) &&
		    k.attempt == c->attempt) {
			_names_add(&all, de->d_name);
			if (k.seq > best_seq) {
				best_seq = k.seq;
				snprintf(best, sizeof(best), "%s", de->d_name);
			}
		}
	closedir(d);
	if (best[0]) {
		int sfd = openat(c->cfd, best, O_RDONLY | O_DIRECTORY |
				 O_NOFOLLOW | O_CLOEXEC);

		snprintf(path, sizeof(path), "%s/%s", c->dir_path, best);
		if (sfd >= 0) {
			rc = _fill_ended(c, sfd, path, nparts, err);
			if (rc >= 0 && _all_parts(sfd, nparts)) {
				long gen = -1;

				c->seq = best_seq;
				c->own_staging = best;
				rc = _publish(c, best, keep, &gen, err);
				if (rc == 0) {
					stats->gen = gen;
					stats->published = 1;
				}
			}
			close(sfd);
		}
	}
	if (rc >= 0 && _all_parts(endfd, nparts)) {
		/* Every node's task has ended: nothing of this attempt can
		 * complete any more. */
		for (size_t i = 0; i < all.n; i++)
			if (_is_dir_at(c->cfd, all.v[i]))
				_trash(c->cfd, c->dir_path, all.v[i], &c->trash,
				       NULL);
		_trash(c->cfd, c->dir_path, ended, &c->trash, NULL);
	}
	_names_free(&all);
	return rc < 0 ? rc : 0;
}

int rs_ckpt_save(const char *scratch, const char *ckpt_dir, unsigned keep,
		 const rs_ckpt_meta_t *meta, rs_ckpt_stats_t *stats,
		 rs_err_t *err)
{
	rs_ckpt_meta_t m = { .reason = "manual", .nparts = 1 };
	rs_ckpt_stats_t local;
	rs_ckpt_tree_opts_t o = { .prev_fd = -1 };
	struct ctx c;
	json_object *root = NULL;
	char stg[NAME_MAX + 1], tmp[NAME_MAX + 1], part[32], prev[64];
	char stg_path[PATH_MAX], tmp_path[PATH_MAX];
	double t0 = _now();
	long latest, gen = -1;
	int sfd = -1, stgfd = -1, pfd = -1, lfd = -1, rc = 0;
	int made_tmp = 0, made_stg = 0;

	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	stats->gen = -1;
	memset(&c, 0, sizeof(c));
	c.cfd = -1;
	c.dir_path = ckpt_dir;
	rs_err_clear(err);
	if (meta) {
		m = *meta;
		if (!m.reason)
			m.reason = "manual";
	}
	if (!scratch || !*scratch || !ckpt_dir || !*ckpt_dir)
		return rs_err_set(err, EINVAL, "checkpoint: scratch and "
				  "checkpoint directory must be given");
	if (keep < 1)
		return rs_err_set(err, EINVAL, "checkpoint %s: keep must be at "
				  "least 1", ckpt_dir);
	if (m.nparts < 1 || m.nparts > NPARTS_MAX || m.part >= m.nparts)
		return rs_err_set(err, EINVAL, "checkpoint %s: part %u of %u "
				  "parts is out of range", ckpt_dir, m.part,
				  m.nparts);
	if (m.nparts > 1 && (!m.job_id || !*m.job_id ||
			     (m.seq < 1 && !m.ended)))
		return rs_err_set(err, EINVAL, "checkpoint %s: a checkpoint in "
				  "%u parts needs a job id and a seq >= 1 to "
				  "pair its parts", ckpt_dir, m.nparts);
	_hostname(c.host, sizeof(c.host));
	_sanitize(c.job, sizeof(c.job), m.job_id);
	c.attempt = m.attempt;
	c.seq = m.ended ? 0 : m.seq;

	/* The user's own folder, not one another user planted where it
	 * would be (issue #11): reading theirs would save their files into
	 * our checkpoint. */
	sfd = rs_safedir_open(scratch, geteuid(), 0, "scratch", err);
	if (sfd < 0) {
		rc = sfd;
		goto out;
	}
	c.cfd = _open_own_dir(ckpt_dir, 1, err);
	if (c.cfd < 0) {
		rc = c.cfd;
		goto out;
	}
	if ((rc = _check_nesting(sfd, c.cfd, scratch, ckpt_dir, err)) < 0)
		goto out;
	/* Names are bounded (job id and host at 63 bytes each), paths are
	 * only for messages; a path too long to print is still an error
	 * rather than a misleading message. */
	if (m.nparts > 1 && m.ended)
		snprintf(stg, sizeof(stg), STAGING_JOB "%s-a%u" ENDED_SUFFIX,
			 c.job, m.attempt);
	else if (m.nparts > 1)
		snprintf(stg, sizeof(stg), STAGING_JOB "%s-a%u-s%u", c.job,
			 m.attempt, m.seq);
	else
		snprintf(stg, sizeof(stg), STAGING_SOLO "%ld-%s",
			 (long)getpid(), c.host);
	snprintf(tmp, sizeof(tmp), "node-%u.tmp-%ld-%s", m.part,
		 (long)getpid(), c.host);
	snprintf(part, sizeof(part), "node-%u", m.part);
	if (snprintf(stg_path, sizeof(stg_path), "%s/%s", ckpt_dir, stg) >=
	    (int)sizeof(stg_path) ||
	    snprintf(tmp_path, sizeof(tmp_path), "%s/%s", stg_path, tmp) >=
	    (int)sizeof(tmp_path)) {
		rc = rs_err_set(err, ENAMETOOLONG, "checkpoint %s: path too "
				"long", ckpt_dir);
		goto out;
	}

	/* Set up under the lock, so a concurrent cleanup cannot remove the
	 * staging directory between our mkdir and our first file. */
	rc = rs_manifest_lock(c.cfd, ckpt_dir, rs_manifest_lock_timeout_ms(),
			      &lfd, err);
	if (rc < 0)
		goto out;
	c.own_staging = m.nparts > 1 ? stg : NULL;
	rc = _repair(&c, &root, err);
	json_object_put(root);
	root = NULL;
	if (rc < 0)
		goto out;
	c.own_staging = stg;
	if (mkdirat(c.cfd, stg, 0700) == 0)
		made_stg = m.nparts == 1;
	else if (errno != EEXIST) {
		rc = rs_err_set(err, errno, "checkpoint: create %s: %s",
				stg_path, strerror(errno));
		goto out;
	}
	stgfd = openat(c.cfd, stg, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		       O_CLOEXEC);
	if (stgfd < 0) {
		rc = rs_err_set(err, errno, "checkpoint: open %s: %s", stg_path,
				strerror(errno));
		goto out;
	}
	/* Our own earlier try of this very part (same key, same pid and host)
	 * or a completed part being saved again: start it over. */
	if ((rc = rs_ckpt_tree_remove(stgfd, tmp, err)) < 0)
		goto out;
	if (_is_dir_at(stgfd, part)) {
		rs_ckpt_warn("checkpoint: %s/%s was already saved; replacing it",
			     stg_path, part);
		if ((rc = rs_ckpt_tree_remove(stgfd, part, err)) < 0)
			goto out;
	}
	if (mkdirat(stgfd, tmp, 0700) < 0) {
		rc = rs_err_set(err, errno, "checkpoint: create %s: %s",
				tmp_path, strerror(errno));
		goto out;
	}
	made_tmp = 1;
	latest = _latest(c.cfd);
	if (latest > 0) {
		snprintf(prev, sizeof(prev), "gen-%06ld/node-%u", latest,
			 m.part);
		/* Held open: if the generation is pruned while we read it,
		 * a failing link falls back to a copy. */
		o.prev_fd = openat(c.cfd, prev, O_RDONLY | O_DIRECTORY |
				   O_NOFOLLOW | O_CLOEXEC);
	}
	rs_manifest_unlock(lfd);
	lfd = -1;
	_fault("staged");

	pfd = openat(stgfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		     O_CLOEXEC);
	if (pfd < 0) {
		rc = rs_err_set(err, errno, "checkpoint: open %s: %s", tmp_path,
				strerror(errno));
		goto out;
	}
	o.sync = _sync_mode();
	o.fault_after_files = _env_ulong("RS_CKPT_FAULT_AFTER_FILES", 0);
	o.early_writeback = _env_ulong("RS_CKPT_EARLY_WRITEBACK", 1) != 0;
	o.threads = (int)_env_ulong("RS_CKPT_THREADS", 0);
	o.dst_fresh = 1;
	o.set_root_attrs = 1;
	rc = rs_ckpt_tree_copy(sfd, pfd, scratch, tmp_path, &o, stats, err);
	if (rc < 0)
		goto out;
	_fault("copied");
	rc = _write_sidecar(stgfd, stg_path, m.part, c.host, &m, stats,
			    _now() - t0, err);
	if (rc < 0)
		goto out;
	/* The part is complete the moment node-P exists: its data and its
	 * sidecar are durable already. */
	if (renameat(stgfd, tmp, stgfd, part) < 0) {
		rc = rs_err_set(err, errno, "checkpoint: rename %s to %s: %s%s",
				tmp_path, part, strerror(errno),
				errno == ENOTEMPTY || errno == EEXIST ?
				" (another process saved this part)" : "");
		goto out;
	}
	made_tmp = 0;
	if (fsync(stgfd) < 0) {
		rc = rs_err_set(err, errno, "checkpoint: fsync %s: %s",
				stg_path, strerror(errno));
		goto out;
	}
	_fault("part");

	rc = rs_manifest_lock(c.cfd, ckpt_dir, rs_manifest_lock_timeout_ms(),
			      &lfd, err);
	if (rc < 0)
		goto out;
	if (m.ended) {
		if (!_is_dir_at(c.cfd, stg))
			goto out;  /* the attempt's last ender cleaned up */
		rc = _after_ended(&c, stg, stgfd, m.nparts, keep, stats, err);
		goto out;
	}
	if (!_is_dir_at(c.cfd, stg)) {
		/* Only two ways: another part published it (then the
		 * manifest has its record) or it was removed as stale. */
		rc = _find_published(&c, &m, &gen, err);
		if (rc == 0)
			stats->gen = gen;
		goto out;
	}
	if (m.nparts > 1 &&
	    (rc = _fill_ended(&c, stgfd, stg_path, m.nparts, err)) < 0)
		goto out;
	rc = 0;
	if (!_all_parts(stgfd, m.nparts))
		goto out;  /* not the last part: someone else publishes */
	rc = _publish(&c, stg, keep, &gen, err);
	if (rc < 0)
		goto out;
	made_stg = 0;
	stats->gen = gen;
	stats->published = 1;
out:
	if (rc < 0 && made_tmp && stgfd >= 0)
		rs_ckpt_tree_remove(stgfd, tmp, NULL);
	if (rc < 0 && made_stg && c.cfd >= 0)
		unlinkat(c.cfd, stg, AT_REMOVEDIR);
	rs_manifest_unlock(lfd);
	if (c.cfd >= 0)
		_empty_trash(c.cfd, ckpt_dir, &c.trash);
	_names_free(&c.trash);
	if (o.prev_fd >= 0)
		close(o.prev_fd);
	if (pfd >= 0)
		close(pfd);
	if (stgfd >= 0)
		close(stgfd);
	if (c.cfd >= 0)
		close(c.cfd);
	if (sfd >= 0)
		close(sfd);
	stats->seconds = _now() - t0;
	return rc;
}

/* ------------------------------------------------------ attempt end -- */

int rs_ckpt_drop_attempt(const char *ckpt_dir, const char *job_id, unsigned attempt,
			 unsigned *removed, rs_err_t *err)
{
	struct ctx c;
	struct stg_key k;
	struct dirent *de;
	struct names found = { 0 };
	DIR *d;
	int fd, lfd = -1, rc;

	memset(&c, 0, sizeof(c));
	*removed = 0;
	c.dir_path = ckpt_dir;
	_sanitize(c.job, sizeof(c.job), job_id);
	if (!c.job[0])
		return rs_err_set(err, EINVAL, "checkpoint %s: no job id", ckpt_dir);
	c.cfd = _open_own_dir(ckpt_dir, 0, err);
	if (c.cfd < 0)
		return c.cfd == -ENOENT ? 0 : c.cfd;
	/* Under the lock: no save of this job may be setting up a staging
	 * folder of this attempt now (the attempt is over), and none of
	 * another job's is touched. */
	rc = rs_manifest_lock(c.cfd, ckpt_dir, rs_manifest_lock_timeout_ms(), &lfd, err);
	if (rc < 0)
		goto out;
	fd = openat(c.cfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		rc = rs_err_set(err, errno, "list %s: %s", ckpt_dir, strerror(errno));
		goto out;
	}
	while ((de = readdir(d)))
		if (_parse_staging(de->d_name, &k) == 0 && !k.solo &&
		    !strcmp(k.job, c.job) && k.attempt <= attempt &&
		    _is_dir_at(c.cfd, de->d_name))
			_names_add(&found, de->d_name);
	closedir(d);
	for (size_t i = 0; i < found.n; i++)
		if (_trash(c.cfd, ckpt_dir, found.v[i], &c.trash, NULL) == 0)
			(*removed)++;
	rc = 0;
out:
	rs_manifest_unlock(lfd);
	_empty_trash(c.cfd, ckpt_dir, &c.trash);
	_names_free(&c.trash);
	_names_free(&found);
	close(c.cfd);
	return rc;
}

/* ------------------------------------------------------------ restore -- */

int rs_ckpt_latest(const char *ckpt_dir, char *buf, size_t len, long *gen,
		   rs_err_t *err)
{
	char name[32];
	long g;
	int cfd, rc = 0;

	if (gen)
		*gen = -1;
	cfd = rs_manifest_open_dir_read(ckpt_dir, err);
	if (cfd < 0)
		return cfd;
	g = _latest(cfd);
	if (g < 1) {
		rc = rs_err_set(err, ENOENT, "checkpoint %s: no complete "
				"generation (no valid `latest`)", ckpt_dir);
		goto out;
	}
	_gen_name(name, sizeof(name), g);
	if (!_is_dir_at(cfd, name)) {
		rc = rs_err_set(err, ENOENT, "checkpoint %s: `latest` points to "
				"%s, which does not exist", ckpt_dir, name);
		goto out;
	}
	if (buf && snprintf(buf, len, "%s/%s", ckpt_dir, name) >= (int)len) {
		rc = rs_err_set(err, ENAMETOOLONG, "checkpoint %s: path of %s "
				"does not fit in %zu bytes", ckpt_dir, name, len);
		goto out;
	}
	if (gen)
		*gen = g;
out:
	close(cfd);
	return rc;
}

int rs_ckpt_restore(const char *ckpt_dir, const char *scratch, long gen,
		    unsigned part, rs_ckpt_stats_t *stats, rs_err_t *err)
{
	rs_ckpt_stats_t local;
	rs_ckpt_tree_opts_t o = { .prev_fd = -1 };
	json_object *root = NULL;
	char name[32], pname[64], why[256], src[PATH_MAX];
	double t0 = _now();
	unsigned nparts = 0;
	long latest;
	int cfd = -1, gfd = -1, pfd = -1, dfd = -1, rc = 0, created = 0;

	if (!stats)
		stats = &local;
	memset(stats, 0, sizeof(*stats));
	stats->gen = -1;
	rs_err_clear(err);
	if (!ckpt_dir || !*ckpt_dir || !scratch || !*scratch)
		return rs_err_set(err, EINVAL, "restore: checkpoint directory "
				  "and scratch must be given");
	cfd = _open_own_dir(ckpt_dir, 0, err);
	if (cfd < 0)
		return cfd;
	latest = _latest(cfd);
	if (gen < 0)
		gen = latest;
	if (gen < 1) {
		rc = rs_err_set(err, ENOENT, "restore from %s: no complete "
				"generation to restore", ckpt_dir);
		goto out;
	}
	_gen_name(name, sizeof(name), gen);
	if (gen > latest) {
		rc = rs_err_set(err, EUCLEAN, "restore from %s: %s is not "
				"committed (latest is %ld): an interrupted save",
				ckpt_dir, name, latest);
		goto out;
	}
	if (!_is_dir_at(cfd, name)) {
		rc = rs_err_set(err, ENOENT, "restore from %s: %s does not "
				"exist", ckpt_dir, name);
		goto out;
	}
	rc = _complete(cfd, name, &nparts, NULL, why, sizeof(why));
	if (rc < 0) {
		rc = rs_err_set(err, -rc, "restore from %s/%s: %s", ckpt_dir,
				name, strerror(-rc));
		goto out;
	}
	if (rc == 0) {
		rc = rs_err_set(err, EUCLEAN, "restore from %s/%s: incomplete "
				"generation, refusing it: %s", ckpt_dir, name,
				why);
		goto out;
	}
	rc = 0;
	/* An older generation must still be on record: one dropped from the
	 * manifest is being pruned and may be half deleted. */
	if (gen != latest) {
		rc = rs_manifest_read_at(cfd, ckpt_dir, &root, err);
		if (rc < 0)
			goto out;
		if (_find(rs_manifest_generations(root), gen) < 0) {
			rc = rs_err_set(err, ENOENT, "restore from %s: %s is "
					"not in the manifest (pruned)", ckpt_dir,
					name);
			goto out;
		}
	}
	if (part >= nparts) {
		rc = rs_err_set(err, EINVAL, "restore from %s/%s: part %u "
				"requested, the generation has parts 0..%u",
				ckpt_dir, name, part, nparts - 1);
		goto out;
	}
	snprintf(pname, sizeof(pname), "gen-%06ld/node-%u", gen, part);
	if (snprintf(src, sizeof(src), "%s/%s", ckpt_dir, pname) >=
	    (int)sizeof(src)) {
		rc = rs_err_set(err, ENAMETOOLONG, "restore from %s: path too "
				"long", ckpt_dir);
		goto out;
	}
	pfd = openat(cfd, pname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
		     O_CLOEXEC);
	if (pfd < 0) {
		rc = rs_err_set(err, errno, "restore: open %s: %s", src,
				strerror(errno));
		goto out;
	}
	/* Restoring into a folder someone else made (or a symlink to one
	 * in our home) would hand them our data or delete our files. */
	dfd = rs_safedir_open(scratch, geteuid(), RS_SAFEDIR_CREATE,
			      "scratch", err);
	if (dfd < 0) {
		rc = dfd;
		goto out;
	}
	if ((rc = _check_nesting(dfd, cfd, scratch, ckpt_dir, err)) < 0)
		goto out;
	/* Nothing to replace in an empty folder (one we just made). */
	created = _dir_empty(dfd) == 1;
	o.sync = RS_CKPT_SYNC_NONE;
	o.threads = (int)_env_ulong("RS_CKPT_THREADS", 0);
	o.dst_fresh = created;
	o.set_root_attrs = 0;
	/* prev_fd stays -1: restored files are copies (or reflinks), never
	 * hard links, because the application will write to them. */
	rc = rs_ckpt_tree_copy(pfd, dfd, src, scratch, &o, stats, err);
	if (rc < 0)
		goto out;
	if (stats->changed) {
		rc = rs_err_set(err, ESTALE, "restore from %s: %llu entries "
				"vanished while being read (generation pruned "
				"during the restore?); scratch %s is incomplete",
				src, (unsigned long long)stats->changed,
				scratch);
		goto out;
	}
	stats->gen = gen;
out:
	json_object_put(root);
	if (dfd >= 0)
		close(dfd);
	if (pfd >= 0)
		close(pfd);
	if (gfd >= 0)
		close(gfd);
	close(cfd);
	stats->seconds = _now() - t0;
	return rc;
}

/* ------------------------------------------------------------- verify -- */

/*
 * Report what is left in staging: never restored, so not an
 * inconsistency, but space, and a sign of a save that never completed.
 * A multi-part staging of an attempt older than one recorded in the
 * manifest for the same job is abandoned for sure (that attempt is over).
 */
static void _verify_staging(int cfd, const char *ckpt_dir, json_object *gens)
{
	struct dirent *de;
	struct stg_key k;
	time_t now = time(NULL);
	int fd = openat(cfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d))) {
		int64_t newer = 0;

		if (strncmp(de->d_name, STAGING, strlen(STAGING)))
			continue;
		if (_parse_staging(de->d_name, &k) == 0 && !k.solo) {
			for (size_t i = 0; i < json_object_array_length(gens);
			     i++) {
				json_object *r = json_object_array_get_idx(gens,
									   i);
				const char *j = _jstr(r, "job_id");
				char sj[64];

				_sanitize(sj, sizeof(sj), j);
				if (j && !strcmp(sj, k.job) &&
				    _jint(r, "attempt", 0) > (int64_t)k.attempt &&
				    _jint(r, "attempt", 0) > newer)
					newer = _jint(r, "attempt", 0);
			}
		}
		if (newer)
			rs_ckpt_warn("verify %s: abandoned staging %s: attempt "
				     "%lu of job %s is over (attempt %lld "
				     "saved since); never restored, removed by "
				     "the next save of that job", ckpt_dir,
				     de->d_name, k.attempt, k.job,
				     (long long)newer);
		else
			rs_ckpt_warn("verify %s: staging %s: a save in "
				     "progress or abandoned (last change %lld s "
				     "ago); never restored, removed by a later "
				     "save of the same job or after "
				     "RS_CKPT_STALE_SECONDS", ckpt_dir,
				     de->d_name, (long long)_staging_age(cfd,
				     de->d_name, now));
	}
	closedir(d);
}

int rs_ckpt_verify(const char *ckpt_dir, rs_err_t *err)
{
	json_object *root = NULL, *gens;
	char name[32], why[256];
	unsigned nparts;
	long latest, newest = -1;
	size_t n;
	int cfd, rc = 0, c;

	rs_err_clear(err);
	/* Read-only: root may verify a user's folder (ckpt verify DIR). */
	cfd = rs_manifest_open_dir_read(ckpt_dir, err);
	if (cfd < 0)
		return cfd;
	rc = rs_manifest_read_at(cfd, ckpt_dir, &root, err);
	if (rc < 0)
		goto out;
	gens = rs_manifest_generations(root);
	n = json_object_array_length(gens);
	latest = _latest(cfd);
	for (size_t i = 0; i < n; i++) {
		long g = (long)_jint(json_object_array_get_idx(gens, i), "gen",
				     -1);
		if (g < 1) {
			rc = rs_err_set(err, EUCLEAN, "verify %s: manifest "
					"record %zu has no valid \"gen\"",
					ckpt_dir, i);
			goto out;
		}
		_gen_name(name, sizeof(name), g);
		c = _complete(cfd, name, &nparts, NULL, why, sizeof(why));
		if (c <= 0) {
			rc = rs_err_set(err, EUCLEAN, "verify %s: %s is in the "
					"manifest but incomplete: %s", ckpt_dir,
					name, c < 0 ? strerror(-c) : why);
			goto out;
		}
		if (g > newest)
			newest = g;
	}
	if (latest < 1) {
		char t[NAME_MAX + 1];
		if (readlinkat(cfd, LATEST, t, sizeof(t)) >= 0 || n > 0) {
			rc = rs_err_set(err, EUCLEAN, "verify %s: `latest` is "
					"missing or not a generation, but %zu "
					"generations are recorded", ckpt_dir, n);
			goto out;
		}
		goto out; /* empty: nothing saved yet, consistent */
	}
	_gen_name(name, sizeof(name), latest);
	c = _complete(cfd, name, &nparts, NULL, why, sizeof(why));
	if (c <= 0) {
		rc = rs_err_set(err, EUCLEAN, "verify %s: `latest` points to %s,"
				" which is incomplete: %s", ckpt_dir, name,
				c < 0 ? strerror(-c) : why);
		goto out;
	}
	if (newest > latest) {
		rc = rs_err_set(err, EUCLEAN, "verify %s: `latest` is %s but "
				"the manifest records gen-%06ld", ckpt_dir, name,
				newest);
		goto out;
	}
	/* latest newer than every record: a save was interrupted between
	 * its commit and its record; the next save writes the record. */
	if (newest < latest)
		rs_ckpt_warn("verify %s: %s is committed but not yet recorded "
			     "in the manifest (the next save records it)",
			     ckpt_dir, name);
	_verify_staging(cfd, ckpt_dir, gens);
out:
	json_object_put(root);
	close(cfd);
	return rc;
}
