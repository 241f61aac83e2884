/* test_supervise.c - unit tests of the supervisor's pure logic (supervise.c) */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "launch.h"
#include "spec.h"
#include "supervise.h"
#include "text.h"

#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

/* ------------------------------------------------------------ parsing --- */

START_TEST(test_supervise_parse_every_option)
{
	char *argv[] = { "sup", "--ckpt", "/c", "--scratch=/s", "--signal", "USR2",
		"--grace", "2.5", "--keep", "4", "--ready", "/r", "--job", "42_3",
		"--attempt", "2", "--node", "n1", "--part", "1", "--nparts", "3",
		"--role", "saver", "--status", "/st", "--status-fd", "9", "--lead",
		"120", "--end-time",
		"1764170000", "--end-time-file", "/e", "--every", "30",
		"--save-timeout", "0", "--", "prog", "-x", "--", NULL };
	rs_supervise_opts_t o;
	rs_err_t err;

	ck_assert_int_eq(rs_supervise_parse(ARGC(argv), argv, &o, &err), 0);
	ck_assert_str_eq(o.ckpt_dir, "/c");
	ck_assert_str_eq(o.scratch, "/s");
	ck_assert_int_eq(o.signal, SIGUSR2);
	ck_assert_double_eq(o.grace, 2.5);
	ck_assert_uint_eq(o.keep, 4);
	ck_assert_str_eq(o.ready, "/r");
	ck_assert_str_eq(o.job_id, "42_3");
	ck_assert_uint_eq(o.attempt, 2);
	ck_assert_str_eq(o.node, "n1");
	ck_assert_uint_eq(o.part, 1);
	ck_assert_uint_eq(o.nparts, 3);
	ck_assert_int_eq(o.role, RS_SUPERVISE_SAVER);
	ck_assert_str_eq(o.status, "/st");
	ck_assert_int_eq(o.status_fd, 9);
	ck_assert_double_eq(o.lead, 120);
	ck_assert_double_eq(o.end_time, 1764170000);
	ck_assert_str_eq(o.end_time_file, "/e");
	ck_assert_double_eq(o.every, 30);
	ck_assert_double_eq(o.save_timeout, 0);
	ck_assert_int_eq(o.pid, 0);
	/* Everything after the first "--" belongs to the program. */
	ck_assert_ptr_eq(o.argv, &argv[39]);
	ck_assert_str_eq(o.argv[0], "prog");
	ck_assert_str_eq(o.argv[2], "--");
	ck_assert_ptr_null(o.argv[3]);
}
END_TEST

START_TEST(test_supervise_parse_defaults_and_pid)
{
	char *argv[] = { "sup", "--role", "forward", "--pid", "1234", NULL };
	rs_supervise_opts_t o;
	rs_err_t err;

	ck_assert_int_eq(rs_supervise_parse(ARGC(argv), argv, &o, &err), 0);
	ck_assert_int_eq(o.role, RS_SUPERVISE_FORWARD);
	ck_assert_int_eq(o.pid, 1234);
	ck_assert_ptr_null(o.argv);
	ck_assert_int_eq(o.signal, SIGUSR1);
	ck_assert_double_eq(o.grace, 60);
	ck_assert_uint_eq(o.keep, 2);
	ck_assert_uint_eq(o.nparts, 1);
	ck_assert_uint_eq(o.part, 0);
	ck_assert_double_eq(o.lead, 0);
	ck_assert_double_eq(o.every, 0);
	ck_assert_double_eq(o.save_timeout, 3600);
	ck_assert_ptr_null(o.ckpt_dir);
	ck_assert_ptr_null(o.status);
	ck_assert_int_eq(o.status_fd, -1);
}
END_TEST

struct bad_case {
	const char *args[10];
	const char *msg; /* expected substring of the error */
};

static const struct bad_case bad_cases[] = {
	{ { "--pid", "7", "--", "p" }, "exclusive" },
	{ { "--role", "forward" }, "nothing to supervise" },
	{ { "--pid", "7" }, "role saver needs --ckpt and --scratch" },
	{ { "--ckpt", "/c", "--pid", "7" }, "role saver needs" },
	{ { "--role", "boss", "--pid", "7" }, "--role 'boss'" },
	{ { "--role", "forward", "--frob", "1", "--pid", "7" }, "unknown option '--frob'" },
	{ { "--role", "forward", "--grace", "-1", "--pid", "7" }, "--grace" },
	{ { "--role", "forward", "--grace", "1e3", "--pid", "7" }, "--grace" },
	{ { "--role", "forward", "--grace", "nan", "--pid", "7" }, "--grace" },
	{ { "--role", "forward", "--grace", "", "--pid", "7" }, "--grace" },
	{ { "--role", "forward", "--keep", "0", "--pid", "7" }, "--keep '0'" },
	{ { "--role", "forward", "--keep", "+3", "--pid", "7" }, "--keep" },
	{ { "--role", "forward", "--attempt", "4294967296", "--pid", "7" }, "--attempt" },
	{ { "--role", "forward", "--nparts", "2", "--part", "2", "--pid", "7" }, "--part 2 must be below" },
	{ { "--role", "forward", "--signal", "KILL", "--pid", "7" }, "cannot be used" },
	{ { "--role", "forward", "--signal", "FOO", "--pid", "7" }, "unknown signal" },
	{ { "--role", "forward", "--pid", "1" }, "--pid '1'" },
	{ { "--role", "forward", "--pid", "x" }, "--pid 'x'" },
	{ { "--role", "forward", "--stepd", "0", "--pid", "7" }, "--stepd '0'" },
	{ { "--role", "forward", "--status-fd", "2", "--pid", "7" }, "--status-fd '2'" },
	{ { "--role", "forward", "--status-fd", "-1", "--pid", "7" }, "--status-fd '-1'" },
	{ { "--role", "forward", "--ready", "", "--pid", "7" }, "--ready: empty" },
	{ { "--role", "forward", "--grace", "1", "--grace", "2", "--pid", "7" }, "given twice" },
	{ { "--role", "forward", "prog" }, "unexpected argument 'prog'" },
	{ { "--role", "forward", "--" }, "must be followed" },
	{ { "--role", "forward", "--pid" }, "missing value" },
};

START_TEST(test_supervise_parse_errors)
{
	const struct bad_case *c = &bad_cases[_i];
	char *argv[12] = { "sup" };
	int argc = 1;
	rs_supervise_opts_t o;
	rs_err_t err;

	for (int k = 0; c->args[k]; k++)
		argv[argc++] = (char *)c->args[k];
	argv[argc] = NULL;
	rs_err_clear(&err);
	ck_assert_int_eq(rs_supervise_parse(argc, argv, &o, &err), -EINVAL);
	ck_assert_msg(strstr(err.msg, c->msg), "case %d: '%s' lacks '%s'", _i, err.msg, c->msg);
}
END_TEST

