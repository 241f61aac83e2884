/* Unit tests: the --resilience SPEC parser (src/spec.c). */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spec.h"

static rs_spec_t s;
static rs_err_t e;

static int parse(const char *text)
{
	memset(&e, 0, sizeof(e));
	return rs_spec_parse(text, &s, &e);
}

/* ---------------------------------------------------------- defaults --- */
START_TEST(test_spec_defaults)
{
	ck_assert_int_eq(parse("retries=0"), 0);
	ck_assert_str_eq(s.ckpt, "");
	ck_assert_str_eq(s.scratch, "");
	ck_assert_int_eq(s.signal, SIGUSR1);
	ck_assert_uint_eq(s.grace, 60);
	ck_assert_uint_eq(s.keep, 2);
	ck_assert_int_eq(s.restore, 1);
	ck_assert_uint_eq(s.retries, 0);
	ck_assert_uint_eq(s.causes, RS_CAUSE_ANY);
	ck_assert_uint_eq(s.backoff, 0);
	ck_assert_uint_eq(s.backoff_factor_milli, 1000);
	ck_assert_int_eq(s.exhausted, RS_EXHAUSTED_HOLD);
	ck_assert_int_eq(s.metrics, 1);
	ck_assert_uint_eq(s.lead, 120);
	ck_assert_uint_eq(s.every, 0);
	ck_assert_uint_eq(s.set, 1u << RS_KEY_RETRIES);
}
END_TEST

START_TEST(test_spec_every_key)
{
	ck_assert_int_eq(parse("ckpt=/lustre/p/%j,scratch=/tmp/run,signal=SIGUSR2,"
			       "grace=1h30m,keep=5,restore=no,retries=3,"
			       "requeue_on=exit:75+timeout,backoff=30sx2,"
			       "exhausted=fail,metrics=no,lead=5m,every=1h"), 0);
	ck_assert_str_eq(s.ckpt, "/lustre/p/%j");
	ck_assert_str_eq(s.scratch, "/tmp/run");
	ck_assert_int_eq(s.signal, SIGUSR2);
	ck_assert_uint_eq(s.grace, 5400);
	ck_assert_uint_eq(s.keep, 5);
	ck_assert_int_eq(s.restore, 0);
	ck_assert_uint_eq(s.retries, 3);
	ck_assert_uint_eq(s.causes, RS_CAUSE_EXIT | RS_CAUSE_TIMEOUT);
	ck_assert_uint_eq(s.nexits, 1);
	ck_assert_uint_eq(s.exits[0].lo, 75);
	ck_assert_uint_eq(s.exits[0].hi, 75);
	ck_assert_uint_eq(s.backoff, 30);
	ck_assert_uint_eq(s.backoff_factor_milli, 2000);
	ck_assert_int_eq(s.exhausted, RS_EXHAUSTED_FAIL);
	ck_assert_int_eq(s.metrics, 0);
	ck_assert_uint_eq(s.lead, 300);
	ck_assert_uint_eq(s.every, 3600);
}
END_TEST

START_TEST(test_spec_off_and_help)
{
	ck_assert_int_eq(parse("off"), 0);
	ck_assert_int_eq(s.off, 1);
	ck_assert_int_eq(parse("help"), 0);
	ck_assert_int_eq(s.help, 1);
	ck_assert_int_eq(parse("off,retries=1"), -EINVAL);
	ck_assert_str_eq(e.msg, "'off' must stand alone in the SPEC");
	ck_assert_int_eq(parse("retries=1,help"), -EINVAL);
	ck_assert_int_eq(parse("off=yes"), -EINVAL);
	ck_assert_str_eq(e.msg, "'off' takes no value");
	ck_assert_ptr_nonnull(strstr(rs_spec_help(), "Examples:"));
}
END_TEST

/* ------------------------------------------------------------ errors --- */
START_TEST(test_spec_unknown_key_suggests)
{
	ck_assert_int_eq(parse("retires=3"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "unknown key 'retires' (did you "
				     "mean 'retries'?)"));
	ck_assert_ptr_nonnull(strstr(e.msg, rs_spec_keys()));
	ck_assert_int_eq(parse("zzzzzzzz=1"), -EINVAL);
	ck_assert_ptr_null(strstr(e.msg, "did you mean"));
	ck_assert_int_eq(parse("chkpt"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "did you mean 'ckpt'"));
	ck_assert_int_eq(parse("retries"), -EINVAL);
	ck_assert_str_eq(e.msg, "retries: no value (write retries=VALUE)");
}
END_TEST

