/* test_decision.c - recorded end-of-attempt decisions: the record's
 * format round trip, refusal of bad bytes and malformed records, the
 * per-cluster folder, the durable put, the epilog's count, backoff. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "decision.h"
#include "spool.h"

static char base[64];

static void setup(void)
{
	snprintf(base, sizeof(base), "/tmp/rs-decision-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
}

static void teardown(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	ck_assert_int_eq(system(cmd), 0);
}

static rs_pending_t sample(void)
{
	rs_pending_t p;

	memset(&p, 0, sizeof(p));
	p.job_id = 4242;
	snprintf(p.job_str, sizeof(p.job_str), "4240_2");
	p.restart = 3;
	p.action = RS_ACTION_REQUEUED;
	p.delay = 60;
	p.deadline = 1767225600;
	snprintf(p.comment, sizeof(p.comment),
		 "resilience: attempt 4/5 failed exit=1, requeued [retries_used=2]");
	return p;
}

START_TEST(test_round_trip_keeps_every_field)
{
	rs_pending_t p = sample(), q;
	char buf[1024];
	rs_err_t err;

	ck_assert_int_eq(rs_pending_format(&p, buf, sizeof(buf), &err), 0);
	ck_assert_msg(rs_pending_parse(buf, strlen(buf), &q, &err) == 0, "%s", err.msg);
	ck_assert_uint_eq(q.job_id, 4242);
	ck_assert_str_eq(q.job_str, "4240_2");
	ck_assert_uint_eq(q.restart, 3);
	ck_assert_int_eq(q.action, RS_ACTION_REQUEUED);
	ck_assert_uint_eq(q.delay, 60);
	ck_assert_int_eq(q.requeue_done, 0);
	ck_assert_int_eq(q.deadline, 1767225600);
	ck_assert_str_eq(q.comment, p.comment);
	ck_assert(rs_pending_requeues(&q));
	q.action = RS_ACTION_FAILED;
	ck_assert(!rs_pending_requeues(&q));
	q.action = RS_ACTION_HELD;
	ck_assert(rs_pending_requeues(&q));
}
END_TEST

START_TEST(test_format_refuses_bytes_that_are_not_printable)
{
	rs_pending_t p = sample();
	char buf[1024];
	rs_err_t err;

	snprintf(p.comment, sizeof(p.comment), "two\nlines");
	ck_assert_int_eq(rs_pending_format(&p, buf, sizeof(buf), &err), -EINVAL);
	p = sample();
	snprintf(p.job_str, sizeof(p.job_str), "1 2");
	ck_assert_int_eq(rs_pending_format(&p, buf, sizeof(buf), &err), -EINVAL);
	p = sample();
	p.job_id = 0;
	ck_assert_int_eq(rs_pending_format(&p, buf, sizeof(buf), &err), -EINVAL);
	p = sample();
	ck_assert_int_eq(rs_pending_format(&p, buf, 40, &err), -EINVAL);
}
END_TEST

START_TEST(test_parse_refuses_malformed_records)
{
	static const char *bad[] = {
		"", /* every field missing */
		"job_id 1\njob_str 1\nrestart 0\naction requeued\ndelay 0\n"
		"requeue_done 0\ndeadline 5\n", /* no comment */
		"job_id 0\njob_str 1\nrestart 0\naction requeued\ndelay 0\n"
		"requeue_done 0\ndeadline 5\ncomment \n",
		"job_id 1\njob_str 1\nrestart -1\naction requeued\ndelay 0\n"
		"requeue_done 0\ndeadline 5\ncomment \n",
		"job_id 1\njob_str 1\nrestart 0\naction explode\ndelay 0\n"
		"requeue_done 0\ndeadline 5\ncomment \n",
		"job_id 1\njob_str 1\nrestart 0\naction requeued\ndelay 0\n"
		"requeue_done 2\ndeadline 5\ncomment \n",
		"job_id 1\njob_id 2\njob_str 1\nrestart 0\naction requeued\ndelay 0\n"
		"requeue_done 0\ndeadline 5\ncomment \n",
		"job_id 1\njob_str 1\nrestart 0\naction requeued\ndelay 0\n"
		"requeue_done 0\ndeadline 5\ncomment \x1b[2J\n",
		"job_id 99999999999\njob_str 1\nrestart 0\naction requeued\ndelay 0\n"
		"requeue_done 0\ndeadline 5\ncomment \n",
		"job_id 1\njob_str 1\nrestart 0\naction requeued\ndelay 0\n"
		"requeue_done 0\ndeadline 5\ncomment \nuid 0\n",
	};
	rs_pending_t q;
	rs_err_t err;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(rs_pending_parse(bad[i], strlen(bad[i]), &q, &err) == -EINVAL,
			      "record %zu accepted", i);
}
END_TEST

