/* test_rundir.c - the node-local folder: root's and traversable, a
 * private folder per user that other users cannot squat, a job's files
 * gone at its end, and a sweep that runs at most once per period.
 * Runs as root (CI does); skipped otherwise. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "facts.h"
#include "rundir.h"

#define OTHER 65534u

static char base[] = "/tmp/rs-rundir-test.XXXXXX";
static char dir[256];

static void setup(void)
{
	strcpy(base, "/tmp/rs-rundir-test.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
	snprintf(dir, sizeof(dir), "%s/run", base);
}

static void teardown(void)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	ck_assert_int_eq(system(cmd), 0);
}

static void _touch(const char *path, time_t mtime)
{
	struct timeval tv[2] = { { mtime, 0 }, { mtime, 0 } };
	int fd = open(path, O_WRONLY | O_CREAT, 0600);

	ck_assert_int_ge(fd, 0);
	close(fd);
	if (mtime)
		ck_assert_int_eq(utimes(path, tv), 0);
}

static int _exists(const char *name)
{
	char p[512];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

START_TEST(test_rundir_open_makes_it_traversable_not_listable)
{
	struct stat st;
	rs_err_t e;
	int fd;

	if (geteuid())
		return;
	ck_assert_int_eq(mkdir(dir, 0700), 0);       /* an older version's */
	fd = rs_rundir_open(dir, &e);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0711);
}
END_TEST

START_TEST(test_rundir_open_refuses_a_writable_one)
{
	rs_err_t e;

	if (geteuid())
		return;
	ck_assert_int_eq(mkdir(dir, 0777), 0);
	ck_assert_int_eq(chmod(dir, 0777), 0);
	ck_assert_int_eq(rs_rundir_open(dir, &e), -EPERM);
	ck_assert_ptr_nonnull(strstr(e.msg, dir));
}
END_TEST

