/* Unit tests: site policy, paths and pattern expansion
 * (src/policy.c, src/path.c, src/pattern.c). */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "path.h"
#include "pattern.h"
#include "policy.h"

static rs_policy_t p;
static rs_err_t e;

static int pol(const char *a0, const char *a1, const char *a2)
{
	char *argv[3] = { (char *)a0, (char *)a1, (char *)a2 };
	int argc = a2 ? 3 : a1 ? 2 : a0 ? 1 : 0;

	memset(&e, 0, sizeof(e));
	return rs_policy_parse(argc, argv, &p, &e);
}

static int check(const char *specs)
{
	rs_spec_t s;

	ck_assert_int_eq(rs_spec_parse(specs, &s, NULL), 0);
	memset(&e, 0, sizeof(e));
	return rs_policy_check_spec(&p, &s, &e);
}

/* ------------------------------------------------------------ policy --- */
START_TEST(test_policy_defaults)
{
	ck_assert_int_eq(pol(NULL, NULL, NULL), 0);
	ck_assert_uint_eq(p.nroots, 0);
	ck_assert_int_eq(p.max_retries, -1);
	ck_assert_int_eq(p.max_requeues, -1);
	ck_assert_int_eq(p.max_backoff, -1);
	ck_assert_int_eq(p.metrics.timeout_ms, 2000);
	ck_assert_ptr_null(p.metrics.url);
	ck_assert_int_eq(p.metrics.format, RS_METRICS_JSON);
	ck_assert_int_eq(p.metrics.alert_format, RS_ALERT_ALERTMANAGER);
	ck_assert_str_eq(p.default_spec, "");
	ck_assert_int_eq(check("retries=1000,backoff=1d"), 0);
}
END_TEST

START_TEST(test_policy_every_key)
{
	char *argv[] = {
		"ckpt_roots=/lustre//p/:/scratch", "max_retries=3",
		"max_requeues=10", "max_backoff=1h", "min_every=5m",
		"default=retries=1", "state_dir=/var/lib/rs",
		"metrics_url=http://127.0.0.1:8123/",
		"metrics_format=clickhouse", "clickhouse_table=db.jobs",
		"clickhouse_credentials=/etc/rs/ch", "token_file=/etc/rs/token",
		"spool_dir=/var/spool/rs", "timeout_ms=500",
		"alert_url=http://127.0.0.1:9093/api/v2/alerts",
		"alert_format=json", "cluster=hpc-1",
	};

	ck_assert_int_eq(rs_policy_parse(17, argv, &p, &e), 0);
	ck_assert_uint_eq(p.nroots, 2);
	ck_assert_str_eq(p.roots[0], "/lustre/p");
	ck_assert_str_eq(p.roots[1], "/scratch");
	ck_assert_int_eq(p.max_retries, 3);
	ck_assert_int_eq(p.max_requeues, 10);
	ck_assert_int_eq(p.max_backoff, 3600);
	ck_assert_uint_eq(p.min_every, 300);
	ck_assert_str_eq(p.default_spec, "retries=1");
	ck_assert_str_eq(p.state_dir, "/var/lib/rs");
	ck_assert_int_eq(p.metrics.format, RS_METRICS_CLICKHOUSE);
	ck_assert_str_eq(p.metrics.clickhouse_table, "db.jobs");
	ck_assert_int_eq(p.metrics.timeout_ms, 500);
	ck_assert_int_eq(p.metrics.alert_format, RS_ALERT_JSON);
	ck_assert_str_eq(p.metrics.cluster, "hpc-1");
	ck_assert_str_eq(p.metrics.url, "http://127.0.0.1:8123/");
}
END_TEST

