/*
 * spool.h - a crash-safe, bounded, root-owned queue of payloads waiting
 * to be sent to a metrics or alert receiver.
 *
 * Layout of SPOOL_DIR (mode 0700, owned by the effective user - root in
 * slurmstepd; refused if owned by anyone else, group/world-writable, or a
 * symlink):
 *
 *   SPOOL_DIR/e-<sec>-<nsec>-<pid>-<seq>-<len>   one entry; names sort in
 *                                              order of creation, <len> is
 *                                              the payload size so that
 *                                              the bound needs no stat()
 *   SPOOL_DIR/.tmp-*                           being written; never read
 *   SPOOL_DIR/.lock                            flock: one flusher at a time
 *   SPOOL_DIR/dead/e-...                       dead letters: entries a
 *                                              receiver refused as bad
 *
 * An entry is a short text header, a blank line, then the payload bytes:
 *
 *   rs-spool 1
 *   kind metrics|alert|decision
 *   format json|clickhouse|prometheus|alertmanager
 *   event_id <cluster:job:attempt>
 *   path <URL path suffix, e.g. the Pushgateway group; may be empty>
 *   attempts <delivery attempts so far>
 *   created <unix seconds>
 *   next_try <unix seconds; not sent before>
 *   last_error <one line>
 *
 * Durability: an entry is written to a temporary file, fsync'd, renamed
 * into place and the folder fsync'd, so after rs_spool_put() returns 0 the
 * entry survives a crash or power loss, and a reader never sees half an
 * entry.  Every file is opened O_NOFOLLOW|O_CLOEXEC and fstat-checked
 * (regular file, owned by us).
 *
 * The bound (max_entries, max_bytes of payload): when a new entry would
 * pass it, rs_spool_put() refuses it with -ENOSPC and a message naming the
 * spool, the bound and the event, and the spool is left as it was.  We
 * refuse the new entry rather than drop the oldest: what is already
 * spooled was accepted as safe and is delivered in order when the
 * receiver comes back, and the refusal happens where someone sees it (the
 * caller logs it with the job id, so the event is still in the node's
 * log), whereas dropping the oldest would lose data silently, long after
 * the fact.  Alerts may go past the entry and byte bounds by a tenth
 * (at least one entry): a retries-exhausted alert is worth more than the
 * backlog of metrics that filled the spool.  The dead-letter folder has
 * the same entry bound; when it is full, a further dead letter is deleted
 * (and said so in the error) instead of moved.  Concurrent writers may
 * overshoot a bound by one entry each.
 *
 * Return convention: 0 or -errno with err filled.  A spool handle is not
 * thread-safe; separate processes may use the same folder at once
 * (rename is atomic, flushers serialise on rs_spool_lock()).
 */
#ifndef RS_SPOOL_H
#define RS_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define RS_SPOOL_DEFAULT_MAX_ENTRIES 10000UL
#define RS_SPOOL_DEFAULT_MAX_BYTES (64ULL << 20)
#define RS_SPOOL_MAX_PAYLOAD (1U << 20)  /* one entry, 1 MiB */

typedef enum rs_spool_kind {
	RS_SPOOL_METRICS = 0,
	RS_SPOOL_ALERT = 1,
	RS_SPOOL_DECISION = 2,   /* an end-of-attempt decision (decision.h) */
} rs_spool_kind_t;

typedef struct rs_spool_limits {
	unsigned long max_entries; /* 0 = RS_SPOOL_DEFAULT_MAX_ENTRIES */
	uint64_t max_bytes;        /* payload bytes; 0 = default */
} rs_spool_limits_t;

typedef struct rs_spool_entry {
	char name[96];            /* file name in the spool (set by put/read) */
	rs_spool_kind_t kind;
	char format[16];          /* how the payload is to be sent */
	char event_id[256];
	char path[512];           /* URL path suffix; "" if none */
	unsigned attempts;        /* failed delivery attempts so far */
	int64_t created;          /* unix seconds (set by put) */
	int64_t next_try;         /* unix seconds, 0 = at once */
	char last_error[256];     /* why the last attempt failed; "" if none */
	char *payload;            /* owned after rs_spool_read(); borrowed by put */
	size_t len;
} rs_spool_entry_t;

