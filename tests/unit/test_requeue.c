/* Unit tests: the requeue policy, the attempt ledger, the supervisor's
 * launch line and privsep (src/requeue.c, src/ledger.c, src/launch.c,
 * src/privsep.c). */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launch.h"
#include "ledger.h"
#include "privsep.h"
#include "requeue.h"

static rs_spec_t spec;

static rs_decide_in_t in_for(const char *specs, rs_outcome_t o, int code)
{
	rs_decide_in_t in;

	ck_assert_int_eq(rs_spec_parse(specs, &spec, NULL), 0);
	memset(&in, 0, sizeof(in));
	in.spec = &spec;
	in.max_retries = in.max_requeues = in.max_backoff = -1;
	in.outcome = o;
	in.exit_code = code;
	in.requeue_allowed = 1;
	in.batch = 1;
	return in;
}

/* ---------------------------------------------------------- classify --- */
START_TEST(test_requeue_classify)
{
	rs_attempt_end_t e = { 0, 0, 0, 0, 0 };
	int code, sig;

	e.wait_status = 0;
	ck_assert_int_eq(rs_requeue_classify(&e, &code, &sig), RS_OUTCOME_COMPLETED);
	e.wait_status = 3 << 8;
	ck_assert_int_eq(rs_requeue_classify(&e, &code, &sig), RS_OUTCOME_FAILED);
	ck_assert_int_eq(code, 3);
	e.wait_status = SIGSEGV;
	ck_assert_int_eq(rs_requeue_classify(&e, &code, &sig), RS_OUTCOME_SIGNALED);
	ck_assert_int_eq(sig, SIGSEGV);
	/* Slurm's SIGTERM at a time limit says nothing: its state does. */
	e.wait_status = SIGTERM;
	e.timed_out = 1;
	ck_assert_int_eq(rs_requeue_classify(&e, &code, &sig), RS_OUTCOME_TIMEOUT);
	e.timed_out = 0;
	e.cancelled = 1;
	ck_assert_int_eq(rs_requeue_classify(&e, &code, &sig), RS_OUTCOME_CANCELLED);
	e.preempted = 1;
	ck_assert_int_eq(rs_requeue_classify(&e, &code, &sig), RS_OUTCOME_PREEMPTED);
	e.requeued = 1;
	ck_assert_int_eq(rs_requeue_classify(&e, &code, &sig), RS_OUTCOME_REQUEUED);
}
END_TEST

START_TEST(test_requeue_names_round_trip)
{
	int i;

	for (i = 0; i < RS_OUTCOME_COUNT; i++)
		ck_assert_int_eq(rs_outcome_parse(rs_outcome_name(i)), i);
	for (i = 0; i < RS_ACTION_COUNT; i++)
		ck_assert_int_eq(rs_action_parse(rs_action_name(i)), i);
	ck_assert_ptr_null(rs_outcome_name(RS_OUTCOME_COUNT));
	ck_assert_int_eq(rs_outcome_parse("nope"), -1);
	ck_assert_int_eq(rs_action_parse(NULL), -1);
}
END_TEST

/* ------------------------------------------------------------ decide --- */
START_TEST(test_requeue_retry_then_exhausted_hold)
{
	rs_decide_in_t in = in_for("retries=3,backoff=30sx2", RS_OUTCOME_FAILED, 3);
	rs_decision_t d;
	static const uint32_t delays[] = { 30, 60, 120 };
	unsigned used;

	for (used = 0; used < 3; used++) {
		in.retries_used = used;
		rs_requeue_decide(&in, &d);
		ck_assert_int_eq(d.action, RS_ACTION_REQUEUED);
		ck_assert_uint_eq(d.delay, delays[used]);
		ck_assert_uint_eq(d.retries_left, 2 - used);
		ck_assert_int_eq(d.exhausted, 0);
	}
	in.retries_used = 3;
	rs_requeue_decide(&in, &d);
	ck_assert_int_eq(d.action, RS_ACTION_HELD);
	ck_assert_int_eq(d.exhausted, 1);
	ck_assert_uint_eq(d.retries_left, 0);
	ck_assert_str_eq(d.why, "retries exhausted (3 used)");
}
END_TEST

