/* test_ledger.c - the attempt history read back from a manifest the job's
 * user can edit: numbers that are not numbers, strings that are terminal
 * escapes, a stale history under the same job id. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger.h"
#include "text.h"

static rs_spec_t spec;

static json_object *_parse(const char *text)
{
	json_object *root = json_tokener_parse(text);

	ck_assert_ptr_nonnull(root);
	return root;
}

/* Only printable ASCII and newlines; returns the number of newlines. */
static int _clean_lines(const char *t)
{
	int lines = 0;

	for (const unsigned char *p = (const unsigned char *)t; *p; p++) {
		if (*p == '\n') {
			lines++;
			continue;
		}
		ck_assert_msg(*p >= 0x20 && *p <= 0x7e, "byte 0x%02x in table", *p);
	}
	return lines;
}

START_TEST(test_ledger_summary_ignores_numbers_out_of_range)
{
	json_object *root = _parse(
		"{\"generations\":["
		"{\"gen\":NaN,\"job_id\":\"9\",\"attempt\":2},"
		"{\"gen\":1e300,\"job_id\":\"9\",\"attempt\":2},"
		"{\"gen\":-1e300,\"job_id\":\"9\",\"attempt\":2},"
		"{\"gen\":Infinity,\"job_id\":\"9\",\"attempt\":2},"
		"{\"gen\":9223372036854775807,\"job_id\":\"9\",\"attempt\":2},"
		"{\"gen\":18446744073709551615,\"job_id\":\"9\",\"attempt\":2},"
		"{\"gen\":\"12\",\"job_id\":\"9\",\"attempt\":2},"
		"{\"gen\":3,\"job_id\":\"9\",\"attempt\":2,\"bytes\":-5,"
		"\"seconds\":NaN,\"reason\":\"\\u001b[2Jsig\\nnal\"},"
		"{\"gen\":2,\"job_id\":\"9\",\"attempt\":1e300,\"reason\":\"signal\"},"
		"{\"gen\":2,\"job_id\":\"9\",\"attempt\":4294967298,\"reason\":\"signal\"}"
		"]}");
	rs_ledger_sum_t sum;

	rs_ledger_summarize(root, "9", 2, &sum);
	ck_assert_uint_eq(sum.all_checkpoints, 8);
	ck_assert_uint_eq(sum.checkpoints, 0);
	ck_assert_int_eq(sum.last_gen, 3);
	ck_assert_uint_eq(sum.last_bytes, 0);
	ck_assert(sum.last_seconds == 0);
	/* escaped, cut between escapes to fit 16 bytes */
	ck_assert_str_eq(sum.last_reason, "\\x1b[2Jsig...");
	json_object_put(root);

	/* seconds: +-inf, 1e300, negative, a string: 0; a number: kept */
	root = _parse("{\"generations\":["
		      "{\"gen\":1,\"job_id\":\"9\",\"attempt\":2,\"seconds\":1e300}]}");
	rs_ledger_summarize(root, "9", 2, &sum);
	ck_assert_int_eq(sum.last_gen, 1);
	ck_assert(sum.last_seconds == 0);
	json_object_put(root);
	root = _parse("{\"generations\":["
		      "{\"gen\":1,\"job_id\":\"9\",\"attempt\":2,\"seconds\":-Infinity},"
		      "{\"gen\":2,\"job_id\":\"9\",\"attempt\":2,\"seconds\":\"1.5\"},"
		      "{\"gen\":3,\"job_id\":\"9\",\"attempt\":2,\"seconds\":-1}]}");
	rs_ledger_summarize(root, "9", 2, &sum);
	ck_assert_int_eq(sum.last_gen, 3);
	ck_assert(sum.last_seconds == 0);
	json_object_put(root);
	root = _parse("{\"generations\":["
		      "{\"gen\":4.0,\"job_id\":\"9\",\"attempt\":2.0,\"seconds\":2.5,"
		      "\"bytes\":1e6,\"reason\":\"lead\"}]}");
	rs_ledger_summarize(root, "9", 2, &sum);
	ck_assert_int_eq(sum.last_gen, 4);
	ck_assert(sum.last_seconds == 2.5);
	ck_assert_uint_eq(sum.last_bytes, 1000000);
	ck_assert_str_eq(sum.last_reason, "lead");
	ck_assert_uint_eq(sum.checkpoints, 1);
	json_object_put(root);
}
END_TEST

