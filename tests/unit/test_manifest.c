/* Unit tests: the manifest and its lock (src/manifest.c). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ckpt.h"
#include "manifest.h"

static char base[PATH_MAX], C[PATH_MAX + 8];
static rs_err_t e;

static int _rm(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb; (void)flag; (void)f;
	remove(p);
	return 0;
}

static void setup(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(base, sizeof(base), "%s/rs-man-XXXXXX", t && *t ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(base));
	snprintf(C, sizeof(C), "%s/c", base);
	memset(&e, 0, sizeof(e));
	unsetenv("RS_CKPT_LOCK_TIMEOUT");
}

static void teardown(void)
{
	nftw(base, _rm, 32, FTW_DEPTH | FTW_PHYS);
}

static void write_manifest(const char *text)
{
	char p[PATH_MAX + 32];
	int fd;

	mkdir(C, 0700);
	snprintf(p, sizeof(p), "%s/manifest.json", C);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static struct stat man_stat(void)
{
	char p[PATH_MAX + 32];
	struct stat st;

	snprintf(p, sizeof(p), "%s/manifest.json", C);
	ck_assert_int_eq(stat(p, &st), 0);
	return st;
}

static int64_t get_int(json_object *o, const char *k)
{
	json_object *v = NULL;

	ck_assert_msg(json_object_object_get_ex(o, k, &v), "no key %s", k);
	return json_object_get_int64(v);
}

START_TEST(test_manifest_read_missing_gives_skeleton)
{
	json_object *root = NULL;

	ck_assert_int_eq(mkdir(C, 0700), 0);
	ck_assert_int_eq(rs_manifest_read(C, &root, &e), 0);
	ck_assert_int_eq(get_int(root, "schema"), 1);
	ck_assert_int_eq(get_int(root, "next_gen"), 1);
	ck_assert_uint_eq(json_object_array_length(rs_manifest_generations(root)), 0);
	ck_assert_str_eq(e.msg, "");
	json_object_put(root);
	ck_assert_int_eq(rs_manifest_read(base, &root, &e), 0);
	json_object_put(root);
	ck_assert_int_eq(rs_manifest_read("/nonexistent/x", &root, &e), -ENOENT);
	ck_assert_ptr_null(root);
}
END_TEST

/* A module's key added through update survives later writers. */
static int add_attempts(json_object *root, void *arg, rs_err_t *err)
{
	json_object *a = json_object_new_array();

	(void)err;
	json_object_array_add(a, json_object_new_int(*(int *)arg));
	json_object_object_add(root, "attempts", a);
	return 0;
}