START_TEST(test_spec_structure_errors)
{
	ck_assert_int_eq(rs_spec_parse(NULL, &s, &e), -EINVAL);
	ck_assert_int_eq(parse(""), -EINVAL);
	ck_assert_int_eq(parse("retries=1,"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "trailing comma"));
	ck_assert_int_eq(parse(",retries=1"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "empty element"));
	ck_assert_int_eq(parse("retries=1,,keep=2"), -EINVAL);
	ck_assert_int_eq(parse("retries="), -EINVAL);
	ck_assert_str_eq(e.msg, "retries: empty value");
	ck_assert_int_eq(parse("retries=1,retries=1"), -EINVAL);
	ck_assert_str_eq(e.msg, "retries: given twice");
	ck_assert_int_eq(parse("=1"), -EINVAL);
}
END_TEST

START_TEST(test_spec_too_long)
{
	char *big = malloc(RS_SPEC_MAX + 2);
	size_t n;

	strcpy(big, "ckpt=/");
	n = strlen(big);
	memset(big + n, 'a', RS_SPEC_MAX + 1 - n);
	big[RS_SPEC_MAX + 1] = '\0';
	ck_assert_int_eq(parse(big), -E2BIG);
	/* Exactly at the limit it is the path length that is refused. */
	big[RS_SPEC_MAX] = '\0';
	ck_assert_int_eq(parse(big), -ENAMETOOLONG);
	free(big);
}
END_TEST

START_TEST(test_spec_numbers)
{
	ck_assert_int_eq(parse("retries=1000"), 0);
	ck_assert_uint_eq(s.retries, 1000);
	ck_assert_int_eq(parse("retries=1001"), -ERANGE);
	ck_assert_ptr_nonnull(strstr(e.msg, "retries: '1001' is out of range (0 to 1000)"));
	ck_assert_int_eq(parse("retries=18446744073709551616"), -ERANGE);
	ck_assert_int_eq(parse("retries=-1"), -EINVAL);
	ck_assert_int_eq(parse("retries=+1"), -EINVAL);
	ck_assert_int_eq(parse("retries= 1"), -EINVAL);
	ck_assert_int_eq(parse("retries=1x"), -EINVAL);
	ck_assert_int_eq(parse("retries=x"), -EINVAL);
	ck_assert_str_eq(e.msg, "retries: 'x' is not a whole number");
	ck_assert_int_eq(parse("ckpt=/a,keep=0"), -ERANGE);
	ck_assert_int_eq(parse("ckpt=/a,keep=1"), 0);
}
END_TEST

/* --------------------------------------------------------- durations --- */
START_TEST(test_spec_durations)
{
	uint32_t d;

	ck_assert_int_eq(rs_parse_duration("90", &d, &e), 0);
	ck_assert_uint_eq(d, 90);
	ck_assert_int_eq(rs_parse_duration("90s", &d, &e), 0);
	ck_assert_uint_eq(d, 90);
	ck_assert_int_eq(rs_parse_duration("2m", &d, &e), 0);
	ck_assert_uint_eq(d, 120);
	ck_assert_int_eq(rs_parse_duration("1h", &d, &e), 0);
	ck_assert_uint_eq(d, 3600);
	ck_assert_int_eq(rs_parse_duration("1h30m", &d, &e), 0);
	ck_assert_uint_eq(d, 5400);
	ck_assert_int_eq(rs_parse_duration("1d2h3m4s", &d, &e), 0);
	ck_assert_uint_eq(d, 93784);
	ck_assert_int_eq(rs_parse_duration("0", &d, &e), 0);
	ck_assert_uint_eq(d, 0);
	ck_assert_int_eq(rs_parse_duration("366d", &d, &e), 0);
	ck_assert_int_eq(rs_parse_duration("367d", &d, &e), -ERANGE);
	ck_assert_int_eq(rs_parse_duration("31622401", &d, &e), -ERANGE);
	ck_assert_int_eq(rs_parse_duration("99999999999999999999s", &d, &e), -ERANGE);
	ck_assert_int_eq(rs_parse_duration("30m1h", &d, &e), -EINVAL);
	ck_assert_int_eq(rs_parse_duration("1h1h", &d, &e), -EINVAL);
	ck_assert_int_eq(rs_parse_duration("h", &d, &e), -EINVAL);
	ck_assert_int_eq(rs_parse_duration("1x", &d, &e), -EINVAL);
	ck_assert_int_eq(rs_parse_duration("", &d, &e), -EINVAL);
	ck_assert_int_eq(rs_parse_duration("1.5h", &d, &e), -EINVAL);
}
END_TEST

