/* Unit tests: opening a folder on a user path (src/safedir.c).
 *
 * Run as root (as in CI): folders owned by another user are made with
 * chown/lchown to uid 65534 (nobody), which needs no such account. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safedir.h"

#define OTHER 65534

static char base[PATH_MAX];
static rs_err_t e;
static uid_t me;

static int _rm(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb; (void)flag; (void)f;
	remove(p);
	return 0;
}

static void _mk(const char *tmpl_dir)
{
	snprintf(base, sizeof(base), "%s/rs-safedir-XXXXXX", tmpl_dir);
	ck_assert_ptr_nonnull(mkdtemp(base));
	memset(&e, 0, sizeof(e));
	me = geteuid();
}

/* Under /tmp (1777, sticky): the usual home of a scratch folder. */
static void setup(void)
{
	_mk("/tmp");
}

/* Under the build tree, whose every folder is root's and not writable by
 * others (as /work/... or a checkout in a home is): STRICT can pass. */
static void setup_strict(void)
{
	const char *b = getenv("RS_BUILD");

	_mk(b && *b ? b : ".");
	if (base[0] != '/') {
		char abs[PATH_MAX];
		ck_assert_ptr_nonnull(realpath(base, abs));
		snprintf(base, sizeof(base), "%s", abs);
	}
}

static void teardown(void)
{
	nftw(base, _rm, 32, FTW_DEPTH | FTW_PHYS);
}

/* base/rel as a path. */
static const char *P(const char *rel)
{
	static char buf[4][PATH_MAX + 64];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", base, rel);
	return buf[i];
}

static void mkdir_mode(const char *rel, mode_t mode, uid_t uid)
{
	ck_assert_int_eq(mkdir(P(rel), 0700), 0);
	ck_assert_int_eq(chown(P(rel), uid, (gid_t)-1), 0);
	ck_assert_int_eq(chmod(P(rel), mode), 0);
}

static void symlink_owned(const char *target, const char *rel, uid_t uid)
{
	ck_assert_int_eq(symlink(target, P(rel)), 0);
	ck_assert_int_eq(lchown(P(rel), uid, (gid_t)-1), 0);
}

/* fd is the folder at path (same device and inode). */
static void assert_is(int fd, const char *path)
{
	struct stat a, b;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &a), 0);
	ck_assert_int_eq(stat(path, &b), 0);
	ck_assert(a.st_dev == b.st_dev && a.st_ino == b.st_ino);
	/* readable: the descriptor is O_RDONLY, not O_PATH */
	ck_assert_int_eq(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
	ck_assert_int_ge(fcntl(fd, F_GETFD) & FD_CLOEXEC, 1);
	close(fd);
}

static void assert_msg(const char *needle)
{
	ck_assert_msg(strstr(e.msg, needle), "message '%s' lacks '%s'",
		      e.msg, needle);
}

/* ------------------------------------------------------------- syntax */

START_TEST(test_safedir_refuses_relative_dot_and_dotdot)
{
	ck_assert_int_eq(rs_safedir_open("tmp/x", me, 0, "scratch", &e),
			 -EINVAL);
	assert_msg("not an absolute path");
	ck_assert_int_eq(rs_safedir_open("", me, 0, "scratch", &e), -EINVAL);
	ck_assert_int_eq(rs_safedir_open(NULL, me, 0, "scratch", &e),
			 -EINVAL);
	mkdir_mode("a", 0700, me);
	ck_assert_int_eq(rs_safedir_open(P("a/.."), me, 0, "scratch", &e),
			 -EINVAL);
	assert_msg("'..' is not allowed");
	assert_msg("scratch");
	ck_assert_int_eq(rs_safedir_open(P("./a"), me, 0, "ckpt", &e),
			 -EINVAL);
	assert_msg("'.' is not allowed");
	/* "..." and ".x" are ordinary names */
	mkdir_mode("...", 0700, me);
	assert_is(rs_safedir_open(P("..."), me, 0, NULL, &e), P("..."));
}
END_TEST

START_TEST(test_safedir_refuses_overlong_name)
{
	char p[PATH_MAX + NAME_MAX + 64];
	char name[NAME_MAX + 2];

	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	snprintf(p, sizeof(p), "%s/%s", base, name);
	ck_assert_int_eq(rs_safedir_open(p, me, 0, "scratch", &e),
			 -ENAMETOOLONG);
}
END_TEST

/* ------------------------------------------------------- final folder */

START_TEST(test_safedir_opens_own_folder)
{
	int fd;

	mkdir_mode("a", 0700, me);
	mkdir_mode("a/b", 0755, me);
	fd = rs_safedir_open(P("a/b"), me, 0, "scratch", &e);
	assert_is(fd, P("a/b"));
	/* trailing and doubled slashes are harmless */
	fd = rs_safedir_open(P("a//b/"), me, 0, "scratch", &e);
	assert_is(fd, P("a/b"));
}
END_TEST