START_TEST(test_supervise_parse_error_keeps_the_application)
{
	char *a1[] = { "sup", "--frob", "1", "--grace", "x", "--pid", "77", NULL };
	char *a2[] = { "sup", "--keep", "0", "--", "prog", "arg", NULL };
	char *a3[] = { "sup", "--bogus", "--", "prog", NULL };
	rs_supervise_opts_t o;
	rs_err_t err;

	ck_assert_int_eq(rs_supervise_parse(ARGC(a1), a1, &o, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "unknown option '--frob'");
	ck_assert_int_eq(o.pid, 77);
	ck_assert_int_eq(rs_supervise_parse(ARGC(a2), a2, &o, &err), -EINVAL);
	ck_assert_ptr_nonnull(o.argv);
	ck_assert_str_eq(o.argv[0], "prog");
	/* An unknown option right before "--" must not swallow it. */
	ck_assert_int_eq(rs_supervise_parse(ARGC(a3), a3, &o, &err), -EINVAL);
	ck_assert_ptr_nonnull(o.argv);
	ck_assert_str_eq(o.argv[0], "prog");
}
END_TEST

START_TEST(test_supervise_argv_round_trip)
{
	rs_supervise_opts_t in, out;
	char store[2048], *argv[64];
	rs_err_t err;
	int argc;

	rs_supervise_opts_init(&in);
	in.ckpt_dir = "/lustre/p/ckpt 1";
	in.scratch = "/tmp/s";
	in.signal = SIGRTMIN + 3;
	in.grace = 0.25;
	in.keep = 5;
	in.ready = "/tmp/s/.ready";
	in.job_id = "42_3";
	in.attempt = 2;
	in.node = "n1";
	in.part = 2;
	in.nparts = 3;
	in.status = "/run/st";
	in.status_fd = 7;
	in.lead = 120;
	in.end_time = 1764170000.5;
	in.end_time_file = "/run/end";
	in.every = 1800;
	in.save_timeout = 0;
	in.stepd = 4242;
	argc = rs_supervise_argv(&in, "/usr/libexec/rs", store, sizeof(store), argv, 62, &err);
	ck_assert_int_gt(argc, 0);
	ck_assert_str_eq(argv[0], "/usr/libexec/rs");
	ck_assert_str_eq(argv[argc - 1], "--");
	ck_assert_ptr_null(argv[argc]);
	/* Slurm >= 23.11 puts the task's own argv after ours. */
	argv[argc] = "prog";
	argv[argc + 1] = NULL;
	ck_assert_int_eq(rs_supervise_parse(argc + 1, argv, &out, &err), 0);
	ck_assert_str_eq(out.argv[0], "prog");
	ck_assert_str_eq(out.ckpt_dir, in.ckpt_dir);
	ck_assert_str_eq(out.scratch, in.scratch);
	ck_assert_int_eq(out.signal, in.signal);
	ck_assert_double_eq(out.grace, 0.25);
	ck_assert_uint_eq(out.keep, 5);
	ck_assert_str_eq(out.ready, in.ready);
	ck_assert_str_eq(out.job_id, "42_3");
	ck_assert_uint_eq(out.attempt, 2);
	ck_assert_str_eq(out.node, "n1");
	ck_assert_int_eq(out.stepd, 4242);
	ck_assert_uint_eq(out.part, 2);
	ck_assert_uint_eq(out.nparts, 3);
	ck_assert_int_eq(out.role, RS_SUPERVISE_SAVER);
	ck_assert_str_eq(out.status, in.status);
	ck_assert_int_eq(out.status_fd, 7);
	ck_assert_double_eq(out.lead, 120);
	ck_assert_double_eq(out.end_time, 1764170000.5);
	ck_assert_str_eq(out.end_time_file, in.end_time_file);
	ck_assert_double_eq(out.every, 1800);
	ck_assert_double_eq(out.save_timeout, 0);

	/* 22.05: adopt a pid; a forwarder needs no ckpt. */
	rs_supervise_opts_init(&in);
	in.role = RS_SUPERVISE_FORWARD;
	in.pid = 4242;
	argc = rs_supervise_argv(&in, "rs", store, sizeof(store), argv, 64, &err);
	ck_assert_str_eq(argv[argc - 2], "--pid");
	ck_assert_str_eq(argv[argc - 1], "4242");
	ck_assert_int_eq(rs_supervise_parse(argc, argv, &out, &err), 0);
	ck_assert_int_eq(out.pid, 4242);
	ck_assert_int_eq(out.role, RS_SUPERVISE_FORWARD);
	ck_assert_double_eq(out.grace, 60);
	ck_assert_double_eq(out.save_timeout, 3600);
	ck_assert_ptr_null(out.ckpt_dir);
}
END_TEST

START_TEST(test_supervise_argv_too_small)
{
	rs_supervise_opts_t in;
	char store[2048], *argv[64];
	rs_err_t err;
	int argc;

	rs_supervise_opts_init(&in);
	in.role = RS_SUPERVISE_FORWARD;
	in.pid = 7;
	argc = rs_supervise_argv(&in, "rs", store, sizeof(store), argv, 64, &err);
	ck_assert_int_gt(argc, 0);
	/* Exactly enough argv slots (argc + NULL) works, one less does not. */
	ck_assert_int_eq(rs_supervise_argv(&in, "rs", store, sizeof(store), argv,
					   (size_t)argc + 1, &err), argc);
	ck_assert_int_eq(rs_supervise_argv(&in, "rs", store, sizeof(store), argv,
					   (size_t)argc, &err), -ENOSPC);
	ck_assert_int_eq(rs_supervise_argv(&in, "rs", store, 20, argv, 64, &err), -ENOSPC);
	ck_assert_ptr_nonnull(strstr(err.msg, "supervisor command line"));
}
END_TEST

/* The contract with the plugin: what src/launch.c builds, we accept
 * without falling back to forward-only mode. */
START_TEST(test_supervise_accepts_the_plugin_command_line)
{
	char *argv[RS_LAUNCH_MAX_ARGS + 2], buf[16384];
	rs_supervise_opts_t o;
	rs_launch_t l;
	rs_spec_t spec;
	rs_err_t err;
	int argc = 0;

	ck_assert_int_eq(rs_spec_parse("ckpt=/c/%j,scratch=/s,signal=USR2,grace=90s,"
				       "keep=4,lead=5m,every=1h", &spec, &err), 0);
	memset(&l, 0, sizeof(l));
	l.supervisor = "/usr/libexec/resilience-supervisor";
	l.spec = &spec;
	l.ckpt = "/c/42";
	l.scratch = "/s";
	l.ready = "/tmp/.resilience-1000/42.0.ready";
	l.status = "/tmp/.resilience-1000/42.0.status";
	l.status_fd = _i == 0 ? 5 : 0;   /* 0: none (memset) */
	l.job = "42";
	l.node = "n2";
	l.attempt = 3;
	l.part = 1;
	l.nparts = 2;
	l.saver = _i == 0;
	l.end_time = 1764170000;
	l.lead = rs_spec_effective_lead(&spec, 0);
	l.adopt = _i == 0 ? 4242 : 0;
	ck_assert_int_eq(rs_launch_argv(&l, argv, &argc, buf, sizeof(buf)), 0);
	if (!l.adopt) {
		ck_assert_str_eq(argv[argc - 1], "--");
		argv[argc++] = "app";
		argv[argc] = NULL;
	}
	rs_err_clear(&err);
	ck_assert_msg(rs_supervise_parse(argc, argv, &o, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(o.role, _i == 0 ? RS_SUPERVISE_SAVER : RS_SUPERVISE_FORWARD);
	ck_assert_int_eq(o.pid, l.adopt);
	ck_assert_str_eq(o.ckpt_dir, "/c/42");
	ck_assert_str_eq(o.scratch, "/s");
	ck_assert_int_eq(o.signal, SIGUSR2);
	ck_assert_double_eq(o.grace, 90);
	ck_assert_uint_eq(o.keep, 4);
	ck_assert_str_eq(o.ready, l.ready);
	ck_assert_str_eq(o.status, l.status);
	ck_assert_int_eq(o.status_fd, _i == 0 ? 5 : -1);
	ck_assert_str_eq(o.job_id, "42");
	ck_assert_str_eq(o.node, "n2");
	ck_assert_uint_eq(o.attempt, 3);
	ck_assert_uint_eq(o.part, 1);
	ck_assert_uint_eq(o.nparts, 2);
	ck_assert_double_eq(o.lead, 300);
	ck_assert_double_eq(o.end_time, 1764170000);
	ck_assert_double_eq(o.every, 3600);
}
END_TEST

START_TEST(test_supervise_parse_signal_names)
{
	int sig = 0;
	rs_err_t err;

	ck_assert_int_eq(rs_supervise_parse_signal("USR1", &sig, &err), 0);
	ck_assert_int_eq(sig, SIGUSR1);
	ck_assert_int_eq(rs_supervise_parse_signal("sigterm", &sig, &err), 0);
	ck_assert_int_eq(sig, SIGTERM);
	ck_assert_int_eq(rs_supervise_parse_signal("SIGHUP", &sig, &err), 0);
	ck_assert_int_eq(sig, SIGHUP);
	ck_assert_int_eq(rs_supervise_parse_signal("12", &sig, &err), 0);
	ck_assert_int_eq(sig, 12);
	ck_assert_int_eq(rs_supervise_parse_signal("RTMIN+2", &sig, &err), 0);
	ck_assert_int_eq(sig, SIGRTMIN + 2);
	ck_assert_int_eq(rs_supervise_parse_signal("SIGRTMAX-1", &sig, &err), 0);
	ck_assert_int_eq(sig, SIGRTMAX - 1);
	sig = 99;
	ck_assert_int_eq(rs_supervise_parse_signal("0", &sig, &err), -EINVAL);
	ck_assert_int_eq(rs_supervise_parse_signal("65", &sig, &err), -EINVAL);
	ck_assert_int_eq(rs_supervise_parse_signal("32", &sig, &err), -EINVAL);
	ck_assert_int_eq(rs_supervise_parse_signal("STOP", &sig, &err), -EINVAL);
	ck_assert_int_eq(rs_supervise_parse_signal("CHLD", &sig, &err), -EINVAL);
	ck_assert_int_eq(rs_supervise_parse_signal("RTMIN-1", &sig, &err), -EINVAL);
	ck_assert_int_eq(rs_supervise_parse_signal("USR1x", &sig, &err), -EINVAL);
	ck_assert_int_eq(rs_supervise_parse_signal("", &sig, &err), -EINVAL);
	ck_assert_int_eq(rs_supervise_parse_signal(NULL, &sig, &err), -EINVAL);
	ck_assert_int_eq(sig, 99); /* untouched on failure */
}
END_TEST

START_TEST(test_supervise_parse_seconds_and_end_time)
{
	double d = -1;
	rs_err_t err;

	ck_assert_int_eq(rs_supervise_parse_seconds("0", &d, &err), 0);
	ck_assert_double_eq(d, 0);
	ck_assert_int_eq(rs_supervise_parse_seconds("0.25", &d, &err), 0);
	ck_assert_double_eq(d, 0.25);
	ck_assert_int_eq(rs_supervise_parse_seconds("10000000000", &d, &err), 0);
	ck_assert_int_eq(rs_supervise_parse_seconds("10000000001", &d, &err), -ERANGE);
	ck_assert_int_eq(rs_supervise_parse_seconds(" 1", &d, &err), -EINVAL);
	ck_assert_int_eq(rs_supervise_parse_seconds("1.2.3", &d, &err), -EINVAL);
	ck_assert_int_eq(rs_supervise_parse_seconds(".", &d, &err), -EINVAL);
	ck_assert_int_eq(rs_supervise_parse_seconds("inf", &d, &err), -EINVAL);

	ck_assert_int_eq(rs_supervise_parse_end_time(" 1764170000\n", &d, &err), 0);
	ck_assert_double_eq(d, 1764170000);
	ck_assert_int_eq(rs_supervise_parse_end_time("", &d, &err), 0);
	ck_assert_double_eq(d, 0);
	ck_assert_int_eq(rs_supervise_parse_end_time("\n", &d, &err), 0);
	ck_assert_double_eq(d, 0);
	ck_assert_int_eq(rs_supervise_parse_end_time("17641700", &d, &err), 0);
	ck_assert_int_eq(rs_supervise_parse_end_time("1764 170000", &d, &err), -EINVAL);
	ck_assert_int_eq(rs_supervise_parse_end_time("soon", &d, &err), -EINVAL);
	ck_assert_int_eq(rs_supervise_parse_end_time(NULL, &d, &err), -EINVAL);
}
END_TEST

/* -------------------------------------------------------- exit mapping --- */

/* Real wait statuses from real children, not hand-made bit patterns. */
static int _child_status(int how)
{
	int ws;
	pid_t pid = fork();

	if (pid == 0) {
		if (how >= 0)
			_exit(how);
		/* Only non-dumping signals here: no core file from a test.
		 * Check's own SIGTERM handler (it kills the process group)
		 * is inherited: the default action is what we want. */
		signal(-how, SIG_DFL);
		kill(getpid(), -how);
		_exit(100);
	}
	waitpid(pid, &ws, 0);
	return ws;
}

START_TEST(test_supervise_exit_mapping)
{
	rs_supervise_exit_t x;

	ck_assert_int_eq(rs_supervise_exit_of(_child_status(7), &x), 0);
	ck_assert_int_eq(x.sig, 0);
	ck_assert_int_eq(x.code, 7);
	ck_assert_int_eq(x.core, 0);
	ck_assert_int_eq(rs_supervise_exit_of(_child_status(0), &x), 0);
	ck_assert_int_eq(x.code, 0);
	ck_assert_int_eq(rs_supervise_exit_of(_child_status(255), &x), 0);
	ck_assert_int_eq(x.code, 255);
	ck_assert_int_eq(rs_supervise_exit_of(_child_status(-SIGKILL), &x), 0);
	ck_assert_int_eq(x.sig, SIGKILL);
	ck_assert_int_eq(x.code, 0);
	ck_assert_int_eq(x.core, 0);
	ck_assert_int_eq(rs_supervise_exit_of(_child_status(-SIGTERM), &x), 0);
	ck_assert_int_eq(x.sig, SIGTERM);
	/* The core flag is bit 0x80 next to the signal. */
	ck_assert_int_eq(rs_supervise_exit_of(SIGSEGV | 0x80, &x), 0);
	ck_assert_int_eq(x.sig, SIGSEGV);
	ck_assert_int_eq(x.core, 1);
	/* Stopped (0x7f) and continued (0xffff) are not endings. */
	ck_assert_int_eq(rs_supervise_exit_of((SIGSTOP << 8) | 0x7f, &x), -EINVAL);
	ck_assert_int_eq(rs_supervise_exit_of(0xffff, &x), -EINVAL);
}
END_TEST

/* ---------------------------------------------------------- forwarding --- */

START_TEST(test_supervise_forwarding_decision)
{
	const pid_t self = 100, app = 200, other = 300, pg = 100;

	/* Plain signals from anyone else are forwarded. */
	ck_assert_int_eq(rs_supervise_should_forward(SIGUSR1, SI_USER, other, self, app, pg, pg, 0), 1);
	ck_assert_int_eq(rs_supervise_should_forward(SIGTERM, SI_USER, 0, self, app, pg, pg, 0), 1);
	ck_assert_int_eq(rs_supervise_should_forward(SIGRTMIN, SI_QUEUE, other, self, app, pg, pg, 0), 1);
	/* Child status reports are ours; a SIGCHLD someone sends is not. */
	ck_assert_int_eq(rs_supervise_should_forward(SIGCHLD, CLD_EXITED, app, self, app, pg, pg, 0), 0);
	ck_assert_int_eq(rs_supervise_should_forward(SIGCHLD, SI_USER, other, self, app, pg, pg, 0), 1);
	/* No echo: from the application or from ourselves. */
	ck_assert_int_eq(rs_supervise_should_forward(SIGUSR1, SI_USER, app, self, app, pg, pg, 0), 0);
	ck_assert_int_eq(rs_supervise_should_forward(SIGPIPE, SI_USER, self, self, app, pg, pg, 0), 0);
	/* tty signals reach the whole group: not again if the app is in it. */
	ck_assert_int_eq(rs_supervise_should_forward(SIGINT, SI_KERNEL, 0, self, app, pg, pg, 0), 0);
	ck_assert_int_eq(rs_supervise_should_forward(SIGINT, SI_KERNEL, 0, self, app, pg, 555, 0), 1);
	ck_assert_int_eq(rs_supervise_should_forward(SIGINT, SI_KERNEL, 0, self, app, pg, 0, 0), 1);
	/* A step's slurmstepd signals every process of the step: its copy
	 * is not passed on; anyone else's is, and the batch step's (no
	 * stepd) always is. */
	ck_assert_int_eq(rs_supervise_should_forward(SIGUSR1, SI_USER, 42, self, app, pg, pg, 42), 0);
	ck_assert_int_eq(rs_supervise_should_forward(SIGTERM, SI_USER, 42, self, app, pg, pg, 42), 0);
	ck_assert_int_eq(rs_supervise_should_forward(SIGUSR1, SI_USER, other, self, app, pg, pg, 42), 1);
	ck_assert_int_eq(rs_supervise_should_forward(SIGUSR1, SI_USER, 42, self, app, pg, pg, 0), 1);
	/* A kernel signal with no sender pid is not slurmstepd's. */
	ck_assert_int_eq(rs_supervise_should_forward(SIGINT, SI_KERNEL, 0, self, app, pg, 555, 42), 1);
}
END_TEST

/* ------------------------------------------------------- state machine --- */

static void _sm(rs_supervise_sm_t *sm, double grace, double lead, double every,
		double end, int saver)
{
	rs_supervise_opts_t o;

	rs_supervise_opts_init(&o);
	o.grace = grace;
	o.lead = lead;
	o.every = every;
	o.save_timeout = 50;
	o.role = saver ? RS_SUPERVISE_SAVER : RS_SUPERVISE_FORWARD;
	rs_supervise_sm_init(sm, &o, 1000, end);
}

START_TEST(test_supervise_sm_ready_while_idle_saves_once)
{
	rs_supervise_sm_t sm, fwd;

	/* Another step's task answered a warning this saver never saw. */
	_sm(&sm, 30, 0, 0, 0, 1);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_READY, 1005), RS_SUPERVISE_SAVE);
	ck_assert_int_eq(sm.phase, RS_SUPERVISE_SAVING);
	ck_assert_int_eq(sm.reason, RS_SUPERVISE_SIGNAL);
	ck_assert_uint_eq(sm.seq, 1);
	/* The same answer again during the save is not a second checkpoint. */
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_READY, 1006), RS_SUPERVISE_NONE);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_SAVE_DONE, 1007), RS_SUPERVISE_NONE);
	ck_assert_uint_eq(sm.seq, 1);
	/* A forwarder never saves; nor a saver whose application is gone. */
	_sm(&fwd, 30, 0, 0, 0, 0);
	ck_assert_int_eq(rs_supervise_sm_event(&fwd, RS_SUPERVISE_EV_READY, 1005), RS_SUPERVISE_NONE);
	_sm(&sm, 30, 0, 0, 0, 1);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_APP_EXIT, 1004), RS_SUPERVISE_NONE);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_READY, 1005), RS_SUPERVISE_NONE);
}
END_TEST