START_TEST(test_manifest_update_preserves_unknown_keys)
{
	json_object *root = NULL, *v = NULL;
	char scratch[PATH_MAX + 8];
	int val = 7;

	ck_assert_int_eq(rs_manifest_update(C, add_attempts, &val, &e), 0);
	/* created the directory 0700 */
	struct stat st;
	ck_assert_int_eq(stat(C, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
	snprintf(scratch, sizeof(scratch), "%s/s", base);
	ck_assert_int_eq(mkdir(scratch, 0700), 0);
	ck_assert_int_eq(rs_ckpt_save(scratch, C, 2, NULL, NULL, &e), 0);
	ck_assert_int_eq(rs_ckpt_save(scratch, C, 2, NULL, NULL, &e), 0);
	ck_assert_int_eq(rs_manifest_read(C, &root, &e), 0);
	ck_assert(json_object_object_get_ex(root, "attempts", &v));
	ck_assert_int_eq(json_object_get_int(json_object_array_get_idx(v, 0)), 7);
	ck_assert_uint_eq(json_object_array_length(rs_manifest_generations(root)), 2);
	ck_assert_int_eq(get_int(root, "next_gen"), 3);
	json_object_put(root);
}
END_TEST

static int fail_cb(json_object *root, void *arg, rs_err_t *err)
{
	(void)arg;
	json_object_object_add(root, "junk", json_object_new_int(1));
	return rs_err_set(err, EIO, "callback says no");
}

static int nochange_cb(json_object *root, void *arg, rs_err_t *err)
{
	(void)root; (void)arg; (void)err;
	return RS_MANIFEST_UNCHANGED;
}

START_TEST(test_manifest_update_abort_and_unchanged_do_not_write)
{
	json_object *root = NULL, *v = NULL;
	struct stat a, b;

	write_manifest("{\"schema\":1,\"mine\":\"x\"}");
	a = man_stat();
	ck_assert_int_eq(rs_manifest_update(C, fail_cb, NULL, &e), -EIO);
	ck_assert_str_eq(e.msg, "callback says no");
	ck_assert_int_eq(rs_manifest_update(C, nochange_cb, NULL, &e), 0);
	b = man_stat();
	ck_assert_uint_eq(a.st_ino, b.st_ino);
	ck_assert_int_eq(rs_manifest_read(C, &root, &e), 0);
	ck_assert(!json_object_object_get_ex(root, "junk", &v));
	ck_assert(json_object_object_get_ex(root, "mine", &v));
	json_object_put(root);
}
END_TEST

START_TEST(test_manifest_malformed_refused)
{
	static const char *bad[] = {
		"", "not json", "[1,2]", "{\"schema\":1", "{\"schema\":1} x",
		"{\"next_gen\":1}", "{\"schema\":\"1\"}", "{\"schema\":0}",
		"{\"schema\":1,\"generations\":{}}",
		"{\"schema\":1,\"next_gen\":-3}",
		"{\"schema\":1,\"next_gen\":\"2\"}",
	};
	json_object *root = NULL;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_manifest(bad[i]);
		ck_assert_msg(rs_manifest_read(C, &root, &e) == -EBADMSG,
			      "accepted <%s>", bad[i]);
		ck_assert_ptr_null(root);
		ck_assert_ptr_nonnull(strstr(e.msg, "manifest.json"));
	}
	/* a save refuses to overwrite a manifest it cannot read */
	char scratch[PATH_MAX + 8];
	snprintf(scratch, sizeof(scratch), "%s/s", base);
	ck_assert_int_eq(mkdir(scratch, 0700), 0);
	ck_assert_int_eq(rs_ckpt_save(scratch, C, 1, NULL, NULL, &e), -EBADMSG);
	ck_assert_int_eq(rs_ckpt_verify(C, &e), -EBADMSG);
}
END_TEST

START_TEST(test_manifest_newer_schema_read_not_written)
{
	json_object *root = NULL;
	int val = 1;

	write_manifest("{\"schema\":2,\"future\":true}");
	ck_assert_int_eq(rs_manifest_read(C, &root, &e), 0);
	ck_assert_int_eq(get_int(root, "schema"), 2);
	json_object_put(root);
	ck_assert_int_eq(rs_manifest_update(C, add_attempts, &val, &e),
			 -EPROTONOSUPPORT);
	ck_assert_ptr_nonnull(strstr(e.msg, "newer"));
}
END_TEST

START_TEST(test_manifest_lock_wait_is_bounded)
{
	struct timespec t0, t1;
	int dfd, l1 = -1, l2 = -1;
	double dt;

	ck_assert_int_eq(mkdir(C, 0700), 0);
	dfd = rs_manifest_open_dir(C, 0, &e);
	ck_assert_int_ge(dfd, 0);
	ck_assert_int_eq(rs_manifest_lock(dfd, C, 1000, &l1, &e), 0);
	ck_assert_int_ge(l1, 0);
	/* a second holder (its own open file description) must give up */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(rs_manifest_lock(dfd, C, 300, &l2, &e), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	dt = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	ck_assert(dt >= 0.29 && dt < 2.0);
	ck_assert_int_eq(l2, -1);
	ck_assert_ptr_nonnull(strstr(e.msg, "still held"));
	/* a save in the same state fails the same way, quickly */
	setenv("RS_CKPT_LOCK_TIMEOUT", "1", 1);
	ck_assert_int_eq(rs_manifest_lock_timeout_ms(), 1000);
	ck_assert_int_eq(rs_manifest_update(C, nochange_cb, NULL, &e), -ETIMEDOUT);
	setenv("RS_CKPT_LOCK_TIMEOUT", "0", 1);
	ck_assert_int_eq(rs_manifest_lock_timeout_ms(), 30000);
	setenv("RS_CKPT_LOCK_TIMEOUT", "5x", 1);
	ck_assert_int_eq(rs_manifest_lock_timeout_ms(), 30000);
	unsetenv("RS_CKPT_LOCK_TIMEOUT");
	rs_manifest_unlock(l1);
	ck_assert_int_eq(rs_manifest_lock(dfd, C, 300, &l2, &e), 0);
	rs_manifest_unlock(l2);
	close(dfd);
}
END_TEST

START_TEST(test_manifest_open_dir_checks)
{
	char f[PATH_MAX + 8];
	int fd;

	ck_assert_int_eq(rs_manifest_open_dir(C, 0, &e), -ENOENT);
	ck_assert_int_eq(rs_manifest_open_dir("", 1, &e), -EINVAL);
	ck_assert_int_eq(rs_manifest_open_dir(NULL, 1, &e), -EINVAL);
	snprintf(f, sizeof(f), "%s/file", base);
	fd = open(f, O_WRONLY | O_CREAT, 0600);
	close(fd);
	ck_assert_int_eq(rs_manifest_open_dir(f, 1, &e), -ENOTDIR);
	fd = rs_manifest_open_dir(C, 1, &e);
	ck_assert_int_ge(fd, 0);
	close(fd);
	if (geteuid() == 0) {
		ck_assert_int_eq(chown(C, 4242, 4242), 0);
		ck_assert_int_eq(rs_manifest_open_dir(C, 0, &e), -EPERM);
		ck_assert_ptr_nonnull(strstr(e.msg, "owned by uid 4242"));
	}
}
END_TEST

START_TEST(test_manifest_write_is_atomic_and_tidy)
{
	json_object *root = NULL, *o;
	int dfd, n = 0;
	struct dirent *de;
	DIR *d;

	ck_assert_int_eq(mkdir(C, 0700), 0);
	dfd = rs_manifest_open_dir(C, 0, &e);
	ck_assert_int_ge(dfd, 0);
	root = json_object_new_object();
	json_object_object_add(root, "x", json_object_new_string("a/b"));
	ck_assert_int_eq(rs_manifest_write_at(dfd, C, root, &e), 0);
	json_object_put(root);
	ck_assert_int_eq(rs_manifest_read_json_at(dfd, C, "manifest.json", &o,
						  &e), 0);
	ck_assert_int_eq(get_int(o, "schema"), 1); /* added when absent */
	ck_assert_str_eq(json_object_get_string(json_object_object_get(o, "x")),
			 "a/b");
	json_object_put(o);
	ck_assert_int_eq(rs_manifest_read_json_at(dfd, C, "nope.json", &o, &e),
			 -ENOENT);
	d = opendir(C);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.' || strstr(de->d_name, "tmp"))
			n++;
	closedir(d);
	ck_assert_int_eq(n, 1); /* manifest.json, no temp file */
	close(dfd);
}
END_TEST

START_TEST(test_manifest_root_reads_foreign_folder_read_only)
{
	json_object *root = NULL;
	char l[PATH_MAX + 8];

	if (geteuid() != 0)
		return; /* needs chown to another uid */
	write_manifest("{\"schema\":1,\"next_gen\":4,\"generations\":[]}");
	ck_assert_int_eq(chown(C, 65534, 65534), 0);
	/* reading: root may, read-only */
	ck_assert_int_eq(rs_manifest_read(C, &root, &e), 0);
	ck_assert_int_eq(get_int(root, "next_gen"), 4);
	json_object_put(root);
	root = NULL;
	/* writing: never into someone else's folder */
	ck_assert_int_eq(rs_manifest_update(C, nochange_cb, NULL, &e), -EPERM);
	ck_assert_ptr_nonnull(strstr(e.msg, "owned by uid 65534"));
	/* and never through a symlink, not even reading */
	snprintf(l, sizeof(l), "%s/link", base);
	ck_assert_int_eq(symlink(C, l), 0);
	ck_assert_int_eq(rs_manifest_read(l, &root, &e), -ELOOP);
	ck_assert_ptr_null(root);
}
END_TEST

/* A FIFO named manifest.json: refused at once, never read (a blocking
 * open would hang root's CLI until Check's timeout fails this test). */
START_TEST(test_manifest_fifo_and_oversize_refused)
{
	json_object *root = NULL;
	char p[PATH_MAX + 32];
	int fd;

	ck_assert_int_eq(mkdir(C, 0700), 0);
	snprintf(p, sizeof(p), "%s/manifest.json", C);
	ck_assert_int_eq(mkfifo(p, 0600), 0);
	ck_assert_int_eq(rs_manifest_read(C, &root, &e), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(e.msg, "not a regular file"));
	ck_assert_ptr_null(root);
	ck_assert_int_eq(unlink(p), 0);
	fd = open(p, O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, RS_MANIFEST_MAX_BYTES + 1), 0);
	close(fd);
	ck_assert_int_eq(rs_manifest_read(C, &root, &e), -EFBIG);
	ck_assert_ptr_nonnull(strstr(e.msg, "16777217 bytes"));
	ck_assert_ptr_null(root);
}
END_TEST

static Suite *manifest_suite(void)
{
	Suite *s = suite_create("manifest");
	TCase *tc;

	tc = tcase_create("read");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_manifest_read_missing_gives_skeleton);
	tcase_add_test(tc, test_manifest_malformed_refused);
	tcase_add_test(tc, test_manifest_newer_schema_read_not_written);
	suite_add_tcase(s, tc);

	tc = tcase_create("update");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_manifest_update_preserves_unknown_keys);
	tcase_add_test(tc, test_manifest_update_abort_and_unchanged_do_not_write);
	tcase_add_test(tc, test_manifest_write_is_atomic_and_tidy);
	suite_add_tcase(s, tc);

	tc = tcase_create("lock_and_dir");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_manifest_lock_wait_is_bounded);
	tcase_add_test(tc, test_manifest_open_dir_checks);
	tcase_add_test(tc, test_manifest_root_reads_foreign_folder_read_only);
	tcase_add_test(tc, test_manifest_fifo_and_oversize_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(manifest_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