START_TEST(test_policy_errors_name_the_argument)
{
	ck_assert_int_eq(pol("max_retries=lots", NULL, NULL), -EINVAL);
	ck_assert_str_eq(e.msg, "max_retries=lots: 'lots' is not a whole number");
	ck_assert_int_eq(pol("max_retry=1", NULL, NULL), -ENOENT);
	ck_assert_ptr_nonnull(strstr(e.msg, "unknown argument 'max_retry'"));
	ck_assert_int_eq(pol("noequals", NULL, NULL), -EINVAL);
	ck_assert_int_eq(pol("max_retries=", NULL, NULL), -EINVAL);
	ck_assert_int_eq(pol("=3", NULL, NULL), -EINVAL);
	ck_assert_int_eq(pol("max_retries=1", "max_retries=2", NULL), -EINVAL);
	ck_assert_str_eq(e.msg, "max_retries: given twice");
	ck_assert_int_eq(pol("ckpt_roots=relative", NULL, NULL), -EINVAL);
	ck_assert_int_eq(pol("ckpt_roots=/a::/b", NULL, NULL), -EINVAL);
	ck_assert_int_eq(pol("ckpt_roots=/a/%u", NULL, NULL), -EINVAL);
	ck_assert_int_eq(pol("metrics_url=ftp://x", NULL, NULL), -EINVAL);
	ck_assert_int_eq(pol("metrics_format=influx", NULL, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "metrics_format"));
	ck_assert_int_eq(pol("alert_format=pager", NULL, NULL), -EINVAL);
	ck_assert_int_eq(pol("timeout_ms=0", NULL, NULL), -EINVAL);
	ck_assert_int_eq(pol("timeout_ms=60001", NULL, NULL), -EINVAL);
	ck_assert_int_eq(pol("metrics_url=http://u:hunter2@h/", NULL, NULL), -EINVAL);
	ck_assert_ptr_null(strstr(e.msg, "hunter2"));
	ck_assert_int_eq(pol("clickhouse_table=x;drop", NULL, NULL), -EINVAL);
	ck_assert_int_eq(pol("cluster=a b", NULL, NULL), -EINVAL);
	ck_assert_int_eq(pol("token_file=token", NULL, NULL), -EINVAL);
	ck_assert_int_eq(pol("default=retries=x", NULL, NULL), -EINVAL);
	ck_assert_int_eq(pol("default=help", NULL, NULL), -EINVAL);
	/* The site default must respect the site's own caps. */
	ck_assert_int_eq(pol("max_retries=1", "default=retries=2", NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "max_retries=1"));
}
END_TEST

START_TEST(test_policy_timeouts)
{
	/* defaults */
	ck_assert_int_eq(pol(NULL, NULL, NULL), 0);
	ck_assert_uint_eq(p.file_timeout_ms, 20000);
	ck_assert_uint_eq(p.restore_timeout_ms, 120000);
	/* parsed like min_every, stored in ms */
	ck_assert_int_eq(pol("file_timeout=45s", "restore_timeout=1h", NULL), 0);
	ck_assert_uint_eq(p.file_timeout_ms, 45000);
	ck_assert_uint_eq(p.restore_timeout_ms, 3600000);
	ck_assert_int_eq(pol("file_timeout=1", "restore_timeout=1s", NULL), 0);
	ck_assert_uint_eq(p.file_timeout_ms, 1000);
	ck_assert_uint_eq(p.restore_timeout_ms, 1000);
	ck_assert_int_eq(pol("file_timeout=10m", "restore_timeout=1m30s",
			     NULL), 0);
	ck_assert_uint_eq(p.file_timeout_ms, 600000);
	ck_assert_uint_eq(p.restore_timeout_ms, 90000);
	/* bounds, named in the message */
	ck_assert_int_eq(pol("file_timeout=0", NULL, NULL), -ERANGE);
	ck_assert_str_eq(e.msg, "file_timeout=0: must be from 1s to 10m");
	ck_assert_int_eq(pol("file_timeout=10m1s", NULL, NULL), -ERANGE);
	ck_assert_int_eq(pol("restore_timeout=1h1s", NULL, NULL), -ERANGE);
	ck_assert_str_eq(e.msg, "restore_timeout=1h1s: must be from 1s to 1h");
	ck_assert_int_eq(pol("restore_timeout=0", NULL, NULL), -ERANGE);
	ck_assert_int_eq(pol("file_timeout=soon", NULL, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "file_timeout=soon: "));
	ck_assert_int_eq(pol("file_timeout=1s", "file_timeout=2s", NULL),
			 -EINVAL);
	ck_assert_str_eq(e.msg, "file_timeout: given twice");
	ck_assert_ptr_nonnull(strstr(rs_policy_keys(), "file_timeout"));
	ck_assert_ptr_nonnull(strstr(rs_policy_keys(), "restore_timeout"));
}
END_TEST

