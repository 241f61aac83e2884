/*
 * spec.c - parse, validate and normalise --resilience=SPEC.  See spec.h.
 *
 * Everything here is a pure function of its input so it can run in sbatch
 * (to refuse a bad SPEC before anything is queued), in slurmstepd, in the
 * CLI and under a fuzzer alike.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "signame.h"
#include "spec.h"

#define MAX_DURATION (366u * 24 * 3600)
#define MAX_RETRIES 1000
#define MAX_KEEP 1000
#define MAX_FACTOR_MILLI 100000  /* x100 */

static const char *const key_names[RS_KEY_COUNT] = {
	[RS_KEY_CKPT] = "ckpt",         [RS_KEY_SCRATCH] = "scratch",
	[RS_KEY_SIGNAL] = "signal",     [RS_KEY_GRACE] = "grace",
	[RS_KEY_KEEP] = "keep",         [RS_KEY_RESTORE] = "restore",
	[RS_KEY_RETRIES] = "retries",   [RS_KEY_REQUEUE_ON] = "requeue_on",
	[RS_KEY_BACKOFF] = "backoff",   [RS_KEY_EXHAUSTED] = "exhausted",
	[RS_KEY_METRICS] = "metrics",   [RS_KEY_LEAD] = "lead",
	[RS_KEY_EVERY] = "every",
};

static const char all_keys[] =
	"ckpt, scratch, signal, grace, keep, restore, retries, requeue_on, "
	"backoff, exhausted, metrics, lead, every, off, help";

const char *rs_spec_keys(void)
{
	return all_keys;
}

void rs_spec_defaults(rs_spec_t *spec)
{
	memset(spec, 0, sizeof(*spec));
	spec->signal = SIGUSR1;
	spec->grace = 60;
	spec->keep = 2;
	spec->restore = 1;
	spec->retries = 0;
	spec->causes = RS_CAUSE_ANY;
	spec->backoff = 0;
	spec->backoff_factor_milli = 1000;
	spec->exhausted = RS_EXHAUSTED_HOLD;
	spec->metrics = 1;
	spec->lead = 120;
	spec->every = 0;
}

unsigned rs_edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned row[64];
	size_t i, j;

	if (la >= 63 || lb >= 63)
		return UINT_MAX;
	for (j = 0; j <= lb; j++)
		row[j] = (unsigned)j;
	for (i = 1; i <= la; i++) {
		unsigned diag = row[0], tmp;

		row[0] = (unsigned)i;
		for (j = 1; j <= lb; j++) {
			unsigned best;

			tmp = row[j];
			best = diag + (tolower((unsigned char)a[i - 1]) !=
				       tolower((unsigned char)b[j - 1]));
			if (row[j] + 1 < best)
				best = row[j] + 1;
			if (row[j - 1] + 1 < best)
				best = row[j - 1] + 1;
			row[j] = best;
			diag = tmp;
		}
	}
	return row[lb];
}

int rs_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out,
		  rs_err_t *err)
{
	unsigned long long v;
	char *end = NULL;

	if (!s || !*s)
		return rs_err_set(err, EINVAL, "empty number");
	if (!isdigit((unsigned char)s[0]))
		return rs_err_set(err, EINVAL, "'%s' is not a whole number", s);
	errno = 0;
	v = strtoull(s, &end, 10);
	if (*end)
		return rs_err_set(err, EINVAL, "'%s' is not a whole number", s);
	if (errno == ERANGE || v > max || v < min)
		return rs_err_set(err, ERANGE,
				  "'%s' is out of range (%llu to %llu)", s,
				  (unsigned long long)min,
				  (unsigned long long)max);
	*out = v;
	return 0;
}

