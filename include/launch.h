/*
 * launch.h - how the plugin puts the supervisor in front of a task: the
 * supervisor's command line and the per-step private paths.  Pure.
 * Return convention: 0 / -errno (-ENOSPC when the buffers are too small).
 */
#ifndef RS_LAUNCH_H
#define RS_LAUNCH_H

#include <stddef.h>
#include <sys/types.h>

#include "spec.h"

#define RS_LAUNCH_MAX_ARGS 48

typedef struct rs_launch {
	const char *supervisor;   /* path of resilience-supervisor */
	const rs_spec_t *spec;
	const char *ckpt;         /* expanded */
	const char *scratch;      /* expanded */
	const char *ready;        /* RESILIENCE_CKPT_READY */
	const char *status;       /* status file, or NULL */
	int status_fd;            /* > 2: the plugin's status pipe (--status-fd) */
	const char *job;          /* job id as recorded in the manifest */
	const char *node;         /* node name */
	unsigned attempt;
	unsigned part, nparts;
	int saver;                /* 1: this task saves (one per node) */
	int batch_script;         /* 1: the task is the batch script */
	double end_time;          /* UNIX time the attempt ends, 0 = unknown */
	uint32_t lead;            /* self-timed warning before the end, 0 off */
	const char *end_time_file;/* re-read by the supervisor, or NULL */
	pid_t stepd;              /* > 0: --stepd, the step's slurmstepd */
	pid_t adopt;              /* > 0: --pid (Slurm 22.05); 0: `--` form */
} rs_launch_t;

/*
 * Fill argv (NULL-terminated, at most RS_LAUNCH_MAX_ARGS entries) with the
 * supervisor's command line; strings live in buf.  With adopt == 0 the
 * line ends with "--": the caller prepends it to the task's own argv.
 */
int rs_launch_argv(const rs_launch_t *l, char **argv, int *argc, char *buf,
		   size_t len);

/* The private folder of a user's supervisor files on this node:
 * /tmp/.resilience-<uid> (0700, the user's: checked by the caller). */
int rs_launch_private_dir(uid_t uid, char *buf, size_t len);

#endif