START_TEST(test_requeue_exhausted_fail)
{
	rs_decide_in_t in = in_for("retries=1,exhausted=fail", RS_OUTCOME_SIGNALED, 0);
	rs_decision_t d;

	in.retries_used = 1;
	rs_requeue_decide(&in, &d);
	ck_assert_int_eq(d.action, RS_ACTION_FAILED);
	ck_assert_int_eq(d.exhausted, 1);
}
END_TEST

START_TEST(test_requeue_no_retries_is_not_exhausted)
{
	rs_decide_in_t in = in_for("ckpt=/c", RS_OUTCOME_FAILED, 1);
	rs_decision_t d;

	rs_requeue_decide(&in, &d);
	ck_assert_int_eq(d.action, RS_ACTION_FAILED);
	ck_assert_int_eq(d.exhausted, 0);
}
END_TEST

START_TEST(test_requeue_cause_filter)
{
	rs_decide_in_t in = in_for("retries=2,requeue_on=exit:75", RS_OUTCOME_FAILED, 75);
	rs_decision_t d;

	rs_requeue_decide(&in, &d);
	ck_assert_int_eq(d.action, RS_ACTION_REQUEUED);
	in.exit_code = 1;
	rs_requeue_decide(&in, &d);
	ck_assert_int_eq(d.action, RS_ACTION_FAILED);
	ck_assert_str_eq(d.why, "exit code does not match requeue_on");
	in.outcome = RS_OUTCOME_TIMEOUT;
	rs_requeue_decide(&in, &d);
	ck_assert_int_eq(d.action, RS_ACTION_FAILED);
	ck_assert_str_eq(d.why, "timeout does not match requeue_on");
}
END_TEST

START_TEST(test_requeue_continuation_uses_no_retry)
{
	rs_decide_in_t in = in_for("ckpt=/c", RS_OUTCOME_TIMEOUT, 0);
	rs_decision_t d;

	in.warned_ckpt = 1;
	rs_requeue_decide(&in, &d);
	ck_assert_int_eq(d.action, RS_ACTION_CONTINUED);
	ck_assert_uint_eq(d.delay, 0);
	/* Without a checkpoint a time limit is a cause like any other. */
	in.warned_ckpt = 0;
	rs_requeue_decide(&in, &d);
	ck_assert_int_eq(d.action, RS_ACTION_FAILED);
	in = in_for("ckpt=/c", RS_OUTCOME_PREEMPTED, 0);
	rs_requeue_decide(&in, &d);
	ck_assert_int_eq(d.action, RS_ACTION_CONTINUED);
	in = in_for("retries=1", RS_OUTCOME_REQUEUED, 0);
	rs_requeue_decide(&in, &d);
	ck_assert_int_eq(d.action, RS_ACTION_CONTINUED);
	ck_assert_uint_eq(d.retries_left, 1);
}
END_TEST

START_TEST(test_requeue_never)
{
	rs_decide_in_t in = in_for("retries=5", RS_OUTCOME_CANCELLED, 0);
	rs_decision_t d;

	rs_requeue_decide(&in, &d);
	ck_assert_int_eq(d.action, RS_ACTION_ENDED);
	in = in_for("retries=5", RS_OUTCOME_COMPLETED, 0);
	rs_requeue_decide(&in, &d);
	ck_assert_int_eq(d.action, RS_ACTION_COMPLETED);
	in = in_for("retries=5", RS_OUTCOME_FAILED, 1);
	in.requeue_allowed = 0;
	rs_requeue_decide(&in, &d);
	ck_assert_int_eq(d.action, RS_ACTION_FAILED);
	ck_assert_ptr_nonnull(strstr(d.why, "--no-requeue"));
	in.requeue_allowed = 1;
	in.batch = 0;
	rs_requeue_decide(&in, &d);
	ck_assert_int_eq(d.action, RS_ACTION_ENDED);
}
END_TEST