START_TEST(test_spec_duration_format_round_trip)
{
	static const uint32_t v[] = { 0, 1, 59, 60, 61, 3599, 3600, 5400,
				      86399, 86400, 93784, 366u * 86400 };
	char buf[32];
	uint32_t back;
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		rs_format_duration(v[i], buf, sizeof(buf));
		ck_assert_int_eq(rs_parse_duration(buf, &back, &e), 0);
		ck_assert_uint_eq(back, v[i]);
	}
	rs_format_duration(5400, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1h30m");
}
END_TEST

/* ----------------------------------------------------------- signals --- */
START_TEST(test_spec_signals)
{
	int sig;

	ck_assert_int_eq(rs_parse_signal("USR1", &sig, &e), 0);
	ck_assert_int_eq(sig, SIGUSR1);
	ck_assert_int_eq(rs_parse_signal("sigusr2", &sig, &e), 0);
	ck_assert_int_eq(sig, SIGUSR2);
	ck_assert_int_eq(rs_parse_signal("SIGHUP", &sig, &e), 0);
	ck_assert_int_eq(sig, SIGHUP);
	ck_assert_int_eq(rs_parse_signal("10", &sig, &e), 0);
	ck_assert_int_eq(sig, 10);
	ck_assert_int_eq(rs_parse_signal("40", &sig, &e), 0);
	ck_assert_int_eq(rs_parse_signal("0", &sig, &e), -EINVAL);
	ck_assert_int_eq(rs_parse_signal("65", &sig, &e), -EINVAL);
	ck_assert_int_eq(rs_parse_signal("KILL", &sig, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "cannot be used"));
	ck_assert_int_eq(rs_parse_signal("TERM", &sig, &e), -EINVAL);
	ck_assert_int_eq(rs_parse_signal("STOP", &sig, &e), -EINVAL);
	ck_assert_int_eq(rs_parse_signal("NOPE", &sig, &e), -EINVAL);
	ck_assert_int_eq(rs_parse_signal("", &sig, &e), -EINVAL);
}
END_TEST

/* ------------------------------------------------------------- paths --- */
START_TEST(test_spec_paths)
{
	ck_assert_int_eq(parse("ckpt=/a/%j/%A_%a/%u/%x/%n/%%"), 0);
	ck_assert_int_eq(parse("ckpt=relative"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "not an absolute path"));
	ck_assert_int_eq(parse("ckpt=/a/%q"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "unknown pattern '%q'"));
	ck_assert_int_eq(parse("ckpt=/a/%"), -EINVAL);
	ck_assert_int_eq(parse("ckpt=/a/\tb"), -EINVAL);
	ck_assert_int_eq(parse("scratch=/tmp/x"), -EINVAL);
	ck_assert_str_eq(e.msg, "scratch: needs ckpt=DIR (it only applies to "
			 "checkpoints)");
	ck_assert_int_eq(parse("keep=3"), -EINVAL);
}
END_TEST

