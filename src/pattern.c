/* pattern.c - see include/pattern.h */
#include <errno.h>
#include <string.h>

#include "pattern.h"

static int _append_value(const char *v, char *out, size_t len, size_t *n)
{
	size_t i, vl;

	if (!v || !*v)
		v = "unknown";
	if (!strcmp(v, ".") || !strcmp(v, ".."))
		v = "_";
	vl = strlen(v);
	if (*n + vl + 1 > len)
		return -ENAMETOOLONG;
	for (i = 0; i < vl; i++)
		out[(*n)++] = v[i] == '/' ? '_' : v[i];
	out[*n] = '\0';
	return 0;
}

/* $NAME or ${NAME} at p (p[0] == '$'): its value appended; *used gets
 * the characters consumed. */
static int _append_var(const char *p, const char *tmpl,
		       const rs_pattern_ctx_t *ctx, char *out, size_t len,
		       size_t *n, size_t *used, rs_err_t *err)
{
	char name[64], val[4096];
	int brace = p[1] == '{';
	size_t i = 0, vl;
	const char *q = p + 1 + brace;

	while ((*q == '_' || (*q >= 'A' && *q <= 'Z') ||
		(*q >= 'a' && *q <= 'z') || (i && *q >= '0' && *q <= '9')) &&
	       i + 1 < sizeof(name))
		name[i++] = *q++;
	name[i] = '\0';
	if (!i || (brace && *q != '}'))
		return rs_err_set(err, EINVAL, "'%s': a '$' must start a variable "
				  "name ($NAME or ${NAME}; $$ for a '$')", tmpl);
	*used = (size_t)(q - p) + (size_t)brace;
	if (ctx->env(ctx->env_arg, name, val, sizeof(val)) || !val[0])
		return rs_err_set(err, ENOENT, "'%s': $%s is not set in the job's "
				  "environment", tmpl, name);
	vl = strlen(val);
	if (*n + vl + 1 > len)
		return rs_err_set(err, ENAMETOOLONG, "expansion of '%s' is too "
				  "long", tmpl);
	memcpy(out + *n, val, vl + 1);
	*n += vl;
	return 0;
}

int rs_pattern_expand(const char *tmpl, const rs_pattern_ctx_t *ctx,
		      char *out, size_t len, rs_err_t *err)
{
	size_t n = 0;
	const char *p;

	if (!len)
		return rs_err_set(err, ENAMETOOLONG, "no room to expand '%s'",
				  tmpl);
	out[0] = '\0';
	for (p = tmpl; *p; p++) {
		const char *v = NULL;
		int rc;

		if (*p == '$' && ctx->env) {
			size_t used = 0;

			if (p[1] == '$') {
				if (n + 2 > len)
					goto toolong;
				out[n++] = *p++;
				out[n] = '\0';
				continue;
			}
			rc = _append_var(p, tmpl, ctx, out, len, &n, &used, err);
			if (rc) {
				out[0] = '\0';
				return rc;
			}
			p += used - 1;
			continue;
		}
		if (*p != '%') {
			if (n + 2 > len)
				goto toolong;
			out[n++] = *p;
			out[n] = '\0';
			continue;
		}
		switch (*++p) {
		case 'j': v = ctx->job_id; break;
		case 'A': v = ctx->array_job_id; break;
		case 'a': v = ctx->array_task_id; break;
		case 'u': v = ctx->user; break;
		case 'x': v = ctx->job_name; break;
		case 'n': v = ctx->node; break;
		case '%':
			if (n + 2 > len)
				goto toolong;
			out[n++] = '%';
			out[n] = '\0';
			continue;
		default:
			return rs_err_set(err, EINVAL,
					  "unknown pattern '%%%c' in '%s'",
					  *p ? *p : ' ', tmpl);
		}
		rc = _append_value(v, out, len, &n);
		if (rc)
			goto toolong;
	}
	return 0;
toolong:
	out[0] = '\0';
	return rs_err_set(err, ENAMETOOLONG, "expansion of '%s' is too long",
			  tmpl);
}

size_t rs_pattern_static_prefix(const char *tmpl)
{
	const char *p = tmpl;

	while ((p = strpbrk(p, "%$"))) {
		if (p[1] == *p) {
			p += 2;
			continue;
		}
		return (size_t)(p - tmpl);
	}
	return strlen(tmpl);
}
