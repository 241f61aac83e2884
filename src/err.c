/* err.c - see include/err.h */
#include <stdarg.h>
#include <stdio.h>

#include "err.h"

int rs_err_set(rs_err_t *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (err) {
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code > 0 ? -code : code;
}

void rs_err_clear(rs_err_t *err)
{
	if (err)
		err->msg[0] = '\0';
}