int rs_parse_duration(const char *s, uint32_t *out, rs_err_t *err)
{
	static const struct { char unit; uint64_t mult; } units[] = {
		{ 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 },
	};
	uint64_t total = 0;
	const char *p = s;
	size_t next_unit = 0;

	if (!s || !*s)
		return rs_err_set(err, EINVAL, "empty duration");
	/* A bare number means seconds. */
	if (strspn(s, "0123456789") == strlen(s)) {
		uint64_t v;
		int rc = rs_parse_uint(s, 0, MAX_DURATION, &v, err);

		if (rc)
			return rs_err_set(err, -rc,
					  "duration '%s' is out of range "
					  "(at most 366d)", s);
		*out = (uint32_t)v;
		return 0;
	}
	while (*p) {
		uint64_t v = 0;
		size_t digits = 0, u;

		while (isdigit((unsigned char)*p)) {
			v = v * 10 + (uint64_t)(*p - '0');
			if (v > MAX_DURATION)
				return rs_err_set(err, ERANGE,
						  "duration '%s' is out of range "
						  "(at most 366d)", s);
			p++;
			digits++;
		}
		if (!digits)
			goto bad;
		/* Units must come in decreasing order, each at most once. */
		for (u = next_unit; u < sizeof(units) / sizeof(units[0]); u++)
			if (units[u].unit == *p)
				break;
		if (u == sizeof(units) / sizeof(units[0]))
			goto bad;
		total += v * units[u].mult;
		if (total > MAX_DURATION)
			return rs_err_set(err, ERANGE,
					  "duration '%s' is out of range "
					  "(at most 366d)", s);
		next_unit = u + 1;
		p++;
	}
	*out = (uint32_t)total;
	return 0;
bad:
	return rs_err_set(err, EINVAL,
			  "'%s' is not a duration (e.g. 90, 90s, 2m, 1h, 1h30m)",
			  s);
}

void rs_format_duration(uint32_t secs, char *buf, size_t len)
{
	char tmp[64];
	size_t n = 0;
	uint32_t d = secs / 86400, h = secs / 3600 % 24, m = secs / 60 % 60,
		 s = secs % 60;

	if (!len)
		return;
	if (secs == 0) {
		snprintf(buf, len, "0");
		return;
	}
	tmp[0] = '\0';
	if (d)
		n += (size_t)snprintf(tmp + n, sizeof(tmp) - n, "%ud", d);
	if (h)
		n += (size_t)snprintf(tmp + n, sizeof(tmp) - n, "%uh", h);
	if (m)
		n += (size_t)snprintf(tmp + n, sizeof(tmp) - n, "%um", m);
	if (s)
		snprintf(tmp + n, sizeof(tmp) - n, "%us", s);
	snprintf(buf, len, "%s", tmp);
}

const char *rs_signal_name(int sig)
{
	return rs_signame(sig);
}

/* Signals that make no sense as a "please checkpoint" warning: they cannot
 * be caught, stop the process, or are how Slurm itself ends a job. */
static int _signal_usable(int sig)
{
	return sig != SIGKILL && sig != SIGSTOP && sig != SIGTSTP &&
	       sig != SIGTTIN && sig != SIGTTOU && sig != SIGCONT &&
	       sig != SIGTERM && sig != SIGINT;
}

int rs_parse_signal(const char *s, int *out, rs_err_t *err)
{
	int sig = 0;

	if (!s || !*s)
		return rs_err_set(err, EINVAL, "empty signal");
	if (rs_signame_parse(s, &sig))
		return rs_err_set(err, EINVAL, isdigit((unsigned char)s[0])
				  ? "'%s' is not a signal number (1-%d)"
				  : "'%s' is not a signal name (e.g. USR1, "
				    "SIGUSR2, HUP, RTMIN+2, or a number up to %d)",
				  s, SIGRTMAX);
	if (!_signal_usable(sig))
		return rs_err_set(err, EINVAL,
				  "signal '%s' cannot be used as the warning "
				  "signal (Slurm uses it to stop or end jobs); "
				  "use USR1, USR2 or HUP", s);
	*out = sig;
	return 0;
}

int rs_parse_bool(const char *s, int *out, rs_err_t *err)
{
	static const char *const yes[] = { "yes", "true", "1", "on" };
	static const char *const no[] = { "no", "false", "0", "off" };
	size_t i;

	for (i = 0; s && i < 4; i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = 1;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = 0;
			return 0;
		}
	}
	return rs_err_set(err, EINVAL, "'%s' is not yes or no", s ? s : "");
}

/* requeue_on=any|exit|exit:N|exit:N-M|signal|timeout|node_fail joined by +.
 * `exit` alone means any non-zero exit; exit:N ranges narrow it. */