START_TEST(test_requeue_site_caps)
{
	rs_decide_in_t in = in_for("retries=5,backoff=1mx10", RS_OUTCOME_FAILED, 1);
	rs_decision_t d;

	in.max_retries = 1;
	in.retries_used = 1;
	rs_requeue_decide(&in, &d);
	ck_assert_int_eq(d.action, RS_ACTION_HELD);
	in.max_retries = -1;
	in.max_requeues = 4;
	in.requeues = 4;
	in.warned_ckpt = 1;
	rs_requeue_decide(&in, &d);
	ck_assert_int_eq(d.action, RS_ACTION_FAILED);
	ck_assert_str_eq(d.why, "site cap max_requeues=4 reached");
	ck_assert_uint_eq(rs_requeue_backoff(&spec, 3, 3600), 3600);
	ck_assert_uint_eq(rs_requeue_backoff(&spec, 2, 3600), 600);
	ck_assert_uint_eq(rs_requeue_backoff(&spec, 1000, -1), 366u * 86400);
}
END_TEST

START_TEST(test_requeue_summary)
{
	rs_decision_t d;
	char buf[256];

	memset(&d, 0, sizeof(d));
	d.action = RS_ACTION_REQUEUED;
	d.delay = 60;
	snprintf(d.why, sizeof(d.why), "retry 2 of 3");
	ck_assert_int_eq(rs_requeue_summary(3, 4, RS_OUTCOME_FAILED, 3, 0, &d,
					    buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "resilience: attempt 3/4 failed exit=3, retry 2 "
			 "of 3, requeued in 1m");
	d.action = RS_ACTION_HELD;
	d.exhausted = 1;
	snprintf(d.why, sizeof(d.why), "retries exhausted (3 used)");
	rs_requeue_summary(4, 4, RS_OUTCOME_SIGNALED, 0, 9, &d, buf, sizeof(buf));
	ck_assert_str_eq(buf, "resilience: attempt 4/4 signaled signal=9, retries "
			 "exhausted (3 used), held for an operator");
	ck_assert_int_eq(rs_requeue_summary(1, 1, RS_OUTCOME_FAILED, 3, 0, &d,
					    buf, 10), -ENOSPC);
}
END_TEST

/* Each summary comes from the real decision: the reason once, and a
 * continuation never claims a checkpoint the attempt did not take. */
START_TEST(test_requeue_summary_says_what_happened)
{
	rs_spec_t sp;
	rs_decide_in_t in;
	rs_decision_t d;
	char buf[256];

	memset(&sp, 0, sizeof(sp));
	sp.retries = 2;
	memset(&in, 0, sizeof(in));
	in.spec = &sp;
	in.batch = 1;
	in.requeue_allowed = 1;
	in.max_retries = -1;
	in.max_requeues = -1;

	in.outcome = RS_OUTCOME_PREEMPTED;
	rs_requeue_decide(&in, &d);
	ck_assert_int_eq(d.action, RS_ACTION_CONTINUED);
	rs_requeue_summary(1, 3, in.outcome, 0, 0, &d, buf, sizeof(buf));
	ck_assert_str_eq(buf, "resilience: attempt 1/3 preempted, preempted: "
			 "requeued, no retry used");
	ck_assert_ptr_null(strstr(buf, "checkpoint"));

	in.outcome = RS_OUTCOME_REQUEUED;
	rs_requeue_decide(&in, &d);
	rs_requeue_summary(2, 4, in.outcome, 0, 0, &d, buf, sizeof(buf));
	ck_assert_str_eq(buf, "resilience: attempt 2/4 requeued, requeued by "
			 "Slurm: no retry used");

	in.outcome = RS_OUTCOME_TIMEOUT;
	in.warned_ckpt = 1;
	rs_requeue_decide(&in, &d);
	rs_requeue_summary(1, 3, in.outcome, 0, 0, &d, buf, sizeof(buf));
	ck_assert_str_eq(buf, "resilience: attempt 1/3 timeout, checkpointed "
			 "before its time limit: continues, no retry used");

	in.outcome = RS_OUTCOME_CANCELLED;
	rs_requeue_decide(&in, &d);
	rs_requeue_summary(1, 3, in.outcome, 0, 0, &d, buf, sizeof(buf));
	ck_assert_str_eq(buf, "resilience: attempt 1/3 cancelled, cancelled by "
			 "a user or admin: never requeued");
}
END_TEST

/* ------------------------------------------------------------ ledger --- */
START_TEST(test_ledger_begin_end_summarize)
{
	json_object *root = json_object_new_object();
	rs_decision_t d;
	rs_ledger_end_t fin;
	rs_ledger_sum_t sum;
	rs_err_t e;
	unsigned nf = 9;

	ck_assert_int_eq(rs_spec_parse("retries=2", &spec, NULL), 0);
	ck_assert_int_eq(rs_ledger_begin(root, "42", 1, "n1", 100, &spec, -1, &nf, &e), 0);
	ck_assert_uint_eq(nf, 0);
	/* Idempotent. */
	ck_assert_int_eq(rs_ledger_begin(root, "42", 1, "n1", 100, &spec, -1, NULL, &e), 0);
	ck_assert_uint_eq(json_object_array_length(rs_ledger_attempts(root)), 1);
	memset(&d, 0, sizeof(d));
	d.action = RS_ACTION_REQUEUED;
	d.retries_left = 1;
	fin = (rs_ledger_end_t){ 110, RS_OUTCOME_FAILED, 3, 0, &d, 0, NULL };
	ck_assert_int_eq(rs_ledger_end(root, "42", 1, &fin, &e), 0);
	ck_assert_int_eq(rs_ledger_end(root, "42", 1, &fin, &e), -EALREADY);
	rs_ledger_summarize(root, "42", 2, &sum);
	ck_assert_uint_eq(sum.attempts, 1);
	ck_assert_uint_eq(sum.retries_used, 1);
	rs_ledger_summarize(root, "43", 1, &sum);
	ck_assert_uint_eq(sum.attempts, 0);
	json_object_put(root);
}
END_TEST

START_TEST(test_ledger_node_fail_closes_unended)
{
	json_object *root = json_object_new_object(), *a;
	rs_ledger_sum_t sum;
	unsigned nf = 0;

	ck_assert_int_eq(rs_spec_parse("retries=1,requeue_on=node_fail", &spec, NULL), 0);
	rs_ledger_begin(root, "7", 1, "n1", 100, &spec, -1, NULL, NULL);
	/* Attempt 1 never ended: attempt 2 begins. */
	rs_ledger_begin(root, "7", 2, "n2", 200, &spec, -1, &nf, NULL);
	ck_assert_uint_eq(nf, 1);
	a = json_object_array_get_idx(rs_ledger_attempts(root), 0);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(a, "outcome")),
			 "node_fail");
	ck_assert_int_eq(json_object_get_int(json_object_object_get(a, "end")), 200);
	rs_ledger_summarize(root, "7", 2, &sum);
	ck_assert_uint_eq(sum.retries_used, 1);
	json_object_put(root);
}
END_TEST

