/*
 * err.h - one-line error messages carried back to the caller.
 *
 * Convention for every module in this project: functions return 0 on
 * success and -errno on failure, and fill a caller-provided rs_err_t with
 * one line a person can act on: what was being done, to what, and why
 * ("checkpoint /lustre/p/ckpt/42: No space left on device").  Messages never
 * contain secrets.  Predicates return 1/0 (and -errno on failure).
 */
#ifndef RS_ERR_H
#define RS_ERR_H

#include <stddef.h>

#define RS_ERR_MAX 1024

typedef struct rs_err {
	char msg[RS_ERR_MAX];
} rs_err_t;

/* Format a message into err (may be NULL).  Returns -code so callers can
 * write `return rs_err_set(err, EINVAL, "...")`.  code is a positive errno. */
int rs_err_set(rs_err_t *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Clear err (may be NULL). */
void rs_err_clear(rs_err_t *err);

#endif
