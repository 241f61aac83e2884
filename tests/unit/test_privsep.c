/* test_privsep.c - the child that runs as the user: what it inherits (only
 * its two pipes and /dev/null), and how long the parent may wait for it. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "privsep.h"

static long _ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* In the child: the open descriptors >= 3, and where 0-2 point. */
static int _list_fds(void *arg, int out_fd, rs_err_t *err)
{
	char buf[512], link[64];
	int n = 0;
	ssize_t l;

	(void)arg;
	(void)err;
	n += snprintf(buf + n, sizeof(buf) - (size_t)n, "out=%d", out_fd);
	for (int fd = 0; fd < 3; fd++) {
		char p[32];

		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		l = readlink(p, link, sizeof(link) - 1);
		link[l < 0 ? 0 : l] = '\0';
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, " %d:%s", fd, link);
	}
	n += snprintf(buf + n, sizeof(buf) - (size_t)n, " open:");
	for (int fd = 3; fd < 4096; fd++)
		if (fcntl(fd, F_GETFD) != -1)
			n += snprintf(buf + n, sizeof(buf) - (size_t)n, " %d", fd);
	if (write(out_fd, buf, (size_t)n) != n)
		return -EIO;
	return 0;
}

static void _check_only_pipes(uid_t uid, gid_t gid)
{
	char out[512];
	size_t n = 0;
	rs_err_t e;
	int f = open("/proc/self/status", O_RDONLY); /* no O_CLOEXEC */
	int g = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	int h;

	ck_assert_int_ge(f, 3);
	ck_assert_int_ge(g, 3);
	h = dup2(f, 1000);
	ck_assert_int_eq(h, 1000);
	ck_assert_int_eq(rs_privsep_run(uid, gid, 5000, _list_fds, NULL, out,
					 sizeof(out), &n, &e), 0);
	/* fd 4 is the error pipe; nothing of the parent's */
	ck_assert_str_eq(out, "out=3 0:/dev/null 1:/dev/null 2:/dev/null open: 3 4");
	ck_assert_uint_eq(n, strlen(out));
	/* the parent's own descriptors are untouched */
	ck_assert_int_ne(fcntl(f, F_GETFD), -1);
	ck_assert_int_ne(fcntl(h, F_GETFD), -1);
	close(f);
	close(g);
	close(h);
}

START_TEST(test_privsep_child_keeps_only_its_pipes)
{
	_check_only_pipes(RS_PRIVSEP_ROOT, 0);
}
END_TEST

START_TEST(test_privsep_child_as_nobody_keeps_only_its_pipes)
{
	if (geteuid() != 0)
		return; /* switching ids needs root */
	_check_only_pipes(65534, 65534);
}
END_TEST

/* Even with stdio closed in the parent (pipes may get fds 0-2). */
START_TEST(test_privsep_pipes_on_low_descriptors)
{
	char out[512];
	size_t n = 0;
	rs_err_t e;
	int s0 = dup(0), s1 = dup(1), rc;

	ck_assert_int_ge(s0, 3);
	ck_assert_int_ge(s1, 3);
	close(0);
	close(1);
	rc = rs_privsep_run(RS_PRIVSEP_ROOT, 0, 5000, _list_fds, NULL, out,
			    sizeof(out), &n, &e);
	dup2(s0, 0);
	dup2(s1, 1);
	close(s0);
	close(s1);
	ck_assert_int_eq(rc, 0);
	ck_assert_str_eq(out, "out=3 0:/dev/null 1:/dev/null 2:/dev/null open: 3 4");
}
END_TEST

static int _sleep(void *arg, int out_fd, rs_err_t *err)
{
	(void)arg;
	(void)out_fd;
	(void)err;
	sleep(30);
	return 0;
}

static int _ignore_term(void *arg, int out_fd, rs_err_t *err)
{
	sigset_t all;

	(void)arg;
	(void)out_fd;
	(void)err;
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	for (;;)
		sleep(30);
	return 0;
}

/* Closes both pipes, then hangs: the wait for its exit is bounded too. */
static int _close_then_sleep(void *arg, int out_fd, rs_err_t *err)
{
	(void)arg;
	(void)err;
	close(out_fd);
	close(4);
	sleep(30);
	return 0;
}

/* Leaves a grandchild holding the pipes open. */
static int _grandchild(void *arg, int out_fd, rs_err_t *err)
{
	char buf[32];
	pid_t pid = fork();
	int n;

	(void)arg;
	(void)err;
	if (pid == 0) {
		sleep(30);
		_exit(0);
	}
	n = snprintf(buf, sizeof(buf), "%d", (int)pid);
	return write(out_fd, buf, (size_t)n) == n ? 0 : -EIO;
}

static rs_privsep_fn hangs[] = { _sleep, _ignore_term, _close_then_sleep,
				 _grandchild };

START_TEST(test_privsep_timeout_is_bounded)
{
	char out[64] = "";
	size_t n = 0;
	rs_err_t e;
	long t0 = _ms(), took;

	ck_assert_int_eq(rs_privsep_run(RS_PRIVSEP_ROOT, 0, 300, hangs[_i], NULL,
					 out, sizeof(out), &n, &e), -ETIMEDOUT);
	took = _ms() - t0;
	ck_assert_msg(took >= 290 && took < 300 + 1500, "took %ld ms", took);
	ck_assert_str_eq(e.msg, "gave up after 300 ms (file system not answering?)");
	if (hangs[_i] == _grandchild) {
		ck_assert_int_gt(atoi(out), 1);
		kill(atoi(out), SIGKILL);
	}
	/* the child was reaped: no zombie left behind */
	ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
}
END_TEST

static int _fail_with_newline(void *arg, int out_fd, rs_err_t *err)
{
	(void)arg;
	(void)out_fd;
	return rs_err_set(err, EACCES, "open /c/bad\nname\x1b[2J: Permission denied");
}

START_TEST(test_privsep_child_error_is_escaped)
{
	rs_err_t e;

	ck_assert_int_eq(rs_privsep_run(RS_PRIVSEP_ROOT, 0, 5000,
					 _fail_with_newline, NULL, NULL, 0,
					 NULL, &e), -EACCES);
	ck_assert_str_eq(e.msg, "open /c/bad\\x0aname\\x1b[2J: Permission denied");
}
END_TEST

static Suite *privsep_suite(void)
{
	Suite *s = suite_create("privsep");
	TCase *tc;

	tc = tcase_create("inherited_files");
	tcase_add_test(tc, test_privsep_child_keeps_only_its_pipes);
	tcase_add_test(tc, test_privsep_child_as_nobody_keeps_only_its_pipes);
	tcase_add_test(tc, test_privsep_pipes_on_low_descriptors);
	tcase_add_test(tc, test_privsep_child_error_is_escaped);
	suite_add_tcase(s, tc);
	tc = tcase_create("time_bound");
	tcase_add_loop_test(tc, test_privsep_timeout_is_bounded, 0,
			    (int)(sizeof(hangs) / sizeof(hangs[0])));
	tcase_set_timeout(tc, 20);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(privsep_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