START_TEST(test_ledger_counts_warning_checkpoints)
{
	json_object *root = json_tokener_parse(
		"{\"generations\":["
		"{\"gen\":4,\"job_id\":\"9\",\"attempt\":2,\"reason\":\"periodic\",\"bytes\":5,\"seconds\":0.5},"
		"{\"gen\":5,\"job_id\":\"9\",\"attempt\":2,\"reason\":\"signal\",\"bytes\":7,\"seconds\":1.5},"
		"{\"gen\":6,\"job_id\":\"9\",\"attempt\":3,\"reason\":\"lead\"},"
		"{\"gen\":7,\"job_id\":\"8\",\"attempt\":2,\"reason\":\"signal\"}]}");
	rs_ledger_sum_t sum;

	rs_ledger_summarize(root, "9", 2, &sum);
	ck_assert_uint_eq(sum.all_checkpoints, 2);
	ck_assert_uint_eq(sum.checkpoints, 1);
	ck_assert_int_eq(sum.last_gen, 5);
	ck_assert_uint_eq(sum.last_bytes, 7);
	ck_assert_str_eq(sum.last_reason, "signal");
	ck_assert(sum.last_seconds > 1.4 && sum.last_seconds < 1.6);
	json_object_put(root);
}
END_TEST

START_TEST(test_ledger_table)
{
	json_object *root = json_object_new_object();
	char *t;

	ck_assert_int_eq(rs_spec_parse("retries=2", &spec, NULL), 0);
	rs_ledger_begin(root, "42", 1, "n1", 100, &spec, -1, NULL, NULL);
	t = rs_ledger_table(root);
	ck_assert_ptr_nonnull(strstr(t, "ATTEMPT"));
	ck_assert_ptr_nonnull(strstr(t, "running"));
	free(t);
	json_object_put(root);
}
END_TEST

