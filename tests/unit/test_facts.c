/* test_facts.c - the per-attempt job facts a step reads instead of asking
 * slurmctld: format/parse round trip, refusal of what must not be trusted,
 * atomic store and the sweep of ended attempts. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "facts.h"

static char base[] = "/tmp/rs-facts-test.XXXXXX";
static char dir[256];

static void setup(void)
{
	strcpy(base, "/tmp/rs-facts-test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
	snprintf(dir, sizeof(dir), "%s/run", base);
}

static void teardown(void)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	ck_assert_int_eq(system(cmd), 0);
}

static rs_facts_t _sample(void)
{
	rs_facts_t f;

	memset(&f, 0, sizeof(f));
	f.uid = 1234;
	f.restart_count = 2;
	f.nnodes = 3;
	f.batch = 1;
	f.end_time = 1900000000;
	f.time_limit = 7200;
	snprintf(f.cluster, sizeof(f.cluster), "alpine-2");
	return f;
}

START_TEST(test_facts_round_trip)
{
	rs_facts_t f = _sample(), g;
	char line[512];
	rs_err_t e;

	ck_assert_int_eq(rs_facts_format(&f, line, sizeof(line)), 0);
	ck_assert_str_eq(line, "v1 uid=1234 restart=2 nnodes=3 batch=1 "
			 "end=1900000000 limit=7200 cluster=alpine-2\n");
	ck_assert_int_eq(rs_facts_parse(line, &g, &e), 0);
	ck_assert_int_eq(memcmp(&f, &g, sizeof(f)), 0);
	ck_assert_int_eq(rs_facts_format(&f, line, 20), -ENOSPC);
}
END_TEST

START_TEST(test_facts_parse_refuses)
{
	static const char *const bad[] = {
		"",
		"v2 uid=1 restart=0 nnodes=1 batch=0 end=0 limit=0 cluster=c",
		"v1 uid=1 restart=0 nnodes=1 batch=0 end=0 limit=0",
		"v1 uid=1 restart=0 nnodes=1 batch=0 end=0 limit=0 cluster=c uid=2",
		"v1 uid=1 restart=-1 nnodes=1 batch=0 end=0 limit=0 cluster=c",
		"v1 uid=1 restart=0 nnodes=1 batch=0 end=0 limit=4294967296 cluster=c",
		"v1 uid=1 restart=0 nnodes=x batch=0 end=0 limit=0 cluster=c",
		"v1 uid=1 restart=0 nnodes=1 batch=0 end=0 limit=0 cluster=c what=1",
		"v1 uid=1 restart=0 nnodes=1 batch=0 end=0 limit=0 cluster",
	};
	rs_facts_t f;
	rs_err_t e;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(rs_facts_parse(bad[i], &f, &e) == -EINVAL,
			      "accepted: %s", bad[i]);
}
END_TEST

START_TEST(test_facts_path_needs_a_plain_cluster_name)
{
	char p[256];

	ck_assert_int_eq(rs_facts_path("/run/x", "c1", 42, 3, p, sizeof(p)), 0);
	ck_assert_str_eq(p, "/run/x/c1.42.a3.facts");
	ck_assert_int_eq(rs_facts_path("/run/x", "../etc", 42, 3, p, sizeof(p)),
			 -EINVAL);
	ck_assert_int_eq(rs_facts_path("/run/x", "", 42, 3, p, sizeof(p)), -EINVAL);
	ck_assert_int_eq(rs_facts_path("/run/x", "c1", 42, 3, p, 10), -ENOSPC);
}
END_TEST

START_TEST(test_facts_store_then_load)
{
	rs_facts_t f = _sample(), g;
	char p[512];
	struct stat st;
	rs_err_t e;
	time_t now = f.end_time - 100;

	ck_assert_int_eq(rs_facts_store(dir, 77, &f, &e), 0);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(rs_facts_path(dir, f.cluster, 77, 2, p, sizeof(p)), 0);
	ck_assert_int_eq(rs_facts_load(p, geteuid(), 1234, 2, now, &g, &e), 0);
	ck_assert_int_eq(memcmp(&f, &g, sizeof(f)), 0);
	/* Another user, another attempt, an ended attempt: not trusted. */
	ck_assert_int_eq(rs_facts_load(p, geteuid(), 1235, 2, now, &g, &e), -ESTALE);
	ck_assert_int_eq(rs_facts_load(p, geteuid(), 1234, 1, now, &g, &e), -ESTALE);
	ck_assert_int_eq(rs_facts_load(p, geteuid(), 1234, 2, f.end_time + 7200,
				       &g, &e), -ESTALE);
	/* Not the expected owner. */
	ck_assert_int_eq(rs_facts_load(p, geteuid() + 1, 1234, 2, now, &g, &e), -EPERM);
	/* Writable by others: refused. */
	ck_assert_int_eq(chmod(p, 0666), 0);
	ck_assert_int_eq(rs_facts_load(p, geteuid(), 1234, 2, now, &g, &e), -EPERM);
	ck_assert_int_eq(chmod(p, 0644), 0);
	ck_assert_int_eq(chmod(dir, 0777), 0);
	ck_assert_int_eq(rs_facts_load(p, geteuid(), 1234, 2, now, &g, &e), -EPERM);
	ck_assert_int_eq(chmod(dir, 0700), 0);
	ck_assert_int_eq(rs_facts_load(p, geteuid(), 1234, 2, now, &g, &e), 0);
	/* Missing. */
	ck_assert_int_eq(rs_facts_path(dir, f.cluster, 78, 2, p, sizeof(p)), 0);
	ck_assert_int_eq(rs_facts_load(p, geteuid(), 1234, 2, now, &g, &e), -ENOENT);
}
END_TEST