static int _parse_causes(const char *v, rs_spec_t *spec, rs_err_t *err)
{
	char buf[RS_SPEC_MAX + 1];
	char *save = NULL, *tok;
	unsigned causes = 0;
	int exit_any = 0;

	snprintf(buf, sizeof(buf), "%s", v);
	spec->nexits = 0;
	if (buf[0] == '+' || (*buf && buf[strlen(buf) - 1] == '+') ||
	    strstr(buf, "++"))
		return rs_err_set(err, EINVAL,
				  "requeue_on: empty cause in '%s'", v);
	for (tok = strtok_r(buf, "+", &save); tok;
	     tok = strtok_r(NULL, "+", &save)) {
		unsigned bit = 0;

		if (!strcmp(tok, "any"))
			bit = RS_CAUSE_ANY, exit_any = 1;
		else if (!strcmp(tok, "exit"))
			bit = RS_CAUSE_EXIT, exit_any = 1;
		else if (!strcmp(tok, "signal"))
			bit = RS_CAUSE_SIGNAL;
		else if (!strcmp(tok, "timeout"))
			bit = RS_CAUSE_TIMEOUT;
		else if (!strcmp(tok, "node_fail"))
			bit = RS_CAUSE_NODE_FAIL;
		else if (!strncmp(tok, "exit:", 5)) {
			char *dash = strchr(tok + 5, '-');
			uint64_t lo, hi;
			rs_err_t e;

			if (dash)
				*dash = '\0';
			if (rs_parse_uint(tok + 5, 1, 255, &lo, &e) ||
			    (dash && rs_parse_uint(dash + 1, 1, 255, &hi, &e)))
				return rs_err_set(err, EINVAL,
						  "requeue_on: bad exit code in "
						  "'%s': %s (exit codes are 1-255)",
						  v, e.msg);
			if (!dash)
				hi = lo;
			if (hi < lo)
				return rs_err_set(err, EINVAL,
						  "requeue_on: exit range %llu-%llu "
						  "is backwards",
						  (unsigned long long)lo,
						  (unsigned long long)hi);
			if (spec->nexits == RS_MAX_EXIT_RANGES)
				return rs_err_set(err, E2BIG,
						  "requeue_on: at most %d exit "
						  "codes or ranges",
						  RS_MAX_EXIT_RANGES);
			spec->exits[spec->nexits].lo = (uint8_t)lo;
			spec->exits[spec->nexits].hi = (uint8_t)hi;
			spec->nexits++;
			bit = RS_CAUSE_EXIT;
		} else {
			return rs_err_set(err, EINVAL,
					  "requeue_on: unknown cause '%s' (valid: "
					  "any, exit, exit:N, exit:N-M, signal, "
					  "timeout, node_fail, joined by +)", tok);
		}
		causes |= bit;
	}
	/* `exit` or `any` next to exit:N would make the ranges meaningless. */
	if (exit_any && spec->nexits)
		return rs_err_set(err, EINVAL,
				  "requeue_on: '%s' mixes exit/any with exit:N "
				  "(use one or the other)", v);
	spec->causes = causes;
	return 0;
}

/* backoff=DURATION or DURATIONxFACTOR, factor a decimal like 2 or 1.5. */
static int _parse_backoff(const char *v, rs_spec_t *spec, rs_err_t *err)
{
	char buf[64];
	char *x;
	uint32_t secs;
	rs_err_t e;

	if (strlen(v) >= sizeof(buf))
		return rs_err_set(err, EINVAL, "backoff: '%s' is too long", v);
	snprintf(buf, sizeof(buf), "%s", v);
	x = strchr(buf, 'x');
	if (x)
		*x = '\0';
	if (rs_parse_duration(buf, &secs, &e))
		return rs_err_set(err, EINVAL, "backoff: %s", e.msg);
	spec->backoff = secs;
	spec->backoff_factor_milli = 1000;
	if (x) {
		const char *f = x + 1, *dot = strchr(f, '.');
		uint64_t whole = 0, frac = 0;
		size_t fdigits = 0;
		char intpart[16];

		if (!*f || strlen(f) > 10)
			goto badf;
		if (dot) {
			size_t n = (size_t)(dot - f);

			if (!n || n >= sizeof(intpart) || !dot[1] ||
			    strlen(dot + 1) > 3 ||
			    strspn(dot + 1, "0123456789") != strlen(dot + 1))
				goto badf;
			memcpy(intpart, f, n);
			intpart[n] = '\0';
			fdigits = strlen(dot + 1);
			frac = strtoull(dot + 1, NULL, 10);
			while (fdigits++ < 3)
				frac *= 10;
		} else {
			snprintf(intpart, sizeof(intpart), "%s", f);
		}
		if (rs_parse_uint(intpart, 1, 100, &whole, NULL))
			goto badf;
		if (whole * 1000 + frac > MAX_FACTOR_MILLI)
			goto badf;
		spec->backoff_factor_milli = (uint32_t)(whole * 1000 + frac);
	}
	return 0;
badf:
	return rs_err_set(err, EINVAL,
			  "backoff: bad factor in '%s' (use DURATIONxFACTOR "
			  "with a factor from 1 to 100, e.g. 30sx2 or 1mx1.5)",
			  v);
}

