/* test_jobref.c - job ids as people type them: plain, array task, het
 * component; anything else refused. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>

#include "jobref.h"

START_TEST(test_jobref_accepts)
{
	rs_jobref_t r;

	ck_assert_int_eq(rs_jobref_parse("405", &r), 0);
	ck_assert_int_eq(r.kind, RS_JOBREF_JOB);
	ck_assert_uint_eq(r.job, 405);
	ck_assert_int_eq(rs_jobref_parse("405_10", &r), 0);
	ck_assert_int_eq(r.kind, RS_JOBREF_ARRAY_TASK);
	ck_assert_uint_eq(r.job, 405);
	ck_assert_uint_eq(r.index, 10);
	ck_assert_int_eq(rs_jobref_parse("405_0", &r), 0);
	ck_assert_uint_eq(r.index, 0);
	ck_assert_int_eq(rs_jobref_parse("77+1", &r), 0);
	ck_assert_int_eq(r.kind, RS_JOBREF_HET);
	ck_assert_uint_eq(r.job, 77);
	ck_assert_uint_eq(r.index, 1);
	ck_assert_int_eq(rs_jobref_parse("4294967293", &r), 0);
	ck_assert_uint_eq(r.job, 4294967293u);
}
END_TEST

START_TEST(test_jobref_refuses)
{
	static const char *const bad[] = {
		"", "0", "-1", "+1", " 1", "1 ", "1_", "_1", "1+", "1_2_3",
		"1_2+3", "1+2_3", "1_-2", "0x10", "4294967294", "4294967295",
		"99999999999", "1_4294967294", "1_[1-3]", "1.5", "work/ck",
		"ck", "1__2", NULL,
	};
	rs_jobref_t r;

	for (int i = 0; bad[i]; i++)
		ck_assert_msg(rs_jobref_parse(bad[i], &r) == -EINVAL,
			      "'%s' accepted", bad[i]);
	ck_assert_int_eq(rs_jobref_parse(NULL, &r), -EINVAL);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("jobref");
	TCase *tc = tcase_create("parse");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_jobref_accepts);
	tcase_add_test(tc, test_jobref_refuses);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
