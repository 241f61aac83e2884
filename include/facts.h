/*
 * facts.h - what a job step needs to know about its job (attempt number,
 * node count, batch or not, end time), kept per job, node and attempt in a
 * root-owned folder on the node, so that only the first step of an attempt
 * on a node asks slurmctld (slurm_load_job, ~1-2 ms and a load on the
 * controller) and later steps read a small file (docs/performance.md).
 *
 * The file is written by slurmstepd as root into a folder only root can
 * write (RS_RUN_DIR, default /run/slurm-resilience, a tmpfs emptied at
 * boot); it is trusted only if it is root's, not writable by anyone else,
 * and matches the job's uid and attempt.  A job's files are removed when
 * it ends on the node (rundir.h); rs_facts_sweep removes what a crash
 * left.  Return convention: 0 / -errno.
 */
#ifndef RS_FACTS_H
#define RS_FACTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "err.h"

typedef struct rs_facts {
	uid_t uid;                /* the job's user */
	uint32_t restart_count;   /* Slurm's restart count of this attempt */
	uint32_t nnodes;          /* nodes of the job (not of the step) */
	int batch;                /* the job has a batch script */
	time_t end_time;          /* when Slurm ends the attempt, 0 = ? */
	uint32_t time_limit;      /* seconds, 0 = none/unknown */
	char cluster[64];         /* ClusterName */
} rs_facts_t;

/* "v1 uid=... restart=... nnodes=... batch=... end=... limit=... cluster=...\n" */
int rs_facts_format(const rs_facts_t *f, char *buf, size_t len);
int rs_facts_parse(const char *line, rs_facts_t *f, rs_err_t *err);

/* 1 if s is a non-empty Slurm identifier (letters, digits, '-', '_'):
 * the only names that go into a file name in RUNDIR or state_dir. */
int rs_facts_identifier(const char *s);

/* DIR/CLUSTER.JOB.aRESTART.facts (cluster names are Slurm identifiers;
 * anything else is refused with -EINVAL). */
int rs_facts_path(const char *dir, const char *cluster, uint32_t job,
		  uint32_t restart, char *buf, size_t len);

/* Read the file at path.  -ENOENT if absent; -EPERM if it or its folder is
 * not owned by `owner` or is writable by others; -ESTALE if it does not
 * match uid/restart or its attempt has ended (end_time + slack < now). */
int rs_facts_load(const char *path, uid_t owner, uid_t uid, uint32_t restart,
		  time_t now, rs_facts_t *f, rs_err_t *err);

/* Write f for job into dir (created 0700 if missing; rundir.h makes it
 * 0711): temp file + rename, so a reader sees a whole file or none. */
int rs_facts_store(const char *dir, uint32_t job, const rs_facts_t *f,
		   rs_err_t *err);

/* Remove the files of attempts that ended more than an hour before now,
 * and files without an end time (no time limit) or unreadable ones older
 * than a day.  Returns the number removed, or -errno. */
int rs_facts_sweep(const char *dir, time_t now);

#endif