START_TEST(test_rundir_user_is_created_for_the_user)
{
	char p[512];
	struct stat st;
	rs_err_t e;

	if (geteuid())
		return;
	ck_assert_int_eq(rs_rundir_user(dir, OTHER, OTHER, p, sizeof(p), &e), 0);
	ck_assert_int_eq(lstat(p, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_uid, OTHER);
	ck_assert_int_eq(st.st_mode & 07777, 0700);
	/* Again: the same folder is accepted. */
	ck_assert_int_eq(rs_rundir_user(dir, OTHER, OTHER, p, sizeof(p), &e), 0);
}
END_TEST

START_TEST(test_rundir_user_refuses_what_is_not_the_users)
{
	char p[512], q[512];
	rs_err_t e;

	if (geteuid())
		return;
	ck_assert_int_ge(rs_rundir_open(dir, &e), 0);
	/* A symlink where the folder should be. */
	snprintf(p, sizeof(p), "%s/u%u", dir, OTHER);
	snprintf(q, sizeof(q), "%s/elsewhere", base);
	ck_assert_int_eq(mkdir(q, 0700), 0);
	ck_assert_int_eq(symlink(q, p), 0);
	ck_assert_int_lt(rs_rundir_user(dir, OTHER, OTHER, q, sizeof(q), &e), 0);
	ck_assert_int_eq(unlink(p), 0);
	/* Another user's folder (uid 1: cannot be made ours). */
	ck_assert_int_eq(mkdir(p, 0700), 0);
	ck_assert_int_eq(chown(p, 1, 1), 0);
	ck_assert_int_eq(rs_rundir_user(dir, OTHER, OTHER, q, sizeof(q), &e), -EPERM);
	ck_assert_ptr_nonnull(strstr(e.msg, p));
}
END_TEST

START_TEST(test_rundir_job_end_removes_only_that_job)
{
	char ready[512], end[512], other[512], p[512];
	rs_facts_t f;
	rs_err_t e;

	if (geteuid())
		return;
	memset(&f, 0, sizeof(f));
	f.uid = OTHER;
	snprintf(f.cluster, sizeof(f.cluster), "c1");
	ck_assert_int_eq(rs_rundir_user(dir, OTHER, OTHER, p, sizeof(p), &e), 0);
	ck_assert_int_eq(rs_facts_store(dir, 1, &f, &e), 0);
	f.restart_count = 1;
	ck_assert_int_eq(rs_facts_store(dir, 1, &f, &e), 0);
	ck_assert_int_eq(rs_facts_store(dir, 12, &f, &e), 0);
	ck_assert_int_eq(rs_rundir_job_files(dir, OTHER, "c1", 1, "n1", ready, end,
					     sizeof(ready)), 0);
	_touch(ready, 0);
	_touch(end, 0);
	ck_assert_int_eq(rs_rundir_job_files(dir, OTHER, "c1", 12, "n1", other, p,
					     sizeof(other)), 0);
	_touch(other, 0);
	ck_assert_int_eq(rs_rundir_job_end(dir, OTHER, "c1", 1), 4);
	ck_assert(!_exists("c1.1.a0.facts"));
	ck_assert(!_exists("c1.1.a1.facts"));
	ck_assert(_exists("c1.12.a1.facts"));
	ck_assert_int_eq(access(ready, F_OK), -1);
	ck_assert_int_eq(access(end, F_OK), -1);
	ck_assert_int_eq(access(other, F_OK), 0);
}
END_TEST

START_TEST(test_rundir_job_files_are_per_node)
{
	char r1[512], e1[512], r2[512], e2[512];

	/* Two slurmd of one host share RUNDIR: their files must differ. */
	ck_assert_int_eq(rs_rundir_job_files("/run/x", 5, "c1", 9, "n1", r1, e1, sizeof(r1)), 0);
	ck_assert_int_eq(rs_rundir_job_files("/run/x", 5, "c1", 9, "n2", r2, e2, sizeof(r2)), 0);
	ck_assert_str_eq(r1, "/run/x/u5/c1.9.n1.ready");
	ck_assert_str_eq(e1, "/run/x/u5/c1.9.n1.end");
	ck_assert_str_ne(r1, r2);
	ck_assert_str_ne(e1, e2);
	ck_assert_int_eq(rs_rundir_job_files("/run/x", 5, "c1", 9, "../n", r2, e2, sizeof(r2)), 0);
	ck_assert_str_eq(r2, "/run/x/u5/c1.9._.ready");
}
END_TEST

START_TEST(test_rundir_sweep_runs_once_per_period)
{
	char ready[512], end[512], p[512];
	time_t now = time(NULL);
	rs_err_t e;

	if (geteuid())
		return;
	ck_assert_int_eq(rs_rundir_user(dir, OTHER, OTHER, p, sizeof(p), &e), 0);
	ck_assert_int_eq(rs_rundir_job_files(dir, OTHER, "c1", 7, "n1", ready, end,
					     sizeof(ready)), 0);
	_touch(ready, now - 2 * 86400);
	_touch(end, now);
	snprintf(p, sizeof(p), "%s/c1.7.a0.facts.99.tmp", dir);
	_touch(p, now - 2 * 3600);
	ck_assert_int_eq(rs_rundir_sweep(dir, now), 2);
	ck_assert_int_eq(access(ready, F_OK), -1);
	ck_assert_int_eq(access(end, F_OK), 0);
	ck_assert_int_eq(access(p, F_OK), -1);
	/* Within the period nothing is read again. */
	_touch(ready, now - 2 * 86400);
	ck_assert_int_eq(rs_rundir_sweep(dir, now + 10), 0);
	ck_assert_int_eq(access(ready, F_OK), 0);
	ck_assert_int_eq(rs_rundir_sweep(dir, now + RS_RUNDIR_SWEEP_EVERY + 1), 1);
}
END_TEST

START_TEST(test_rundir_write_end_replaces_the_file_whole)
{
	char end[512], buf[64], tmp[560];
	ssize_t n;
	int fd;

	ck_assert_int_eq(mkdir(dir, 0700), 0);
	snprintf(end, sizeof(end), "%s/c1.7.end", dir);
	ck_assert_int_eq(rs_rundir_write_end(end, 1700000000), 0);
	ck_assert_int_eq(rs_rundir_write_end(end, 1700000123), 0);
	fd = open(end, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	ck_assert_int_eq(n, 11);
	buf[n] = '\0';
	ck_assert_str_eq(buf, "1700000123\n");
	/* No temp file is left behind. */
	snprintf(tmp, sizeof(tmp), "%s.%ld", end, (long)getpid());
	ck_assert_int_eq(access(tmp, F_OK), -1);
	/* A folder that is not there: an error, and nothing written. */
	snprintf(end, sizeof(end), "%s/none/c1.7.end", dir);
	ck_assert_int_eq(rs_rundir_write_end(end, 1), -ENOENT);
}
END_TEST

static Suite *rundir_suite(void)
{
	Suite *s = suite_create("rundir");
	TCase *tc = tcase_create("rundir");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_rundir_open_makes_it_traversable_not_listable);
	tcase_add_test(tc, test_rundir_open_refuses_a_writable_one);
	tcase_add_test(tc, test_rundir_user_is_created_for_the_user);
	tcase_add_test(tc, test_rundir_user_refuses_what_is_not_the_users);
	tcase_add_test(tc, test_rundir_job_end_removes_only_that_job);
	tcase_add_test(tc, test_rundir_sweep_runs_once_per_period);
	tcase_add_test(tc, test_rundir_job_files_are_per_node);
	tcase_add_test(tc, test_rundir_write_end_replaces_the_file_whole);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(rundir_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