START_TEST(test_policy_roots_bound)
{
	char buf[RS_MAX_ROOTS * 4 + 32] = "ckpt_roots=";
	int i;

	for (i = 0; i < RS_MAX_ROOTS; i++)
		sprintf(buf + strlen(buf), "%s/r%d", i ? ":" : "", i);
	ck_assert_int_eq(pol(buf, NULL, NULL), 0);
	ck_assert_uint_eq(p.nroots, RS_MAX_ROOTS);
	strcat(buf, ":/one-more");
	ck_assert_int_eq(pol(buf, NULL, NULL), -E2BIG);
}
END_TEST

START_TEST(test_policy_caps)
{
	ck_assert_int_eq(pol("max_retries=2", "max_backoff=10m", "min_every=1h"), 0);
	ck_assert_int_eq(check("retries=2"), 0);
	ck_assert_int_eq(check("retries=3"), -EPERM);
	ck_assert_str_eq(e.msg, "retries=3 is over the site cap max_retries=2");
	ck_assert_int_eq(check("backoff=10m"), 0);
	ck_assert_int_eq(check("backoff=11m"), -EPERM);
	ck_assert_str_eq(e.msg, "backoff is over the site cap max_backoff=10m");
	ck_assert_int_eq(check("ckpt=/a,every=1h"), 0);
	ck_assert_int_eq(check("ckpt=/a,every=59m"), -EPERM);
	ck_assert_str_eq(e.msg, "every is under the site minimum min_every=1h");
	ck_assert_int_eq(check("off"), 0);
}
END_TEST

START_TEST(test_policy_roots_at_submit)
{
	ck_assert_int_eq(pol("ckpt_roots=/lustre/p:/scratch", NULL, NULL), 0);
	ck_assert_int_eq(check("ckpt=/lustre/p/%u/%j"), 0);
	ck_assert_int_eq(check("ckpt=/lustre/p/run1"), 0);
	ck_assert_int_eq(check("ckpt=/lustre/p/%j"), 0);
	ck_assert_int_eq(check("ckpt=/scratch/x%j/y"), 0);
	ck_assert_int_eq(check("ckpt=/lustre/p"), -EPERM);
	ck_assert_int_eq(check("ckpt=/lustre/p2/x"), -EPERM);
	ck_assert_ptr_nonnull(strstr(e.msg, "ckpt_roots=/lustre/p:/scratch"));
	/* '..' never reaches the roots check: the SPEC itself is refused
	 * (it was -EPERM here before issue #11) */
	{
		rs_spec_t sp;

		ck_assert_int_eq(rs_spec_parse("ckpt=/lustre/p/../q/%j", &sp,
					       &e), -EINVAL);
		ck_assert_int_eq(rs_spec_parse("ckpt=/lustre/p/a/../../q", &sp,
					       &e), -EINVAL);
		ck_assert_ptr_nonnull(strstr(e.msg, "'..' is not allowed"));
	}
	ck_assert_int_eq(check("ckpt=/tmp/%j"), -EPERM);
	ck_assert_int_eq(check("ckpt=/lustre%j"), -EPERM);
	ck_assert_int_eq(check("retries=1"), 0);
}
END_TEST