START_TEST(test_ledger_summary_counts_only_sane_retries)
{
	json_object *root = _parse(
		"{\"attempts\":["
		"{\"job_id\":\"5\",\"attempt\":1,\"retry\":true},"
		"{\"job_id\":\"5\",\"attempt\":2,\"retry\":NaN},"
		"{\"job_id\":\"5\",\"attempt\":3,\"retry\":1e300},"
		"{\"job_id\":\"5\",\"attempt\":4,\"retry\":\"yes\",\"action\":\"continued\"},"
		"{\"job_id\":5,\"attempt\":5,\"retry\":true}"
		"]}");
	rs_ledger_sum_t sum;

	rs_ledger_summarize(root, "5", 5, &sum);
	ck_assert_uint_eq(sum.attempts, 4);
	ck_assert_uint_eq(sum.retries_used, 1);
	ck_assert_uint_eq(sum.continuations, 1);
	ck_assert_int_eq(sum.last_gen, -1);
	ck_assert_str_eq(sum.last_reason, "");
	json_object_put(root);
}
END_TEST

START_TEST(test_ledger_table_survives_hostile_numbers)
{
	json_object *root = _parse(
		"{\"attempts\":["
		"{\"job_id\":\"1\",\"attempt\":NaN,\"start\":1e300,\"end\":-1e300,"
		"\"exit_code\":Infinity,\"signal\":NaN,\"checkpoints\":-1e300,"
		"\"retries_left\":1e300},"
		"{\"job_id\":\"2\",\"attempt\":2,\"start\":9223372036854775807,"
		"\"end\":-9223372036854775808,\"exit_code\":-9223372036854775808,"
		"\"checkpoints\":18446744073709551615},"
		"{\"job_id\":\"3\",\"attempt\":3,\"start\":-4503599627370496,"
		"\"end\":4503599627370496,\"signal\":9},"
		"{\"job_id\":\"4\",\"attempt\":4,\"start\":9007199254740992,"
		"\"end\":-9007199254740992}"
		"]}");
	char *t = rs_ledger_table(root), *l, row[256];

	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(_clean_lines(t), 5);
	l = strchr(t, '\n') + 1;
	snprintf(row, sizeof(row), "%.*s", (int)(strchr(l, '\n') - l), l);
	/* every number of the first record is absent: 0 or "-" */
	ck_assert_str_eq(row,
		"1                0 -                          - running    -     "
		"        0 -                0  ");
	/* a difference of two in-range extremes is computed, not overflowed */
	ck_assert_ptr_nonnull(strstr(t, "9007199254740992"));
	ck_assert_ptr_nonnull(strstr(t, "signal=9"));
	ck_assert_ptr_null(strstr(t, "exit=-9223372036854775808"));
	free(t);
	json_object_put(root);
}
END_TEST

START_TEST(test_ledger_table_escapes_strings)
{
	json_object *root = _parse(
		"{\"attempts\":[{\"job_id\":\"4\\u001b[2J2\",\"attempt\":1,"
		"\"outcome\":\"fail\\u0007ed\",\"action\":\"\\u009bheld\","
		"\"why\":\"x\\n[2026-01-01T00:00:00] resilience: job 99: "
		"checkpoint gen-000001 saved\\r\\\\\"}]}");
	char *t = rs_ledger_table(root);

	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(_clean_lines(t), 2);
	ck_assert_ptr_nonnull(strstr(t, "4\\x1b[2J2"));
	ck_assert_ptr_nonnull(strstr(t, "fail\\x07ed"));
	/* U+009B (a C1 CSI) arrives as UTF-8 c2 9b */
	ck_assert_ptr_nonnull(strstr(t, "\\xc2\\x9bheld"));
	ck_assert_ptr_nonnull(strstr(t, "  x\\x0a[2026-01-01T00:00:00] resilience: "
				     "job 99: checkpoint gen-000001 saved\\x0d\\\\\n"));
	free(t);
	json_object_put(root);
}
END_TEST