/* ------------------------------------------------- requeue_on/backoff --- */
START_TEST(test_spec_causes)
{
	ck_assert_int_eq(parse("requeue_on=exit:1-3+exit:75+signal"), 0);
	ck_assert_uint_eq(s.nexits, 2);
	ck_assert_uint_eq(s.exits[0].lo, 1);
	ck_assert_uint_eq(s.exits[0].hi, 3);
	ck_assert_int_eq(rs_spec_cause_matches(&s, RS_CAUSE_EXIT, 2), 1);
	ck_assert_int_eq(rs_spec_cause_matches(&s, RS_CAUSE_EXIT, 75), 1);
	ck_assert_int_eq(rs_spec_cause_matches(&s, RS_CAUSE_EXIT, 4), 0);
	ck_assert_int_eq(rs_spec_cause_matches(&s, RS_CAUSE_SIGNAL, 0), 1);
	ck_assert_int_eq(rs_spec_cause_matches(&s, RS_CAUSE_TIMEOUT, 0), 0);
	ck_assert_int_eq(parse("requeue_on=node_fail"), 0);
	ck_assert_int_eq(rs_spec_cause_matches(&s, RS_CAUSE_EXIT, 1), 0);
	ck_assert_int_eq(rs_spec_cause_matches(&s, RS_CAUSE_NODE_FAIL, 0), 1);
	ck_assert_int_eq(parse("requeue_on=any"), 0);
	ck_assert_int_eq(rs_spec_cause_matches(&s, RS_CAUSE_EXIT, 200), 1);

	ck_assert_int_eq(parse("requeue_on=exit:0"), -EINVAL);
	ck_assert_int_eq(parse("requeue_on=exit:256"), -EINVAL);
	ck_assert_int_eq(parse("requeue_on=exit:5-3"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "backwards"));
	ck_assert_int_eq(parse("requeue_on=exit+exit:3"), -EINVAL);
	ck_assert_int_eq(parse("requeue_on=exit:"), -EINVAL);
	ck_assert_int_eq(parse("requeue_on=oom"), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "unknown cause 'oom'"));
	ck_assert_int_eq(parse("requeue_on=exit+"), -EINVAL);
	ck_assert_int_eq(parse("requeue_on=+exit"), -EINVAL);
	ck_assert_int_eq(parse("requeue_on=exit++signal"), -EINVAL);
}
END_TEST

START_TEST(test_spec_exit_ranges_max)
{
	char buf[512] = "requeue_on=";
	int i;

	for (i = 1; i <= RS_MAX_EXIT_RANGES; i++)
		sprintf(buf + strlen(buf), "%sexit:%d", i > 1 ? "+" : "", i);
	ck_assert_int_eq(parse(buf), 0);
	ck_assert_uint_eq(s.nexits, RS_MAX_EXIT_RANGES);
	strcat(buf, "+exit:200");
	ck_assert_int_eq(parse(buf), -E2BIG);
}
END_TEST

START_TEST(test_spec_backoff)
{
	ck_assert_int_eq(parse("backoff=2m"), 0);
	ck_assert_uint_eq(s.backoff, 120);
	ck_assert_uint_eq(s.backoff_factor_milli, 1000);
	ck_assert_int_eq(parse("backoff=30sx1.5"), 0);
	ck_assert_uint_eq(s.backoff_factor_milli, 1500);
	ck_assert_int_eq(parse("backoff=30sx100"), 0);
	ck_assert_int_eq(parse("backoff=30sx101"), -EINVAL);
	ck_assert_int_eq(parse("backoff=30sx0"), -EINVAL);
	ck_assert_int_eq(parse("backoff=30sx"), -EINVAL);
	ck_assert_int_eq(parse("backoff=30sx1.2345"), -EINVAL);
	ck_assert_int_eq(parse("backoff=30sx.5"), -EINVAL);
	ck_assert_int_eq(parse("backoff=xx2"), -EINVAL);
	ck_assert_int_eq(parse("backoff=1h1hx2"), -EINVAL);
}
END_TEST