/* ------------------------------------------------------------ launch --- */
START_TEST(test_launch_argv)
{
	rs_launch_t l;
	char *argv[RS_LAUNCH_MAX_ARGS], buf[4096];
	int argc = 0;

	ck_assert_int_eq(rs_spec_parse("ckpt=/c,every=1h,lead=5m", &spec, NULL), 0);
	memset(&l, 0, sizeof(l));
	l.supervisor = "/x/resilience-supervisor";
	l.spec = &spec;
	l.ckpt = "/c";
	l.scratch = "/s";
	l.ready = "/r";
	l.job = "42";
	l.node = "n1";
	l.attempt = 2;
	l.nparts = 3;
	l.part = 1;
	l.saver = 1;
	l.end_time = 1000;
	l.adopt = 77;
	ck_assert_int_eq(rs_launch_argv(&l, argv, &argc, buf, sizeof(buf)), 0);
	ck_assert_str_eq(argv[0], "/x/resilience-supervisor");
	ck_assert_str_eq(argv[argc - 2], "--pid");
	ck_assert_str_eq(argv[argc - 1], "77");
	ck_assert_ptr_null(argv[argc]);
	/* No lead given: no self-timed warning on the command line. */
	for (int i = 0; i < argc; i++)
		ck_assert_str_ne(argv[i], "--lead");
	l.lead = 300;
	l.end_time_file = "/p/x.end";
	l.adopt = 0;
	ck_assert_int_eq(rs_launch_argv(&l, argv, &argc, buf, sizeof(buf)), 0);
	ck_assert_str_eq(argv[argc - 1], "--");
	ck_assert_str_eq(argv[argc - 3], "--every");
	ck_assert_str_eq(argv[argc - 4], "/p/x.end");
	ck_assert_str_eq(argv[argc - 5], "--end-time-file");
	ck_assert_str_eq(argv[argc - 6], "300");
	ck_assert_str_eq(argv[argc - 7], "--lead");
	ck_assert_int_eq(rs_launch_argv(&l, argv, &argc, buf, 40), -ENOSPC);
}
END_TEST

/* ----------------------------------------------------------- privsep --- */
static int _write_hello(void *arg, int fd, rs_err_t *err)
{
	(void)arg;
	(void)err;
	return dprintf(fd, "uid=%u", (unsigned)getuid()) > 0 ? 0 : -EIO;
}

/* "uid gid ngroups g1 g2 ..." of the child. */
static int _write_ids(void *arg, int fd, rs_err_t *err)
{
	gid_t gs[64];
	int i, n = getgroups(64, gs);

	(void)arg;
	(void)err;
	dprintf(fd, "%u %u %d", (unsigned)getuid(), (unsigned)getgid(), n);
	for (i = 0; i < n; i++)
		dprintf(fd, " %u", (unsigned)gs[i]);
	return 0;
}

static int _fail(void *arg, int fd, rs_err_t *err)
{
	(void)arg;
	(void)fd;
	return rs_err_set(err, ENOSPC, "disk full at /x");
}

static int _hang(void *arg, int fd, rs_err_t *err)
{
	(void)arg;
	(void)fd;
	(void)err;
	pause();
	return 0;
}

