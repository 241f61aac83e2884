/* test_event.c - the metrics event: validation, id, every serialiser,
 * parsing back, RAPL energy. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "event.h"

/* A complete event with known values. */
static void sample(rs_event_t *ev)
{
	rs_event_init(ev);
	ev->cluster = strdup("alpha");
	ev->job_id = 42;
	ev->user = strdup("alice");
	ev->uid = 1001;
	ev->account = strdup("physics");
	ev->partition = strdup("batch");
	ev->qos = strdup("normal");
	ev->job_name = strdup("sim");
	ev->nodes = strdup("n[1-2]");
	ev->num_nodes = 2;
	ev->num_tasks = 4;
	ev->num_cpus = 8;
	ev->attempt = 2;
	ev->restart_count = 1;
	ev->outcome = RS_OUTCOME_FAILED;
	ev->exit_code = 3;
	ev->signal = 0;
	ev->action = RS_ACTION_REQUEUED;
	ev->start_time = 1700000000;
	ev->end_time = 1700000125;
	ev->duration_seconds = 125.5;
	ev->checkpoints = 3;
	ev->last_ckpt_generation = 7;
	ev->last_ckpt_bytes = 1048576;
	ev->last_ckpt_seconds = 0.25;
	ev->last_ckpt_reason = strdup("lead");
	ev->restored_from_generation = 4;
	ev->has_energy = 1;
	ev->energy_joules = 1234.5;
	ev->ckpt_dir = strdup("/scratch/alice/ckpt/42");
}

static json_object *parse(const char *s)
{
	json_object *o = json_tokener_parse(s);
	ck_assert_ptr_nonnull(o);
	return o;
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v = NULL;
	ck_assert_msg(json_object_object_get_ex(o, k, &v), "missing %s", k);
	return json_object_get_string(v);
}

static int jnull(json_object *o, const char *k)
{
	json_object *v = NULL;
	ck_assert_msg(json_object_object_get_ex(o, k, &v), "missing %s", k);
	return v == NULL;
}

/* ------------------------------------------------------------ names --- */

START_TEST(test_event_outcome_names_round_trip)
{
	rs_event_outcome_t o;
	rs_event_action_t a;
	rs_err_t err;

	ck_assert_str_eq(rs_event_outcome_name(RS_OUTCOME_NODE_FAIL), "node_fail");
	ck_assert_str_eq(rs_event_outcome_name(RS_OUTCOME_COMPLETED), "completed");
	ck_assert_ptr_null(rs_event_outcome_name(RS_OUTCOME_COUNT_));
	ck_assert_ptr_null(rs_event_outcome_name((rs_event_outcome_t)-1));
	ck_assert_str_eq(rs_event_action_name(RS_ACTION_HELD), "held");
	ck_assert_str_eq(rs_event_action_name(RS_ACTION_ENDED), "ended");
	ck_assert_str_eq(rs_event_outcome_name(RS_OUTCOME_REQUEUED), "requeued");
	ck_assert_ptr_null(rs_event_action_name(RS_ACTION_COUNT_));
	for (int i = 0; i < RS_OUTCOME_COUNT_; i++) {
		ck_assert_int_eq(rs_event_outcome_parse(rs_event_outcome_name(i), &o, &err), 0);
		ck_assert_int_eq(o, i);
	}
	for (int i = 0; i < RS_ACTION_COUNT_; i++) {
		ck_assert_int_eq(rs_event_action_parse(rs_event_action_name(i), &a, &err), 0);
		ck_assert_int_eq(a, i);
	}
}
END_TEST