START_TEST(test_supervise_sm_warning_ready_save)
{
	rs_supervise_sm_t sm;

	_sm(&sm, 30, 0, 0, 0, 1);
	ck_assert_double_eq(rs_supervise_sm_next(&sm), 0);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1001), RS_SUPERVISE_NONE);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_WARNING, 1002), RS_SUPERVISE_BEGIN);
	ck_assert_int_eq(sm.phase, RS_SUPERVISE_WAITING);
	ck_assert_int_eq(sm.reason, RS_SUPERVISE_SIGNAL);
	ck_assert_uint_eq(sm.seq, 1);
	ck_assert_double_eq(rs_supervise_sm_next(&sm), 1032);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1010), RS_SUPERVISE_NONE);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_READY, 1011), RS_SUPERVISE_SAVE);
	ck_assert_int_eq(sm.phase, RS_SUPERVISE_SAVING);
	ck_assert_double_eq(rs_supervise_sm_next(&sm), 1061); /* save bound */
	/* A second warning during the save: forwarded by the caller only. */
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_WARNING, 1012), RS_SUPERVISE_NONE);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_READY, 1012), RS_SUPERVISE_NONE);
	ck_assert_uint_eq(sm.seq, 1);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_SAVE_DONE, 1020), RS_SUPERVISE_NONE);
	ck_assert_int_eq(sm.phase, RS_SUPERVISE_IDLE);
	/* After the save a new warning is a new checkpoint. */
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_WARNING, 1100), RS_SUPERVISE_BEGIN);
	ck_assert_uint_eq(sm.seq, 2);
}
END_TEST