/* ----------------------------------------------------- normalisation --- */
START_TEST(test_spec_format_round_trip)
{
	static const char *const in[] = {
		"retries=3",
		"off",
		"ckpt=/lustre/%u/%j,scratch=/tmp/run,signal=40,grace=90",
		"ckpt=/a,requeue_on=exit:1-3+exit:75+timeout,backoff=30sx1.5",
		"ckpt=/a,restore=no,keep=9,exhausted=fail,metrics=no,lead=0,every=1h",
		"requeue_on=signal+node_fail,backoff=1d",
	};
	char buf[RS_SPEC_MAX + 1], buf2[RS_SPEC_MAX + 1];
	rs_spec_t a;
	size_t i;

	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		ck_assert_int_eq(parse(in[i]), 0);
		a = s;
		ck_assert_int_eq(rs_spec_format(&a, buf, sizeof(buf)), 0);
		ck_assert_msg(parse(buf) == 0, "reparse of %s: %s", buf, e.msg);
		ck_assert_int_eq(rs_spec_format(&s, buf2, sizeof(buf2)), 0);
		ck_assert_str_eq(buf, buf2);
		ck_assert_int_eq(a.retries, s.retries);
		ck_assert_int_eq(a.signal, s.signal);
		ck_assert_uint_eq(a.backoff_factor_milli, s.backoff_factor_milli);
		ck_assert_uint_eq(a.causes, s.causes);
		ck_assert_uint_eq(a.nexits, s.nexits);
	}
	ck_assert_int_eq(parse("retries=3"), 0);
	ck_assert_int_eq(rs_spec_format(&s, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "retries=3,requeue_on=any,backoff=0,"
			 "exhausted=hold,metrics=yes");
	ck_assert_int_eq(rs_spec_format(&s, buf, 10), -ENOSPC);
	ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(test_spec_explain)
{
	char buf[4096];

	ck_assert_int_eq(parse("ckpt=/a,retries=2"), 0);
	ck_assert_int_eq(rs_spec_explain(&s, buf, sizeof(buf)), 0);
	ck_assert_ptr_nonnull(strstr(buf, "retries    = 2 requeue(s)"));
	ck_assert_ptr_nonnull(strstr(buf, "scratch    = (the job's TMPDIR)"));
	ck_assert_int_eq(rs_spec_explain(&s, buf, 8), -ENOSPC);
}
END_TEST

START_TEST(test_spec_edit_distance)
{
	ck_assert_uint_eq(rs_edit_distance("retries", "retries"), 0);
	ck_assert_uint_eq(rs_edit_distance("retires", "retries"), 2);
	ck_assert_uint_eq(rs_edit_distance("", "abc"), 3);
	ck_assert_uint_eq(rs_edit_distance("KEEP", "keep"), 0);
}
END_TEST

/* ------------------------------------------------------- time limits --- */
START_TEST(test_spec_slurm_time)
{
	uint32_t t = 7;

	ck_assert_int_eq(rs_parse_slurm_time("90", &t), 0);
	ck_assert_uint_eq(t, 5400);
	ck_assert_int_eq(rs_parse_slurm_time("2:30", &t), 0);
	ck_assert_uint_eq(t, 150);
	ck_assert_int_eq(rs_parse_slurm_time("1:02:03", &t), 0);
	ck_assert_uint_eq(t, 3723);
	ck_assert_int_eq(rs_parse_slurm_time("1-2", &t), 0);
	ck_assert_uint_eq(t, 93600);
	ck_assert_int_eq(rs_parse_slurm_time("1-2:30", &t), 0);
	ck_assert_uint_eq(t, 95400);
	ck_assert_int_eq(rs_parse_slurm_time("1-2:30:15", &t), 0);
	ck_assert_uint_eq(t, 95415);
	ck_assert_int_eq(rs_parse_slurm_time("INFINITE", &t), -ENOENT);
	ck_assert_int_eq(rs_parse_slurm_time("unlimited", &t), -ENOENT);
	ck_assert_int_eq(rs_parse_slurm_time("", &t), -EINVAL);
	ck_assert_int_eq(rs_parse_slurm_time("1:2:3:4", &t), -EINVAL);
	ck_assert_int_eq(rs_parse_slurm_time("10m", &t), -EINVAL);
	ck_assert_int_eq(rs_parse_slurm_time("-5", &t), -EINVAL);
	ck_assert_int_eq(rs_parse_slurm_time("1-", &t), -EINVAL);
}
END_TEST

START_TEST(test_spec_time_limit_fit)
{
	ck_assert_int_eq(parse("ckpt=/c,lead=2m"), 0);
	ck_assert_int_eq(rs_spec_check_time_limit(&s, 180, &e), -ERANGE);
	ck_assert_str_eq(e.msg, "lead=2m plus grace=1m do not fit the job's time "
			 "limit of 3m: the checkpoint would start before the job "
			 "does (lower lead or grace, or raise --time)");
	ck_assert_int_eq(rs_spec_check_time_limit(&s, 181, &e), 0);
	ck_assert_int_eq(rs_spec_check_time_limit(&s, 0, &e), 0);
	/* The default lead adapts instead of refusing. */
	ck_assert_int_eq(parse("ckpt=/c"), 0);
	ck_assert_int_eq(rs_spec_check_time_limit(&s, 60, &e), 0);
	ck_assert_uint_eq(rs_spec_effective_lead(&s, 120), 60);
	ck_assert_uint_eq(rs_spec_effective_lead(&s, 3600), 120);
	ck_assert_uint_eq(rs_spec_effective_lead(&s, 0), 120);
	ck_assert_int_eq(parse("ckpt=/c,lead=0"), 0);
	ck_assert_uint_eq(rs_spec_effective_lead(&s, 120), 0);
	ck_assert_int_eq(parse("ckpt=/c,every=1h,lead=0"), 0);
	ck_assert_int_eq(rs_spec_check_time_limit(&s, 3600, &e), -ERANGE);
	ck_assert_int_eq(parse("retries=2"), 0);
	ck_assert_int_eq(rs_spec_check_time_limit(&s, 1, &e), 0);
}
END_TEST

START_TEST(test_spec_path_dot_components_refused)
{
	ck_assert_int_eq(parse("ckpt=/a/../b"), -EINVAL);
	ck_assert_str_eq(e.msg, "ckpt=/a/../b: '..' is not allowed in ckpt=; "
			 "give the folder's own path");
	ck_assert_int_eq(parse("ckpt=/a,scratch=/tmp/./run"), -EINVAL);
	ck_assert_str_eq(e.msg, "scratch=/tmp/./run: '.' is not allowed in "
			 "scratch=; give the folder's own path");
	ck_assert_int_eq(parse("ckpt=/a/.."), -EINVAL);
	ck_assert_int_eq(parse("ckpt=/.."), -EINVAL);
	ck_assert_int_eq(parse("ckpt=/a//b/"), 0);
	/* names that merely start with dots are names */
	ck_assert_int_eq(parse("ckpt=/a/...,scratch=/tmp/.run/..x"), 0);
	ck_assert_str_eq(s.scratch, "/tmp/.run/..x");
	/* after pattern expansion, the same check */
	ck_assert_int_eq(rs_spec_check_path("ckpt", "/c/42/x", &e), 0);
	ck_assert_int_eq(rs_spec_check_path("scratch", "/c/../x", &e),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "not allowed in scratch="));
	ck_assert_int_eq(rs_spec_check_path("ckpt", "/c/.", &e), -EINVAL);
}
END_TEST