START_TEST(test_event_outcome_parse_rejects_unknown)
{
	rs_event_outcome_t o = RS_OUTCOME_TIMEOUT;
	rs_event_action_t a = RS_ACTION_HELD;
	rs_err_t err;

	ck_assert_int_eq(rs_event_outcome_parse("FAILED", &o, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "outcome 'FAILED': expected completed, failed, signaled, "
			 "timeout, cancelled, preempted, node_fail or requeued");
	ck_assert_int_eq(o, RS_OUTCOME_TIMEOUT);
	ck_assert_int_eq(rs_event_outcome_parse(NULL, &o, &err), -EINVAL);
	ck_assert_int_eq(rs_event_action_parse("", &a, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "action '': expected completed, requeued, continued, held, failed or ended");
	ck_assert_int_eq(a, RS_ACTION_HELD);
}
END_TEST

/* -------------------------------------------------------- validation --- */

START_TEST(test_event_validate_accepts_sample)
{
	rs_event_t ev;
	rs_err_t err;

	sample(&ev);
	ck_assert_int_eq(rs_event_validate(&ev, &err), 0);
	rs_event_free(&ev);
	/* free re-initialises: safe twice, and NULL is fine */
	ck_assert_ptr_null(ev.cluster);
	ck_assert_int_eq(ev.last_ckpt_generation, -1);
	rs_event_free(&ev);
	rs_event_free(NULL);
}
END_TEST

START_TEST(test_event_validate_rejects_each_bad_field)
{
	rs_event_t ev;
	rs_err_t err;

	ck_assert_int_eq(rs_event_validate(NULL, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "event: none given");

	sample(&ev);
	free(ev.cluster);
	ev.cluster = strdup("");
	ck_assert_int_eq(rs_event_validate(&ev, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "event: cluster is empty");
	free(ev.cluster);
	ev.cluster = NULL;
	ck_assert_int_eq(rs_event_validate(&ev, &err), -EINVAL);
	ev.cluster = malloc(66);
	memset(ev.cluster, 'c', 65);
	ev.cluster[65] = '\0';
	ck_assert_int_eq(rs_event_validate(&ev, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "event: cluster name longer than 64 bytes");
	ev.cluster[64] = '\0';
	ck_assert_int_eq(rs_event_validate(&ev, &err), 0);
	strcpy(ev.cluster, "al\xffpha");
	ck_assert_int_eq(rs_event_validate(&ev, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "event: cluster name is not valid UTF-8 or has a control character");
	strcpy(ev.cluster, "al\tpha");
	ck_assert_int_eq(rs_event_validate(&ev, &err), -EINVAL);
	strcpy(ev.cluster, "\xc3\xa9t\xc3\xa9");
	ck_assert_int_eq(rs_event_validate(&ev, &err), 0);
	rs_event_free(&ev);

	sample(&ev);
	ev.job_id = 0;
	ck_assert_int_eq(rs_event_validate(&ev, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "event: job_id is 0");
	rs_event_free(&ev);

	sample(&ev);
	ev.attempt = 0;
	ck_assert_int_eq(rs_event_validate(&ev, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "event alpha job 42: attempt is 0 (attempts count from 1)");
	rs_event_free(&ev);

	sample(&ev);
	ev.outcome = RS_OUTCOME_COUNT_;
	ck_assert_int_eq(rs_event_validate(&ev, &err), -EINVAL);
	{
		char want[64];
		snprintf(want, sizeof(want), "event: outcome %d out of range", (int)RS_OUTCOME_COUNT_);
		ck_assert_str_eq(err.msg, want);
	}
	rs_event_free(&ev);

	sample(&ev);
	ev.action = (rs_event_action_t)99;
	ck_assert_int_eq(rs_event_validate(&ev, &err), -EINVAL);
	rs_event_free(&ev);

	sample(&ev);
	ev.end_time = ev.start_time - 1;
	ck_assert_int_eq(rs_event_validate(&ev, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "event alpha job 42: end_time 1699999999 before start_time 1700000000");
	rs_event_free(&ev);

	sample(&ev);
	ev.duration_seconds = -0.5;
	ck_assert_int_eq(rs_event_validate(&ev, &err), -EINVAL);
	ev.duration_seconds = 1.0 / 0.0;
	ck_assert_int_eq(rs_event_validate(&ev, &err), -EINVAL);
	rs_event_free(&ev);

	sample(&ev);
	ev.energy_joules = 0.0 / 0.0;
	ck_assert_int_eq(rs_event_validate(&ev, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "event: energy_joules must be finite and >= 0");
	ev.has_energy = 0; /* unknown energy: the value is not looked at */
	ck_assert_int_eq(rs_event_validate(&ev, &err), 0);
	rs_event_free(&ev);

	sample(&ev);
	ev.last_ckpt_generation = -2;
	ck_assert_int_eq(rs_event_validate(&ev, &err), -EINVAL);
	rs_event_free(&ev);

	sample(&ev);
	ev.schema_version = 2;
	ck_assert_int_eq(rs_event_validate(&ev, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "event: schema_version 2, this build writes 1");
	rs_event_free(&ev);
}
END_TEST

/* ---------------------------------------------------------------- id --- */

START_TEST(test_event_id_is_cluster_job_attempt)
{
	rs_event_t ev;
	char buf[64];

	sample(&ev);
	ck_assert_int_eq(rs_event_id(&ev, buf, sizeof(buf)), 10);
	ck_assert_str_eq(buf, "alpha:42:2");
	/* same attempt, different end: same id (a re-send collapses) */
	ev.end_time += 100;
	rs_event_id(&ev, buf, sizeof(buf));
	ck_assert_str_eq(buf, "alpha:42:2");
	ev.attempt = 3;
	rs_event_id(&ev, buf, sizeof(buf));
	ck_assert_str_eq(buf, "alpha:42:3");
	ev.job_id = UINT32_MAX;
	ev.attempt = UINT32_MAX;
	ck_assert_int_eq(rs_event_id(&ev, buf, sizeof(buf)), 27);
	ck_assert_str_eq(buf, "alpha:4294967295:4294967295");
	/* truncation is reported like snprintf */
	ck_assert_int_eq(rs_event_id(&ev, buf, 6), 27);
	ck_assert_str_eq(buf, "alpha");
	ev.attempt = 0;
	ck_assert_int_eq(rs_event_id(&ev, buf, sizeof(buf)), -EINVAL);
	ck_assert_int_eq(rs_event_id(NULL, buf, sizeof(buf)), -EINVAL);
	rs_event_free(&ev);
}
END_TEST

/* -------------------------------------------------------------- JSON --- */

START_TEST(test_event_json_has_every_field_exactly)
{
	rs_event_t ev;
	rs_err_t err;
	char *s = NULL;

	sample(&ev);
	ck_assert_int_eq(rs_event_to_json(&ev, &s, &err), 0);
	ck_assert_str_eq(s,
		"{\"schema_version\":1,\"event_id\":\"alpha:42:2\",\"cluster\":\"alpha\","
		"\"job_id\":42,\"array_job_id\":null,\"array_task_id\":null,\"user\":\"alice\","
		"\"uid\":1001,\"account\":\"physics\",\"partition\":\"batch\",\"qos\":\"normal\","
		"\"job_name\":\"sim\",\"nodes\":\"n[1-2]\",\"num_nodes\":2,\"num_tasks\":4,"
		"\"num_cpus\":8,\"attempt\":2,\"restart_count\":1,\"outcome\":\"failed\","
		"\"exit_code\":3,\"signal\":0,\"action\":\"requeued\",\"start_time\":1700000000,"
		"\"end_time\":1700000125,\"duration_seconds\":125.5,\"checkpoints\":3,"
		"\"last_ckpt_generation\":7,\"last_ckpt_bytes\":1048576,\"last_ckpt_seconds\":0.25,"
		"\"last_ckpt_reason\":\"lead\","
		"\"restored_from_generation\":4,\"energy_joules\":1234.5,"
		"\"ckpt_dir\":\"/scratch/alice/ckpt/42\"}");
	free(s);
	rs_event_free(&ev);
}
END_TEST

START_TEST(test_event_json_nulls_for_unknowns)
{
	rs_event_t ev;
	rs_err_t err;
	char *s = NULL;
	json_object *o;

	rs_event_init(&ev);
	ev.cluster = strdup("c");
	ev.job_id = 1;
	ev.attempt = 1;
	ck_assert_int_eq(rs_event_to_json(&ev, &s, &err), 0);
	o = parse(s);
	ck_assert(jnull(o, "array_job_id"));
	ck_assert(jnull(o, "array_task_id"));
	ck_assert(jnull(o, "last_ckpt_generation"));
	ck_assert(jnull(o, "last_ckpt_bytes"));
	ck_assert(jnull(o, "last_ckpt_seconds"));
	ck_assert(jnull(o, "last_ckpt_reason"));
	ck_assert(jnull(o, "restored_from_generation"));
	ck_assert(jnull(o, "energy_joules"));
	/* NULL strings are sent as "" so receivers need no Nullable(String) */
	ck_assert_str_eq(jstr(o, "user"), "");
	ck_assert_str_eq(jstr(o, "ckpt_dir"), "");
	ck_assert_str_eq(jstr(o, "outcome"), "completed");
	ck_assert_str_eq(jstr(o, "action"), "completed");
	json_object_put(o);
	free(s);
	rs_event_free(&ev);
}
END_TEST

START_TEST(test_event_json_array_task_zero_is_kept)
{
	rs_event_t ev;
	rs_err_t err;
	char *s = NULL;

	sample(&ev);
	ev.array_job_id = 40;
	ev.array_task_id = 0;
	ck_assert_int_eq(rs_event_to_json(&ev, &s, &err), 0);
	ck_assert_ptr_nonnull(strstr(s, "\"array_job_id\":40,\"array_task_id\":0,"));
	free(s);
	rs_event_free(&ev);
}
END_TEST

START_TEST(test_event_json_escapes_hostile_strings)
{
	rs_event_t ev;
	rs_err_t err;
	char *s = NULL;
	json_object *o;

	sample(&ev);
	free(ev.job_name);
	/* quote, backslash, newline, tab, a control byte, a slash, valid
	 * UTF-8 (é, 日, 😀), then invalid bytes: lone continuation, truncated
	 * sequence, overlong '/', a surrogate */
	ev.job_name = strdup("a\"b\\c\nd\te\x01/f \xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80"
			     " \x80 \xe6\x97 \xc0\xaf \xed\xa0\x80");
	ck_assert_int_eq(rs_event_to_json(&ev, &s, &err), 0);
	ck_assert_ptr_nonnull(strstr(s, "\"job_name\":\"a\\\"b\\\\c\\nd\\te\\u0001/f "
				     "\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80 \xef\xbf\xbd "
				     "\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd "
				     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""));
	/* one line, and parses back to the cleaned string */
	ck_assert_ptr_null(strchr(s, '\n'));
	o = parse(s);
	ck_assert_str_eq(jstr(o, "job_name"), "a\"b\\c\nd\te\x01/f \xc3\xa9\xe6\x97\xa5"
			 "\xf0\x9f\x98\x80 \xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd "
			 "\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
	json_object_put(o);
	free(s);
	rs_event_free(&ev);
}
END_TEST

START_TEST(test_event_json_max_values)
{
	rs_event_t ev;
	rs_err_t err;
	char *s = NULL;

	sample(&ev);
	ev.job_id = UINT32_MAX;
	ev.uid = UINT32_MAX;
	ev.exit_code = INT32_MIN;
	ev.signal = INT32_MAX;
	ev.last_ckpt_bytes = UINT64_MAX;
	ev.last_ckpt_generation = INT64_MAX;
	ev.end_time = INT64_MAX;
	ev.duration_seconds = 0.1;
	ck_assert_int_eq(rs_event_to_json(&ev, &s, &err), 0);
	ck_assert_ptr_nonnull(strstr(s, "\"job_id\":4294967295,"));
	ck_assert_ptr_nonnull(strstr(s, "\"uid\":4294967295,"));
	ck_assert_ptr_nonnull(strstr(s, "\"exit_code\":-2147483648,\"signal\":2147483647,"));
	ck_assert_ptr_nonnull(strstr(s, "\"last_ckpt_generation\":9223372036854775807,"
				     "\"last_ckpt_bytes\":18446744073709551615,"));
	ck_assert_ptr_nonnull(strstr(s, "\"end_time\":9223372036854775807,"));
	/* 15 significant digits, not json-c's 0.10000000000000001 */
	ck_assert_ptr_nonnull(strstr(s, "\"duration_seconds\":0.1,"));
	free(s);
	rs_event_free(&ev);
}
END_TEST

START_TEST(test_event_serialisers_refuse_invalid_event)
{
	rs_event_t ev;
	rs_err_t err;
	char *s = (char *)"untouched";

	sample(&ev);
	ev.attempt = 0;
	ck_assert_int_eq(rs_event_to_json(&ev, &s, &err), -EINVAL);
	ck_assert_int_eq(rs_event_to_clickhouse(&ev, &s, &err), -EINVAL);
	ck_assert_int_eq(rs_event_to_prometheus(&ev, &s, &err), -EINVAL);
	ck_assert_int_eq(rs_event_pushgateway_path(&ev, &s, &err), -EINVAL);
	ck_assert_int_eq(rs_event_to_alertmanager(&ev, &s, &err), -EINVAL);
	ck_assert_int_eq(rs_event_to_alert_json(&ev, &s, &err), -EINVAL);
	ck_assert_str_eq(s, "untouched");
	ck_assert_int_eq(rs_event_to_json(NULL, &s, &err), -EINVAL);
	rs_event_free(&ev);
}
END_TEST

/* -------------------------------------------------------- ClickHouse --- */

START_TEST(test_event_clickhouse_is_one_line_row)
{
	rs_event_t ev;
	rs_err_t err;
	char *row = NULL, *js = NULL;

	sample(&ev);
	free(ev.job_name);
	ev.job_name = strdup("two\nlines");
	ck_assert_int_eq(rs_event_to_clickhouse(&ev, &row, &err), 0);
	ck_assert_int_eq(rs_event_to_json(&ev, &js, &err), 0);
	/* the row is the JSON object plus exactly one newline */
	ck_assert_uint_eq(strlen(row), strlen(js) + 1);
	ck_assert_int_eq(strncmp(row, js, strlen(js)), 0);
	ck_assert_int_eq(row[strlen(row) - 1], '\n');
	ck_assert_ptr_eq(strchr(row, '\n'), row + strlen(row) - 1);
	free(row);
	free(js);
	rs_event_free(&ev);
}
END_TEST

/* -------------------------------------------------------- Prometheus --- */

START_TEST(test_event_prometheus_exact_text)
{
	rs_event_t ev;
	rs_err_t err;
	char *s = NULL;

	sample(&ev);
	ck_assert_int_eq(rs_event_to_prometheus(&ev, &s, &err), 0);
	ck_assert_str_eq(s,
		"# HELP slurm_resilience_attempt_info Labels of the job's latest attempt; the value is always 1.\n"
		"# TYPE slurm_resilience_attempt_info gauge\n"
		"slurm_resilience_attempt_info{user=\"alice\",account=\"physics\",partition=\"batch\","
		"qos=\"normal\",job_name=\"sim\",attempt=\"2\",outcome=\"failed\",action=\"requeued\"} 1\n"
		"# HELP slurm_resilience_attempts_total Attempts of the job so far, the latest included.\n"
		"# TYPE slurm_resilience_attempts_total counter\n"
		"slurm_resilience_attempts_total 2\n"
		"# HELP slurm_resilience_restarts_total Slurm restart count of the job at the latest attempt.\n"
		"# TYPE slurm_resilience_restarts_total counter\n"
		"slurm_resilience_restarts_total 1\n"
		"# HELP slurm_resilience_attempt_duration_seconds Wall time of the latest attempt.\n"
		"# TYPE slurm_resilience_attempt_duration_seconds gauge\n"
		"slurm_resilience_attempt_duration_seconds 125.5\n"
		"# HELP slurm_resilience_attempt_start_timestamp_seconds Start of the latest attempt, unix time.\n"
		"# TYPE slurm_resilience_attempt_start_timestamp_seconds gauge\n"
		"slurm_resilience_attempt_start_timestamp_seconds 1700000000\n"
		"# HELP slurm_resilience_attempt_end_timestamp_seconds End of the latest attempt, unix time.\n"
		"# TYPE slurm_resilience_attempt_end_timestamp_seconds gauge\n"
		"slurm_resilience_attempt_end_timestamp_seconds 1700000125\n"
		"# HELP slurm_resilience_attempt_exit_code Exit status of the latest attempt (0 if it was signalled).\n"
		"# TYPE slurm_resilience_attempt_exit_code gauge\n"
		"slurm_resilience_attempt_exit_code 3\n"
		"# HELP slurm_resilience_attempt_signal Signal that ended the latest attempt, 0 if none.\n"
		"# TYPE slurm_resilience_attempt_signal gauge\n"
		"slurm_resilience_attempt_signal 0\n"
		"# HELP slurm_resilience_checkpoints_total Checkpoints taken during the latest attempt.\n"
		"# TYPE slurm_resilience_checkpoints_total counter\n"
		"slurm_resilience_checkpoints_total 3\n"
		"# HELP slurm_resilience_job_failed 1 if the plugin gave up on the job (no retry left or not retryable).\n"
		"# TYPE slurm_resilience_job_failed gauge\n"
		"slurm_resilience_job_failed 0\n"
		"# HELP slurm_resilience_last_checkpoint_generation Generation number of the latest checkpoint.\n"
		"# TYPE slurm_resilience_last_checkpoint_generation gauge\n"
		"slurm_resilience_last_checkpoint_generation 7\n"
		"# HELP slurm_resilience_last_checkpoint_bytes Bytes written by the latest checkpoint.\n"
		"# TYPE slurm_resilience_last_checkpoint_bytes gauge\n"
		"slurm_resilience_last_checkpoint_bytes 1048576\n"
		"# HELP slurm_resilience_last_checkpoint_seconds Wall time of the latest checkpoint.\n"
		"# TYPE slurm_resilience_last_checkpoint_seconds gauge\n"
		"slurm_resilience_last_checkpoint_seconds 0.25\n"
		"# HELP slurm_resilience_restored_generation Checkpoint generation the latest attempt started from.\n"
		"# TYPE slurm_resilience_restored_generation gauge\n"
		"slurm_resilience_restored_generation 4\n"
		"# HELP slurm_resilience_attempt_energy_joules RAPL package+DRAM energy of the whole node(s) during the latest attempt.\n"
		"# TYPE slurm_resilience_attempt_energy_joules gauge\n"
		"slurm_resilience_attempt_energy_joules 1234.5\n");
	free(s);
	rs_event_free(&ev);
}
END_TEST

START_TEST(test_event_prometheus_optional_metrics_absent)
{
	rs_event_t ev;
	rs_err_t err;
	char *s = NULL;

	sample(&ev);
	ev.last_ckpt_generation = -1;
	ev.restored_from_generation = -1;
	ev.has_energy = 0;
	ev.action = RS_ACTION_FAILED;
	ck_assert_int_eq(rs_event_to_prometheus(&ev, &s, &err), 0);
	ck_assert_ptr_null(strstr(s, "last_checkpoint"));
	ck_assert_ptr_null(strstr(s, "restored_generation"));
	ck_assert_ptr_null(strstr(s, "energy"));
	ck_assert_ptr_nonnull(strstr(s, "\nslurm_resilience_job_failed 1\n"));
	/* LF only, trailing newline, no timestamps (two fields per sample) */
	ck_assert_ptr_null(strchr(s, '\r'));
	ck_assert_int_eq(s[strlen(s) - 1], '\n');
	for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
		char *val;
		if (line[0] == '#')
			continue;
		val = strrchr(line, ' ');
		ck_assert_ptr_nonnull(val);
		ck_assert_ptr_null(strchr(val + 1, ' '));
		ck_assert_msg(strchr(line, '}') ? strchr(line, '}') + 1 == val : strchr(line, ' ') == val,
			      "sample with more than name and value: %s", line);
	}
	free(s);
	rs_event_free(&ev);
}
END_TEST

START_TEST(test_event_prometheus_escapes_label_values)
{
	rs_event_t ev;
	rs_err_t err;
	char *s = NULL;

	sample(&ev);
	free(ev.job_name);
	ev.job_name = strdup("q\"b\\n\nx\xff\r\t\x7f!");
	free(ev.user);
	ev.user = NULL;
	ck_assert_int_eq(rs_event_to_prometheus(&ev, &s, &err), 0);
	ck_assert_ptr_nonnull(strstr(s, "{user=\"\",account="));
	ck_assert_ptr_nonnull(strstr(s, "job_name=\"q\\\"b\\\\n\\nx\xef\xbf\xbd   !\","));
	ck_assert_ptr_null(strchr(s, '\r'));
	free(s);
	rs_event_free(&ev);
}
END_TEST

START_TEST(test_event_pushgateway_path_plain_and_base64)
{
	rs_event_t ev;
	rs_err_t err;
	char *p = NULL;

	sample(&ev);
	ck_assert_int_eq(rs_event_pushgateway_path(&ev, &p, &err), 0);
	ck_assert_str_eq(p, "/metrics/job/slurm_resilience/cluster/alpha/job_id/42");
	free(p);
	free(ev.cluster);
	ev.cluster = strdup("a/b");      /* "a/b" -> YS9i */
	ck_assert_int_eq(rs_event_pushgateway_path(&ev, &p, &err), 0);
	ck_assert_str_eq(p, "/metrics/job/slurm_resilience/cluster@base64/YS9i/job_id/42");
	free(p);
	free(ev.cluster);
	ev.cluster = strdup("ab?");      /* 2 pad-free bytes + 1: YWI_ */
	ck_assert_int_eq(rs_event_pushgateway_path(&ev, &p, &err), 0);
	ck_assert_str_eq(p, "/metrics/job/slurm_resilience/cluster@base64/YWI_/job_id/42");
	free(p);
	free(ev.cluster);
	ev.cluster = strdup("a b");      /* one padding char: YSBi */
	ck_assert_int_eq(rs_event_pushgateway_path(&ev, &p, &err), 0);
	ck_assert_str_eq(p, "/metrics/job/slurm_resilience/cluster@base64/YSBi/job_id/42");
	free(p);
	free(ev.cluster);
	ev.cluster = strdup("x/");       /* eC8= */
	ck_assert_int_eq(rs_event_pushgateway_path(&ev, &p, &err), 0);
	ck_assert_str_eq(p, "/metrics/job/slurm_resilience/cluster@base64/eC8=/job_id/42");
	free(p);
	free(ev.cluster);
	ev.cluster = strdup("..");       /* a path segment proxies resolve: Li4= */
	ck_assert_int_eq(rs_event_pushgateway_path(&ev, &p, &err), 0);
	ck_assert_str_eq(p, "/metrics/job/slurm_resilience/cluster@base64/Li4=/job_id/42");
	free(p);
	free(ev.cluster);
	ev.cluster = strdup("\xef\xbf\xbf"); /* U+FFFF, url-safe alphabet: 77-_ */
	ck_assert_int_eq(rs_event_pushgateway_path(&ev, &p, &err), 0);
	ck_assert_str_eq(p, "/metrics/job/slurm_resilience/cluster@base64/77-_/job_id/42");
	free(p);
	rs_event_free(&ev);
}
END_TEST

/* ------------------------------------------------------------ alerts --- */

START_TEST(test_event_alertmanager_labels_and_annotations)
{
	rs_event_t ev;
	rs_err_t err;
	char *s = NULL;

	sample(&ev);
	ev.attempt = 3;
	ev.outcome = RS_OUTCOME_TIMEOUT;
	ev.action = RS_ACTION_FAILED;
	ck_assert_int_eq(rs_event_to_alertmanager(&ev, &s, &err), 0);
	ck_assert_str_eq(s,
		"[{\"labels\":{\"alertname\":\"SlurmJobRetriesExhausted\",\"cluster\":\"alpha\","
		"\"job_id\":\"42\",\"user\":\"alice\",\"account\":\"physics\",\"partition\":\"batch\"},"
		"\"annotations\":{\"summary\":\"Slurm job 42 on alpha used up its retries after 3 "
		"attempts; last outcome timeout\",\"last_outcome\":\"timeout\",\"attempts\":\"3\","
		"\"ckpt_dir\":\"/scratch/alice/ckpt/42\",\"event_id\":\"alpha:42:3\"}}]");
	free(s);
	ev.attempt = 1;
	ck_assert_int_eq(rs_event_to_alertmanager(&ev, &s, &err), 0);
	ck_assert_ptr_nonnull(strstr(s, "after 1 attempt; last"));
	free(s);
	rs_event_free(&ev);
}
END_TEST

START_TEST(test_event_alert_json_flat_with_event)
{
	rs_event_t ev;
	rs_err_t err;
	char *s = NULL;
	json_object *o, *inner = NULL;

	sample(&ev);
	ck_assert_int_eq(rs_event_to_alert_json(&ev, &s, &err), 0);
	o = parse(s);
	ck_assert_str_eq(jstr(o, "alert"), "SlurmJobRetriesExhausted");
	ck_assert_str_eq(jstr(o, "cluster"), "alpha");
	ck_assert_str_eq(jstr(o, "job_id"), "42");
	ck_assert_str_eq(jstr(o, "user"), "alice");
	ck_assert_str_eq(jstr(o, "account"), "physics");
	ck_assert_str_eq(jstr(o, "partition"), "batch");
	ck_assert_str_eq(jstr(o, "last_outcome"), "failed");
	ck_assert_str_eq(jstr(o, "attempts"), "2");
	ck_assert_str_eq(jstr(o, "ckpt_dir"), "/scratch/alice/ckpt/42");
	ck_assert_str_eq(jstr(o, "event_id"), "alpha:42:2");
	ck_assert(json_object_object_get_ex(o, "event", &inner));
	ck_assert_str_eq(jstr(inner, "nodes"), "n[1-2]");
	ck_assert_int_eq(json_object_object_length(o), 12);
	json_object_put(o);
	free(s);
	rs_event_free(&ev);
}
END_TEST

/* ----------------------------------------------------------- parsing --- */

START_TEST(test_event_from_json_round_trip)
{
	rs_event_t ev, back;
	rs_err_t err;
	char *s = NULL, *s2 = NULL;

	sample(&ev);
	free(ev.job_name);
	ev.job_name = strdup("x\"y\n\xc3\xa9");
	ev.array_job_id = 40;
	ev.array_task_id = 2;
	ck_assert_int_eq(rs_event_to_json(&ev, &s, &err), 0);
	ck_assert_int_eq(rs_event_from_json(s, &back, &err), 0);
	ck_assert_int_eq(rs_event_to_json(&back, &s2, &err), 0);
	ck_assert_str_eq(s, s2);
	ck_assert_str_eq(back.job_name, "x\"y\n\xc3\xa9");
	ck_assert_int_eq(back.array_task_id, 2);
	ck_assert_int_eq(back.has_energy, 1);
	ck_assert(back.energy_joules == 1234.5);
	ck_assert_int_eq(back.last_ckpt_bytes, 1048576);
	free(s);
	free(s2);
	rs_event_free(&ev);
	rs_event_free(&back);
}
END_TEST

START_TEST(test_event_from_json_minimal_and_nulls)
{
	rs_event_t ev;
	rs_err_t err;

	ck_assert_int_eq(rs_event_from_json(
		"{\"cluster\":\"c\",\"job_id\":7,\"attempt\":1,\"energy_joules\":null,"
		"\"last_ckpt_generation\":null,\"outcome\":\"node_fail\"}  \n", &ev, &err), 0);
	ck_assert_str_eq(ev.cluster, "c");
	ck_assert_int_eq(ev.job_id, 7);
	ck_assert_int_eq(ev.has_energy, 0);
	ck_assert_int_eq(ev.last_ckpt_generation, -1);
	ck_assert_int_eq(ev.outcome, RS_OUTCOME_NODE_FAIL);
	ck_assert_ptr_null(ev.user);
	rs_event_free(&ev);
}
END_TEST

START_TEST(test_event_from_json_rejects_bad_input)
{
	static const struct {
		const char *json, *msg;
	} cases[] = {
		{ "", "event JSON: unexpected end of input" },
		{ "{\"cluster\":", "event JSON: unexpected end of input" },
		{ "{\"cluster\" 1}", "event JSON: object property name separator ':' expected" },
		{ "[1]", "event JSON: expected an object" },
		{ "{\"cluster\":\"c\",\"job_id\":7,\"attempt\":1} {}",
		  "event JSON: trailing data after the object" },
		{ "{\"cluster\":\"c\",\"job_id\":7,\"attempt\":1,\"colour\":1}",
		  "event JSON: unknown field 'colour'" },
		{ "{\"cluster\":\"c\",\"job_id\":\"7\",\"attempt\":1}",
		  "event field job_id: expected an integer" },
		{ "{\"cluster\":\"c\",\"job_id\":4294967296,\"attempt\":1}",
		  "event field job_id: number out of range" },
		{ "{\"cluster\":\"c\",\"job_id\":-1,\"attempt\":1}",
		  "event field job_id: number out of range" },
		{ "{\"cluster\":\"c\",\"job_id\":7,\"attempt\":1,\"exit_code\":2147483648}",
		  "event field exit_code: number out of range" },
		{ "{\"cluster\":\"c\",\"job_id\":7,\"attempt\":1,\"last_ckpt_bytes\":-5}",
		  "event field last_ckpt_bytes: number out of range" },
		{ "{\"cluster\":null,\"job_id\":7,\"attempt\":1}",
		  "event field cluster: null not allowed" },
		{ "{\"cluster\":5,\"job_id\":7,\"attempt\":1}",
		  "event field cluster: expected a string" },
		{ "{\"cluster\":\"c\",\"job_id\":7,\"attempt\":1,\"duration_seconds\":\"1\"}",
		  "event field duration_seconds: expected a number" },
		{ "{\"cluster\":\"c\",\"job_id\":7,\"attempt\":1,\"outcome\":\"oom\"}",
		  "outcome 'oom': expected completed, failed, signaled, timeout, cancelled, "
		  "preempted, node_fail or requeued" },
		{ "{\"cluster\":\"c\",\"job_id\":7,\"attempt\":1,\"action\":1}",
		  "event field action: expected a string" },
		{ "{\"schema_version\":2,\"cluster\":\"c\",\"job_id\":7,\"attempt\":1}",
		  "event field schema_version: this build reads version 1 only" },
		{ "{\"cluster\":\"c\",\"job_id\":7,\"attempt\":1,\"event_id\":\"c:7:2\"}",
		  "event field event_id: 'c:7:2' does not match cluster:job_id:attempt 'c:7:1'" },
		{ "{\"cluster\":\"c\",\"job_id\":7}",
		  "event c job 7: attempt is 0 (attempts count from 1)" },
	};
	rs_event_t ev;
	rs_err_t err;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err.msg[0] = '\0';
		ck_assert_int_eq(rs_event_from_json(cases[i].json, &ev, &err), -EINVAL);
		ck_assert_str_eq(err.msg, cases[i].msg);
		/* nothing owned is left behind on failure */
		ck_assert_ptr_null(ev.cluster);
	}
	ck_assert_int_eq(rs_event_from_json(NULL, &ev, &err), -EINVAL);
}
END_TEST

/* ------------------------------------------------------------ energy --- */

static char tmpl[64];

static void mkzone(const char *root, const char *zone, const char *name,
		   const char *uj, const char *max)
{
	char p[512];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", root, zone);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/%s/name", root, zone);
	f = fopen(p, "w");
	fprintf(f, "%s\n", name);
	fclose(f);
	snprintf(p, sizeof(p), "%s/%s/energy_uj", root, zone);
	f = fopen(p, "w");
	fprintf(f, "%s\n", uj);
	fclose(f);
	snprintf(p, sizeof(p), "%s/%s/max_energy_range_uj", root, zone);
	f = fopen(p, "w");
	fprintf(f, "%s\n", max);
	fclose(f);
}

static void rmtree(const char *root)
{
	char cmd[256];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	ck_assert_int_eq(system(cmd), 0);
}

START_TEST(test_event_energy_sums_package_and_dram_only)
{
	rs_energy_sample_t a, b;
	rs_err_t err;
	double j = -1;

	snprintf(tmpl, sizeof(tmpl), "/tmp/rs-energy-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	mkzone(tmpl, "intel-rapl:0", "package-0", "1000000", "262143328850");
	mkzone(tmpl, "intel-rapl:0:0", "core", "500000", "262143328850");
	mkzone(tmpl, "intel-rapl:0:1", "dram", "2000000", "65712999613");
	mkzone(tmpl, "intel-rapl:1", "psys", "9000000", "262143328850");
	mkzone(tmpl, "other:0", "package-9", "1", "2");
	ck_assert_int_eq(rs_event_energy_sample(tmpl, &a, &err), 0);
	ck_assert_uint_eq(a.nzones, 2);
	ck_assert_str_eq(a.zone[0].name, "intel-rapl:0");
	ck_assert_str_eq(a.zone[1].name, "intel-rapl:0:1");
	ck_assert_uint_eq(a.zone[1].max_uj, 65712999613ULL);
	/* package +250 J; dram wrapped: 65712999613 - 2000000 + 1000000 uJ */
	mkzone(tmpl, "intel-rapl:0", "package-0", "251000000", "262143328850");
	mkzone(tmpl, "intel-rapl:0:1", "dram", "1000000", "65712999613");
	mkzone(tmpl, "intel-rapl:0:0", "core", "99999999", "262143328850");
	ck_assert_int_eq(rs_event_energy_sample(tmpl, &b, &err), 0);
	ck_assert_int_eq(rs_event_energy_joules(&a, &b, &j, &err), 0);
	ck_assert_double_eq_tol(j, 250.0 + (65712999613.0 - 2000000.0 + 1000000.0) / 1e6, 1e-6);
	/* no movement: exactly 0 */
	ck_assert_int_eq(rs_event_energy_joules(&b, &b, &j, &err), 0);
	ck_assert(j == 0.0);
	rmtree(tmpl);
}
END_TEST

START_TEST(test_event_energy_unavailable_and_malformed)
{
	rs_energy_sample_t a, b;
	rs_err_t err;
	double j = 0;

	ck_assert_int_eq(rs_event_energy_sample("/nonexistent/powercap", &a, &err), -ENOENT);
	ck_assert_str_eq(err.msg, "energy: /nonexistent/powercap: No such file or directory");
	snprintf(tmpl, sizeof(tmpl), "/tmp/rs-energy-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpl));
	mkzone(tmpl, "intel-rapl:1", "psys", "1", "2");
	ck_assert_int_eq(rs_event_energy_sample(tmpl, &a, &err), -ENOENT);
	ck_assert_ptr_nonnull(strstr(err.msg, "no RAPL package or dram zone under"));
	mkzone(tmpl, "intel-rapl:0", "package-0", "12x", "262143328850");
	ck_assert_int_eq(rs_event_energy_sample(tmpl, &a, &err), -EINVAL);
	mkzone(tmpl, "intel-rapl:0", "package-0", "10", "262143328850");
	ck_assert_int_eq(rs_event_energy_sample(tmpl, &a, &err), 0);
	mkzone(tmpl, "intel-rapl:0:1", "dram", "10", "100");
	ck_assert_int_eq(rs_event_energy_sample(tmpl, &b, &err), 0);
	/* zones differ between samples */
	ck_assert_int_eq(rs_event_energy_joules(&a, &b, &j, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "energy: the two samples have different zones");
	/* a counter above its own range is nonsense */
	b = a;
	a.zone[0].uj = 262143328851ULL;
	b.zone[0].uj = 5;
	ck_assert_int_eq(rs_event_energy_joules(&a, &b, &j, &err), -EINVAL);
	ck_assert_int_eq(rs_event_energy_joules(NULL, &b, &j, &err), -EINVAL);
	rmtree(tmpl);
}
END_TEST

static Suite *event_suite(void)
{
	Suite *s = suite_create("event");
	TCase *tc;

	tc = tcase_create("names");
	tcase_add_test(tc, test_event_outcome_names_round_trip);
	tcase_add_test(tc, test_event_outcome_parse_rejects_unknown);
	suite_add_tcase(s, tc);

	tc = tcase_create("validation");
	tcase_add_test(tc, test_event_validate_accepts_sample);
	tcase_add_test(tc, test_event_validate_rejects_each_bad_field);
	tcase_add_test(tc, test_event_serialisers_refuse_invalid_event);
	suite_add_tcase(s, tc);

	tc = tcase_create("stable_id");
	tcase_add_test(tc, test_event_id_is_cluster_job_attempt);
	suite_add_tcase(s, tc);

	tc = tcase_create("json_webhook");
	tcase_add_test(tc, test_event_json_has_every_field_exactly);
	tcase_add_test(tc, test_event_json_nulls_for_unknowns);
	tcase_add_test(tc, test_event_json_array_task_zero_is_kept);
	tcase_add_test(tc, test_event_json_escapes_hostile_strings);
	tcase_add_test(tc, test_event_json_max_values);
	suite_add_tcase(s, tc);

	tc = tcase_create("clickhouse_row");
	tcase_add_test(tc, test_event_clickhouse_is_one_line_row);
	suite_add_tcase(s, tc);

	tc = tcase_create("prometheus_exposition");
	tcase_add_test(tc, test_event_prometheus_exact_text);
	tcase_add_test(tc, test_event_prometheus_optional_metrics_absent);
	tcase_add_test(tc, test_event_prometheus_escapes_label_values);
	tcase_add_test(tc, test_event_pushgateway_path_plain_and_base64);
	suite_add_tcase(s, tc);

	tc = tcase_create("alerts");
	tcase_add_test(tc, test_event_alertmanager_labels_and_annotations);
	tcase_add_test(tc, test_event_alert_json_flat_with_event);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse_back");
	tcase_add_test(tc, test_event_from_json_round_trip);
	tcase_add_test(tc, test_event_from_json_minimal_and_nulls);
	tcase_add_test(tc, test_event_from_json_rejects_bad_input);
	suite_add_tcase(s, tc);

	tc = tcase_create("rapl_energy");
	tcase_add_test(tc, test_event_energy_sums_package_and_dram_only);
	tcase_add_test(tc, test_event_energy_unavailable_and_malformed);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(event_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