START_TEST(test_supervise_sm_grace_expires)
{
	rs_supervise_sm_t sm;

	_sm(&sm, 30, 0, 0, 0, 1);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_WARNING, 1000), RS_SUPERVISE_BEGIN);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_WARNING, 1001), RS_SUPERVISE_NONE);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1029.9), RS_SUPERVISE_NONE);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1030), RS_SUPERVISE_SAVE);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1030), RS_SUPERVISE_NONE);
	ck_assert_uint_eq(sm.seq, 1);
}
END_TEST

START_TEST(test_supervise_sm_grace_zero_saves_at_once)
{
	rs_supervise_sm_t sm;

	_sm(&sm, 0, 0, 0, 0, 1);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_WARNING, 1000), RS_SUPERVISE_BEGIN);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1000), RS_SUPERVISE_SAVE);
}
END_TEST

START_TEST(test_supervise_sm_save_timeout_aborts_once)
{
	rs_supervise_sm_t sm;

	_sm(&sm, 0, 0, 0, 0, 1);
	rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_WARNING, 1000);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1000), RS_SUPERVISE_SAVE);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1049), RS_SUPERVISE_NONE);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1050), RS_SUPERVISE_ABORT_SAVE);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1051), RS_SUPERVISE_NONE);
	ck_assert_double_eq(rs_supervise_sm_next(&sm), 0);
	ck_assert_int_eq(sm.phase, RS_SUPERVISE_SAVING); /* until reaped */
	rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_SAVE_DONE, 1052);
	ck_assert_int_eq(sm.phase, RS_SUPERVISE_IDLE);
}
END_TEST

START_TEST(test_supervise_sm_app_exit)
{
	rs_supervise_sm_t sm;

	/* While waiting: the state is final, save at once. */
	_sm(&sm, 30, 0, 0, 0, 1);
	rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_WARNING, 1000);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_APP_EXIT, 1001), RS_SUPERVISE_SAVE);
	/* Idle: nothing, and no warning starts a sequence afterwards. */
	_sm(&sm, 30, 0, 0, 0, 1);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_APP_EXIT, 1001), RS_SUPERVISE_NONE);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_WARNING, 1002), RS_SUPERVISE_NONE);
	ck_assert_int_eq(sm.phase, RS_SUPERVISE_IDLE);
}
END_TEST

