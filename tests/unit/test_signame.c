/* test_signame.c - the one signal-name parser (spec.c and supervise.c
 * both use it): names with and without SIG, any case, numbers, realtime
 * offsets; nothing out of range. */
#include <check.h>
#include <errno.h>
#include <signal.h>

#include "signame.h"

START_TEST(test_signame_names_and_numbers)
{
	int s = 0;

	ck_assert_int_eq(rs_signame_parse("USR1", &s), 0);
	ck_assert_int_eq(s, SIGUSR1);
	ck_assert_int_eq(rs_signame_parse("sigusr2", &s), 0);
	ck_assert_int_eq(s, SIGUSR2);
	ck_assert_int_eq(rs_signame_parse("10", &s), 0);
	ck_assert_int_eq(s, 10);
	ck_assert_int_eq(rs_signame_parse("SIGRTMIN+2", &s), 0);
	ck_assert_int_eq(s, SIGRTMIN + 2);
	ck_assert_int_eq(rs_signame_parse("rtmax-1", &s), 0);
	ck_assert_int_eq(s, SIGRTMAX - 1);
	ck_assert_int_eq(rs_signame_parse("RTMIN", &s), 0);
	ck_assert_int_eq(s, SIGRTMIN);
	ck_assert_str_eq(rs_signame(SIGUSR1), "USR1");
	ck_assert_ptr_null(rs_signame(SIGRTMIN + 1));
}
END_TEST

START_TEST(test_signame_refuses)
{
	int s = 77;

	ck_assert_int_eq(rs_signame_parse("", &s), -EINVAL);
	ck_assert_int_eq(rs_signame_parse(NULL, &s), -EINVAL);
	ck_assert_int_eq(rs_signame_parse("0", &s), -EINVAL);
	ck_assert_int_eq(rs_signame_parse("32", &s), -EINVAL);
	ck_assert_int_eq(rs_signame_parse("65", &s), -EINVAL);
	ck_assert_int_eq(rs_signame_parse("USR3", &s), -EINVAL);
	ck_assert_int_eq(rs_signame_parse("RTMIN-1", &s), -EINVAL);
	ck_assert_int_eq(rs_signame_parse("RTMAX+1", &s), -EINVAL);
	ck_assert_int_eq(rs_signame_parse("RTMIN+99", &s), -EINVAL);
	ck_assert_int_eq(rs_signame_parse("10x", &s), -EINVAL);
	ck_assert_int_eq(s, 77);
}
END_TEST

int main(void)
{
	Suite *su = suite_create("signame");
	TCase *tc = tcase_create("signame");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_signame_names_and_numbers);
	tcase_add_test(tc, test_signame_refuses);
	suite_add_tcase(su, tc);
	sr = srunner_create(su);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
