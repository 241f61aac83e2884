/* jobref.c - "405", "405_10", "405+1".  See jobref.h. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "jobref.h"

/* Below Slurm's NO_VAL (0xfffffffe) and INFINITE. */
#define JOBREF_MAX 4294967293UL

static int _num(const char *s, size_t n, unsigned long lo, uint32_t *out)
{
	unsigned long v = 0;

	if (n == 0 || n > 10)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < lo || v > JOBREF_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

int rs_jobref_parse(const char *s, rs_jobref_t *ref)
{
	size_t n = strcspn(s ? s : "", "_+");

	if (!s || !ref)
		return -EINVAL;
	memset(ref, 0, sizeof(*ref));
	if (_num(s, n, 1, &ref->job) < 0)
		return -EINVAL;
	if (!s[n])
		return 0;
	ref->kind = s[n] == '_' ? RS_JOBREF_ARRAY_TASK : RS_JOBREF_HET;
	return _num(s + n + 1, strlen(s + n + 1), 0, &ref->index);
}