START_TEST(test_supervise_sm_term)
{
	rs_supervise_sm_t sm;

	/* SIGTERM while waiting does not cancel the sequence. */
	_sm(&sm, 30, 0, 0, 0, 1);
	rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_WARNING, 1000);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TERM, 1001), RS_SUPERVISE_NONE);
	ck_assert_int_eq(sm.phase, RS_SUPERVISE_WAITING);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_APP_EXIT, 1002), RS_SUPERVISE_SAVE);
	/* After SIGTERM, self-timed sequences are off, a warning still works. */
	_sm(&sm, 30, 60, 10, 1100, 1);
	rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TERM, 1001);
	ck_assert_double_eq(rs_supervise_sm_next(&sm), 0);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1050), RS_SUPERVISE_NONE);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_WARNING, 1050), RS_SUPERVISE_BEGIN);
}
END_TEST

START_TEST(test_supervise_sm_forward_role)
{
	rs_supervise_sm_t sm;

	_sm(&sm, 30, 60, 0, 1100, 0);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_WARNING, 1000), RS_SUPERVISE_NONE);
	ck_assert_int_eq(sm.phase, RS_SUPERVISE_IDLE);
	/* The warning came: the lead warning is not sent on top. */
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1040), RS_SUPERVISE_NONE);
	/* Without a warning the forwarder sends the lead warning, never saves. */
	_sm(&sm, 30, 60, 0, 1100, 0);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1040), RS_SUPERVISE_BEGIN);
	ck_assert_int_eq(sm.phase, RS_SUPERVISE_IDLE);
	ck_assert_int_eq(sm.reason, RS_SUPERVISE_LEAD);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1041), RS_SUPERVISE_NONE);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_APP_EXIT, 1042), RS_SUPERVISE_NONE);
}
END_TEST

START_TEST(test_supervise_sm_lead)
{
	rs_supervise_sm_t sm;

	_sm(&sm, 10, 120, 0, 1500, 1);
	ck_assert_double_eq(rs_supervise_sm_next(&sm), 1380);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1379), RS_SUPERVISE_NONE);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1380), RS_SUPERVISE_BEGIN);
	ck_assert_int_eq(sm.reason, RS_SUPERVISE_LEAD);
	ck_assert_int_eq(sm.phase, RS_SUPERVISE_WAITING);
	/* Slurm's own warning in the same window: forwarded, no second save. */
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_WARNING, 1385), RS_SUPERVISE_NONE);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1390), RS_SUPERVISE_SAVE);
	rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_SAVE_DONE, 1395);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_WARNING, 1420), RS_SUPERVISE_NONE);
	ck_assert_uint_eq(sm.seq, 1);
	ck_assert_double_eq(rs_supervise_sm_next(&sm), 0);
}
END_TEST

START_TEST(test_supervise_sm_lead_after_warning_never_fires)
{
	rs_supervise_sm_t sm;

	_sm(&sm, 10, 120, 0, 1500, 1);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_WARNING, 1370), RS_SUPERVISE_BEGIN);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1380), RS_SUPERVISE_SAVE);
	rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_SAVE_DONE, 1385);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1400), RS_SUPERVISE_NONE);
	ck_assert_uint_eq(sm.seq, 1);
}
END_TEST

START_TEST(test_supervise_sm_lead_end_moves)
{
	rs_supervise_sm_t sm;

	/* Unknown end: nothing scheduled; learning it arms the lead. */
	_sm(&sm, 10, 120, 0, 0, 1);
	ck_assert_double_eq(rs_supervise_sm_next(&sm), 0);
	rs_supervise_sm_set_end(&sm, 1500);
	ck_assert_double_eq(rs_supervise_sm_next(&sm), 1380);
	/* Lead fires, then TimeLimit is raised: a new window, fires again. */
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1380), RS_SUPERVISE_BEGIN);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_READY, 1381), RS_SUPERVISE_SAVE);
	rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_SAVE_DONE, 1382);
	rs_supervise_sm_set_end(&sm, 1500.5); /* clock noise: not a new window */
	ck_assert_double_eq(rs_supervise_sm_next(&sm), 0);
	rs_supervise_sm_set_end(&sm, 2500);
	ck_assert_double_eq(rs_supervise_sm_next(&sm), 2380);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 2380), RS_SUPERVISE_BEGIN);
	ck_assert_uint_eq(sm.seq, 2);
	/* Shortened below now + lead: fires at the next tick. */
	_sm(&sm, 10, 120, 0, 5000, 1);
	rs_supervise_sm_set_end(&sm, 1100);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1001), RS_SUPERVISE_BEGIN);
	/* Already past the end: nothing left to save for, and no spinning. */
	_sm(&sm, 10, 120, 0, 900, 1);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1001), RS_SUPERVISE_NONE);
	ck_assert_double_eq(rs_supervise_sm_next(&sm), 0);
	/* End unknown again: lead off. */
	_sm(&sm, 10, 120, 0, 1500, 1);
	rs_supervise_sm_set_end(&sm, 0);
	ck_assert_double_eq(rs_supervise_sm_next(&sm), 0);
}
END_TEST

START_TEST(test_supervise_sm_preemption_grace_rearms_lead)
{
	rs_supervise_sm_t sm;

	/* scancel / time limit: TERM, end unchanged: no self-timed save. */
	_sm(&sm, 10, 120, 0, 5000, 1);
	rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TERM, 1001);
	rs_supervise_sm_set_end(&sm, 5000);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 4900), RS_SUPERVISE_NONE);
	ck_assert(!sm.preempted);
	/* Preemption with GraceTime=20: TERM, then the end at now + 20. */
	_sm(&sm, 10, 120, 0, 5000, 1);
	rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TERM, 1001);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1001), RS_SUPERVISE_NONE);
	rs_supervise_sm_set_end(&sm, 1021);
	ck_assert(sm.preempted);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1002), RS_SUPERVISE_BEGIN);
	ck_assert_int_eq(sm.reason, RS_SUPERVISE_LEAD);
	/* Even after an earlier warning of the attempt. */
	_sm(&sm, 10, 120, 0, 5000, 1);
	rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_WARNING, 1001);
	rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_READY, 1002);
	rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_SAVE_DONE, 1003);
	rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TERM, 1010);
	rs_supervise_sm_set_end(&sm, 1030);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1011), RS_SUPERVISE_BEGIN);
	ck_assert_uint_eq(sm.seq, 2);
}
END_TEST

START_TEST(test_supervise_sm_lead_while_busy_is_covered)
{
	rs_supervise_sm_t sm;

	_sm(&sm, 100, 120, 300, 1500, 1);
	/* Periodic at 1300 is still waiting at 1380: it covers the window. */
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1300), RS_SUPERVISE_BEGIN);
	ck_assert_int_eq(sm.reason, RS_SUPERVISE_PERIODIC);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1380), RS_SUPERVISE_NONE);
	ck_assert_int_eq(sm.lead_done, 1);
	ck_assert_uint_eq(sm.seq, 1);
}
END_TEST

START_TEST(test_supervise_sm_periodic)
{
	rs_supervise_sm_t sm;

	_sm(&sm, 5, 0, 20, 0, 1);
	ck_assert_double_eq(rs_supervise_sm_next(&sm), 1020);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1019), RS_SUPERVISE_NONE);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1020), RS_SUPERVISE_BEGIN);
	ck_assert_int_eq(sm.reason, RS_SUPERVISE_PERIODIC);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1025), RS_SUPERVISE_SAVE);
	/* A save running past the next tick: that tick is skipped. */
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1041), RS_SUPERVISE_NONE);
	ck_assert_double_eq(sm.next_periodic, 1060);
	rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_SAVE_DONE, 1045);
	ck_assert_double_eq(rs_supervise_sm_next(&sm), 1060);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1060), RS_SUPERVISE_BEGIN);
	ck_assert_uint_eq(sm.seq, 2);
	/* A warning signal during a periodic sequence: no second one. */
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_WARNING, 1061), RS_SUPERVISE_NONE);
	ck_assert_uint_eq(sm.seq, 2);
}
END_TEST