/* A folder reused by a new job whose id an old one had (ids restart):
 * the old job's 3 retries are not the new job's. */
START_TEST(test_ledger_begin_attempt_one_drops_a_stale_history)
{
	json_object *root = _parse(
		"{\"attempts\":["
		"{\"job_id\":\"42\",\"attempt\":1,\"start\":10,\"end\":20,\"retry\":true},"
		"{\"job_id\":\"43\",\"attempt\":1,\"start\":10,\"end\":20,\"retry\":true},"
		"{\"job_id\":\"42\",\"attempt\":2,\"start\":30,\"end\":40,\"retry\":true},"
		"{\"job_id\":\"42\",\"attempt\":3,\"start\":50,\"end\":60,\"retry\":true},"
		"{\"job_id\":\"42\",\"attempt\":4,\"start\":70}"
		"]}");
	json_object *arr, *rec;
	rs_ledger_sum_t sum;
	unsigned nf = 7;
	rs_err_t e;

	ck_assert_int_eq(rs_spec_parse("retries=3,requeue_on=node_fail", &spec, NULL), 0);
	rs_ledger_summarize(root, "42", 1, &sum);
	ck_assert_uint_eq(sum.retries_used, 3);
	ck_assert_int_eq(rs_ledger_begin(root, "42", 1, "n1", 1000, &spec, -1, &nf, &e), 0);
	/* the unended stale attempt 4 is dropped, not closed as node_fail */
	ck_assert_uint_eq(nf, 0);
	rs_ledger_summarize(root, "42", 1, &sum);
	ck_assert_uint_eq(sum.attempts, 1);
	ck_assert_uint_eq(sum.retries_used, 0);
	arr = rs_ledger_attempts(root);
	ck_assert_uint_eq(json_object_array_length(arr), 2);
	rec = json_object_array_get_idx(arr, 0);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(rec, "job_id")), "43");
	rec = json_object_array_get_idx(arr, 1);
	ck_assert_int_eq(json_object_get_int64(json_object_object_get(rec, "start")), 1000);
	/* idempotent: the same attempt again keeps its own record */
	ck_assert_int_eq(rs_ledger_begin(root, "42", 1, "n1", 1000, &spec, -1, &nf, &e), 0);
	ck_assert_uint_eq(json_object_array_length(arr), 2);
	/* attempt 2 keeps attempt 1 (closes it as node_fail: no end) */
	ck_assert_int_eq(rs_ledger_begin(root, "42", 2, "n1", 2000, &spec, -1, &nf, &e), 0);
	ck_assert_uint_eq(nf, 1);
	rs_ledger_summarize(root, "42", 2, &sum);
	ck_assert_uint_eq(sum.attempts, 2);
	ck_assert_uint_eq(sum.retries_used, 1);
	json_object_put(root);
}
END_TEST

/* A stale unended attempt 1 with another start is someone else's. */
START_TEST(test_ledger_begin_attempt_one_drops_an_unended_stale_start)
{
	json_object *root = _parse(
		"{\"attempts\":[{\"job_id\":\"42\",\"attempt\":1,\"start\":10}]}");
	json_object *arr;
	unsigned nf = 7;

	ck_assert_int_eq(rs_spec_parse("retries=1", &spec, NULL), 0);
	ck_assert_int_eq(rs_ledger_begin(root, "42", 1, "n2", 500, &spec, -1, &nf, NULL), 0);
	ck_assert_uint_eq(nf, 0);
	arr = rs_ledger_attempts(root);
	ck_assert_uint_eq(json_object_array_length(arr), 1);
	ck_assert_int_eq(json_object_get_int64(json_object_object_get(
		json_object_array_get_idx(arr, 0), "start")), 500);
	ck_assert_str_eq(json_object_get_string(json_object_object_get(
		json_object_array_get_idx(arr, 0), "nodes")), "n2");
	json_object_put(root);
}
END_TEST