int rs_spec_check_path(const char *key, const char *path, rs_err_t *err)
{
	const char *p = path, *c;

	/* "." and ".." are refused, not collapsed: collapsing them before
	 * symlinks are resolved is how ROOT/link/../x left ckpt_roots, and a
	 * folder is opened component by component (safedir.h) anyway. */
	while (p && *p) {
		while (*p == '/')
			p++;
		c = p;
		while (*p && *p != '/')
			p++;
		if ((p - c == 1 && c[0] == '.') ||
		    (p - c == 2 && c[0] == '.' && c[1] == '.'))
			return rs_err_set(err, EINVAL, "%s=%s: '%.*s' is not "
					  "allowed in %s=; give the folder's "
					  "own path", key, path, (int)(p - c),
					  c, key);
	}
	return 0;
}

static int _parse_path(const char *key, const char *v, char *dst,
		       rs_err_t *err)
{
	const unsigned char *p;
	int rc;

	if (strlen(v) > RS_PATH_MAX)
		return rs_err_set(err, ENAMETOOLONG,
				  "%s: path longer than %d characters", key,
				  RS_PATH_MAX);
	if (v[0] != '/' && !(v[0] == '$' && (v[1] == '{' || v[1] == '_' ||
					     (v[1] >= 'A' && v[1] <= 'Z') ||
					     (v[1] >= 'a' && v[1] <= 'z'))))
		return rs_err_set(err, EINVAL,
				  "%s: '%s' is not an absolute path (start it "
				  "with / or a $VARIABLE of the job's "
				  "environment; patterns %%j %%A %%a %%u %%x %%n "
				  "may follow)", key, v);
	for (p = (const unsigned char *)v; *p; p++) {
		const unsigned char *q;

		if (*p != '$')
			continue;
		if (p[1] == '$') {
			p++;
			continue;
		}
		q = p + 1 + (p[1] == '{');
		if (!(*q == '_' || (*q >= 'A' && *q <= 'Z') ||
		      (*q >= 'a' && *q <= 'z')))
			return rs_err_set(err, EINVAL,
					  "%s: a '$' in '%s' must start a "
					  "variable name ($NAME or ${NAME}; $$ "
					  "for a '$')", key, v);
		while (*q == '_' || (*q >= 'A' && *q <= 'Z') ||
		       (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9'))
			q++;
		if (p[1] == '{' && *q != '}')
			return rs_err_set(err, EINVAL, "%s: '${' without '}' in "
					  "'%s'", key, v);
		p = q - 1;
	}
	for (p = (const unsigned char *)v; *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return rs_err_set(err, EINVAL,
					  "%s: control character in path", key);
	rc = rs_spec_check_path(key, v, err);
	if (rc)
		return rc;
	for (p = (const unsigned char *)v; *p; p++) {
		if (*p != '%')
			continue;
		p++;
		if (!*p || !strchr("jAauxn%", *p))
			return rs_err_set(err, EINVAL,
					  "%s: unknown pattern '%%%c' in '%s' "
					  "(valid: %%j %%A %%a %%u %%x %%n %%%%)",
					  key, *p ? *p : ' ', v);
	}
	strcpy(dst, v);
	return 0;
}

static int _find_key(const char *k)
{
	int i;

	for (i = 0; i < RS_KEY_COUNT; i++)
		if (!strcmp(k, key_names[i]))
			return i;
	return -1;
}

static int _unknown_key(const char *k, rs_err_t *err)
{
	static const char *const extra[] = { "off", "help" };
	const char *best = NULL;
	unsigned bestd = UINT_MAX, d;
	int i;

	for (i = 0; i < RS_KEY_COUNT + 2; i++) {
		const char *name = i < RS_KEY_COUNT ? key_names[i]
						    : extra[i - RS_KEY_COUNT];

		d = rs_edit_distance(k, name);
		if (d < bestd)
			bestd = d, best = name;
	}
	if (best && bestd <= 2 && bestd < strlen(k))
		return rs_err_set(err, EINVAL,
				  "unknown key '%s' (did you mean '%s'?); valid "
				  "keys: %s", k, best, all_keys);
	return rs_err_set(err, EINVAL, "unknown key '%s'; valid keys: %s", k,
			  all_keys);
}

static int _set_key(rs_spec_t *spec, int key, const char *v, rs_err_t *err)
{
	const char *name = key_names[key];
	uint64_t n;
	rs_err_t e;
	int rc = 0;

	switch (key) {
	case RS_KEY_CKPT:
		return _parse_path(name, v, spec->ckpt, err);
	case RS_KEY_SCRATCH:
		return _parse_path(name, v, spec->scratch, err);
	case RS_KEY_SIGNAL:
		rc = rs_parse_signal(v, &spec->signal, &e);
		break;
	case RS_KEY_GRACE:
		rc = rs_parse_duration(v, &spec->grace, &e);
		break;
	case RS_KEY_LEAD:
		rc = rs_parse_duration(v, &spec->lead, &e);
		break;
	case RS_KEY_EVERY:
		rc = rs_parse_duration(v, &spec->every, &e);
		break;
	case RS_KEY_KEEP:
		rc = rs_parse_uint(v, 1, MAX_KEEP, &n, &e);
		if (!rc)
			spec->keep = (uint32_t)n;
		break;
	case RS_KEY_RETRIES:
		rc = rs_parse_uint(v, 0, MAX_RETRIES, &n, &e);
		if (!rc)
			spec->retries = (uint32_t)n;
		break;
	case RS_KEY_RESTORE:
		rc = rs_parse_bool(v, &spec->restore, &e);
		break;
	case RS_KEY_METRICS:
		rc = rs_parse_bool(v, &spec->metrics, &e);
		break;
	case RS_KEY_EXHAUSTED:
		if (!strcmp(v, "hold"))
			spec->exhausted = RS_EXHAUSTED_HOLD;
		else if (!strcmp(v, "fail"))
			spec->exhausted = RS_EXHAUSTED_FAIL;
		else
			return rs_err_set(err, EINVAL,
					  "exhausted: '%s' is not hold or fail", v);
		return 0;
	case RS_KEY_REQUEUE_ON:
		return _parse_causes(v, spec, err);
	case RS_KEY_BACKOFF:
		return _parse_backoff(v, spec, err);
	}
	if (rc)
		return rs_err_set(err, -rc, "%s: %s", name, e.msg);
	return 0;
}

int rs_spec_parse(const char *text, rs_spec_t *spec, rs_err_t *err)
{
	char buf[RS_SPEC_MAX + 1];
	char *p, *elem;
	size_t len;
	int nelem = 0;

	rs_spec_defaults(spec);
	if (!text)
		return rs_err_set(err, EINVAL, "no SPEC given");
	len = strlen(text);
	if (len > RS_SPEC_MAX)
		return rs_err_set(err, E2BIG,
				  "SPEC is %zu characters long; at most %d are "
				  "accepted", len, RS_SPEC_MAX);
	if (!len)
		return rs_err_set(err, EINVAL,
				  "empty SPEC; give key=value pairs (valid keys: "
				  "%s)", all_keys);
	memcpy(buf, text, len + 1);
	if (buf[len - 1] == ',')
		return rs_err_set(err, EINVAL,
				  "trailing comma in SPEC '%s'", text);

	for (p = buf; p; nelem++) {
		char *comma = strchr(p, ',');
		char *eq, *v;
		int key;

		if (comma)
			*comma = '\0';
		elem = p;
		p = comma ? comma + 1 : NULL;
		if (!*elem)
			return rs_err_set(err, EINVAL,
					  "empty element in SPEC '%s' (two commas "
					  "in a row, or a leading comma)", text);
		eq = strchr(elem, '=');
		if (!eq) {
			if (!strcmp(elem, "off"))
				spec->off = 1;
			else if (!strcmp(elem, "help"))
				spec->help = 1;
			else if (_find_key(elem) >= 0)
				return rs_err_set(err, EINVAL,
						  "%s: no value (write %s=VALUE)",
						  elem, elem);
			else
				return _unknown_key(elem, err);
			continue;
		}
		*eq = '\0';
		v = eq + 1;
		key = _find_key(elem);
		if (key < 0) {
			if (!strcmp(elem, "off") || !strcmp(elem, "help"))
				return rs_err_set(err, EINVAL,
						  "'%s' takes no value", elem);
			return _unknown_key(elem, err);
		}
		if (!*v)
			return rs_err_set(err, EINVAL,
					  "%s: empty value", elem);
		if (spec->set & (1u << key))
			return rs_err_set(err, EINVAL,
					  "%s: given twice", elem);
		spec->set |= 1u << key;
		{
			int rc = _set_key(spec, key, v, err);

			if (rc)
				return rc;
		}
	}
	if ((spec->off || spec->help) && nelem > 1)
		return rs_err_set(err, EINVAL,
				  "'%s' must stand alone in the SPEC",
				  spec->off ? "off" : "help");
	if (spec->every && spec->every < 10)
		return rs_err_set(err, ERANGE,
				  "every: at least 10s between periodic "
				  "checkpoints");
	if (!spec->ckpt[0]) {
		static const int need_ckpt[] = {
			RS_KEY_SCRATCH, RS_KEY_KEEP, RS_KEY_RESTORE,
			RS_KEY_LEAD, RS_KEY_EVERY, RS_KEY_GRACE, RS_KEY_SIGNAL,
		};
		size_t i;

		for (i = 0; i < sizeof(need_ckpt) / sizeof(need_ckpt[0]); i++)
			if (spec->set & (1u << need_ckpt[i]))
				return rs_err_set(err, EINVAL,
						  "%s: needs ckpt=DIR (it only "
						  "applies to checkpoints)",
						  key_names[need_ckpt[i]]);
	}
	return 0;
}

/* Canonical requeue_on text. */
static void _format_causes(const rs_spec_t *spec, char *buf, size_t len)
{
	size_t n = 0, i;

	buf[0] = '\0';
	if (spec->causes == RS_CAUSE_ANY && !spec->nexits) {
		snprintf(buf, len, "any");
		return;
	}
#define ADD(...) do { \
	int w_ = snprintf(buf + n, len - n, "%s", n ? "+" : ""); \
	n += (size_t)w_; \
	w_ = snprintf(buf + n, len - n, __VA_ARGS__); \
	n += (size_t)w_; \
	if (n >= len) { buf[len - 1] = '\0'; return; } \
} while (0)
	if (spec->causes & RS_CAUSE_EXIT) {
		if (!spec->nexits)
			ADD("exit");
		for (i = 0; i < spec->nexits; i++) {
			if (spec->exits[i].lo == spec->exits[i].hi)
				ADD("exit:%u", spec->exits[i].lo);
			else
				ADD("exit:%u-%u", spec->exits[i].lo,
				    spec->exits[i].hi);
		}
	}
	if (spec->causes & RS_CAUSE_SIGNAL)
		ADD("signal");
	if (spec->causes & RS_CAUSE_TIMEOUT)
		ADD("timeout");
	if (spec->causes & RS_CAUSE_NODE_FAIL)
		ADD("node_fail");
#undef ADD
}

static void _format_backoff(const rs_spec_t *spec, char *buf, size_t len)
{
	char d[32];

	rs_format_duration(spec->backoff, d, sizeof(d));
	if (spec->backoff_factor_milli == 1000)
		snprintf(buf, len, "%s", d);
	else if (spec->backoff_factor_milli % 1000 == 0)
		snprintf(buf, len, "%sx%u", d, spec->backoff_factor_milli / 1000);
	else {
		char f[16];
		size_t n;

		snprintf(f, sizeof(f), "%u.%03u", spec->backoff_factor_milli / 1000,
			 spec->backoff_factor_milli % 1000);
		n = strlen(f);
		while (f[n - 1] == '0')
			f[--n] = '\0';
		snprintf(buf, len, "%sx%s", d, f);
	}
}

/* Signal in the form the parser takes back: name, or number for the
 * realtime signals that have no name in the table. */
static void _format_signal(int sig, char *buf, size_t len)
{
	const char *name = rs_signal_name(sig);

	if (name)
		snprintf(buf, len, "%s", name);
	else
		snprintf(buf, len, "%d", sig);
}

int rs_spec_format(const rs_spec_t *spec, char *buf, size_t len)
{
	char causes[512], backoff[64], grace[32], lead[32], every[32], sig[16];
	int n;

	if (!len)
		return -ENOSPC;
	_format_causes(spec, causes, sizeof(causes));
	_format_backoff(spec, backoff, sizeof(backoff));
	_format_signal(spec->signal, sig, sizeof(sig));
	rs_format_duration(spec->grace, grace, sizeof(grace));
	rs_format_duration(spec->lead, lead, sizeof(lead));
	rs_format_duration(spec->every, every, sizeof(every));
	if (spec->off)
		n = snprintf(buf, len, "off");
	else if (spec->ckpt[0])
		n = snprintf(buf, len,
			     "ckpt=%s,%s%s%ssignal=%s,grace=%s,keep=%u,"
			     "restore=%s,lead=%s,every=%s,retries=%u,"
			     "requeue_on=%s,backoff=%s,exhausted=%s,metrics=%s",
			     spec->ckpt, spec->scratch[0] ? "scratch=" : "",
			     spec->scratch, spec->scratch[0] ? "," : "", sig,
			     grace, spec->keep, spec->restore ? "yes" : "no",
			     lead, every, spec->retries, causes, backoff,
			     spec->exhausted ? "fail" : "hold",
			     spec->metrics ? "yes" : "no");
	else
		n = snprintf(buf, len,
			     "retries=%u,requeue_on=%s,backoff=%s,exhausted=%s,"
			     "metrics=%s",
			     spec->retries, causes, backoff,
			     spec->exhausted ? "fail" : "hold",
			     spec->metrics ? "yes" : "no");
	if (n < 0 || (size_t)n >= len) {
		buf[0] = '\0';
		return -ENOSPC;
	}
	return 0;
}

int rs_spec_explain(const rs_spec_t *spec, char *buf, size_t len)
{
	char causes[512], backoff[64], grace[32], lead[32], every[32], sig[16];
	int n;

	if (!len)
		return -ENOSPC;
	if (spec->off) {
		n = snprintf(buf, len,
			     "off: no resilience for this job, even where the "
			     "site sets a default\n");
		goto out;
	}
	_format_causes(spec, causes, sizeof(causes));
	_format_backoff(spec, backoff, sizeof(backoff));
	_format_signal(spec->signal, sig, sizeof(sig));
	rs_format_duration(spec->grace, grace, sizeof(grace));
	rs_format_duration(spec->lead, lead, sizeof(lead));
	rs_format_duration(spec->every, every, sizeof(every));
	n = snprintf(buf, len,
		     "ckpt       = %s\n"
		     "scratch    = %s\n"
		     "signal     = %s (%d): the warning signal that starts a checkpoint\n"
		     "grace      = %s: time the application gets to write its state\n"
		     "keep       = %u checkpoint generation(s) kept\n"
		     "restore    = %s: restore the latest checkpoint on restart\n"
		     "lead       = %s: checkpoint this long before the time limit%s\n"
		     "every      = %s: periodic checkpoints%s\n"
		     "retries    = %u requeue(s) after failures\n"
		     "requeue_on = %s: failures that count as retryable\n"
		     "backoff    = %s: wait before a requeued attempt\n"
		     "exhausted  = %s: what happens after the last retry\n"
		     "metrics    = %s: push this job's metrics (if the site "
		     "configured an endpoint)\n",
		     spec->ckpt[0] ? spec->ckpt : "(none: no checkpoints)",
		     spec->scratch[0] ? spec->scratch : "(the job's TMPDIR)",
		     sig, spec->signal,
		     grace, spec->keep, spec->restore ? "yes" : "no", lead,
		     spec->lead ? "" : " (off)", every,
		     spec->every ? "" : " (off)", spec->retries, causes,
		     backoff, spec->exhausted ? "fail" : "hold",
		     spec->metrics ? "yes" : "no");
out:
	if (n < 0 || (size_t)n >= len) {
		buf[0] = '\0';
		return -ENOSPC;
	}
	return 0;
}

int rs_spec_cause_matches(const rs_spec_t *spec, unsigned cause,
			  int exit_code)
{
	unsigned i;

	if (!(spec->causes & cause))
		return 0;
	if (cause != RS_CAUSE_EXIT || !spec->nexits)
		return 1;
	for (i = 0; i < spec->nexits; i++)
		if (exit_code >= spec->exits[i].lo &&
		    exit_code <= spec->exits[i].hi)
			return 1;
	return 0;
}

const char *rs_spec_help(void)
{
	return
"--resilience=SPEC  make this job survive time limits, preemption and\n"
"                   failures (spank-resilience " RS_VERSION ")\n"
"\n"
"SPEC is a comma-separated list of key=value:\n"
"  ckpt=DIR        durable checkpoint folder (patterns: %j job id, %A array\n"
"                  job id, %a array task id, %u user, %x job name, %n node,\n"
"                  %% a percent sign). Enables checkpoints.\n"
"  scratch=DIR     folder whose contents are checkpointed (same patterns);\n"
"                  default: the job's TMPDIR\n"
"  signal=SIG      warning signal that starts a checkpoint (USR1, SIGUSR2,\n"
"                  or a number); default USR1\n"
"  grace=DURATION  time the application gets to write its state after the\n"
"                  signal; default 60s\n"
"  keep=N          checkpoint generations kept, N >= 1; default 2\n"
"  restore=yes|no  restore the latest checkpoint into scratch on restart;\n"
"                  default yes\n"
"  lead=DURATION   checkpoint this long before the time limit, with no\n"
"                  --signal needed; default 120s (at most half the time\n"
"                  limit), 0 turns it off\n"
"  every=DURATION  also checkpoint periodically; default off\n"
"  retries=N       requeues allowed after failures; default 0\n"
"  requeue_on=C    +-joined causes that count as retryable: any, exit,\n"
"                  exit:N, exit:N-M, signal, timeout, node_fail; default any\n"
"  backoff=B       wait before a requeued attempt: DURATION or\n"
"                  DURATIONxFACTOR (30s, 2m, 30sx2); default 0\n"
"  exhausted=hold|fail  after the last retry: hold the job for an operator,\n"
"                  or let it fail; default hold\n"
"  metrics=yes|no  push this job's metrics where the site configured an\n"
"                  endpoint; default yes\n"
"  off             no resilience for this job, even with a site default\n"
"  help            print this text\n"
"Durations: 90, 90s, 2m, 1h, 1h30m.\n"
"\n"
"Examples:\n"
"  Checkpoint /tmp/run into Lustre before the time limit and continue:\n"
"    sbatch --resilience=ckpt=/lustre/p/ckpt/%j,scratch=/tmp/run job.sh\n"
"  Retry a flaky job 3 times, waiting 30s, 60s, 120s, then hold it:\n"
"    sbatch --resilience=retries=3,backoff=30sx2 job.sh\n"
"  Retry only on exit code 75 (EX_TEMPFAIL) or a node failure, then fail:\n"
"    sbatch --resilience=retries=2,requeue_on=exit:75+node_fail,exhausted=fail job.sh\n"
"\n"
"Check a SPEC without submitting: slurm-resilience check SPEC\n";
}

int rs_parse_slurm_time(const char *s, uint32_t *secs)
{
	unsigned long v[4] = { 0, 0, 0, 0 };
	unsigned long days = 0;
	int n = 0, has_days = 0;
	const char *p = s;

	if (!s || !*s)
		return -EINVAL;
	if (!strcasecmp(s, "INFINITE") || !strcasecmp(s, "UNLIMITED"))
		return -ENOENT;
	if (strchr(s, '-')) {
		char *end;

		errno = 0;
		days = strtoul(s, &end, 10);
		if (end == s || *end != '-' || errno || days > 365)
			return -EINVAL;
		has_days = 1;
		p = end + 1;
	}
	while (*p) {
		char *end;

		if (!isdigit((unsigned char)*p) || n == 3)
			return -EINVAL;
		errno = 0;
		v[n++] = strtoul(p, &end, 10);
		if (errno || v[n - 1] > 1000000)
			return -EINVAL;
		p = end;
		if (*p == ':')
			p++;
		else if (*p)
			return -EINVAL;
	}
	if (!n)
		return -EINVAL;
	if (has_days) {        /* D-H, D-H:M, D-H:M:S */
		*secs = (uint32_t)(days * 86400 + v[0] * 3600 + v[1] * 60 + v[2]);
	} else if (n == 1) {   /* minutes */
		*secs = (uint32_t)(v[0] * 60);
	} else if (n == 2) {   /* M:S */
		*secs = (uint32_t)(v[0] * 60 + v[1]);
	} else {               /* H:M:S */
		*secs = (uint32_t)(v[0] * 3600 + v[1] * 60 + v[2]);
	}
	return 0;
}

int rs_spec_check_time_limit(const rs_spec_t *spec, uint32_t limit,
			     rs_err_t *err)
{
	char l[32], g[32], t[32];

	if (!spec->ckpt[0] || !limit)
		return 0;
	rs_format_duration(limit, t, sizeof(t));
	if ((spec->set & (1u << RS_KEY_LEAD)) && spec->lead &&
	    (uint64_t)spec->lead + spec->grace >= limit) {
		rs_format_duration(spec->lead, l, sizeof(l));
		rs_format_duration(spec->grace, g, sizeof(g));
		return rs_err_set(err, ERANGE,
				  "lead=%s plus grace=%s do not fit the job's "
				  "time limit of %s: the checkpoint would start "
				  "before the job does (lower lead or grace, or "
				  "raise --time)", l, g, t);
	}
	if (spec->every && spec->every >= limit) {
		rs_format_duration(spec->every, l, sizeof(l));
		return rs_err_set(err, ERANGE,
				  "every=%s is not shorter than the job's time "
				  "limit of %s: no periodic checkpoint would be "
				  "taken", l, t);
	}
	return 0;
}

uint32_t rs_spec_effective_lead(const rs_spec_t *spec, uint32_t limit)
{
	if (spec->set & (1u << RS_KEY_LEAD))
		return spec->lead;
	if (limit && spec->lead > limit / 2)
		return limit / 2;
	return spec->lead;
}