START_TEST(test_supervise_sm_periodic_quiet_in_lead_window)
{
	rs_supervise_sm_t sm;

	/* end 1100, lead 30: the tick at 1080 falls in the lead window. */
	_sm(&sm, 1, 30, 20, 1100, 1);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1060), RS_SUPERVISE_BEGIN);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_READY, 1061), RS_SUPERVISE_SAVE);
	rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_SAVE_DONE, 1062);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1070), RS_SUPERVISE_BEGIN);
	ck_assert_int_eq(sm.reason, RS_SUPERVISE_LEAD);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_READY, 1071), RS_SUPERVISE_SAVE);
	rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_SAVE_DONE, 1072);
	ck_assert_int_eq(rs_supervise_sm_event(&sm, RS_SUPERVISE_EV_TICK, 1080), RS_SUPERVISE_NONE);
	ck_assert_uint_eq(sm.seq, 2);
}
END_TEST

START_TEST(test_supervise_next_periodic_grid)
{
	ck_assert_double_eq(rs_supervise_next_periodic(100, 10, 100), 110);
	ck_assert_double_eq(rs_supervise_next_periodic(100, 10, 109.9), 110);
	ck_assert_double_eq(rs_supervise_next_periodic(100, 10, 110), 120);
	ck_assert_double_eq(rs_supervise_next_periodic(100, 10, 155), 160);
	ck_assert_double_eq(rs_supervise_next_periodic(100, 10, 50), 110);
	ck_assert_double_eq(rs_supervise_next_periodic(100, 0, 150), 0);
	ck_assert_double_eq(rs_supervise_next_periodic(0, 0.1, 0.3), 0.4);
}
END_TEST

/* --------------------------------------------------------- status line --- */

static void _save_status(rs_supervise_status_t *s)
{
	memset(s, 0, sizeof(*s));
	s->event = RS_SUPERVISE_ST_SAVE;
	s->time = 1764170000.125;
	s->pid = 4321;
	strcpy(s->job, "42_3");
	s->attempt = 2;
	strcpy(s->node, "n 1=%x");
	s->part = 1;
	s->nparts = 3;
	s->reason = RS_SUPERVISE_PERIODIC;
	s->seq = 5;
	s->ok = 0;
	s->gen = 17;
	s->published = 1;
	s->files = 120;
	s->copied = UINT64_MAX;
	s->linked = 3565158;
	s->seconds = 0.21;
	strcpy(s->error, "checkpoint /c: No space left on device\n\t%");
}

START_TEST(test_supervise_status_round_trip)
{
	rs_supervise_status_t in, out;
	char line[RS_SUPERVISE_STATUS_MAX];
	rs_err_t err;
	int n;

	_save_status(&in);
	n = rs_supervise_status_format(&in, line, sizeof(line));
	ck_assert_int_gt(n, 0);
	ck_assert_int_eq((int)strlen(line), n);
	ck_assert_str_eq(line, "rs1 save time=1764170000.125 pid=4321 job=42_3 attempt=2 "
		"node=n%201%3D%25x part=1 nparts=3 reason=periodic seq=5 result=fail "
		"gen=17 published=1 files=120 copied=18446744073709551615 "
		"linked=3565158 seconds=0.210 "
		"error=checkpoint%20/c:%20No%20space%20left%20on%20device%0A%09%25\n");
	ck_assert_int_eq(rs_supervise_status_parse(line, &out, &err), 0);
	ck_assert_int_eq(out.event, RS_SUPERVISE_ST_SAVE);
	ck_assert_double_eq_tol(out.time, in.time, 1e-6);
	ck_assert_int_eq(out.pid, 4321);
	ck_assert_str_eq(out.job, "42_3");
	ck_assert_str_eq(out.node, in.node);
	ck_assert_uint_eq(out.part, 1);
	ck_assert_uint_eq(out.nparts, 3);
	ck_assert_int_eq(out.reason, RS_SUPERVISE_PERIODIC);
	ck_assert_uint_eq(out.seq, 5);
	ck_assert_int_eq(out.ok, 0);
	ck_assert_int_eq(out.gen, 17);
	ck_assert_int_eq(out.published, 1);
	ck_assert_uint_eq(out.files, 120);
	ck_assert(out.copied == UINT64_MAX);
	ck_assert_uint_eq(out.linked, 3565158);
	ck_assert_double_eq_tol(out.seconds, 0.21, 1e-9);
	/* error= comes back escaped: the control bytes as \xhh */
	ck_assert_str_eq(out.error,
			 "checkpoint /c: No space left on device\\x0a\\x09%");

	/* exit by signal, warning, exit by code */
	memset(&in, 0, sizeof(in));
	in.event = RS_SUPERVISE_ST_EXIT;
	in.time = 1;
	in.pid = 9;
	in.nparts = 1;
	in.sig = SIGSEGV;
	in.core = 1;
	n = rs_supervise_status_format(&in, line, sizeof(line));
	ck_assert_str_eq(line, "rs1 exit time=1.000 pid=9 attempt=0 part=0 nparts=1 sig=11 core=1\n");
	ck_assert_int_eq(rs_supervise_status_parse(line, &out, &err), 0);
	ck_assert_int_eq(out.sig, SIGSEGV);
	ck_assert_int_eq(out.core, 1);
	ck_assert_str_eq(out.job, "");
	in.sig = 0;
	in.code = 7;
	rs_supervise_status_format(&in, line, sizeof(line));
	ck_assert_str_eq(line, "rs1 exit time=1.000 pid=9 attempt=0 part=0 nparts=1 code=7\n");
	ck_assert_int_eq(rs_supervise_status_parse(line, &out, &err), 0);
	ck_assert_int_eq(out.code, 7);
	ck_assert_int_eq(out.sig, 0);
	in.event = RS_SUPERVISE_ST_WARNING;
	in.reason = RS_SUPERVISE_LEAD;
	in.seq = 1;
	rs_supervise_status_format(&in, line, sizeof(line));
	ck_assert_str_eq(line, "rs1 warning time=1.000 pid=9 attempt=0 part=0 nparts=1 reason=lead seq=1\n");
	ck_assert_int_eq(rs_supervise_status_parse(line, &out, &err), 0);
	ck_assert_int_eq(out.reason, RS_SUPERVISE_LEAD);
	ck_assert_int_eq(out.gen, -1);
}
END_TEST

START_TEST(test_supervise_status_format_limits)
{
	rs_supervise_status_t in;
	char small[40], line[RS_SUPERVISE_STATUS_MAX];

	_save_status(&in);
	ck_assert_int_eq(rs_supervise_status_format(&in, small, sizeof(small)), -ENOSPC);
	ck_assert_str_eq(small, "");
	/* A maximal error message (every byte escaped) does not fit one line. */
	memset(in.error, ' ', sizeof(in.error) - 1);
	in.error[sizeof(in.error) - 1] = '\0';
	memset(in.job, ' ', sizeof(in.job) - 1);
	in.job[sizeof(in.job) - 1] = '\0';
	memset(in.node, ' ', sizeof(in.node) - 1);
	in.node[sizeof(in.node) - 1] = '\0';
	ck_assert_int_eq(rs_supervise_status_format(&in, line, sizeof(line)), 0 - ENOSPC);
	in.event = 0;
	ck_assert_int_eq(rs_supervise_status_format(&in, line, sizeof(line)), -EINVAL);
}
END_TEST