/* More retries used than the (lowered) budget: 0 left, not 2^32 - 2. */
START_TEST(test_ledger_begin_retries_left_never_wraps)
{
	json_object *root = _parse(
		"{\"attempts\":["
		"{\"job_id\":\"8\",\"attempt\":1,\"end\":1,\"retry\":true},"
		"{\"job_id\":\"8\",\"attempt\":2,\"end\":1,\"retry\":true},"
		"{\"job_id\":\"8\",\"attempt\":3,\"end\":1,\"retry\":true},"
		"{\"job_id\":\"8\",\"attempt\":4,\"start\":1}]}");
	json_object *rec;

	ck_assert_int_eq(rs_spec_parse("retries=5,requeue_on=node_fail", &spec, NULL), 0);
	ck_assert_int_eq(rs_ledger_begin(root, "8", 5, "n", 9, &spec, 1, NULL, NULL), 0);
	rec = json_object_array_get_idx(rs_ledger_attempts(root), 3);
	ck_assert_int_eq(json_object_get_int64(json_object_object_get(rec, "retries_left")), 0);
	ck_assert_int_eq(json_object_get_boolean(json_object_object_get(rec, "retry")), 0);
	json_object_put(root);
}
END_TEST

START_TEST(test_ledger_root_not_an_object)
{
	json_object *root = _parse("[1,2]");
	rs_decision_t d;
	rs_ledger_end_t fin;
	rs_ledger_sum_t sum;
	rs_err_t e;
	char *t;

	memset(&d, 0, sizeof(d));
	fin = (rs_ledger_end_t){ 1, RS_OUTCOME_FAILED, 1, 0, &d, 0, NULL };
	ck_assert_int_eq(rs_spec_parse("retries=1", &spec, NULL), 0);
	ck_assert_ptr_null(rs_ledger_attempts(root));
	ck_assert_int_eq(rs_ledger_begin(root, "1", 1, "n", 1, &spec, -1, NULL, &e), -EINVAL);
	ck_assert_str_eq(e.msg, "ledger: the manifest is not a JSON object");
	ck_assert_int_eq(rs_ledger_end(root, "1", 1, &fin, &e), -EINVAL);
	rs_ledger_summarize(root, "1", 1, &sum);
	ck_assert_uint_eq(sum.attempts, 0);
	ck_assert_int_eq(sum.last_gen, -1);
	t = rs_ledger_table(root);
	ck_assert_int_eq(_clean_lines(t), 1);
	free(t);
	ck_assert_str_eq(json_object_to_json_string(root), "[ 1, 2 ]");
	json_object_put(root);
	/* "attempts" of the wrong type is replaced by an empty array */
	root = _parse("{\"attempts\":{\"job_id\":\"1\"}}");
	ck_assert_int_eq(rs_ledger_begin(root, "1", 1, "n", 1, &spec, -1, NULL, &e), 0);
	ck_assert_uint_eq(json_object_array_length(rs_ledger_attempts(root)), 1);
	ck_assert_int_eq(rs_ledger_end(root, NULL, 1, &fin, &e), -EINVAL);
	json_object_put(root);
}
END_TEST