START_TEST(test_facts_symlink_refused)
{
	rs_facts_t f = _sample(), g;
	char p[512], q[512];
	rs_err_t e;

	ck_assert_int_eq(rs_facts_store(dir, 77, &f, &e), 0);
	ck_assert_int_eq(rs_facts_path(dir, f.cluster, 77, 2, p, sizeof(p)), 0);
	ck_assert_int_eq(rs_facts_path(dir, f.cluster, 99, 2, q, sizeof(q)), 0);
	ck_assert_int_eq(symlink(p, q), 0);
	ck_assert_int_ne(rs_facts_load(q, geteuid(), 1234, 2, 0, &g, &e), 0);
}
END_TEST

START_TEST(test_facts_sweep_removes_ended_attempts)
{
	rs_facts_t f = _sample(), old = _sample(), open_ended = _sample();
	char p[512];
	rs_err_t e;
	time_t now = time(NULL);    /* files without an end age by mtime */

	f.end_time = now + 100;

	old.end_time = now - 2 * 3600;       /* ended two hours ago */
	old.restart_count = 1;
	open_ended.end_time = 0;             /* no limit: kept (young) */
	open_ended.restart_count = 5;
	ck_assert_int_eq(rs_facts_store(dir, 77, &old, &e), 0);
	ck_assert_int_eq(rs_facts_store(dir, 78, &open_ended, &e), 0);
	ck_assert_int_eq(rs_facts_store(dir, 79, &open_ended, &e), 0);
	ck_assert_int_eq(rs_facts_path(dir, f.cluster, 79, 5, p, sizeof(p)), 0);
	{
		struct timeval tv[2] = { { now - 31 * 86400, 0 },
					 { now - 31 * 86400, 0 } };

		ck_assert_int_eq(utimes(p, tv), 0);  /* a month old */
	}
	ck_assert_int_eq(rs_facts_store(dir, 77, &f, &e), 0);
	ck_assert_int_eq(rs_facts_sweep(dir, now), 2);
	ck_assert_int_eq(access(p, F_OK), -1);
	ck_assert_int_eq(rs_facts_path(dir, f.cluster, 77, 1, p, sizeof(p)), 0);
	ck_assert_int_eq(access(p, F_OK), -1);
	ck_assert_int_eq(rs_facts_path(dir, f.cluster, 78, 5, p, sizeof(p)), 0);
	ck_assert_int_eq(access(p, F_OK), 0);
	ck_assert_int_eq(rs_facts_path(dir, f.cluster, 77, 2, p, sizeof(p)), 0);
	ck_assert_int_eq(access(p, F_OK), 0);
}
END_TEST

START_TEST(test_facts_store_refuses_a_shared_folder)
{
	rs_facts_t f = _sample();
	rs_err_t e;

	ck_assert_int_eq(mkdir(dir, 0777), 0);
	ck_assert_int_eq(chmod(dir, 0777), 0);
	ck_assert_int_eq(rs_facts_store(dir, 77, &f, &e), -EPERM);
	ck_assert_ptr_nonnull(strstr(e.msg, dir));
}
END_TEST

static Suite *facts_suite(void)
{
	Suite *s = suite_create("facts");
	TCase *tc = tcase_create("facts");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_facts_round_trip);
	tcase_add_test(tc, test_facts_parse_refuses);
	tcase_add_test(tc, test_facts_path_needs_a_plain_cluster_name);
	tcase_add_test(tc, test_facts_store_then_load);
	tcase_add_test(tc, test_facts_symlink_refused);
	tcase_add_test(tc, test_facts_sweep_removes_ended_attempts);
	tcase_add_test(tc, test_facts_store_refuses_a_shared_folder);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(facts_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
