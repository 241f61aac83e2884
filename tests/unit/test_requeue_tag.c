/* test_requeue_tag.c - the retry count kept in AdminComment, where the
 * job's user cannot write: appended to the summary, read back, and
 * nothing else mistaken for it. */
#include <check.h>
#include <errno.h>
#include <string.h>

#include "requeue.h"

START_TEST(test_requeue_tag_round_trip)
{
	char buf[256] = "resilience: attempt 2/3 failed exit=1, requeued";
	unsigned used = 99;

	ck_assert_int_eq(rs_requeue_tag_append(buf, sizeof(buf), 2), 0);
	ck_assert_str_eq(buf, "resilience: attempt 2/3 failed exit=1, requeued "
			      "[retries_used=2]");
	ck_assert_int_eq(rs_requeue_tag_parse(buf, &used), 0);
	ck_assert_uint_eq(used, 2);
}
END_TEST

START_TEST(test_requeue_tag_last_one_counts)
{
	unsigned used = 0;

	ck_assert_int_eq(rs_requeue_tag_parse("old [retries_used=1] then "
					      "[retries_used=3]", &used), 0);
	ck_assert_uint_eq(used, 3);
}
END_TEST

START_TEST(test_requeue_tag_refuses_malformed)
{
	unsigned used = 7;

	ck_assert_int_eq(rs_requeue_tag_parse(NULL, &used), -ENOENT);
	ck_assert_int_eq(rs_requeue_tag_parse("", &used), -ENOENT);
	ck_assert_int_eq(rs_requeue_tag_parse("[retries_used=]", &used), -ENOENT);
	ck_assert_int_eq(rs_requeue_tag_parse("[retries_used=-1]", &used), -ENOENT);
	ck_assert_int_eq(rs_requeue_tag_parse("[retries_used=2", &used), -ENOENT);
	ck_assert_int_eq(rs_requeue_tag_parse("[retries_used=99999999999]",
					      &used), -ENOENT);
	ck_assert_uint_eq(used, 7);
}
END_TEST

START_TEST(test_requeue_tag_no_room)
{
	char buf[24] = "resilience: attempt 1";

	ck_assert_int_eq(rs_requeue_tag_append(buf, sizeof(buf), 1), -ENOSPC);
	ck_assert_uint_lt(strlen(buf), sizeof(buf));
}
END_TEST

int main(void)
{
	Suite *s = suite_create("requeue_tag");
	TCase *tc = tcase_create("tag");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_requeue_tag_round_trip);
	tcase_add_test(tc, test_requeue_tag_last_one_counts);
	tcase_add_test(tc, test_requeue_tag_refuses_malformed);
	tcase_add_test(tc, test_requeue_tag_no_room);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