START_TEST(test_policy_roots_on_node_resolve_symlinks)
{
	char dir[] = "/tmp/rs-policy-XXXXXX", root[256], link[PATH_MAX];
	char path[PATH_MAX], arg[PATH_MAX + 16];

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(root, sizeof(root), "%s/root", dir);
	ck_assert_int_eq(mkdir(root, 0700), 0);
	snprintf(link, sizeof(link), "%s/out", root);
	ck_assert_int_eq(symlink("/etc", link), 0);
	snprintf(arg, sizeof(arg), "ckpt_roots=%s", root);
	ck_assert_int_eq(pol(arg, NULL, NULL), 0);

	snprintf(path, sizeof(path), "%s/job/42", root);
	ck_assert_int_eq(rs_policy_check_ckpt_path(&p, path, &e), 0);
	snprintf(path, sizeof(path), "%s/out/42", root);
	ck_assert_int_eq(rs_policy_check_ckpt_path(&p, path, &e), -EPERM);
	ck_assert_ptr_nonnull(strstr(e.msg, "resolves to /etc/42"));
	snprintf(path, sizeof(path), "%s/../x", root);
	ck_assert_int_eq(rs_policy_check_ckpt_path(&p, path, &e), -EPERM);
	ck_assert_int_eq(rs_policy_check_ckpt_path(&p, "rel", &e), -EINVAL);

	unlink(link);
	rmdir(root);
	rmdir(dir);
}
END_TEST

/* -------------------------------------------------------------- path --- */
START_TEST(test_path_normalize)
{
	char out[64];

	ck_assert_int_eq(rs_path_normalize("/a//b/./c/", out, sizeof(out), &e), 0);
	ck_assert_str_eq(out, "/a/b/c");
	ck_assert_int_eq(rs_path_normalize("/a/b/../../..", out, sizeof(out), &e), 0);
	ck_assert_str_eq(out, "/");
	ck_assert_int_eq(rs_path_normalize("/", out, sizeof(out), &e), 0);
	ck_assert_str_eq(out, "/");
	ck_assert_int_eq(rs_path_normalize("/a/..b/c", out, sizeof(out), &e), 0);
	ck_assert_str_eq(out, "/a/..b/c");
	ck_assert_int_eq(rs_path_normalize("a/b", out, sizeof(out), &e), -EINVAL);
	ck_assert_int_eq(rs_path_normalize(NULL, out, sizeof(out), &e), -EINVAL);
	ck_assert_int_eq(rs_path_normalize("/abcdef", out, 5, &e), -ENAMETOOLONG);
	ck_assert_int_eq(rs_path_normalize("/abc", out, 5, &e), 0);
}
END_TEST

START_TEST(test_path_is_under)
{
	ck_assert_int_eq(rs_path_is_under("/data/x", "/data"), 1);
	ck_assert_int_eq(rs_path_is_under("/data", "/data"), 1);
	ck_assert_int_eq(rs_path_is_under("/data2/x", "/data"), 0);
	ck_assert_int_eq(rs_path_is_under("/dat", "/data"), 0);
	ck_assert_int_eq(rs_path_is_under("/anything", "/"), 1);
}
END_TEST

START_TEST(test_path_resolve)
{
	char out[PATH_MAX], want[64];

	/* /proc/self is a symlink to /proc/<pid>: resolved first, then ".."
	 * drops the missing x of /proc/<pid>. */
	snprintf(want, sizeof(want), "/proc/%d/not/there", (int)getpid());
	ck_assert_int_eq(rs_path_resolve("/proc/self/x/../not/there", out,
					 sizeof(out), &e), 0);
	ck_assert_str_eq(out, want);
	ck_assert_int_eq(rs_path_resolve("/does-not-exist/a", out, sizeof(out),
					 &e), 0);
	ck_assert_str_eq(out, "/does-not-exist/a");
}
END_TEST

/* ROOT/link/../x is where link's parent is, not ROOT/x (issue #11): the
 * site's ckpt_roots cannot be left through a symlink and "..". */