START_TEST(test_folder_is_per_cluster_and_safe)
{
	char out[256];

	ck_assert_int_eq(rs_decision_dir("/var/spool/x", "alpha", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/var/spool/x/decisions-alpha");
	ck_assert_int_eq(rs_decision_dir("/var/spool/x", "../evil", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/var/spool/x/decisions-_");
	ck_assert_int_eq(rs_decision_dir("/var/spool/x", "alpha", out, 10), -ENAMETOOLONG);
}
END_TEST

START_TEST(test_record_is_a_durable_spool_entry_counted_by_the_epilog)
{
	rs_pending_t p = sample(), q;
	char dir[128], name[96];
	rs_spool_entry_t e;
	rs_spool_t *sp = NULL;
	rs_err_t err;
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/decisions-c", base);
	ck_assert_int_eq(rs_decision_count(dir), 0); /* no folder yet */
	ck_assert_msg(rs_decision_record(dir, &p, name, sizeof(name), &err) == 0, "%s",
		      err.msg);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	ck_assert(rs_decision_waiting(dir, name));
	ck_assert_int_eq(rs_decision_count(dir), 1);
	p.job_id = 7;
	ck_assert_int_eq(rs_decision_record(dir, &p, NULL, 0, &err), 0);
	ck_assert_int_eq(rs_decision_count(dir), 2);

	ck_assert_int_eq(rs_spool_open(dir, NULL, 0, &sp, &err), 0);
	ck_assert_int_eq(rs_spool_read(sp, name, 0, &e, &err), 0);
	ck_assert_int_eq(e.kind, RS_SPOOL_DECISION);
	ck_assert_str_eq(e.event_id, "4240_2:3");
	ck_assert_int_eq(rs_pending_parse(e.payload, e.len, &q, &err), 0);
	ck_assert_uint_eq(q.job_id, 4242);
	ck_assert_int_eq(rs_spool_done(sp, name, &err), 0);
	rs_spool_entry_free(&e);
	rs_spool_close(sp);
	ck_assert(!rs_decision_waiting(dir, name));
	ck_assert_int_eq(rs_decision_count(dir), 1);

	/* A folder that is not ours, or open to others, counts nothing:
	 * the epilog never starts an applier for planted entries. */
	ck_assert_int_eq(chmod(dir, 0777), 0);
	ck_assert_int_eq(rs_decision_count(dir), 0);
	ck_assert_int_eq(chmod(dir, 0700), 0);
}
END_TEST

START_TEST(test_backoff_doubles_up_to_its_cap)
{
	ck_assert_uint_eq(rs_decision_backoff(0), 2);
	ck_assert_uint_eq(rs_decision_backoff(1), 2);
	ck_assert_uint_eq(rs_decision_backoff(2), 4);
	ck_assert_uint_eq(rs_decision_backoff(3), 8);
	ck_assert_uint_eq(rs_decision_backoff(5), RS_DECISION_MAX_BACKOFF);
	ck_assert_uint_eq(rs_decision_backoff(1000), RS_DECISION_MAX_BACKOFF);
}
END_TEST

static Suite *decision_suite(void)
{
	Suite *s = suite_create("decision");
	TCase *tc = tcase_create("record");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_round_trip_keeps_every_field);
	tcase_add_test(tc, test_format_refuses_bytes_that_are_not_printable);
	tcase_add_test(tc, test_parse_refuses_malformed_records);
	tcase_add_test(tc, test_folder_is_per_cluster_and_safe);
	tcase_add_test(tc, test_record_is_a_durable_spool_entry_counted_by_the_epilog);
	tcase_add_test(tc, test_backoff_doubles_up_to_its_cap);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(decision_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