START_TEST(test_ledger_counts_checkpoints_keep_pruned)
{
	/* keep=2: the attempt began at next_gen 4 and saved gens 4..8; only
	 * 7 and 8 are left.  It took 5, not 2. */
	json_object *root = _parse("{\"next_gen\":4,\"generations\":[]}");
	json_object *gens;
	rs_ledger_sum_t sum;
	rs_err_t err;

	ck_assert_int_eq(rs_ledger_begin(root, "7", 2, "n1", 100, &spec, -1,
					 NULL, &err), 0);
	gens = json_object_object_get(root, "generations");
	json_object_array_add(gens, _parse("{\"gen\":7,\"job_id\":\"7\",\"attempt\":2,\"reason\":\"periodic\"}"));
	json_object_array_add(gens, _parse("{\"gen\":8,\"job_id\":\"7\",\"attempt\":2,\"reason\":\"signal\"}"));
	rs_ledger_summarize(root, "7", 2, &sum);
	ck_assert_uint_eq(sum.all_checkpoints, 5);
	ck_assert_int_eq(sum.last_gen, 8);
	/* A record of an earlier attempt is still there: nothing of this
	 * attempt was pruned, the records count. */
	json_object_array_add(gens, _parse("{\"gen\":3,\"job_id\":\"7\",\"attempt\":1}"));
	rs_ledger_summarize(root, "7", 2, &sum);
	ck_assert_uint_eq(sum.all_checkpoints, 2);
	/* A gen_base the user forged beyond last_gen changes nothing. */
	json_object_array_del_idx(gens, 2, 1);
	json_object_object_add(json_object_array_get_idx(
		json_object_object_get(root, "attempts"), 0), "gen_base",
		json_object_new_int64(1000));
	rs_ledger_summarize(root, "7", 2, &sum);
	ck_assert_uint_eq(sum.all_checkpoints, 2);
	json_object_put(root);
}
END_TEST

START_TEST(test_ledger_pending_shown_until_a_later_attempt)
{
	json_object *root = _parse("{}");
	rs_decision_t d;
	rs_ledger_end_t fin;
	rs_err_t e;
	char *t;

	memset(&d, 0, sizeof(d));
	d.action = RS_ACTION_REQUEUED;
	strcpy(d.why, "retry 1 of 2");
	fin = (rs_ledger_end_t){ 100, RS_OUTCOME_FAILED, 1, 0, &d, 0,
				 "requeue pending (controller unreachable)" };
	ck_assert_int_eq(rs_spec_parse("retries=2", &spec, NULL), 0);
	ck_assert_int_eq(rs_ledger_begin(root, "7", 1, "n1", 50, &spec, -1, NULL, &e), 0);
	ck_assert_int_eq(rs_ledger_end(root, "7", 1, &fin, &e), 0);
	t = rs_ledger_table(root);
	ck_assert_ptr_nonnull(strstr(t, "\n                    requeue pending "
					"(controller unreachable)\n"));
	free(t);
	/* The next attempt ran: the requeue held, nothing is pending. */
	ck_assert_int_eq(rs_ledger_begin(root, "7", 2, "n1", 200, &spec, -1, NULL, &e), 0);
	t = rs_ledger_table(root);
	ck_assert_ptr_null(strstr(t, "pending"));
	free(t);
	/* Without a pending phrase there is no such field. */
	fin.pending = "";
	fin.end = 300;
	ck_assert_int_eq(rs_ledger_end(root, "7", 2, &fin, &e), 0);
	ck_assert_ptr_null(strstr(json_object_to_json_string(root), "\"pending\":\"\""));
	json_object_put(root);
}
END_TEST

static Suite *ledger_suite(void)
{
	Suite *s = suite_create("ledger");
	TCase *tc;

	tc = tcase_create("numbers");
	tcase_add_test(tc, test_ledger_counts_checkpoints_keep_pruned);
	tcase_add_test(tc, test_ledger_summary_ignores_numbers_out_of_range);
	tcase_add_test(tc, test_ledger_summary_counts_only_sane_retries);
	tcase_add_test(tc, test_ledger_table_survives_hostile_numbers);
	tcase_add_test(tc, test_ledger_pending_shown_until_a_later_attempt);
	suite_add_tcase(s, tc);
	tc = tcase_create("strings");
	tcase_add_test(tc, test_ledger_table_escapes_strings);
	suite_add_tcase(s, tc);
	tc = tcase_create("history");
	tcase_add_test(tc, test_ledger_begin_attempt_one_drops_a_stale_history);
	tcase_add_test(tc, test_ledger_begin_attempt_one_drops_an_unended_stale_start);
	tcase_add_test(tc, test_ledger_begin_retries_left_never_wraps);
	tcase_add_test(tc, test_ledger_root_not_an_object);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ledger_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