static const char *bad_lines[] = {
	"",
	"rs2 exit time=1 pid=2 code=0",
	"rs1 dance time=1 pid=2",
	"rs1 exit time=1 pid=2",                       /* neither code nor sig */
	"rs1 exit time=1 pid=2 code=1 sig=9",          /* both */
	"rs1 exit time=1 pid=2 code=1 code=1",         /* repeated */
	"rs1 exit time=1 pid=2 code=256",
	"rs1 exit time=1 pid=2 code=1 core=1",         /* core without sig */
	"rs1 exit time=1 pid=2 sig=0",
	"rs1 exit time=1 pid=2 code=1 colour=red",     /* unknown key */
	"rs1 exit time=1 pid=2 code=1 reason=lead",    /* key of another event */
	"rs1 exit time=1 pid=2 code",                  /* not key=value */
	"rs1 exit pid=2 code=1",                       /* no time */
	"rs1 exit time=x pid=2 code=1",
	"rs1 exit time=1 pid=-2 code=1",
	"rs1 warning time=1 pid=2 seq=1",              /* no reason */
	"rs1 warning time=1 pid=2 reason=whim seq=1",
	"rs1 save time=1 pid=2 reason=signal seq=1",   /* no result */
	"rs1 save time=1 pid=2 reason=signal seq=1 result=maybe",
	"rs1 save time=1 pid=2 reason=signal seq=1 result=ok published=2",
	"rs1 save time=1 pid=2 reason=signal seq=1 result=ok error=a%2",
	"rs1 save time=1 pid=2 reason=signal seq=1 result=ok error=a%00b",
	"rs1 save time=1 pid=2 reason=signal seq=1 result=ok job=a=b",
	"rs1 exit time=1 pid=2 code=1\nrs1 exit time=1 pid=2 code=1",
	/* identifiers that decode to control bytes or non-ASCII */
	"rs1 save time=1 pid=2 reason=signal seq=1 result=ok job=42%0A",
	"rs1 save time=1 pid=2 reason=signal seq=1 result=ok node=n1%1B%5B2J",
	"rs1 exit time=1 pid=2 code=1 node=n%7F",
	"rs1 exit time=1 pid=2 code=1 job=%C3%A9",
};

START_TEST(test_supervise_status_parse_rejects)
{
	rs_supervise_status_t s;
	rs_err_t err;

	rs_err_clear(&err);
	ck_assert_msg(rs_supervise_status_parse(bad_lines[_i], &s, &err) == -EINVAL,
		      "accepted: %s", bad_lines[_i]);
	ck_assert_msg(strncmp(err.msg, "status line: ", 13) == 0, "message: %s", err.msg);
}
END_TEST

/* A user's process writes the status line; a percent-encoded newline in
 * error= must not turn into a forged slurmd log line. */
START_TEST(test_supervise_status_error_cannot_forge_a_log_line)
{
	rs_supervise_status_t s;
	rs_err_t err;
	const char *line =
		"rs1 save time=1 pid=2 job=99 reason=signal seq=1 result=fail "
		"error=x%0A[2026-01-01T00:00:00.000]%20resilience:%20job%2099:"
		"%20checkpoint%20gen-000001%20saved%1B%5B2K%7F%FF%5C\n";

	ck_assert_int_eq(rs_supervise_status_parse(line, &s, &err), 0);
	ck_assert_ptr_null(strchr(s.error, '\n'));
	ck_assert_int_eq(rs_text_is_printable(s.error), 1);
	ck_assert_str_eq(s.error, "x\\x0a[2026-01-01T00:00:00.000] resilience: "
			 "job 99: checkpoint gen-000001 saved\\x1b[2K\\x7f"
			 "\\xff\\\\");
	ck_assert_str_eq(s.job, "99");
	/* printable text is kept as it is, backslashes included */
	ck_assert_int_eq(rs_supervise_status_parse(
		"rs1 save time=1 pid=2 reason=signal seq=1 result=fail "
		"error=C:%5Cx0a%20~", &s, &err), 0);
	ck_assert_str_eq(s.error, "C:\\x0a ~");
}
END_TEST

/* The longest encoded error decodes to RS_ERR_MAX - 1 bytes; escaped it
 * is cut with "..." and still NUL-terminated inside s.error. */
START_TEST(test_supervise_status_error_escape_is_bounded)
{
	rs_supervise_status_t s;
	char line[RS_SUPERVISE_STATUS_MAX];
	rs_err_t err;
	int n = snprintf(line, sizeof(line),
			 "rs1 save time=1 pid=2 reason=signal seq=1 result=fail error=");

	for (int i = 0; i < RS_ERR_MAX - 1; i++)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "%%0A");
	ck_assert_int_lt(n, (int)sizeof(line) - 1);
	ck_assert_int_eq(rs_supervise_status_parse(line, &s, &err), 0);
	ck_assert_uint_eq(strlen(s.error), 1023);
	ck_assert_str_eq(s.error + 1020, "...");
	ck_assert_int_eq(strncmp(s.error, "\\x0a\\x0a", 8), 0);
	ck_assert_int_eq(rs_text_is_printable(s.error), 1);
}
END_TEST

