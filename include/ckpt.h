/*
 * ckpt.h - the checkpoint engine: atomic, incremental, versioned
 * generations of a scratch folder, and restore.  Usable without Slurm.
 *
 * On-disk layout of CKPT_DIR (mode 0700, owned by the caller):
 *
 *   CKPT_DIR/gen-000007/            a complete generation
 *   CKPT_DIR/gen-000007/node-0/     part written by node 0 (the whole tree
 *                                   of that node's scratch); a job on N
 *                                   nodes has node-0 .. node-(N-1)
 *   CKPT_DIR/latest -> gen-000007   symlink, replaced atomically
 *   CKPT_DIR/manifest.json          written atomically (temp + rename)
 *   CKPT_DIR/.staging-...           in-progress parts; never "complete"
 *   CKPT_DIR/.lock                  serialises publish/prune/manifest
 *
 * A generation becomes visible (renamed to gen-NNNNNN, `latest` moved,
 * recorded in the manifest) only when all `nparts` parts are complete.
 * Parts of the same checkpoint on different nodes are paired by
 * (job_id, attempt, seq): the k-th checkpoint of an attempt on every node.
 *
 * Every function runs with the caller's privileges only; it never follows
 * a symlink out of scratch.  SCRATCH and CKPT_DIR are opened through
 * rs_safedir_open() (safedir.h): each must be the caller's own folder, not
 * a symlink, not writable by group or others, with no "." or ".." in its
 * path; the work is then done on the descriptors.  Setuid and setgid bits
 * are never saved nor restored.  rs_ckpt_latest() and rs_ckpt_verify()
 * only read: root may run them on a user's folder (O_NOFOLLOW, bounded
 * reads of regular files only).
 * Return convention: 0 on success, -errno on failure with err filled.
 * Not thread-safe with respect to the same CKPT_DIR inside one process;
 * safe across processes and nodes (the lock).
 */
#ifndef RS_CKPT_H
#define RS_CKPT_H

#include <stdint.h>
#include <sys/types.h>

#include "err.h"

/* Who took the checkpoint and why: recorded in the manifest. */
typedef struct rs_ckpt_meta {
	const char *job_id;   /* "42", "42_3" for an array task; may be NULL */
	unsigned attempt;     /* 1-based attempt number; 0 = unknown */
	unsigned seq;         /* checkpoint number within this attempt, 1.. */
	const char *node;     /* node name; may be NULL */
	const char *reason;   /* "signal", "lead", "periodic", "manual" ... */
	unsigned part;        /* this node's index, 0..nparts-1 */
	unsigned nparts;      /* number of nodes taking part (>= 1) */
	int ended;            /* nparts > 1: this node's task has exited; save
	                       * its final scratch into .staging-j<job>-a<att>-end
	                       * (seq not needed).  Later generations of the
	                       * attempt take this part from there, and the
	                       * last node to end removes the attempt's
	                       * staging (docs/checkpoint.md). */
} rs_ckpt_meta_t;

/* What a save or restore did. */
typedef struct rs_ckpt_stats {
	long gen;                 /* generation number written/restored, or -1 */
	int published;            /* save: 1 if this call made the generation
	                           * complete (last part in), else 0 */
	uint64_t files;           /* regular files + symlinks + dirs handled */
	uint64_t bytes_copied;    /* data bytes written */
	uint64_t bytes_linked;    /* data bytes hard-linked from previous gen */
	uint64_t skipped;         /* sockets, fifos, devices skipped */
	uint64_t changed;         /* files that changed or vanished while read */
	double seconds;           /* wall time of the call */
	double sync_seconds;      /* part of it spent making data durable */
	uint64_t bytes;           /* (addition) logical size of the regular
	                           * files handled, holes included */
} rs_ckpt_stats_t;

/*
 * Save SCRATCH as (this node's part of) a new generation in CKPT_DIR.
 * Creates CKPT_DIR (0700) if missing.  keep >= 1: after publishing, all
 * but the newest `keep` complete generations are removed.  meta may be NULL
 * (single part, reason "manual").  stats may be NULL.
 */
int rs_ckpt_save(const char *scratch, const char *ckpt_dir, unsigned keep,
		 const rs_ckpt_meta_t *meta, rs_ckpt_stats_t *stats,
		 rs_err_t *err);

/*
 * Restore generation `gen` (-1: the one `latest` points to), part `part`,
 * into SCRATCH (created 0700 if missing, with any missing parents).  Files are copied (or reflinked),
 * never hard-linked.  Refuses an incomplete or missing generation.
 */
int rs_ckpt_restore(const char *ckpt_dir, const char *scratch, long gen,
		    unsigned part, rs_ckpt_stats_t *stats, rs_err_t *err);

/* Path of the generation `latest` points to, in buf.  -ENOENT if none. */
int rs_ckpt_latest(const char *ckpt_dir, char *buf, size_t len, long *gen,
		   rs_err_t *err);

/* Check every generation in the manifest is complete and `latest` is the
 * newest one.  0 if consistent, -EUCLEAN (with err) if not. */
int rs_ckpt_verify(const char *ckpt_dir, rs_err_t *err);

/*
 * Additions beyond the original contract.
 *
 * Save and restore copy with up to RS_CKPT_THREADS worker threads (default:
 * online CPUs, at most 4) and join them before returning.  Environment read
 * by the engine (docs/checkpoint.md): RS_CKPT_SYNC=syncfs|fsync,
 * RS_CKPT_LOCK_TIMEOUT (s), RS_CKPT_STALE_SECONDS, RS_CKPT_THREADS,
 * RS_CKPT_EARLY_WRITEBACK, and the test-only fault hooks RS_CKPT_FAULT_AT /
 * RS_CKPT_FAULT_AFTER_FILES (SIGKILL at a named point of a save).
 */

/* Warnings that do not fail a save (skipped sockets/FIFOs/devices, files
 * that changed or vanished while read, stale leftovers removed) go to fn,
 * one line each, without a trailing newline.  NULL (the default): dropped.
 * Process-wide, not thread-safe: set it once at start-up. */
typedef void (*rs_ckpt_warn_fn)(void *arg, const char *msg);
void rs_ckpt_set_warn(rs_ckpt_warn_fn fn, void *arg);

/* Generation number of a name "gen-NNNNNN" (6+ digits), or -1. */
long rs_ckpt_gen_number(const char *name);

/* The attempt `attempt` of job `job_id` is over (the batch step ended):
 * remove its staging folders (and any of earlier attempts of the job),
 * under the folder's lock.  A missing CKPT_DIR is not an error.
 * *removed counts them.  0 / -errno. */
int rs_ckpt_drop_attempt(const char *ckpt_dir, const char *job_id, unsigned attempt,
			 unsigned *removed, rs_err_t *err);

#endif
