/*
 * pattern.h - expansion of %j %A %a %u %x %n %% in ckpt= and scratch=.
 * Pure.  Values are sanitised so that an expansion can never add a path
 * component: '/' becomes '_', and a value of "." or ".." becomes "_".
 *
 * $NAME and ${NAME} (letters, digits, '_') expand to a variable of the
 * job's environment, as given by ctx->env: a site's per-job folder
 * (`scratch=$SLURM_JOBTMP/run_%j`, as the tutorial writes it).  Such a
 * value is a path and is kept as it is: the folder is then opened as the
 * job's user with every check of safedir.h (no ".", "..", symlink or
 * foreign folder).  Without ctx->env, $ stays as written; "$$" is a "$".
 */
#ifndef RS_PATTERN_H
#define RS_PATTERN_H

#include <stddef.h>

#include "err.h"

typedef struct rs_pattern_ctx {
	const char *job_id;        /* %j */
	const char *array_job_id;  /* %A: the job id for a non-array job */
	const char *array_task_id; /* %a: "0" for a non-array job */
	const char *user;          /* %u */
	const char *job_name;      /* %x */
	const char *node;          /* %n */
	/* $NAME: the job's variable into buf; 0, or -ENOENT if unset. */
	int (*env)(void *arg, const char *name, char *buf, size_t len);
	void *env_arg;
} rs_pattern_ctx_t;

/* Expand tmpl into out.  A NULL field expands to "unknown".
 * -EINVAL unknown pattern, -ENAMETOOLONG if out is too small. */
int rs_pattern_expand(const char *tmpl, const rs_pattern_ctx_t *ctx,
		      char *out, size_t len, rs_err_t *err);

/* Length of the part of tmpl before its first '%' pattern or '$'
 * variable (for checks that must run before the job id is known). */
size_t rs_pattern_static_prefix(const char *tmpl);

#endif