START_TEST(test_path_resolve_dotdot_after_symlink_is_physical)
{
	char dir[] = "/tmp/rs-resolve-XXXXXX", real[PATH_MAX];
	char a[PATH_MAX + 64], b[PATH_MAX + 64], out[PATH_MAX];
	char want[PATH_MAX + 64];

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_ptr_nonnull(realpath(dir, real));
	snprintf(a, sizeof(a), "%s/root", dir);
	ck_assert_int_eq(mkdir(a, 0700), 0);
	snprintf(a, sizeof(a), "%s/out", dir);
	ck_assert_int_eq(mkdir(a, 0700), 0);
	snprintf(a, sizeof(a), "%s/out/deep", dir);
	ck_assert_int_eq(mkdir(a, 0700), 0);
	snprintf(b, sizeof(b), "%s/root/link", dir);
	ck_assert_int_eq(symlink(a, b), 0);
	snprintf(b, sizeof(b), "%s/root/rel", dir);
	ck_assert_int_eq(symlink("../out/deep", b), 0);
	snprintf(b, sizeof(b), "%s/root/dangling", dir);
	snprintf(a, sizeof(a), "%s/out/new", dir);
	ck_assert_int_eq(symlink(a, b), 0);

	snprintf(b, sizeof(b), "%s/root/link/../x", dir);
	ck_assert_int_eq(rs_path_resolve(b, out, sizeof(out), &e), 0);
	snprintf(want, sizeof(want), "%s/out/x", real);
	ck_assert_str_eq(out, want);
	snprintf(b, sizeof(b), "%s/root/rel/../../x", dir);
	ck_assert_int_eq(rs_path_resolve(b, out, sizeof(out), &e), 0);
	snprintf(want, sizeof(want), "%s/x", real);
	ck_assert_str_eq(out, want);
	/* a dangling link is followed: that is where mkdir would create */
	snprintf(b, sizeof(b), "%s/root/dangling/ck", dir);
	ck_assert_int_eq(rs_path_resolve(b, out, sizeof(out), &e), 0);
	snprintf(want, sizeof(want), "%s/out/new/ck", real);
	ck_assert_str_eq(out, want);
	/* back from a missing folder, links are looked at again */
	snprintf(b, sizeof(b), "%s/root/nope/../link/y", dir);
	ck_assert_int_eq(rs_path_resolve(b, out, sizeof(out), &e), 0);
	snprintf(want, sizeof(want), "%s/out/deep/y", real);
	ck_assert_str_eq(out, want);

	/* the policy judges by that */
	snprintf(a, sizeof(a), "ckpt_roots=%s/root", dir);
	ck_assert_int_eq(pol(a, NULL, NULL), 0);
	snprintf(b, sizeof(b), "%s/root/link/../x", dir);
	ck_assert_int_eq(rs_policy_check_ckpt_path(&p, b, &e), -EPERM);
	snprintf(want, sizeof(want), "resolves to %s/out/x", real);
	ck_assert_ptr_nonnull(strstr(e.msg, want));
	snprintf(b, sizeof(b), "%s/root/dangling/ck", dir);
	ck_assert_int_eq(rs_policy_check_ckpt_path(&p, b, &e), -EPERM);
	snprintf(b, sizeof(b), "%s/root/job/../42", dir);
	ck_assert_int_eq(rs_policy_check_ckpt_path(&p, b, &e), 0);
	/* a link loop is an error, not a hang */
	snprintf(a, sizeof(a), "%s/root/l1", dir);
	snprintf(b, sizeof(b), "%s/root/l2", dir);
	ck_assert_int_eq(symlink(b, a), 0);
	ck_assert_int_eq(symlink(a, b), 0);
	snprintf(b, sizeof(b), "%s/root/l1/x", dir);
	ck_assert_int_eq(rs_path_resolve(b, out, sizeof(out), &e), -ELOOP);
	ck_assert_int_eq(rs_policy_check_ckpt_path(&p, b, &e), -EACCES);

	snprintf(a, sizeof(a), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(a), 0);
}
END_TEST