START_TEST(test_privsep_runs_bounded)
{
	char out[64];
	size_t n = 0;
	rs_err_t e;

	ck_assert_int_eq(rs_privsep_run(RS_PRIVSEP_ROOT, 0, 5000, _write_hello, NULL,
					 out, sizeof(out), &n, &e), 0);
	ck_assert_uint_eq(n, strlen(out));
	ck_assert_int_eq(strncmp(out, "uid=", 4), 0);
	ck_assert_int_eq(rs_privsep_run(RS_PRIVSEP_ROOT, 0, 5000, _fail, NULL,
					 out, sizeof(out), &n, &e), -ENOSPC);
	ck_assert_str_eq(e.msg, "disk full at /x");
	ck_assert_int_eq(rs_privsep_run(RS_PRIVSEP_ROOT, 0, 200, _hang, NULL,
					 out, sizeof(out), &n, &e), -ETIMEDOUT);
	if (geteuid() == 0) {
		ck_assert_int_eq(rs_privsep_run(65534, 65534, 5000, _write_hello,
						 NULL, out, sizeof(out), &n, &e), 0);
		ck_assert_str_eq(out, "uid=65534");
	}
}
END_TEST

/* The job's own supplementary groups, as given (no NSS), then back to
 * initgroups when forgotten. */
START_TEST(test_privsep_job_groups)
{
	const gid_t gs[] = { 4242, 4343 };
	char out[256];
	size_t n = 0;
	rs_err_t e;

	if (geteuid() != 0)
		return; /* switching ids needs root */
	ck_assert_int_eq(rs_privsep_set_groups(gs, 2), 0);
	ck_assert_int_eq(rs_privsep_run(65534, 65534, 5000, _write_ids, NULL,
					 out, sizeof(out), &n, &e), 0);
	ck_assert_str_eq(out, "65534 65534 2 4242 4343");
	ck_assert_int_eq(rs_privsep_set_groups(NULL, 0), 0);
	ck_assert_int_eq(rs_privsep_run(65534, 65534, 5000, _write_ids, NULL,
					 out, sizeof(out), &n, &e), 0);
	ck_assert_str_eq(out, "65534 65534 0");
	ck_assert_int_eq(rs_privsep_set_groups(NULL, -1), 0);
	ck_assert_int_eq(rs_privsep_run(65534, 65534, 5000, _write_ids, NULL,
					 out, sizeof(out), &n, &e), 0);
	/* initgroups("nobody", 65534): at least the primary group. */
	ck_assert_msg(strstr(out, "65534 65534 ") == out && strcmp(out, "65534 65534 0"),
		      "initgroups gave: %s", out);
}
END_TEST

static Suite *requeue_suite(void)
{
	Suite *su = suite_create("requeue");
	TCase *tc;

	tc = tcase_create("classifies_attempts");
	tcase_add_test(tc, test_requeue_classify);
	tcase_add_test(tc, test_requeue_names_round_trip);
	suite_add_tcase(su, tc);
	tc = tcase_create("decides");
	tcase_add_test(tc, test_requeue_retry_then_exhausted_hold);
	tcase_add_test(tc, test_requeue_exhausted_fail);
	tcase_add_test(tc, test_requeue_no_retries_is_not_exhausted);
	tcase_add_test(tc, test_requeue_cause_filter);
	tcase_add_test(tc, test_requeue_continuation_uses_no_retry);
	tcase_add_test(tc, test_requeue_never);
	tcase_add_test(tc, test_requeue_site_caps);
	tcase_add_test(tc, test_requeue_summary);
	tcase_add_test(tc, test_requeue_summary_says_what_happened);
	suite_add_tcase(su, tc);
	tc = tcase_create("ledger");
	tcase_add_test(tc, test_ledger_begin_end_summarize);
	tcase_add_test(tc, test_ledger_node_fail_closes_unended);
	tcase_add_test(tc, test_ledger_counts_warning_checkpoints);
	tcase_add_test(tc, test_ledger_table);
	suite_add_tcase(su, tc);
	tc = tcase_create("launch_and_privsep");
	tcase_add_test(tc, test_launch_argv);
	tcase_add_test(tc, test_privsep_runs_bounded);
	tcase_add_test(tc, test_privsep_job_groups);
	tcase_set_timeout(tc, 20);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(requeue_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