START_TEST(test_safedir_refuses_foreign_owner)
{
	char want[128];

	mkdir_mode("run_42", 0700, OTHER);
	ck_assert_int_eq(rs_safedir_open(P("run_42"), me, 0, "scratch", &e),
			 -EPERM);
	snprintf(want, sizeof(want), "scratch %s is owned by uid %d, not by "
		 "you (uid %u): remove it or choose another folder",
		 P("run_42"), OTHER, (unsigned)me);
	ck_assert_str_eq(e.msg, want);
	/* the attack from issue #11: 0777 and someone else's */
	ck_assert_int_eq(chmod(P("run_42"), 0777), 0);
	ck_assert_int_eq(rs_safedir_open(P("run_42"), me, RS_SAFEDIR_CREATE,
					 "scratch", &e), -EPERM);
	assert_msg("owned by uid 65534");
}
END_TEST

START_TEST(test_safedir_refuses_group_or_other_writable)
{
	mkdir_mode("g", 0770, me);
	ck_assert_int_eq(rs_safedir_open(P("g"), me, 0, "checkpoint folder",
					 &e), -EPERM);
	assert_msg("checkpoint folder");
	assert_msg("mode 0770");
	assert_msg("chmod go-w");
	ck_assert_int_eq(chmod(P("g"), 0702), 0);
	ck_assert_int_eq(rs_safedir_open(P("g"), me, 0, NULL, &e), -EPERM);
	assert_msg("mode 0702");
	/* readable by others is the owner's choice */
	ck_assert_int_eq(chmod(P("g"), 0755), 0);
	assert_is(rs_safedir_open(P("g"), me, 0, NULL, &e), P("g"));
}
END_TEST

START_TEST(test_safedir_refuses_final_symlink)
{
	mkdir_mode("real", 0700, me);
	ck_assert_int_eq(symlink(P("real"), P("link")), 0);
	ck_assert_int_eq(rs_safedir_open(P("link"), me, 0, "scratch", &e),
			 -ELOOP);
	assert_msg("is a symbolic link; give the folder itself");
	/* not even with CREATE: it exists, as a link */
	ck_assert_int_eq(rs_safedir_open(P("link"), me, RS_SAFEDIR_CREATE,
					 "scratch", &e), -ELOOP);
	/* a dangling one neither (CREATE must not make its target) */
	ck_assert_int_eq(symlink(P("nowhere"), P("dangling")), 0);
	ck_assert_int_eq(rs_safedir_open(P("dangling"), me, RS_SAFEDIR_CREATE,
					 "scratch", &e), -ELOOP);
	ck_assert_int_eq(access(P("nowhere"), F_OK), -1);
}
END_TEST

