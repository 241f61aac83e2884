/* test_pattern_env.c - $NAME and ${NAME} in ckpt=/scratch=: the job's
 * variables (a site's per-job folder), errors that name the variable,
 * and the static prefix that submit-time checks use. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pattern.h"

static int _env(void *arg, const char *name, char *buf, size_t len)
{
	(void)arg;
	if (!strcmp(name, "SLURM_JOBTMP"))
		return snprintf(buf, len, "/local/job42") < (int)len ? 0 : -ENOSPC;
	if (!strcmp(name, "EMPTY")) {
		buf[0] = '\0';
		return 0;
	}
	return -ENOENT;
}

static rs_pattern_ctx_t _ctx(void)
{
	rs_pattern_ctx_t c = { "42", "42", "0", "alice", "run", "n1", _env, NULL };

	return c;
}

START_TEST(test_pattern_env_expands_variables)
{
	rs_pattern_ctx_t c = _ctx();
	char out[256];
	rs_err_t e;

	ck_assert_int_eq(rs_pattern_expand("$SLURM_JOBTMP/climate_%j_%n", &c, out,
					   sizeof(out), &e), 0);
	ck_assert_str_eq(out, "/local/job42/climate_42_n1");
	ck_assert_int_eq(rs_pattern_expand("${SLURM_JOBTMP}x/$$y", &c, out,
					   sizeof(out), &e), 0);
	ck_assert_str_eq(out, "/local/job42x/$y");
}
END_TEST

START_TEST(test_pattern_env_names_what_is_missing)
{
	rs_pattern_ctx_t c = _ctx();
	char out[256];
	rs_err_t e;

	ck_assert_int_eq(rs_pattern_expand("$NOPE/x", &c, out, sizeof(out), &e),
			 -ENOENT);
	ck_assert_ptr_nonnull(strstr(e.msg, "$NOPE is not set"));
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(rs_pattern_expand("$EMPTY/x", &c, out, sizeof(out), &e),
			 -ENOENT);
	ck_assert_int_eq(rs_pattern_expand("/a/$/b", &c, out, sizeof(out), &e),
			 -EINVAL);
	ck_assert_int_eq(rs_pattern_expand("${SLURM_JOBTMP", &c, out, sizeof(out),
					   &e), -EINVAL);
	ck_assert_int_eq(rs_pattern_expand("$SLURM_JOBTMP/x", &c, out, 8, &e),
			 -ENAMETOOLONG);
}
END_TEST

START_TEST(test_pattern_env_without_env_is_literal)
{
	rs_pattern_ctx_t c = _ctx();
	char out[256];
	rs_err_t e;

	c.env = NULL;
	ck_assert_int_eq(rs_pattern_expand("/a/$X/%j", &c, out, sizeof(out), &e), 0);
	ck_assert_str_eq(out, "/a/$X/42");
}
END_TEST

START_TEST(test_pattern_env_static_prefix_stops_at_a_variable)
{
	ck_assert_uint_eq(rs_pattern_static_prefix("$SLURM_JOBTMP/x"), 0);
	ck_assert_uint_eq(rs_pattern_static_prefix("/a/b/$X/%j"), 5);
	ck_assert_uint_eq(rs_pattern_static_prefix("/a/$$b/%j"), 7);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pattern_env");
	TCase *tc = tcase_create("env");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_pattern_env_expands_variables);
	tcase_add_test(tc, test_pattern_env_names_what_is_missing);
	tcase_add_test(tc, test_pattern_env_without_env_is_literal);
	tcase_add_test(tc, test_pattern_env_static_prefix_stops_at_a_variable);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
