/*
 * pattern.h - expansion of %j %A %a %u %x %n %% in ckpt= and scratch=.
 * Pure.  Values are sanitised so that an expansion can never add a path
 * component: '/' becomes '_', and a value of "." or ".." becomes "_".
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
} rs_pattern_ctx_t;

/* Expand tmpl into out.  A NULL field expands to "unknown".
 * -EINVAL unknown pattern, -ENAMETOOLONG if out is too small. */
int rs_pattern_expand(const char *tmpl, const rs_pattern_ctx_t *ctx,
		      char *out, size_t len, rs_err_t *err);

/* Length of the part of tmpl before its first '%' pattern (for checks
 * that must run before the job id is known). */
size_t rs_pattern_static_prefix(const char *tmpl);

#endif