/* A line longer than RS_SUPERVISE_STATUS_MAX is refused whole. */
START_TEST(test_supervise_status_parse_refuses_a_long_line)
{
	rs_supervise_status_t s;
	rs_err_t err;
	char *line = malloc(3 * RS_SUPERVISE_STATUS_MAX);
	int n;

	ck_assert_ptr_nonnull(line);
	n = sprintf(line, "rs1 save time=1 pid=2 reason=signal seq=1 result=fail error=");
	memset(line + n, 'a', 3 * RS_SUPERVISE_STATUS_MAX - (size_t)n - 1);
	line[3 * RS_SUPERVISE_STATUS_MAX - 1] = '\0';
	ck_assert_int_eq(rs_supervise_status_parse(line, &s, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "status line: longer than 4096 bytes");
	/* one byte over the maximum (newline included) is too long; at the
	 * maximum the length passes (and error= is then too long to decode) */
	line[RS_SUPERVISE_STATUS_MAX] = '\n';
	line[RS_SUPERVISE_STATUS_MAX + 1] = '\0';
	ck_assert_int_eq(rs_supervise_status_parse(line, &s, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "status line: longer than 4096 bytes");
	line[RS_SUPERVISE_STATUS_MAX - 1] = '\n';
	line[RS_SUPERVISE_STATUS_MAX] = '\0';
	ck_assert_int_eq(rs_supervise_status_parse(line, &s, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "status line: bad value for 'error'");
	free(line);
}
END_TEST

START_TEST(test_supervise_status_last_picks_the_last_whole_line)
{
	char path[] = "/tmp/test_supervise_XXXXXX";
	rs_supervise_status_t s;
	rs_err_t err;
	int fd = mkstemp(path);
	const char *text =
		"rs1 warning time=1 pid=2 reason=signal seq=1\n"
		"rs1 save time=2 pid=2 reason=signal seq=1 result=fail error=x\n"
		"garbage line\n"
		"rs1 save time=3 pid=2 reason=lead seq=2 result=ok gen=4\n"
		"rs1 exit time=4 pid=2 code=0\n"
		"rs1 save time=5 pid=2 reason=lead seq=3 result=ok gen=9"; /* cut short */

	ck_assert_int_ge(fd, 0);
	unlink(path);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	lseek(fd, 0, SEEK_SET);
	ck_assert_int_eq(rs_supervise_status_last(fd, RS_SUPERVISE_ST_SAVE, &s, &err), 0);
	ck_assert_double_eq(s.time, 3);
	ck_assert_int_eq(s.gen, 4);
	ck_assert_int_eq(s.ok, 1);
	ck_assert_int_eq(s.reason, RS_SUPERVISE_LEAD);
	lseek(fd, 0, SEEK_SET);
	ck_assert_int_eq(rs_supervise_status_last(fd, RS_SUPERVISE_ST_EXIT, &s, &err), 0);
	ck_assert_int_eq(s.code, 0);
	ck_assert_double_eq(s.time, 4);
	ftruncate(fd, 0);
	lseek(fd, 0, SEEK_SET);
	ck_assert_int_eq(rs_supervise_status_last(fd, RS_SUPERVISE_ST_SAVE, &s, &err), -ENOENT);
	ck_assert_str_eq(err.msg, "status file: no save line");
	close(fd);
	ck_assert_int_eq(rs_supervise_status_last(fd, RS_SUPERVISE_ST_SAVE, &s, &err), -EBADF);
}
END_TEST

START_TEST(test_supervise_status_last_reads_only_the_tail)
{
	char path[] = "/tmp/test_supervise_XXXXXX";
	const char *filler = "rs1 exit time=1 pid=2 code=1\n";
	rs_supervise_status_t s;
	rs_err_t err;
	char buf[64 * 1024];
	size_t fl = strlen(filler), n = 0;
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	unlink(path);
	while (n + fl < sizeof(buf)) {
		memcpy(buf + n, filler, fl);
		n += fl;
	}
	/* 2 MiB of filler, then the line that matters. */
	for (int i = 0; i < 32; i++)
		ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
	dprintf(fd, "rs1 exit time=9 pid=2 sig=9 core=0\n");
	lseek(fd, 0, SEEK_SET);
	ck_assert_int_eq(rs_supervise_status_last(fd, RS_SUPERVISE_ST_EXIT, &s, &err), 0);
	ck_assert_int_eq(s.sig, 9);
	ck_assert_double_eq(s.time, 9);
	close(fd);
}
END_TEST

/* ------------------------------------------------------------ messages --- */

START_TEST(test_supervise_messages)
{
	rs_supervise_status_t s;
	char buf[2048];

	rs_supervise_format_bytes(0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "0 B");
	rs_supervise_format_bytes(1023, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1023 B");
	rs_supervise_format_bytes(1024, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1.0 KiB");
	rs_supervise_format_bytes(1258291, buf, sizeof(buf));
	ck_assert_str_eq(buf, "1.2 MiB");
	rs_supervise_format_bytes(UINT64_MAX, buf, sizeof(buf));
	ck_assert_str_eq(buf, "16.0 EiB");

	_save_status(&s);
	s.ok = 1;
	s.error[0] = '\0';
	s.gen = 3;
	s.copied = 1258291;
	s.nparts = 1;
	rs_supervise_format_save(&s, "/scratch", "/ckpt", buf, sizeof(buf));
	ck_assert_str_eq(buf, "resilience: checkpoint gen-000003 saved: 120 files, "
			 "1.2 MiB copied, 3.4 MiB linked, 0.21 s\n");
	s.nparts = 3;
	s.published = 0;
	rs_supervise_format_save(&s, "/scratch", "/ckpt", buf, sizeof(buf));
	/* part 1 is the second of three: "part 2/3", as in the slurmd log */
	ck_assert_str_eq(buf, "resilience: checkpoint gen-000003 part 2/3 saved: 120 files, "
			 "1.2 MiB copied, 3.4 MiB linked, 0.21 s (other parts pending)\n");
	s.ok = 0;
	strcpy(s.error, "checkpoint /ckpt: No space left on device");
	rs_supervise_format_save(&s, "/scratch", "/ckpt", buf, sizeof(buf));
	ck_assert_str_eq(buf, "resilience: checkpoint of /scratch into /ckpt failed: "
			 "checkpoint /ckpt: No space left on device\n");
}
END_TEST

static Suite *supervise_suite(void)
{
	Suite *s = suite_create("supervise");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_test(tc, test_supervise_parse_every_option);
	tcase_add_test(tc, test_supervise_parse_defaults_and_pid);
	tcase_add_loop_test(tc, test_supervise_parse_errors, 0,
			    (int)(sizeof(bad_cases) / sizeof(bad_cases[0])));
	tcase_add_test(tc, test_supervise_parse_error_keeps_the_application);
	tcase_add_test(tc, test_supervise_argv_round_trip);
	tcase_add_test(tc, test_supervise_argv_too_small);
	tcase_add_loop_test(tc, test_supervise_accepts_the_plugin_command_line, 0, 2);
	tcase_add_test(tc, test_supervise_parse_signal_names);
	tcase_add_test(tc, test_supervise_parse_seconds_and_end_time);
	suite_add_tcase(s, tc);

	tc = tcase_create("exit_mapping");
	tcase_add_test(tc, test_supervise_exit_mapping);
	suite_add_tcase(s, tc);

	tc = tcase_create("forwarding");
	tcase_add_test(tc, test_supervise_forwarding_decision);
	suite_add_tcase(s, tc);

	tc = tcase_create("state_machine");
	tcase_add_test(tc, test_supervise_sm_warning_ready_save);
	tcase_add_test(tc, test_supervise_sm_ready_while_idle_saves_once);
	tcase_add_test(tc, test_supervise_sm_grace_expires);
	tcase_add_test(tc, test_supervise_sm_grace_zero_saves_at_once);
	tcase_add_test(tc, test_supervise_sm_save_timeout_aborts_once);
	tcase_add_test(tc, test_supervise_sm_app_exit);
	tcase_add_test(tc, test_supervise_sm_term);
	tcase_add_test(tc, test_supervise_sm_forward_role);
	suite_add_tcase(s, tc);

	tc = tcase_create("self_timed");
	tcase_add_test(tc, test_supervise_sm_lead);
	tcase_add_test(tc, test_supervise_sm_lead_after_warning_never_fires);
	tcase_add_test(tc, test_supervise_sm_lead_end_moves);
	tcase_add_test(tc, test_supervise_sm_lead_while_busy_is_covered);
	tcase_add_test(tc, test_supervise_sm_periodic);
	tcase_add_test(tc, test_supervise_sm_periodic_quiet_in_lead_window);
	tcase_add_test(tc, test_supervise_next_periodic_grid);
	suite_add_tcase(s, tc);

	tc = tcase_create("status_line");
	tcase_add_test(tc, test_supervise_status_round_trip);
	tcase_add_test(tc, test_supervise_status_format_limits);
	tcase_add_loop_test(tc, test_supervise_status_parse_rejects, 0,
			    (int)(sizeof(bad_lines) / sizeof(bad_lines[0])));
	tcase_add_test(tc, test_supervise_status_error_cannot_forge_a_log_line);
	tcase_add_test(tc, test_supervise_status_error_escape_is_bounded);
	tcase_add_test(tc, test_supervise_status_parse_refuses_a_long_line);
	tcase_add_test(tc, test_supervise_status_last_picks_the_last_whole_line);
	tcase_add_test(tc, test_supervise_status_last_reads_only_the_tail);
	suite_add_tcase(s, tc);

	tc = tcase_create("messages");
	tcase_add_test(tc, test_supervise_messages);
	tcase_add_test(tc, test_supervise_sm_preemption_grace_rearms_lead);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(supervise_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