START_TEST(test_path_mkdir_p)
{
	char dir[] = "/tmp/rs-mkdir-XXXXXX", deep[128], file[160];
	struct stat st;
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(deep, sizeof(deep), "%s/a/b/c", dir);
	ck_assert_int_eq(rs_path_mkdir_p(deep, &e), 0);
	ck_assert_int_eq(stat(deep, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 0777, 0700);
	ck_assert_int_eq(rs_path_mkdir_p(deep, &e), 0);   /* exists: fine */
	snprintf(file, sizeof(file), "%s/a/f", dir);
	f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	snprintf(deep, sizeof(deep), "%s/a/f/x", dir);
	ck_assert_int_eq(rs_path_mkdir_p(deep, &e), -ENOTDIR);
	ck_assert_ptr_nonnull(strstr(e.msg, "create directory"));
	ck_assert_int_eq(rs_path_mkdir_p("", &e), -ENAMETOOLONG);
	unlink(file);
	snprintf(deep, sizeof(deep), "%s/a/b/c", dir);
	rmdir(deep);
	snprintf(deep, sizeof(deep), "%s/a/b", dir);
	rmdir(deep);
	snprintf(deep, sizeof(deep), "%s/a", dir);
	rmdir(deep);
	rmdir(dir);
}
END_TEST

/* ----------------------------------------------------------- pattern --- */
START_TEST(test_pattern_expand)
{
	rs_pattern_ctx_t c = { "42", "40", "2", "alice", "train", "n3", NULL, NULL };
	char out[128];

	ck_assert_int_eq(rs_pattern_expand("/c/%u/%j-%A_%a/%x@%n%%", &c, out,
					   sizeof(out), &e), 0);
	ck_assert_str_eq(out, "/c/alice/42-40_2/train@n3%");
	c.job_name = "../../etc";
	ck_assert_int_eq(rs_pattern_expand("/c/%x", &c, out, sizeof(out), &e), 0);
	ck_assert_str_eq(out, "/c/.._.._etc");
	c.job_name = "..";
	ck_assert_int_eq(rs_pattern_expand("/c/%x/y", &c, out, sizeof(out), &e), 0);
	ck_assert_str_eq(out, "/c/_/y");
	c.job_name = NULL;
	ck_assert_int_eq(rs_pattern_expand("/c/%x", &c, out, sizeof(out), &e), 0);
	ck_assert_str_eq(out, "/c/unknown");
	ck_assert_int_eq(rs_pattern_expand("/c/%q", &c, out, sizeof(out), &e), -EINVAL);
	ck_assert_int_eq(rs_pattern_expand("/c/%u", &c, out, 6, &e), -ENAMETOOLONG);
	ck_assert_str_eq(out, "");
	ck_assert_int_eq(rs_pattern_expand("/c/%u", &c, out, 9, &e), 0);
}
END_TEST

START_TEST(test_pattern_static_prefix)
{
	ck_assert_uint_eq(rs_pattern_static_prefix("/a/b/%j/c"), 5);
	ck_assert_uint_eq(rs_pattern_static_prefix("/a/100%%/%j"), 9);
	ck_assert_uint_eq(rs_pattern_static_prefix("/plain"), 6);
}
END_TEST

static Suite *policy_suite(void)
{
	Suite *su = suite_create("policy");
	TCase *tc;

	tc = tcase_create("parses_site_arguments");
	tcase_add_test(tc, test_policy_defaults);
	tcase_add_test(tc, test_policy_every_key);
	tcase_add_test(tc, test_policy_errors_name_the_argument);
	tcase_add_test(tc, test_policy_roots_bound);
	tcase_add_test(tc, test_policy_timeouts);
	suite_add_tcase(su, tc);
	tc = tcase_create("enforces_caps");
	tcase_add_test(tc, test_policy_caps);
	tcase_add_test(tc, test_policy_roots_at_submit);
	tcase_add_test(tc, test_policy_roots_on_node_resolve_symlinks);
	suite_add_tcase(su, tc);
	tc = tcase_create("paths");
	tcase_add_test(tc, test_path_normalize);
	tcase_add_test(tc, test_path_is_under);
	tcase_add_test(tc, test_path_resolve);
	tcase_add_test(tc, test_path_resolve_dotdot_after_symlink_is_physical);
	tcase_add_test(tc, test_path_mkdir_p);
	suite_add_tcase(su, tc);
	tc = tcase_create("patterns");
	tcase_add_test(tc, test_pattern_expand);
	tcase_add_test(tc, test_pattern_static_prefix);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(policy_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	rs_policy_free(&p);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
