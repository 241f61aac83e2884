/*
 * manifest.h - CKPT_DIR/manifest.json and the CKPT_DIR/.lock that
 * serialises every change to it.
 *
 * The manifest is one JSON object:
 *
 *   { "schema": 1,
 *     "next_gen": 8,                  next generation number to hand out
 *     "generations": [ {...}, ... ],  oldest first, written by ckpt.c
 *     ...other top-level keys...      owned by other modules (e.g. the
 *                                     requeue ledger's "attempts"); kept
 *                                     verbatim by every writer }
 *
 * Readers must ignore keys they do not know; writers must go through
 * rs_manifest_update() (or hold the lock and use rs_manifest_write_at()),
 * which preserves every key they do not touch.  A manifest whose "schema"
 * is newer than RS_MANIFEST_SCHEMA is read but never rewritten.
 *
 * Return convention: 0 on success, -errno on failure with err filled.
 * Safe across processes and nodes (flock on CKPT_DIR/.lock); a lock wait is
 * bounded (rs_manifest_lock_timeout_ms()), never forever.
 */
#ifndef RS_MANIFEST_H
#define RS_MANIFEST_H

#include <json-c/json.h>

#include "err.h"

#define RS_MANIFEST_SCHEMA 1
#define RS_MANIFEST_NAME   "manifest.json"
#define RS_MANIFEST_LOCK   ".lock"
/* Largest manifest we agree to read: far above any real one (a generation
 * record is ~1 KiB), low enough that a garbage file cannot exhaust memory. */
#define RS_MANIFEST_MAX_BYTES (16u << 20)
/* Largest per-part sidecar (gen-N/node-P.json): a few hundred bytes. */
#define RS_MANIFEST_SIDECAR_MAX_BYTES (64u << 10)

/*
 * Open CKPT_DIR as a directory fd (O_CLOEXEC) through rs_safedir_open()
 * (safedir.h) with owner = the caller's effective uid.  create: make it
 * (and any missing parents) with mode 0700 if missing.  Refuses (-EPERM)
 * a folder owned by another uid or writable by group or others, (-ELOOP)
 * a symlink, (-ENOTDIR) a path that is not a folder, (-EINVAL) a relative
 * path or one with "." or "..".  Returns the fd (>= 0) or -errno.
 */
int rs_manifest_open_dir(const char *ckpt_dir, int create, rs_err_t *err);

/*
 * The same, for readers that never write: where rs_manifest_open_dir()
 * says -EPERM and the caller is root (an operator's `status DIR`, `ckpt
 * list/verify DIR` on a user's folder), the folder is opened read-only with
 * O_NOFOLLOW and must be a folder.  Everything read through it is bounded
 * (rs_manifest_read_json_max_at).  Returns the fd (>= 0) or -errno.
 */
int rs_manifest_open_dir_read(const char *ckpt_dir, rs_err_t *err);

/* Lock wait bound in ms: env RS_CKPT_LOCK_TIMEOUT (seconds, 1..3600),
 * default 30 s. */
int rs_manifest_lock_timeout_ms(void);

/*
 * Take the exclusive lock CKPT_DIR/.lock (created 0600 if missing), polling
 * for at most timeout_ms.  dirfd: CKPT_DIR; dir_path only for messages.
 * On success *lockfd holds the lock until rs_manifest_unlock().
 * -ETIMEDOUT if another holder kept it longer than timeout_ms.
 */
int rs_manifest_lock(int dirfd, const char *dir_path, int timeout_ms,
		     int *lockfd, rs_err_t *err);
void rs_manifest_unlock(int lockfd);

/*
 * Read the manifest into *root (caller json_object_put()s it).  A missing
 * manifest yields a fresh {"schema":1,"next_gen":1,"generations":[]}.
 * -EBADMSG if the file is not a JSON object or has a malformed "schema",
 * "next_gen" or "generations".  Does not lock: a reader sees either the old
 * or the new file, because writers rename a complete temp file into place.
 * Root may read a folder owned by someone else (operators reading a job's
 * history); every other caller must own it.
 */
int rs_manifest_read(const char *ckpt_dir, json_object **root, rs_err_t *err);
int rs_manifest_read_at(int dirfd, const char *dir_path, json_object **root,
			rs_err_t *err);

/*
 * Write root as the manifest: temp file, fsync, rename, fsync of CKPT_DIR.
 * The caller must hold the lock.  -EPROTONOSUPPORT if root's schema is newer
 * than this program's.
 */
int rs_manifest_write_at(int dirfd, const char *dir_path, json_object *root,
			 rs_err_t *err);

/* Callback for rs_manifest_update: modify root in place.  Return 0 to write
 * it, RS_MANIFEST_UNCHANGED to skip writing, or -errno (with err) to abort
 * without writing. */
#define RS_MANIFEST_UNCHANGED 1
typedef int (*rs_manifest_fn)(json_object *root, void *arg, rs_err_t *err);

/*
 * Read-modify-write under the lock: open CKPT_DIR (created 0700 if missing,
 * owner checked), lock, read, fn(root, arg, err), write if asked, unlock.
 * Returns fn's negative value, or 0.
 */
int rs_manifest_update(const char *ckpt_dir, rs_manifest_fn fn, void *arg,
		       rs_err_t *err);

/* The "generations" array of root (created empty if absent).  Borrowed. */
json_object *rs_manifest_generations(json_object *root);

/*
 * Numbers of a manifest or a sidecar: files the job's user may edit, read
 * by root too.  A value that is absent, not a number, not finite (NaN,
 * inf) or outside [lo, hi] gives dflt; a double is range-checked before it
 * is converted (no undefined conversion); booleans are 0/1.  Anything a
 * real manifest holds fits in +-RS_MANIFEST_NUM_MAX (exact in a double,
 * far from int64 overflow when a few are added or subtracted).
 */
#define RS_MANIFEST_NUM_MAX ((int64_t)1 << 53)
int64_t rs_manifest_num(json_object *o, const char *k, int64_t dflt,
			int64_t lo, int64_t hi);

/* Seconds: finite and in [0, max], else 0. */
double rs_manifest_seconds(json_object *o, const char *k, double max);

/* Write any JSON value atomically as dirfd/name (temp, fsync, rename,
 * fsync dirfd).  Used for the manifest and the per-part sidecars. */
int rs_manifest_write_json_at(int dirfd, const char *dir_path,
			      const char *name, json_object *obj,
			      rs_err_t *err);

/* The same; sync_dir 0 skips the fsync of dirfd after the rename, for a
 * caller that fsyncs dirfd itself right after (one journal commit less). */
int rs_manifest_write_json_at2(int dirfd, const char *dir_path,
			       const char *name, json_object *obj,
			       int sync_dir, rs_err_t *err);

/* Read dirfd/name as a JSON object (at most RS_MANIFEST_MAX_BYTES).
 * Opened O_NOFOLLOW|O_NONBLOCK (a FIFO never blocks us), it must be a
 * regular file.  -ENOENT if missing, -ELOOP if a symlink, -EBADMSG if not
 * a regular file or not a JSON object, -EFBIG if larger than the bound. */
int rs_manifest_read_json_at(int dirfd, const char *dir_path,
			     const char *name, json_object **obj,
			     rs_err_t *err);

/* The same with the size bound given (e.g. RS_MANIFEST_SIDECAR_MAX_BYTES). */
int rs_manifest_read_json_max_at(int dirfd, const char *dir_path,
				 const char *name, size_t max_bytes,
				 json_object **obj, rs_err_t *err);

#endif