typedef struct rs_spool rs_spool_t;

/* Open (with create != 0: create, mode 0700) the spool folder dir and its
 * dead/ sub-folder, checking ownership and mode.  limits may be NULL.
 * -ENOENT (missing, create == 0), -EPERM (wrong owner, group/world
 * writable, symlink), other -errno. */
int rs_spool_open(const char *dir, const rs_spool_limits_t *limits, int create,
		  rs_spool_t **out, rs_err_t *err);

/* Close sp (may be NULL); releases the lock if held. */
void rs_spool_close(rs_spool_t *sp);

/* The folder sp was opened on. */
const char *rs_spool_dir(const rs_spool_t *sp);

/* Add an entry: kind, format, event_id, path, next_try and payload/len
 * are taken from e (attempts/created/last_error are reset).  On success
 * the new file name is copied to e->name.  -ENOSPC at the bound (see
 * above), -EINVAL for an empty or oversized payload or a header field with
 * a newline, other -errno on I/O errors (nothing is left behind). */
int rs_spool_put(rs_spool_t *sp, rs_spool_entry_t *e, rs_err_t *err);

/* Names of the entries, oldest first (dead != 0: of the dead letters).
 * *names is a malloc'd array of malloc'd strings (rs_spool_names_free()),
 * NULL when *n is 0. */
int rs_spool_list(rs_spool_t *sp, int dead, char ***names, size_t *n, rs_err_t *err);
void rs_spool_names_free(char **names, size_t n);

/* Number of entries and payload bytes in the live spool (dead letters not
 * counted). */
int rs_spool_usage(rs_spool_t *sp, size_t *entries, uint64_t *bytes, rs_err_t *err);

/* Read entry name (dead != 0: from dead/) into e; e->payload is malloc'd
 * (rs_spool_entry_free()).  -ENOENT if it is gone (another flusher took
 * it), -EINVAL if the file is not a well-formed entry, -EPERM if it is
 * not a regular file owned by us. */
int rs_spool_read(rs_spool_t *sp, const char *name, int dead, rs_spool_entry_t *e,
		  rs_err_t *err);
void rs_spool_entry_free(rs_spool_entry_t *e);

/* Delivered: remove the entry.  A missing entry is not an error. */
int rs_spool_done(rs_spool_t *sp, const char *name, rs_err_t *err);

/* Not delivered, try again later: attempts + 1, next_try and last_error
 * (NULL = "") written back atomically (e is updated to match). */
int rs_spool_retry(rs_spool_t *sp, rs_spool_entry_t *e, int64_t next_try,
		   const char *why, rs_err_t *err);

/* Refused as bad: move to dead/ with last_error = why.  If dead/ is at
 * the entry bound, the entry is deleted instead and -ENOSPC returned
 * (the entry is gone either way; err says which). */
int rs_spool_dead(rs_spool_t *sp, rs_spool_entry_t *e, const char *why, rs_err_t *err);

/* Move every dead letter back into the live spool with attempts 0 and
 * next_try 0 (after the operator fixed the table, say).  *moved counts
 * them. */
int rs_spool_requeue_dead(rs_spool_t *sp, size_t *moved, rs_err_t *err);

/* Take the flusher lock, waiting at most wait_ms (0 = try once).
 * -EBUSY if another process holds it after that. */
int rs_spool_lock(rs_spool_t *sp, long wait_ms, rs_err_t *err);
void rs_spool_unlock(rs_spool_t *sp);

/* Remove .tmp-* files older than max_age_s left by a crashed writer.
 * Returns the number removed (>= 0) or -errno. */
int rs_spool_clean_tmp(rs_spool_t *sp, int64_t max_age_s, rs_err_t *err);

#endif