START_TEST(test_safedir_refuses_missing_and_non_folder)
{
	int fd;

	ck_assert_int_eq(rs_safedir_open(P("none"), me, 0, "scratch", &e),
			 -ENOENT);
	assert_msg("none");
	fd = open(P("file"), O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	close(fd);
	ck_assert_int_eq(rs_safedir_open(P("file"), me, 0, "scratch", &e),
			 -ENOTDIR);
	ck_assert_int_eq(rs_safedir_open(P("file/x"), me, RS_SAFEDIR_CREATE,
					 "scratch", &e), -ENOTDIR);
}
END_TEST

/* ---------------------------------------------------- on the way there */

START_TEST(test_safedir_world_writable_parent_needs_sticky)
{
	mkdir_mode("w", 0777, OTHER);
	mkdir_mode("w/d", 0700, me);
	ck_assert_int_eq(rs_safedir_open(P("w/d"), me, 0, "scratch", &e),
			 -EPERM);
	assert_msg("writable by everyone and has no sticky bit");
	assert_msg(P("w"));
	ck_assert_int_eq(chmod(P("w"), 01777), 0);
	assert_is(rs_safedir_open(P("w/d"), me, 0, "scratch", &e), P("w/d"));
}
END_TEST

START_TEST(test_safedir_foreign_parent_allowed_when_not_writable)
{
	/* /home/alice/shared (0755, alice's) holding the caller's folder:
	 * only STRICT insists on root or the owner all the way */
	mkdir_mode("p", 0755, OTHER);
	mkdir_mode("p/d", 0700, me);
	assert_is(rs_safedir_open(P("p/d"), me, 0, NULL, &e), P("p/d"));
}
END_TEST

START_TEST(test_safedir_follows_symlink_of_root_or_owner)
{
	mkdir_mode("real", 0755, me);
	mkdir_mode("real/d", 0700, me);
	mkdir_mode("a", 0755, me);
	symlink_owned(P("real"), "abs", 0);
	symlink_owned("../real", "a/rel", me);
	assert_is(rs_safedir_open(P("abs/d"), me, 0, NULL, &e), P("real/d"));
	assert_is(rs_safedir_open(P("a/rel/d"), me, 0, NULL, &e),
		  P("real/d"));
	/* a chain of two */
	symlink_owned("abs", "chain", me);
	assert_is(rs_safedir_open(P("chain/d"), me, 0, NULL, &e),
		  P("real/d"));
}
END_TEST

START_TEST(test_safedir_refuses_symlink_of_another_user)
{
	mkdir_mode("real", 0755, me);
	mkdir_mode("real/d", 0700, me);
	symlink_owned(P("real"), "theirs", OTHER);
	ck_assert_int_eq(rs_safedir_open(P("theirs/d"), me, 0, "scratch", &e),
			 -EPERM);
	assert_msg("symbolic link");
	assert_msg("uid 65534");
}
END_TEST

START_TEST(test_safedir_symlink_loop_is_bounded)
{
	symlink_owned("l2", "l1", me);
	symlink_owned("l1", "l2", me);
	ck_assert_int_eq(rs_safedir_open(P("l1/x"), me, 0, NULL, &e), -ELOOP);
	assert_msg("symbolic links");
}
END_TEST

START_TEST(test_safedir_dotdot_in_link_target_is_physical)
{
	/* ROOT/link/../x goes where the link really goes: link -> deep/er,
	 * so link/.. is deep, not ROOT */
	mkdir_mode("deep", 0755, me);
	mkdir_mode("deep/er", 0755, me);
	mkdir_mode("deep/x", 0700, me);
	mkdir_mode("x", 0700, me);
	symlink_owned("deep/er", "link", me);
	symlink_owned("link/..", "up", me);
	assert_is(rs_safedir_open(P("up/x"), me, 0, NULL, &e), P("deep/x"));
}
END_TEST

/* ------------------------------------------------------------- strict */

START_TEST(test_safedir_strict_accepts_root_owned_chain)
{
	mkdir_mode("s", 0755, me);
	mkdir_mode("s/d", 0700, me);
	assert_is(rs_safedir_open(P("s/d"), me, RS_SAFEDIR_STRICT,
				  "state_dir", &e), P("s/d"));
}
END_TEST

START_TEST(test_safedir_strict_refuses_symlink_foreign_and_writable)
{
	mkdir_mode("s", 0755, me);
	mkdir_mode("s/d", 0700, me);
	ck_assert_int_eq(symlink("s", P("l")), 0);
	ck_assert_int_eq(rs_safedir_open(P("l/d"), me, RS_SAFEDIR_STRICT,
					 "state_dir", &e), -ELOOP);
	assert_msg("symbolic link");
	mkdir_mode("f", 0755, OTHER);
	mkdir_mode("f/d", 0700, me);
	ck_assert_int_eq(rs_safedir_open(P("f/d"), me, RS_SAFEDIR_STRICT,
					 "state_dir", &e), -EPERM);
	assert_msg("owned by uid 65534, not by root");
	mkdir_mode("g", 0775, me);
	mkdir_mode("g/d", 0700, me);
	ck_assert_int_eq(rs_safedir_open(P("g/d"), me, RS_SAFEDIR_STRICT,
					 "state_dir", &e), -EPERM);
	assert_msg("mode 0775");
	/* a sticky folder that is not root's is not /tmp */
	mkdir_mode("t", 01777, OTHER);
	mkdir_mode("t/d", 0700, me);
	ck_assert_int_eq(rs_safedir_open(P("t/d"), me, RS_SAFEDIR_STRICT,
					 "state_dir", &e), -EPERM);
}
END_TEST

/* Root's folders below /tmp (1777 and root's): nobody else can rename or
 * replace them there, so STRICT accepts them; another user's folder on
 * the way is still refused. */
START_TEST(test_safedir_strict_accepts_roots_chain_under_tmp)
{
	int fd;

	if (me != 0)
		return;
	mkdir_mode("d", 0700, me);
	fd = rs_safedir_open(P("d"), me, RS_SAFEDIR_STRICT, "state_dir", &e);
	ck_assert_int_ge(fd, 0);
	close(fd);
	mkdir_mode("u", 0755, OTHER);
	mkdir_mode("u/d", 0700, me);
	ck_assert_int_eq(rs_safedir_open(P("u/d"), me, RS_SAFEDIR_STRICT,
					 "state_dir", &e), -EPERM);
}
END_TEST

/* ------------------------------------------------------------- create */

START_TEST(test_safedir_create_makes_missing_0700)
{
	struct stat st;
	mode_t old = umask(0);
	int fd;

	fd = rs_safedir_open(P("n1/n2/n3"), me, RS_SAFEDIR_CREATE, "scratch",
			     &e);
	umask(old);
	assert_is(fd, P("n1/n2/n3"));
	ck_assert_int_eq(stat(P("n1"), &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
	ck_assert_uint_eq(st.st_uid, me);
	ck_assert_int_eq(stat(P("n1/n2/n3"), &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0700);
	/* many levels: creating is not a race */
	fd = rs_safedir_open(P("m/1/2/3/4/5/6/7/8/9/10/11/12"), me,
			     RS_SAFEDIR_CREATE, "scratch", &e);
	ck_assert_msg(fd >= 0, "%s", e.msg);
	close(fd);
	/* an existing folder of ours is used as it is */
	ck_assert_int_eq(chmod(P("n1/n2/n3"), 0750), 0);
	assert_is(rs_safedir_open(P("n1/n2/n3"), me, RS_SAFEDIR_CREATE, NULL,
				  &e), P("n1/n2/n3"));
	ck_assert_int_eq(stat(P("n1/n2/n3"), &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0750);
}
END_TEST

START_TEST(test_safedir_create_under_unsafe_parent_refused)
{
	mkdir_mode("w", 0777, OTHER);
	ck_assert_int_eq(rs_safedir_open(P("w/new"), me, RS_SAFEDIR_CREATE,
					 "scratch", &e), -EPERM);
	assert_msg("no sticky bit");
	/* refused before anything was made in it */
	ck_assert_int_eq(access(P("w/new"), F_OK), -1);
}
END_TEST

/* ------------------------------------------------------------ fd_path */

START_TEST(test_safedir_fd_path_names_the_folder)
{
	char buf[64], tiny[8];
	int fd;

	mkdir_mode("a", 0700, me);
	fd = rs_safedir_open(P("a"), me, 0, NULL, &e);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(rs_safedir_fd_path(fd, buf, sizeof(buf)), 0);
	{
		char want[64];
		snprintf(want, sizeof(want), "/proc/self/fd/%d", fd);
		ck_assert_str_eq(buf, want);
	}
	/* the folder itself, even after its name moved */
	ck_assert_int_eq(rename(P("a"), P("moved")), 0);
	{
		struct stat a, b;
		ck_assert_int_eq(stat(buf, &a), 0);
		ck_assert_int_eq(stat(P("moved"), &b), 0);
		ck_assert(a.st_ino == b.st_ino);
	}
	ck_assert_int_eq(rs_safedir_fd_path(fd, tiny, sizeof(tiny)), -ENOSPC);
	ck_assert_int_eq(rs_safedir_fd_path(-1, buf, sizeof(buf)), -EINVAL);
	close(fd);
}
END_TEST

static Suite *safedir_suite(void)
{
	Suite *s = suite_create("safedir");
	TCase *tc;

	tc = tcase_create("syntax");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_safedir_refuses_relative_dot_and_dotdot);
	tcase_add_test(tc, test_safedir_refuses_overlong_name);
	suite_add_tcase(s, tc);

	tc = tcase_create("final");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_safedir_opens_own_folder);
	tcase_add_test(tc, test_safedir_refuses_foreign_owner);
	tcase_add_test(tc, test_safedir_refuses_group_or_other_writable);
	tcase_add_test(tc, test_safedir_refuses_final_symlink);
	tcase_add_test(tc, test_safedir_refuses_missing_and_non_folder);
	suite_add_tcase(s, tc);

	tc = tcase_create("on_the_way");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_safedir_world_writable_parent_needs_sticky);
	tcase_add_test(tc, test_safedir_foreign_parent_allowed_when_not_writable);
	tcase_add_test(tc, test_safedir_follows_symlink_of_root_or_owner);
	tcase_add_test(tc, test_safedir_refuses_symlink_of_another_user);
	tcase_add_test(tc, test_safedir_symlink_loop_is_bounded);
	tcase_add_test(tc, test_safedir_dotdot_in_link_target_is_physical);
	tcase_add_test(tc, test_safedir_strict_accepts_roots_chain_under_tmp);
	suite_add_tcase(s, tc);

	tc = tcase_create("strict");
	tcase_add_checked_fixture(tc, setup_strict, teardown);
	tcase_add_test(tc, test_safedir_strict_accepts_root_owned_chain);
	tcase_add_test(tc, test_safedir_strict_refuses_symlink_foreign_and_writable);
	suite_add_tcase(s, tc);

	tc = tcase_create("create");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_safedir_create_makes_missing_0700);
	tcase_add_test(tc, test_safedir_create_under_unsafe_parent_refused);
	tcase_add_test(tc, test_safedir_fd_path_names_the_folder);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(safedir_suite());
	int failed;

	if (geteuid() != 0) {
		fprintf(stderr, "test_safedir: needs root (chown to uid %d)\n",
			OTHER);
		return 77;
	}
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