static Suite *spec_suite(void)
{
	Suite *su = suite_create("spec");
	TCase *tc;

	tc = tcase_create("defaults_and_keys");
	tcase_add_test(tc, test_spec_defaults);
	tcase_add_test(tc, test_spec_every_key);
	tcase_add_test(tc, test_spec_path_dot_components_refused);
	tcase_add_test(tc, test_spec_off_and_help);
	suite_add_tcase(su, tc);
	tc = tcase_create("refuses_bad_input");
	tcase_add_test(tc, test_spec_unknown_key_suggests);
	tcase_add_test(tc, test_spec_structure_errors);
	tcase_add_test(tc, test_spec_too_long);
	tcase_add_test(tc, test_spec_numbers);
	tcase_add_test(tc, test_spec_paths);
	suite_add_tcase(su, tc);
	tc = tcase_create("values");
	tcase_add_test(tc, test_spec_durations);
	tcase_add_test(tc, test_spec_duration_format_round_trip);
	tcase_add_test(tc, test_spec_signals);
	tcase_add_test(tc, test_spec_causes);
	tcase_add_test(tc, test_spec_exit_ranges_max);
	tcase_add_test(tc, test_spec_backoff);
	tcase_add_test(tc, test_spec_edit_distance);
	suite_add_tcase(su, tc);
	tc = tcase_create("time_limits");
	tcase_add_test(tc, test_spec_slurm_time);
	tcase_add_test(tc, test_spec_time_limit_fit);
	suite_add_tcase(su, tc);
	tc = tcase_create("normalises");
	tcase_add_test(tc, test_spec_format_round_trip);
	tcase_add_test(tc, test_spec_explain);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(spec_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
