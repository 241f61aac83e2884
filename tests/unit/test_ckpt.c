/* Unit tests: the checkpoint engine (src/ckpt.c, src/ckpt_tree.c). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ckpt.h"
#include "manifest.h"

/* one level more than the engine accepts (RS_CKPT_TREE_MAX_DEPTH) */
#define RS_CKPT_DEPTH_TEST 257

static char base[PATH_MAX], S[PATH_MAX], C[PATH_MAX], R[PATH_MAX];
static rs_err_t e;

/* A path under base, from a small ring so several can be used at once. */
static const char *P(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static const char *P(const char *fmt, ...)
{
	static char ring[8][PATH_MAX];
	static int i;
	char *b = ring[i++ % 8];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(b, PATH_MAX, fmt, ap);
	va_end(ap);
	return b;
}

static int _rm(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb; (void)flag; (void)f;
	remove(p);
	return 0;
}

static void rmrf(const char *p)
{
	nftw(p, _rm, 32, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
	const char *t = getenv("TMPDIR");

	umask(022);
	snprintf(base, sizeof(base), "%s/rs-ckpt-XXXXXX", t && *t ? t : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(base));
	strcpy(S, P("%s/s", base));
	strcpy(C, P("%s/c", base));
	strcpy(R, P("%s/r", base));
	ck_assert_int_eq(mkdir(S, 0755), 0);
	memset(&e, 0, sizeof(e));
	unsetenv("RS_CKPT_FAULT_AT");
	unsetenv("RS_CKPT_FAULT_AFTER_FILES");
}

static void teardown(void)
{
	rmrf(base);
}

static void put(const char *path, const char *data, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, strlen(data)), (ssize_t)strlen(data));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
}

static void set_mtime(const char *path, time_t sec, long nsec)
{
	struct timespec ts[2] = { { 0, UTIME_OMIT }, { sec, nsec } };

	ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

/* Whole file as a string (test files are small text). */
static char *slurp(const char *path)
{
	static char buf[4096];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	n = read(fd, buf, sizeof(buf) - 1);
	ck_assert_int_ge(n, 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

static struct stat lst(const char *path)
{
	struct stat st;

	ck_assert_msg(lstat(path, &st) == 0, "lstat %s: %s", path,
		      strerror(errno));
	return st;
}

static int exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

static long latest(void)
{
	long g = -1;
	rs_err_t le;

	if (rs_ckpt_latest(C, NULL, 0, &g, &le) < 0)
		return -1;
	return g;
}

static int save(unsigned keep, rs_ckpt_stats_t *st)
{
	return rs_ckpt_save(S, C, keep, NULL, st, &e);
}

/* Entries of dir whose name starts with prefix. */
static int count_prefix(const char *dir, const char *prefix)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, prefix, strlen(prefix)))
			n++;
	closedir(d);
	return n;
}

static json_object *manifest(void)
{
	json_object *root = NULL;

	ck_assert_int_eq(rs_manifest_read(C, &root, &e), 0);
	return root;
}

static int64_t rec_int(json_object *root, size_t i, const char *k)
{
	json_object *r = json_object_array_get_idx(rs_manifest_generations(root), i);
	json_object *v = NULL;

	ck_assert_ptr_nonnull(r);
	ck_assert(json_object_object_get_ex(r, k, &v));
	return json_object_get_int64(v);
}

/* ------------------------------------------------------- round trip --- */

START_TEST(test_ckpt_round_trip_tree)
{
	rs_ckpt_stats_t st, rst;
	struct stat a, b;
	const char *files[] = { "f1", "empty", "d1/f2", "d1/d2/d3/deep" };

	ck_assert_int_eq(mkdir(P("%s/d1", S), 0750), 0);
	ck_assert_int_eq(mkdir(P("%s/d1/d2", S), 0755), 0);
	ck_assert_int_eq(mkdir(P("%s/d1/d2/d3", S), 0700), 0);
	put(P("%s/f1", S), "hello world\n", 0640);
	put(P("%s/empty", S), "", 0600);
	put(P("%s/d1/f2", S), "second\n", 0755);
	put(P("%s/d1/d2/d3/deep", S), "deep\n", 0444);
	ck_assert_int_eq(symlink("d1/f2", P("%s/rel", S)), 0);
	ck_assert_int_eq(symlink("/nonexistent/target", P("%s/dangling", S)), 0);
	set_mtime(P("%s/f1", S), 1600000000, 123456789);
	set_mtime(P("%s/d1/f2", S), 1500000000, 1);
	set_mtime(P("%s/rel", S), 1400000000, 5);
	set_mtime(P("%s/d1/d2", S), 1300000000, 7);
	ck_assert_int_eq(chmod(P("%s/d1/d2/d3", S), 0500), 0);

	ck_assert_int_eq(save(3, &st), 0);
	ck_assert_int_eq(st.gen, 1);
	ck_assert_int_eq(st.published, 1);
	/* 4 files + 2 symlinks + 3 directories */
	ck_assert_uint_eq(st.files, 9);
	ck_assert_uint_eq(st.bytes, 12 + 0 + 7 + 5);
	ck_assert_uint_eq(st.bytes_copied, 12 + 0 + 7 + 5);
	ck_assert_uint_eq(st.bytes_linked, 0);
	ck_assert_uint_eq(st.skipped, 0);
	ck_assert_uint_eq(st.changed, 0);
	ck_assert(st.seconds >= st.sync_seconds);
	ck_assert_str_eq(e.msg, "");

	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 0, &rst, &e), 0);
	ck_assert_int_eq(rst.gen, 1);
	ck_assert_uint_eq(rst.files, 9);
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		const char *src = P("%s/%s", S, files[i]);
		const char *dst = P("%s/%s", R, files[i]);
		char want[4096];

		snprintf(want, sizeof(want), "%s", slurp(src));
		ck_assert_str_eq(slurp(dst), want);
		a = lst(src);
		b = lst(dst);
		ck_assert_uint_eq(a.st_mode, b.st_mode);
		ck_assert_int_eq(a.st_mtim.tv_sec, b.st_mtim.tv_sec);
		ck_assert_int_eq(a.st_mtim.tv_nsec, b.st_mtim.tv_nsec);
		ck_assert_int_eq(b.st_nlink, 1);
	}
	char t[64] = { 0 };
	ck_assert_int_eq(readlink(P("%s/rel", R), t, sizeof(t) - 1), 5);
	ck_assert_str_eq(t, "d1/f2");
	ck_assert_int_eq(lst(P("%s/rel", R)).st_mtim.tv_sec, 1400000000);
	ck_assert(S_ISLNK(lst(P("%s/dangling", R)).st_mode));
	ck_assert_uint_eq(lst(P("%s/d1", R)).st_mode, S_IFDIR | 0750);
	ck_assert_uint_eq(lst(P("%s/d1/d2/d3", R)).st_mode, S_IFDIR | 0500);
	ck_assert_int_eq(lst(P("%s/d1/d2", R)).st_mtim.tv_sec, 1300000000);
	ck_assert_int_eq(lst(P("%s/d1/d2", R)).st_mtim.tv_nsec, 7);
	/* restore leaves a scratch it created at 0700 */
	ck_assert_uint_eq(lst(R).st_mode, S_IFDIR | 0700);
}
END_TEST

START_TEST(test_ckpt_round_trip_sparse)
{
	rs_ckpt_stats_t st;
	const off_t size = 64 << 20;
	char buf[8] = { 0 };
	int fd;

	fd = open(P("%s/sparse", S), O_WRONLY | O_CREAT, 0644);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, "head", 4, 0), 4);
	ck_assert_int_eq(pwrite(fd, "middle", 6, 32 << 20), 6);
	ck_assert_int_eq(ftruncate(fd, size), 0);
	close(fd);
	ck_assert_int_le(lst(P("%s/sparse", S)).st_blocks, 64);

	ck_assert_int_eq(save(3, &st), 0);
	ck_assert_uint_eq(st.bytes, (uint64_t)size);
	/* only the two data blocks were copied, not 64 MiB of zeros */
	ck_assert_uint_le(st.bytes_copied, 2 * 65536);
	struct stat c = lst(P("%s/gen-000001/node-0/sparse", C));
	ck_assert_int_eq(c.st_size, size);
	ck_assert_int_le(c.st_blocks, 64);

	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 0, NULL, &e), 0);
	struct stat r = lst(P("%s/sparse", R));
	ck_assert_int_eq(r.st_size, size);
	ck_assert_int_le(r.st_blocks, 64);
	fd = open(P("%s/sparse", R), O_RDONLY);
	ck_assert_int_eq(pread(fd, buf, 6, 32 << 20), 6);
	ck_assert_str_eq(buf, "middle");
	ck_assert_int_eq(pread(fd, buf, 4, 0), 4);
	buf[4] = '\0';
	ck_assert_str_eq(buf, "head");
	ck_assert_int_eq(pread(fd, buf, 4, 16 << 20), 4);
	ck_assert_int_eq(buf[0] | buf[1] | buf[2] | buf[3], 0);
	close(fd);
}
END_TEST

START_TEST(test_ckpt_round_trip_empty_scratch)
{
	rs_ckpt_stats_t st;

	ck_assert_int_eq(save(1, &st), 0);
	ck_assert_int_eq(st.gen, 1);
	ck_assert_uint_eq(st.files, 0);
	ck_assert_int_eq(rs_ckpt_restore(C, R, 1, 0, &st, &e), 0);
	ck_assert_uint_eq(st.files, 0);
	ck_assert_int_eq(count_prefix(R, ""), 2); /* . and .. */
}
END_TEST

START_TEST(test_ckpt_symlink_to_shadow_kept_as_link)
{
	rs_ckpt_stats_t st;
	char t[64] = { 0 };

	ck_assert_int_eq(symlink("/etc/shadow", P("%s/shadow", S)), 0);
	ck_assert_int_eq(symlink("/etc", P("%s/etcdir", S)), 0);
	ck_assert_int_eq(save(1, &st), 0);
	ck_assert_uint_eq(st.files, 2);
	ck_assert_uint_eq(st.bytes_copied, 0);
	ck_assert(S_ISLNK(lst(P("%s/latest/node-0/shadow", C)).st_mode));
	ck_assert_int_eq(readlink(P("%s/latest/node-0/shadow", C), t,
				  sizeof(t) - 1), 11);
	ck_assert_str_eq(t, "/etc/shadow");
	/* nothing under /etc was walked into */
	ck_assert(!exists(P("%s/latest/node-0/etcdir/passwd/x", C)));
	ck_assert(S_ISLNK(lst(P("%s/latest/node-0/etcdir", C)).st_mode));
	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 0, NULL, &e), 0);
	ck_assert(S_ISLNK(lst(P("%s/shadow", R)).st_mode));
}
END_TEST

START_TEST(test_ckpt_special_files_skipped)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	rs_ckpt_stats_t st;
	int s;

	ck_assert_int_eq(mkfifo(P("%s/fifo", S), 0600), 0);
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", P("%s/sock", S));
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	put(P("%s/file", S), "x", 0600);
	ck_assert_int_eq(save(1, &st), 0);
	close(s);
	ck_assert_uint_eq(st.skipped, 2);
	ck_assert_uint_eq(st.files, 1);
	ck_assert(!exists(P("%s/latest/node-0/fifo", C)));
	ck_assert(!exists(P("%s/latest/node-0/sock", C)));
	json_object *m = manifest();
	ck_assert_int_eq(rec_int(m, 0, "skipped"), 2);
	json_object_put(m);
}
END_TEST

/* ------------------------------------------------------ incremental --- */

START_TEST(test_ckpt_incremental_links_unchanged)
{
	rs_ckpt_stats_t st;
	struct stat a, b;

	put(P("%s/same", S), "unchanged data", 0644);
	put(P("%s/diff", S), "old", 0644);
	ck_assert_int_eq(mkdir(P("%s/sub", S), 0755), 0);
	put(P("%s/sub/same2", S), "12345", 0600);
	set_mtime(P("%s/diff", S), 1000, 0);
	ck_assert_int_eq(save(3, &st), 0);
	ck_assert_uint_eq(st.bytes_linked, 0);

	put(P("%s/diff", S), "new!", 0644);
	set_mtime(P("%s/diff", S), 2000, 0);
	ck_assert_int_eq(save(3, &st), 0);
	ck_assert_int_eq(st.gen, 2);
	ck_assert_uint_eq(st.bytes_linked, 14 + 5);
	ck_assert_uint_eq(st.bytes_copied, 4);
	a = lst(P("%s/gen-000001/node-0/same", C));
	b = lst(P("%s/gen-000002/node-0/same", C));
	ck_assert_uint_eq(a.st_ino, b.st_ino);
	ck_assert_uint_eq(lst(P("%s/gen-000001/node-0/sub/same2", C)).st_ino,
			  lst(P("%s/gen-000002/node-0/sub/same2", C)).st_ino);
	a = lst(P("%s/gen-000001/node-0/diff", C));
	b = lst(P("%s/gen-000002/node-0/diff", C));
	ck_assert_uint_ne(a.st_ino, b.st_ino);
	ck_assert_str_eq(slurp(P("%s/gen-000001/node-0/diff", C)), "old");
	ck_assert_str_eq(slurp(P("%s/gen-000002/node-0/diff", C)), "new!");
	json_object *m = manifest();
	ck_assert_int_eq(rec_int(m, 1, "bytes_linked"), 19);
	ck_assert_int_eq(rec_int(m, 1, "bytes_copied"), 4);
	json_object_put(m);
}
END_TEST

START_TEST(test_ckpt_incremental_mode_or_mtime_change_copies)
{
	rs_ckpt_stats_t st;

	put(P("%s/m", S), "abc", 0644);
	put(P("%s/t", S), "abc", 0644);
	set_mtime(P("%s/t", S), 1000, 5);
	ck_assert_int_eq(save(3, &st), 0);
	ck_assert_int_eq(chmod(P("%s/m", S), 0600), 0);
	set_mtime(P("%s/t", S), 1000, 6); /* one nanosecond later */
	ck_assert_int_eq(save(3, &st), 0);
	ck_assert_uint_eq(st.bytes_linked, 0);
	ck_assert_uint_eq(st.bytes_copied, 6);
	ck_assert_uint_ne(lst(P("%s/gen-000001/node-0/m", C)).st_ino,
			  lst(P("%s/gen-000002/node-0/m", C)).st_ino);
	ck_assert_uint_eq(lst(P("%s/gen-000002/node-0/m", C)).st_mode,
			  S_IFREG | 0600);
	ck_assert_uint_eq(lst(P("%s/gen-000001/node-0/m", C)).st_mode,
			  S_IFREG | 0644);
	ck_assert_int_eq(lst(P("%s/gen-000002/node-0/t", C)).st_mtim.tv_nsec, 6);
}
END_TEST

/* ------------------------------------------------------------- keep --- */

START_TEST(test_ckpt_keep_prunes_oldest)
{
	rs_ckpt_stats_t st;
	char buf[PATH_MAX];
	long g = 0;

	for (int i = 1; i <= 4; i++) {
		char v[8];
		snprintf(v, sizeof(v), "v%d", i);
		put(P("%s/f", S), v, 0644);
		ck_assert_int_eq(save(2, &st), 0);
		ck_assert_int_eq(st.gen, i);
	}
	ck_assert(!exists(P("%s/gen-000001", C)));
	ck_assert(!exists(P("%s/gen-000002", C)));
	ck_assert_str_eq(slurp(P("%s/gen-000003/node-0/f", C)), "v3");
	ck_assert_str_eq(slurp(P("%s/gen-000004/node-0/f", C)), "v4");
	ck_assert_int_eq(count_prefix(C, ".trash"), 0);
	json_object *m = manifest();
	ck_assert_uint_eq(json_object_array_length(rs_manifest_generations(m)), 2);
	ck_assert_int_eq(rec_int(m, 0, "gen"), 3);
	ck_assert_int_eq(rec_int(m, 1, "gen"), 4);
	json_object_put(m);
	ck_assert_int_eq(rs_ckpt_latest(C, buf, sizeof(buf), &g, &e), 0);
	ck_assert_int_eq(g, 4);
	ck_assert_str_eq(buf, P("%s/gen-000004", C));
	ck_assert_int_eq(rs_ckpt_verify(C, &e), 0);
}
END_TEST

START_TEST(test_ckpt_numbers_only_grow)
{
	rs_ckpt_stats_t st;

	ck_assert_int_eq(save(1, &st), 0);
	ck_assert_int_eq(save(1, &st), 0);
	ck_assert_int_eq(save(1, &st), 0);
	ck_assert_int_eq(st.gen, 3);
	/* even with the manifest lost, `latest` keeps the count going */
	ck_assert_int_eq(unlink(P("%s/manifest.json", C)), 0);
	ck_assert_int_eq(save(1, &st), 0);
	ck_assert_int_eq(st.gen, 4);
	ck_assert(!exists(P("%s/gen-000003", C)));
	ck_assert_int_eq(rs_ckpt_verify(C, &e), 0);
}
END_TEST

/* ---------------------------------------------------------- restore --- */

START_TEST(test_ckpt_restore_never_hard_links)
{
	struct stat a, b;

	put(P("%s/data", S), "original", 0644);
	ck_assert_int_eq(save(2, NULL), 0);
	ck_assert_int_eq(save(2, NULL), 0); /* gen 2 links to gen 1 */
	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 0, NULL, &e), 0);
	a = lst(P("%s/data", R));
	b = lst(P("%s/latest/node-0/data", C));
	ck_assert_uint_ne(a.st_ino, b.st_ino);
	ck_assert_int_eq(a.st_nlink, 1);
	/* the application writes to its restored file... */
	put(P("%s/data", R), "modified by the app", 0644);
	/* ...and the checkpoint is unchanged */
	ck_assert_str_eq(slurp(P("%s/gen-000001/node-0/data", C)), "original");
	ck_assert_str_eq(slurp(P("%s/gen-000002/node-0/data", C)), "original");
	ck_assert_int_eq(rs_ckpt_verify(C, &e), 0);
}
END_TEST

START_TEST(test_ckpt_restore_chosen_generation)
{
	rs_ckpt_stats_t st;

	put(P("%s/f", S), "one", 0644);
	ck_assert_int_eq(save(5, NULL), 0);
	put(P("%s/f", S), "two", 0644);
	ck_assert_int_eq(save(5, NULL), 0);
	ck_assert_int_eq(rs_ckpt_restore(C, R, 1, 0, &st, &e), 0);
	ck_assert_int_eq(st.gen, 1);
	ck_assert_str_eq(slurp(P("%s/f", R)), "one");
	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 0, &st, &e), 0);
	ck_assert_int_eq(st.gen, 2);
	ck_assert_str_eq(slurp(P("%s/f", R)), "two");
}
END_TEST

START_TEST(test_ckpt_restore_into_existing_scratch)
{
	put(P("%s/f", S), "saved", 0600);
	ck_assert_int_eq(mkdir(P("%s/was_file", S), 0755), 0);
	put(P("%s/was_dir", S), "now a file", 0600);
	ck_assert_int_eq(save(1, NULL), 0);

	ck_assert_int_eq(mkdir(R, 0755), 0);
	put(P("%s/f", R), "stale content from the failed attempt", 0644);
	put(P("%s/was_file", R), "x", 0644);
	ck_assert_int_eq(mkdir(P("%s/was_dir", R), 0755), 0);
	put(P("%s/was_dir/inner", R), "y", 0644);
	put(P("%s/extra", R), "kept", 0644);
	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 0, NULL, &e), 0);
	ck_assert_str_eq(slurp(P("%s/f", R)), "saved");
	ck_assert_uint_eq(lst(P("%s/f", R)).st_mode, S_IFREG | 0600);
	ck_assert(S_ISDIR(lst(P("%s/was_file", R)).st_mode));
	ck_assert_str_eq(slurp(P("%s/was_dir", R)), "now a file");
	ck_assert_str_eq(slurp(P("%s/extra", R)), "kept");
	/* an existing scratch keeps its own mode */
	ck_assert_uint_eq(lst(R).st_mode, S_IFDIR | 0755);
}
END_TEST

START_TEST(test_ckpt_restore_refuses_missing_and_incomplete)
{
	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 0, NULL, &e), -ENOENT);
	ck_assert_ptr_nonnull(strstr(e.msg, "checkpoint folder"));
	ck_assert_ptr_nonnull(strstr(e.msg, "does not exist"));
	ck_assert_int_eq(mkdir(C, 0700), 0);
	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 0, NULL, &e), -ENOENT);
	ck_assert_ptr_nonnull(strstr(e.msg, "no complete generation"));

	put(P("%s/f", S), "x", 0644);
	ck_assert_int_eq(save(1, NULL), 0);
	ck_assert_int_eq(save(1, NULL), 0);
	/* pruned */
	ck_assert_int_eq(rs_ckpt_restore(C, R, 1, 0, NULL, &e), -ENOENT);
	ck_assert_ptr_nonnull(strstr(e.msg, "gen-000001 does not exist"));
	/* newer than latest */
	ck_assert_int_eq(rs_ckpt_restore(C, R, 3, 0, NULL, &e), -EUCLEAN);
	ck_assert_ptr_nonnull(strstr(e.msg, "not committed"));
	/* part out of range */
	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 1, NULL, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "part 1 requested"));
	/* a generation missing a part's record is refused */
	ck_assert_int_eq(unlink(P("%s/gen-000002/node-0.json", C)), 0);
	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 0, NULL, &e), -EUCLEAN);
	ck_assert_ptr_nonnull(strstr(e.msg, "incomplete generation"));
	ck_assert(!exists(R));
	ck_assert_int_eq(rs_ckpt_verify(C, &e), -EUCLEAN);
	ck_assert_int_eq(rs_ckpt_restore(NULL, R, -1, 0, NULL, &e), -EINVAL);
}
END_TEST

/* -------------------------------------------------------- multipart --- */

static rs_ckpt_meta_t mp(unsigned part, unsigned seq)
{
	rs_ckpt_meta_t m = {
		.job_id = "42_7", .attempt = 2, .seq = seq, .node = NULL,
		.reason = "signal", .part = part, .nparts = 2,
	};
	m.node = part ? "n2" : "n1";
	return m;
}

START_TEST(test_ckpt_multipart_complete_after_last_part)
{
	char S2[PATH_MAX];
	rs_ckpt_meta_t m0 = mp(0, 1), m1 = mp(1, 1);
	rs_ckpt_stats_t st;
	json_object *m, *r, *v;

	strcpy(S2, P("%s/s2", base));
	ck_assert_int_eq(mkdir(S2, 0755), 0);
	put(P("%s/f", S), "node one", 0644);
	put(P("%s/f", S2), "node two", 0644);

	ck_assert_int_eq(rs_ckpt_save(S, C, 3, &m0, &st, &e), 0);
	ck_assert_int_eq(st.published, 0);
	ck_assert_int_eq(st.gen, -1);
	ck_assert_int_eq(latest(), -1);
	ck_assert(!exists(P("%s/gen-000001", C)));
	ck_assert(exists(P("%s/.staging-j42_7-a2-s1/node-0", C)));
	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 0, NULL, &e), -ENOENT);
	ck_assert_int_eq(rs_ckpt_verify(C, &e), 0);

	ck_assert_int_eq(rs_ckpt_save(S2, C, 3, &m1, &st, &e), 0);
	ck_assert_int_eq(st.published, 1);
	ck_assert_int_eq(st.gen, 1);
	ck_assert_int_eq(latest(), 1);
	ck_assert_str_eq(slurp(P("%s/gen-000001/node-0/f", C)), "node one");
	ck_assert_str_eq(slurp(P("%s/gen-000001/node-1/f", C)), "node two");
	ck_assert_int_eq(count_prefix(C, ".staging"), 0);
	m = manifest();
	ck_assert_int_eq(rec_int(m, 0, "nparts"), 2);
	ck_assert_int_eq(rec_int(m, 0, "attempt"), 2);
	ck_assert_int_eq(rec_int(m, 0, "seq"), 1);
	ck_assert_int_eq(rec_int(m, 0, "files"), 2);
	r = json_object_array_get_idx(rs_manifest_generations(m), 0);
	ck_assert(json_object_object_get_ex(r, "job_id", &v));
	ck_assert_str_eq(json_object_get_string(v), "42_7");
	ck_assert(json_object_object_get_ex(r, "reason", &v));
	ck_assert_str_eq(json_object_get_string(v), "signal");
	ck_assert(json_object_object_get_ex(r, "nodes", &v));
	ck_assert_str_eq(json_object_get_string(
				 json_object_array_get_idx(v, 0)), "n1");
	ck_assert_str_eq(json_object_get_string(
				 json_object_array_get_idx(v, 1)), "n2");
	json_object_put(m);
	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 1, NULL, &e), 0);
	ck_assert_str_eq(slurp(P("%s/f", R)), "node two");
	ck_assert_int_eq(rs_ckpt_verify(C, &e), 0);
}
END_TEST

START_TEST(test_ckpt_multipart_older_seq_removed_on_publish)
{
	rs_ckpt_meta_t a = mp(0, 1), b0 = mp(0, 2), b1 = mp(1, 2);
	rs_ckpt_stats_t st;

	/* seq 1: node 1 never made it */
	ck_assert_int_eq(rs_ckpt_save(S, C, 3, &a, &st, &e), 0);
	ck_assert(exists(P("%s/.staging-j42_7-a2-s1", C)));
	ck_assert_int_eq(rs_ckpt_save(S, C, 3, &b0, &st, &e), 0);
	/* a node still on seq 2 may be writing seq 1: not yet removed */
	ck_assert(exists(P("%s/.staging-j42_7-a2-s1", C)));
	ck_assert_int_eq(rs_ckpt_save(S, C, 3, &b1, &st, &e), 0);
	ck_assert_int_eq(st.gen, 1);
	ck_assert_int_eq(count_prefix(C, ".staging"), 0);
}
END_TEST

/* Issue 12: node 1's task ends; later checkpoints still publish with its
 * final scratch; the last node to end removes the attempt's staging. */
START_TEST(test_ckpt_multipart_ended_part_stands_in)
{
	char S2[PATH_MAX];
	rs_ckpt_meta_t a0 = mp(0, 1), end1 = mp(1, 0), b0 = mp(0, 2), end0 = mp(0, 0);
	rs_ckpt_stats_t st;

	end1.ended = end0.ended = 1;
	strcpy(S2, P("%s/s2", base));
	ck_assert_int_eq(mkdir(S2, 0755), 0);
	put(P("%s/f", S), "node one v1", 0644);
	put(P("%s/f", S2), "node two final", 0644);
	/* seq 1 begun by node 0 only, then node 1 ends: its final save
	 * completes seq 1 and publishes it. */
	ck_assert_int_eq(rs_ckpt_save(S, C, 3, &a0, &st, &e), 0);
	ck_assert_int_eq(st.published, 0);
	ck_assert_int_eq(rs_ckpt_save(S2, C, 3, &end1, &st, &e), 0);
	ck_assert_int_eq(st.published, 1);
	ck_assert_int_eq(latest(), 1);
	ck_assert_str_eq(slurp(P("%s/gen-000001/node-1/f", C)), "node two final");
	ck_assert(exists(P("%s/.staging-j42_7-a2-end/node-1", C)));
	/* seq 2: node 0 alone publishes, node 1 from its final part. */
	put(P("%s/f", S), "node one v2", 0644);
	ck_assert_int_eq(rs_ckpt_save(S, C, 3, &b0, &st, &e), 0);
	ck_assert_int_eq(st.published, 1);
	ck_assert_int_eq(latest(), 2);
	ck_assert_str_eq(slurp(P("%s/gen-000002/node-0/f", C)), "node one v2");
	ck_assert_str_eq(slurp(P("%s/gen-000002/node-1/f", C)), "node two final");
	ck_assert_int_eq(rs_ckpt_verify(C, &e), 0);
	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 1, NULL, &e), 0);
	ck_assert_str_eq(slurp(P("%s/f", R)), "node two final");
	/* the ended folder stays while node 0 runs ... */
	ck_assert_int_eq(count_prefix(C, ".staging"), 1);
	/* ... and goes when node 0 ends too. */
	ck_assert_int_eq(rs_ckpt_save(S, C, 3, &end0, &st, &e), 0);
	ck_assert_int_eq(count_prefix(C, ".staging"), 0);
	ck_assert_int_eq(latest(), 2);
}
END_TEST

START_TEST(test_ckpt_drop_attempt_removes_only_that_jobs_staging)
{
	rs_ckpt_stats_t st;
	unsigned n = 9;

	/* Nothing there yet: not an error. */
	ck_assert_int_eq(rs_ckpt_drop_attempt(C, "7", 2, &n, &e), 0);
	ck_assert_uint_eq(n, 0);
	put(P("%s/f", S), "x", 0644);
	ck_assert_int_eq(save(2, &st), 0);
	ck_assert_int_eq(mkdir(P("%s/.staging-j7-a1-s3", C), 0700), 0);
	ck_assert_int_eq(mkdir(P("%s/.staging-j7-a2-s1", C), 0700), 0);
	put(P("%s/.staging-j7-a2-s1/node-0", C), "part", 0600);
	ck_assert_int_eq(mkdir(P("%s/.staging-j7-a2-end", C), 0700), 0);
	ck_assert_int_eq(mkdir(P("%s/.staging-j7-a3-s1", C), 0700), 0);  /* a later attempt */
	ck_assert_int_eq(mkdir(P("%s/.staging-j70-a1-s1", C), 0700), 0); /* another job */
	ck_assert_int_eq(mkdir(P("%s/.staging-solo-1-h", C), 0700), 0);
	ck_assert_int_eq(rs_ckpt_drop_attempt(C, "7", 2, &n, &e), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert(!exists(P("%s/.staging-j7-a1-s3", C)));
	ck_assert(!exists(P("%s/.staging-j7-a2-s1", C)));
	ck_assert(!exists(P("%s/.staging-j7-a2-end", C)));
	ck_assert(exists(P("%s/.staging-j7-a3-s1", C)));
	ck_assert(exists(P("%s/.staging-j70-a1-s1", C)));
	ck_assert(exists(P("%s/.staging-solo-1-h", C)));
	ck_assert_int_eq(latest(), 1);
	ck_assert_int_eq(rs_ckpt_verify(C, &e), 0);
	ck_assert_int_eq(rs_ckpt_drop_attempt(C, "", 2, &n, &e), -EINVAL);
}
END_TEST

START_TEST(test_ckpt_multipart_needs_job_and_seq)
{
	rs_ckpt_meta_t m = mp(0, 1);

	m.job_id = NULL;
	ck_assert_int_eq(rs_ckpt_save(S, C, 3, &m, NULL, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "needs a job id"));
	m = mp(0, 0);
	ck_assert_int_eq(rs_ckpt_save(S, C, 3, &m, NULL, &e), -EINVAL);
	m = mp(2, 1);
	ck_assert_int_eq(rs_ckpt_save(S, C, 3, &m, NULL, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "out of range"));
	m.nparts = 0;
	m.part = 0;
	ck_assert_int_eq(rs_ckpt_save(S, C, 3, &m, NULL, &e), -EINVAL);
	ck_assert(!exists(C));
}
END_TEST

/* ------------------------------------------------------- privileges --- */

START_TEST(test_ckpt_foreign_owner_refused)
{
	char buf[PATH_MAX];

	if (geteuid() != 0)
		return; /* needs chown to another uid */
	ck_assert_int_eq(mkdir(C, 0700), 0);
	ck_assert_int_eq(chown(C, 54321, 54321), 0);
	ck_assert_int_eq(save(1, NULL), -EPERM);
	ck_assert_ptr_nonnull(strstr(e.msg, "owned by uid 54321"));
	ck_assert_ptr_nonnull(strstr(e.msg, C));
	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 0, NULL, &e), -EPERM);
	ck_assert_int_eq(access(R, F_OK), -1);
	/* Reading is not using: root (an operator) may verify and list a
	 * user's folder, read-only (issue #11 kept this on purpose). */
	ck_assert_int_eq(rs_ckpt_verify(C, &e), 0);
	ck_assert_int_eq(rs_ckpt_latest(C, buf, sizeof(buf), NULL, &e), -ENOENT);
	ck_assert_int_eq(count_prefix(C, ""), 2);
}
END_TEST

START_TEST(test_ckpt_creates_dir_0700)
{
	const char *deep = P("%s/x/y/ckpt", base);

	umask(077 & 0);
	ck_assert_int_eq(rs_ckpt_save(S, deep, 1, NULL, NULL, &e), 0);
	ck_assert_uint_eq(lst(deep).st_mode, S_IFDIR | 0700);
	ck_assert_uint_eq(lst(P("%s/x", base)).st_mode, S_IFDIR | 0700);
	umask(022);
}
END_TEST

/* An ordinary user cannot read a file in its scratch: the save fails,
 * names the file, and leaves nothing that looks like a generation. */
START_TEST(test_ckpt_unreadable_file_fails_cleanly)
{
	int pipefd[2], status;
	char msg[RS_ERR_MAX] = { 0 };
	pid_t pid;

	if (geteuid() != 0)
		return;
	put(P("%s/ok", S), "fine", 0644);
	put(P("%s/secret", S), "no", 0000);
	ck_assert_int_eq(mkdir(C, 0700), 0);
	ck_assert_int_eq(chown(C, 65534, 65534), 0);
	ck_assert_int_eq(chown(S, 65534, 65534), 0);
	ck_assert_int_eq(chown(base, 65534, 65534), 0);
	ck_assert_int_eq(pipe(pipefd), 0);
	pid = fork();
	if (pid == 0) {
		rs_err_t ce;
		int rc;
		if (setgid(65534) || setuid(65534))
			_exit(99);
		rc = rs_ckpt_save(S, C, 1, NULL, NULL, &ce);
		if (write(pipefd[1], ce.msg, strlen(ce.msg))) {}
		_exit(rc == -EACCES ? 0 : 1);
	}
	close(pipefd[1]);
	ck_assert_int_ge(read(pipefd[0], msg, sizeof(msg) - 1), 0);
	close(pipefd[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child: %s", msg);
	ck_assert_ptr_nonnull(strstr(msg, "secret"));
	ck_assert_ptr_nonnull(strstr(msg, "Permission denied"));
	ck_assert_int_eq(latest(), -1);
	ck_assert_int_eq(count_prefix(C, ".staging"), 0);
	ck_assert_int_eq(count_prefix(C, "gen-"), 0);
	/* root reads a user's folder read-only: empty, consistent */
	ck_assert_int_eq(rs_ckpt_verify(C, &e), 0);
}
END_TEST

START_TEST(test_ckpt_bad_arguments)
{
	ck_assert_int_eq(save(0, NULL), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "keep must be at least 1"));
	ck_assert_int_eq(rs_ckpt_save(NULL, C, 1, NULL, NULL, &e), -EINVAL);
	ck_assert_int_eq(rs_ckpt_save(S, "", 1, NULL, NULL, &e), -EINVAL);
	ck_assert_int_eq(rs_ckpt_save(P("%s/missing", base), C, 1, NULL, NULL,
				      &e), -ENOENT);
	ck_assert_ptr_nonnull(strstr(e.msg, "scratch"));
	ck_assert_ptr_nonnull(strstr(e.msg, "does not exist"));
	ck_assert_int_eq(rs_ckpt_save(S, P("%s/inside", S), 1, NULL, NULL, &e),
			 -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "inside the other"));
	ck_assert_int_eq(rs_ckpt_save(S, S, 1, NULL, NULL, &e), -EINVAL);
	put(P("%s/notdir", base), "x", 0644);
	ck_assert_int_eq(rs_ckpt_save(S, P("%s/notdir", base), 1, NULL, NULL,
				      &e), -ENOTDIR);
	ck_assert_int_eq(rs_ckpt_latest(C, NULL, 0, NULL, &e), -ENOENT);
	ck_assert_int_eq(save(1, NULL), 0);
	char small[8];
	ck_assert_int_eq(rs_ckpt_latest(C, small, sizeof(small), NULL, &e),
			 -ENAMETOOLONG);
}
END_TEST

START_TEST(test_ckpt_gen_number)
{
	ck_assert_int_eq(rs_ckpt_gen_number("gen-000001"), 1);
	ck_assert_int_eq(rs_ckpt_gen_number("gen-999999"), 999999);
	ck_assert_int_eq(rs_ckpt_gen_number("gen-00001"), -1);
	ck_assert_int_eq(rs_ckpt_gen_number("gen-000000"), -1);
	ck_assert_int_eq(rs_ckpt_gen_number("gen-0000001"), 1);
	ck_assert_int_eq(rs_ckpt_gen_number("gen-1000000"), -1);
	ck_assert_int_eq(rs_ckpt_gen_number("gen-00000x"), -1);
	ck_assert_int_eq(rs_ckpt_gen_number("latest"), -1);
	ck_assert_int_eq(rs_ckpt_gen_number(""), -1);
}
END_TEST

/* --------------------------------------------------- crash recovery --- */

/* Run a save in a child with a fault hook set; returns the signal that
 * ended it (negated) or its exit status. */
static int fault_save(const char *var, const char *val, unsigned keep)
{
	int status;
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		rs_err_t ce;
		setenv(var, val, 1);
		/* One worker: under valgrind a child killed with work still
		 * queued reports the queue as lost; tests/fault/run kills
		 * the multi-worker save instead. */
		setenv("RS_CKPT_THREADS", "1", 1);
		_exit(rs_ckpt_save(S, C, keep, NULL, NULL, &ce) < 0 ? 1 : 0);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
}

static void no_leftovers(void)
{
	ck_assert_int_eq(count_prefix(C, ".staging"), 0);
	ck_assert_int_eq(count_prefix(C, ".trash"), 0);
	ck_assert_int_eq(count_prefix(C, ".latest.tmp"), 0);
	ck_assert_int_eq(count_prefix(C, ".manifest.json.tmp"), 0);
}

START_TEST(test_ckpt_kill_at_every_point)
{
	/* Points before the commit (the `latest` rename) must leave the
	 * previous generation as latest; points after it the new one. */
	static const struct { const char *at; int committed; } pts[] = {
		{ "staged", 0 }, { "copied", 0 }, { "part", 0 },
		{ "renamed", 0 }, { "latest-tmp", 0 }, { "latest", 1 },
		{ "manifest", 1 }, { "prune", 1 },
	};
	rs_ckpt_stats_t st;
	long before;

	for (int i = 0; i < 20; i++) {
		char n[16];
		snprintf(n, sizeof(n), "f%02d", i);
		put(P("%s/%s", S, n), n, 0644);
	}
	ck_assert_int_eq(save(2, &st), 0);
	ck_assert_int_eq(save(2, &st), 0);
	for (size_t i = 0; i < sizeof(pts) / sizeof(pts[0]); i++) {
		before = latest();
		put(P("%s/f00", S), pts[i].at, 0644);
		ck_assert_int_eq(fault_save("RS_CKPT_FAULT_AT", pts[i].at, 2),
				 -SIGKILL);
		ck_assert_msg(latest() == before + pts[i].committed,
			      "kill at %s: latest %ld, before %ld", pts[i].at,
			      latest(), before);
		ck_assert_msg(rs_ckpt_verify(C, &e) == 0, "kill at %s: %s",
			      pts[i].at, e.msg);
		if (pts[i].committed) {
			ck_assert_str_eq(slurp(P("%s/latest/node-0/f00", C)),
					 pts[i].at);
		} else {
			ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 0, NULL, &e), 0);
			rmrf(R);
		}
		/* the next save cleans up and carries on */
		ck_assert_int_eq(save(2, &st), 0);
		ck_assert_int_gt(st.gen, before + pts[i].committed);
		ck_assert_int_eq(latest(), st.gen);
		ck_assert_int_eq(rs_ckpt_verify(C, &e), 0);
		no_leftovers();
		ck_assert_int_eq(count_prefix(C, "gen-"), 2);
		json_object *m = manifest();
		ck_assert_int_eq(rec_int(m, 1, "gen"), st.gen);
		json_object_put(m);
	}
}
END_TEST

START_TEST(test_ckpt_kill_after_n_files)
{
	rs_ckpt_stats_t st;
	char n[16];

	ck_assert_int_eq(mkdir(P("%s/d", S), 0755), 0);
	for (int i = 0; i < 10; i++) {
		snprintf(n, sizeof(n), "d/f%d", i);
		put(P("%s/%s", S, n), n, 0644);
	}
	ck_assert_int_eq(save(3, &st), 0);
	for (int k = 1; k <= 11; k++) {
		long before = latest();
		snprintf(n, sizeof(n), "%d", k);
		put(P("%s/d/f0", S), n, 0644);
		ck_assert_int_eq(fault_save("RS_CKPT_FAULT_AFTER_FILES", n, 3),
				 -SIGKILL);
		ck_assert_int_eq(latest(), before);
		ck_assert_int_eq(rs_ckpt_verify(C, &e), 0);
		ck_assert_int_eq(save(3, &st), 0);
		no_leftovers();
		ck_assert_str_eq(slurp(P("%s/latest/node-0/d/f0", C)), n);
	}
	/* 12 entries: the hook never fires, the save completes */
	ck_assert_int_eq(fault_save("RS_CKPT_FAULT_AFTER_FILES", "12", 3), 0);
}
END_TEST

START_TEST(test_ckpt_stale_staging_of_dead_process_removed)
{
	char host[64], name[PATH_MAX];
	int status;
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_int_eq(gethostname(host, sizeof(host)), 0);
	ck_assert_int_eq(mkdir(C, 0700), 0);
	strcpy(name, P("%s/.staging-solo-%d-%s", C, (int)pid, host));
	ck_assert_int_eq(mkdir(name, 0700), 0);
	ck_assert_int_eq(mkdir(P("%s/node-0.tmp-x", name), 0700), 0);
	/* a live process's staging is left alone */
	strcpy(name, P("%s/.staging-solo-1-%s", C, host));
	ck_assert_int_eq(mkdir(name, 0700), 0);
	/* another host's staging: only by age */
	ck_assert_int_eq(mkdir(P("%s/.staging-solo-5-otherhost", C), 0700), 0);
	ck_assert_int_eq(save(1, NULL), 0);
	ck_assert_int_eq(count_prefix(C, ".staging"), 2);
	ck_assert(exists(name));
	set_mtime(P("%s/.staging-solo-5-otherhost", C), 1000, 0);
	setenv("RS_CKPT_STALE_SECONDS", "3600", 1);
	ck_assert_int_eq(save(1, NULL), 0);
	unsetenv("RS_CKPT_STALE_SECONDS");
	ck_assert_int_eq(count_prefix(C, ".staging"), 1);
	ck_assert(exists(name));
}
END_TEST

START_TEST(test_ckpt_lost_latest_is_repaired_not_pruned)
{
	rs_ckpt_stats_t st;

	put(P("%s/f", S), "one", 0644);
	ck_assert_int_eq(save(3, NULL), 0);
	put(P("%s/f", S), "two", 0644);
	ck_assert_int_eq(save(3, NULL), 0);
	/* someone removes `latest`, or points it back by hand */
	ck_assert_int_eq(unlink(P("%s/latest", C)), 0);
	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 0, NULL, &e), -ENOENT);
	ck_assert_int_eq(save(3, &st), 0);
	ck_assert_int_eq(st.gen, 3);
	ck_assert_str_eq(slurp(P("%s/gen-000001/node-0/f", C)), "one");
	ck_assert_str_eq(slurp(P("%s/gen-000002/node-0/f", C)), "two");
	ck_assert_int_eq(unlink(P("%s/latest", C)), 0);
	ck_assert_int_eq(symlink("gen-000001", P("%s/latest", C)), 0);
	ck_assert_int_eq(save(3, &st), 0);
	ck_assert_int_eq(st.gen, 4);
	ck_assert_int_eq(count_prefix(C, "gen-"), 3);
	ck_assert_int_eq(rs_ckpt_verify(C, &e), 0);
}
END_TEST

START_TEST(test_ckpt_verify_detects_inconsistency)
{
	ck_assert_int_eq(rs_ckpt_verify(C, &e), -ENOENT);
	ck_assert_int_eq(mkdir(C, 0700), 0);
	ck_assert_int_eq(rs_ckpt_verify(C, &e), 0);
	ck_assert_int_eq(save(3, NULL), 0);
	ck_assert_int_eq(save(3, NULL), 0);
	ck_assert_int_eq(rs_ckpt_verify(C, &e), 0);
	/* latest behind the manifest */
	ck_assert_int_eq(unlink(P("%s/latest", C)), 0);
	ck_assert_int_eq(symlink("gen-000001", P("%s/latest", C)), 0);
	ck_assert_int_eq(rs_ckpt_verify(C, &e), -EUCLEAN);
	ck_assert_ptr_nonnull(strstr(e.msg, "manifest records gen-000002"));
	/* no latest at all */
	ck_assert_int_eq(unlink(P("%s/latest", C)), 0);
	ck_assert_int_eq(rs_ckpt_verify(C, &e), -EUCLEAN);
	ck_assert_int_eq(symlink("gen-000002", P("%s/latest", C)), 0);
	ck_assert_int_eq(rs_ckpt_verify(C, &e), 0);
	/* a recorded generation lost its data */
	rmrf(P("%s/gen-000001/node-0", C));
	ck_assert_int_eq(rs_ckpt_verify(C, &e), -EUCLEAN);
	ck_assert_ptr_nonnull(strstr(e.msg, "gen-000001"));
	ck_assert_ptr_nonnull(strstr(e.msg, "missing"));
}
END_TEST


/* ------------------------------------------------------ error paths --- */

START_TEST(test_ckpt_lock_timeout_fails_save_cleanly)
{
	int dfd, lfd = -1;

	ck_assert_int_eq(save(3, NULL), 0);
	dfd = rs_manifest_open_dir(C, 0, &e);
	ck_assert_int_ge(dfd, 0);
	ck_assert_int_eq(rs_manifest_lock(dfd, C, 1000, &lfd, &e), 0);
	setenv("RS_CKPT_LOCK_TIMEOUT", "1", 1);
	ck_assert_int_eq(save(3, NULL), -ETIMEDOUT);
	unsetenv("RS_CKPT_LOCK_TIMEOUT");
	ck_assert_ptr_nonnull(strstr(e.msg, ".lock"));
	ck_assert_int_eq(count_prefix(C, ".staging"), 0);
	rs_manifest_unlock(lfd);
	close(dfd);
	ck_assert_int_eq(latest(), 1);
	ck_assert_int_eq(save(3, NULL), 0);
	ck_assert_int_eq(latest(), 2);
}
END_TEST

START_TEST(test_ckpt_depth_limit)
{
	char path[PATH_MAX];
	size_t n;

	snprintf(path, sizeof(path), "%s", S);
	for (int i = 0; i < RS_CKPT_DEPTH_TEST; i++) {
		n = strlen(path);
		ck_assert_uint_lt(n + 3, sizeof(path));
		memcpy(path + n, "/d", 3);
		ck_assert_int_eq(mkdir(path, 0755), 0);
	}
	ck_assert_int_eq(save(1, NULL), -ELOOP);
	ck_assert_ptr_nonnull(strstr(e.msg, "nested deeper than 256"));
	ck_assert_int_eq(count_prefix(C, ".staging"), 0);
	ck_assert_int_eq(latest(), -1);
	/* exactly at the bound: accepted */
	ck_assert_int_eq(rmdir(path), 0);
	ck_assert_int_eq(save(1, NULL), 0);
	ck_assert_int_eq(latest(), 1);
}
END_TEST

static char warned[RS_ERR_MAX];
static int nwarn;

static void collect(void *arg, const char *msg)
{
	(void)arg;
	nwarn++;
	snprintf(warned, sizeof(warned), "%s", msg);
}

START_TEST(test_ckpt_warnings_reach_the_hook)
{
	nwarn = 0;
	rs_ckpt_set_warn(collect, NULL);
	ck_assert_int_eq(mkfifo(P("%s/pipe", S), 0600), 0);
	ck_assert_int_eq(save(1, NULL), 0);
	rs_ckpt_set_warn(NULL, NULL);
	ck_assert_int_eq(nwarn, 1);
	ck_assert_ptr_nonnull(strstr(warned, "pipe"));
	ck_assert_ptr_nonnull(strstr(warned, "FIFO"));
	/* unset: nothing is called */
	ck_assert_int_eq(save(1, NULL), 0);
	ck_assert_int_eq(nwarn, 1);
}
END_TEST

static int drop_gen1(json_object *root, void *arg, rs_err_t *err)
{
	(void)arg; (void)err;
	json_object_array_del_idx(rs_manifest_generations(root), 0, 1);
	return 0;
}

START_TEST(test_ckpt_restore_refuses_unrecorded_older_generation)
{
	ck_assert_int_eq(save(3, NULL), 0);
	ck_assert_int_eq(save(3, NULL), 0);
	/* as if pruned: record gone, directory not yet */
	ck_assert_int_eq(rs_manifest_update(C, drop_gen1, NULL, &e), 0);
	ck_assert_int_eq(rs_ckpt_restore(C, R, 1, 0, NULL, &e), -ENOENT);
	ck_assert_ptr_nonnull(strstr(e.msg, "not in the manifest"));
	ck_assert_int_eq(rs_ckpt_verify(C, &e), 0);
	/* the next save removes it */
	ck_assert_int_eq(save(3, NULL), 0);
	ck_assert(!exists(P("%s/gen-000001", C)));
	ck_assert_int_eq(count_prefix(C, "gen-"), 2);
}
END_TEST

START_TEST(test_ckpt_restore_parent_missing)
{
	ck_assert_int_eq(save(1, NULL), 0);
	/* Missing parents are made 0700, like the scratch itself (safedir
	 * CREATE); before issue #11 this was -ENOENT. */
	ck_assert_int_eq(rs_ckpt_restore(C, P("%s/no/such/dir", base), -1, 0,
					 NULL, &e), 0);
	ck_assert_uint_eq(lst(P("%s/no", base)).st_mode, S_IFDIR | 0700);
	ck_assert_uint_eq(lst(P("%s/no/such/dir", base)).st_mode,
			  S_IFDIR | 0700);
}
END_TEST

START_TEST(test_ckpt_multipart_part_saved_twice_is_replaced)
{
	rs_ckpt_meta_t a = mp(0, 1), b = mp(1, 1);

	put(P("%s/f", S), "first try", 0644);
	ck_assert_int_eq(rs_ckpt_save(S, C, 3, &a, NULL, &e), 0);
	put(P("%s/f", S), "second try", 0644);
	ck_assert_int_eq(rs_ckpt_save(S, C, 3, &a, NULL, &e), 0);
	ck_assert_int_eq(latest(), -1);
	ck_assert_int_eq(rs_ckpt_save(S, C, 3, &b, NULL, &e), 0);
	ck_assert_int_eq(latest(), 1);
	ck_assert_str_eq(slurp(P("%s/gen-000001/node-0/f", C)), "second try");
}
END_TEST


/* The first warning (a FIFO skipped) deletes every victim not yet
 * copied: entries that vanish between listing and copying. */
static int victims_deleted;

static void delete_victims(void *arg, const char *msg)
{
	(void)msg;
	if (victims_deleted++)
		return;
	for (int i = 0; i < 20; i++)
		unlink(P("%s/d/v%02d", (const char *)arg, i));
}

START_TEST(test_ckpt_vanished_entries_counted)
{
	rs_ckpt_stats_t st;
	int in_ckpt = 0;

	ck_assert_int_eq(mkdir(P("%s/d", S), 0755), 0);
	for (int i = 0; i < 20; i++)
		put(P("%s/d/v%02d", S, i), "victim", 0644);
	/* ten FIFOs: one of them comes before some victim in any order
	 * but a one-in-thirty-million one */
	for (int i = 0; i < 10; i++)
		ck_assert_int_eq(mkfifo(P("%s/d/f%d", S, i), 0600), 0);
	victims_deleted = 0;
	rs_ckpt_set_warn(delete_victims, S);
	setenv("RS_CKPT_THREADS", "1", 1);
	ck_assert_int_eq(save(1, &st), 0);
	unsetenv("RS_CKPT_THREADS");
	rs_ckpt_set_warn(NULL, NULL);
	for (int i = 0; i < 20; i++)
		in_ckpt += exists(P("%s/latest/node-0/d/v%02d", C, i));
	ck_assert_int_gt(st.changed, 0);
	ck_assert_uint_eq(st.changed + (unsigned)in_ckpt, 20);
	ck_assert_uint_eq(st.skipped, 10);
	ck_assert_uint_eq(st.files, (unsigned)in_ckpt + 1);
	json_object *m = manifest();
	ck_assert_int_eq(rec_int(m, 0, "changed"), (int64_t)st.changed);
	json_object_put(m);
	ck_assert_int_eq(rs_ckpt_verify(C, &e), 0);
	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 0, NULL, &e), 0);
}
END_TEST

/* ------------------------------------------------ issue #11: privileges */

/* A setuid or setgid file is saved and restored without those bits, so
 * whoever planted it cannot get a setuid binary owned by the job's user;
 * a directory keeps its sticky bit but not setgid. */
START_TEST(test_ckpt_setuid_setgid_never_saved_or_restored)
{
	put(P("%s/suid", S), "#!/bin/sh\n", 04755);
	put(P("%s/sgid", S), "#!/bin/sh\n", 02711);
	put(P("%s/sticky", S), "x", 01644);
	ck_assert_int_eq(mkdir(P("%s/shared", S), 0700), 0);
	ck_assert_int_eq(chmod(P("%s/shared", S), 03777), 0);
	ck_assert_uint_eq(lst(P("%s/suid", S)).st_mode & 07777, 04755);
	ck_assert_int_eq(save(2, NULL), 0);
	ck_assert_uint_eq(lst(P("%s/gen-000001/node-0/suid", C)).st_mode,
			  S_IFREG | 0755);
	ck_assert_uint_eq(lst(P("%s/gen-000001/node-0/sgid", C)).st_mode,
			  S_IFREG | 0711);
	ck_assert_uint_eq(lst(P("%s/gen-000001/node-0/sticky", C)).st_mode,
			  S_IFREG | 0644);
	ck_assert_uint_eq(lst(P("%s/gen-000001/node-0/shared", C)).st_mode,
			  S_IFDIR | 01777);
	/* the next save hard-links the unchanged file (same mode once the
	 * bits are dropped), still without them */
	ck_assert_int_eq(save(2, NULL), 0);
	ck_assert_uint_eq(lst(P("%s/gen-000002/node-0/suid", C)).st_mode,
			  S_IFREG | 0755);
	/* a setuid file planted in the checkpoint is restored without it */
	ck_assert_int_eq(chmod(P("%s/gen-000002/node-0/sgid", C), 06755), 0);
	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 0, NULL, &e), 0);
	ck_assert_uint_eq(lst(P("%s/suid", R)).st_mode, S_IFREG | 0755);
	ck_assert_uint_eq(lst(P("%s/sgid", R)).st_mode, S_IFREG | 0755);
	ck_assert_uint_eq(lst(P("%s/shared", R)).st_mode, S_IFDIR | 01777);
}
END_TEST

/* scratch=/tmp/run_%j pre-created by another user (0777, theirs): the
 * save does not read it, the restore does not write into it. */
START_TEST(test_ckpt_foreign_scratch_refused)
{
	char want[PATH_MAX + 128];

	if (geteuid() != 0)
		return; /* needs chown to another uid */
	put(P("%s/f", S), "mine", 0644);
	ck_assert_int_eq(save(1, NULL), 0);
	ck_assert_int_eq(mkdir(R, 0777), 0);
	ck_assert_int_eq(chown(R, 65534, 65534), 0);
	ck_assert_int_eq(chmod(R, 0777), 0);
	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 0, NULL, &e), -EPERM);
	snprintf(want, sizeof(want), "scratch %s is owned by uid 65534, not "
		 "by you (uid 0): remove it or choose another folder", R);
	ck_assert_str_eq(e.msg, want);
	ck_assert_int_eq(count_prefix(R, ""), 2); /* . and .. */
	/* a planted file in their folder is not saved into our checkpoint */
	put(P("%s/planted", R), "theirs", 0644);
	ck_assert_int_eq(rs_ckpt_save(R, C, 1, NULL, NULL, &e), -EPERM);
	ck_assert_ptr_nonnull(strstr(e.msg, "owned by uid 65534"));
	ck_assert(!exists(P("%s/gen-000002", C)));
	/* our own folder others may write to is refused as well */
	ck_assert_int_eq(chmod(S, 0777), 0);
	ck_assert_int_eq(save(1, NULL), -EPERM);
	ck_assert_ptr_nonnull(strstr(e.msg, "mode 0777"));
}
END_TEST

/* scratch a symlink (to a folder in our home): the restore refuses it
 * rather than replace what the link points to. */
START_TEST(test_ckpt_symlinked_scratch_refused)
{
	const char *home = P("%s/home", base);

	put(P("%s/f", S), "ckpt", 0644);
	ck_assert_int_eq(save(1, NULL), 0);
	ck_assert_int_eq(mkdir(home, 0700), 0);
	put(P("%s/precious", home), "keep me", 0644);
	ck_assert_int_eq(symlink(home, R), 0);
	ck_assert_int_eq(rs_ckpt_restore(C, R, -1, 0, NULL, &e), -ELOOP);
	ck_assert_ptr_nonnull(strstr(e.msg, "is a symbolic link"));
	ck_assert_str_eq(slurp(P("%s/precious", home)), "keep me");
	ck_assert(!exists(P("%s/f", home)));
	ck_assert_int_eq(rs_ckpt_save(R, C, 1, NULL, NULL, &e), -ELOOP);
	/* nor a checkpoint folder given as a symlink */
	ck_assert_int_eq(symlink(C, P("%s/clink", base)), 0);
	ck_assert_int_eq(rs_ckpt_save(S, P("%s/clink", base), 1, NULL, NULL,
				      &e), -ELOOP);
	/* and ".." is no way around it */
	ck_assert_int_eq(rs_ckpt_save(S, P("%s/s/../c", base), 1, NULL, NULL,
				      &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "'..' is not allowed"));
}
END_TEST

/* Nesting is judged on what the folders are: a symlink on the way (root's
 * or ours, so followed) does not hide a checkpoint folder inside scratch. */
START_TEST(test_ckpt_nesting_seen_through_symlinks)
{
	ck_assert_int_eq(symlink(S, P("%s/alias", base)), 0);
	ck_assert_int_eq(rs_ckpt_save(S, P("%s/alias/ck", base), 1, NULL,
				      NULL, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "inside the other"));
	put(P("%s/f", S), "x", 0644);
	ck_assert_int_eq(save(1, NULL), 0);
	ck_assert_int_eq(symlink(C, P("%s/calias", base)), 0);
	ck_assert_int_eq(rs_ckpt_restore(C, P("%s/calias/gen-000001/x", base),
					 -1, 0, NULL, &e), -EINVAL);
	ck_assert_ptr_nonnull(strstr(e.msg, "inside the other"));
}
END_TEST

/* Root's CLI must not hang on a FIFO named manifest.json or node-0.json,
 * nor read a huge one. */
START_TEST(test_ckpt_fifo_and_huge_records_refused)
{
	int fd;

	put(P("%s/f", S), "x", 0644);
	ck_assert_int_eq(save(1, NULL), 0);
	ck_assert_int_eq(unlink(P("%s/gen-000001/node-0.json", C)), 0);
	ck_assert_int_eq(mkfifo(P("%s/gen-000001/node-0.json", C), 0600), 0);
	ck_assert_int_eq(rs_ckpt_verify(C, &e), -EUCLEAN);
	ck_assert_ptr_nonnull(strstr(e.msg, "not a regular file"));
	ck_assert_int_eq(unlink(P("%s/gen-000001/node-0.json", C)), 0);
	fd = open(P("%s/gen-000001/node-0.json", C), O_WRONLY | O_CREAT, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, RS_MANIFEST_SIDECAR_MAX_BYTES + 1), 0);
	close(fd);
	ck_assert_int_eq(rs_ckpt_verify(C, &e), -EUCLEAN);
	ck_assert_ptr_nonnull(strstr(e.msg, "more than the"));
	ck_assert_int_eq(rename(P("%s/manifest.json", C), P("%s/m", C)), 0);
	ck_assert_int_eq(mkfifo(P("%s/manifest.json", C), 0600), 0);
	ck_assert_int_eq(rs_ckpt_verify(C, &e), -EBADMSG);
	ck_assert_ptr_nonnull(strstr(e.msg, "not a regular file"));
	ck_assert_int_eq(unlink(P("%s/manifest.json", C)), 0);
	ck_assert_int_eq(symlink(P("%s/m", C), P("%s/manifest.json", C)), 0);
	ck_assert_int_eq(rs_ckpt_verify(C, &e), -ELOOP);
}
END_TEST

/* Numbers in a sidecar are the user's: out-of-range, negative, infinite
 * or NaN values become 0 in the record instead of undefined behaviour. */
START_TEST(test_ckpt_sidecar_numbers_out_of_range)
{
	const char *sc = P("%s/gen-000001/node-0.json", C);
	json_object *root, *r, *v = NULL;
	char text[512];

	put(P("%s/f", S), "x", 0644);
	ck_assert_int_eq(save(3, NULL), 0);
	snprintf(text, sizeof(text), "{ \"part\": 0, \"nparts\": 1.0, "
		 "\"files\": -5, \"bytes\": 1.8e19, \"bytes_copied\": "
		 "Infinity, \"skipped\": NaN, \"changed\": 99999999999999999999,"
		 " \"seconds\": -Infinity, \"time_unix\": 1e300, "
		 "\"attempt\": 1e300, \"seq\": -1e300 }");
	ck_assert_int_eq(unlink(sc), 0);
	put(sc, text, 0600);
	/* drop the record: the next save rebuilds it from the sidecar */
	put(P("%s/manifest.json", C),
	    "{\"schema\":1,\"next_gen\":2,\"generations\":[]}", 0600);
	ck_assert_int_eq(save(3, NULL), 0);
	root = manifest();
	r = json_object_array_get_idx(rs_manifest_generations(root), 0);
	ck_assert_int_eq(rec_int(root, 0, "gen"), 1);
	ck_assert_int_eq(rec_int(root, 0, "files"), 0);
	ck_assert_int_eq(rec_int(root, 0, "bytes"), 0);
	ck_assert_int_eq(rec_int(root, 0, "bytes_copied"), 0);
	ck_assert_int_eq(rec_int(root, 0, "skipped"), 0);
	ck_assert_int_eq(rec_int(root, 0, "time_unix"), 0);
	ck_assert_int_eq(rec_int(root, 0, "attempt"), 0);
	ck_assert_int_eq(rec_int(root, 0, "seq"), 0);
	ck_assert(json_object_object_get_ex(r, "time", &v));
	ck_assert_str_eq(json_object_get_string(v), "1970-01-01T00:00:00Z");
	json_object_put(root);
	ck_assert_int_eq(rs_ckpt_verify(C, &e), 0);
}
END_TEST

static Suite *ckpt_suite(void)
{
	Suite *s = suite_create("ckpt");
	TCase *tc;

	tc = tcase_create("round_trip");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ckpt_round_trip_tree);
	tcase_add_test(tc, test_ckpt_round_trip_sparse);
	tcase_add_test(tc, test_ckpt_round_trip_empty_scratch);
	tcase_add_test(tc, test_ckpt_symlink_to_shadow_kept_as_link);
	tcase_add_test(tc, test_ckpt_special_files_skipped);
	suite_add_tcase(s, tc);

	tc = tcase_create("incremental");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ckpt_incremental_links_unchanged);
	tcase_add_test(tc, test_ckpt_incremental_mode_or_mtime_change_copies);
	suite_add_tcase(s, tc);

	tc = tcase_create("keep");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ckpt_keep_prunes_oldest);
	tcase_add_test(tc, test_ckpt_numbers_only_grow);
	suite_add_tcase(s, tc);

	tc = tcase_create("restore");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ckpt_restore_never_hard_links);
	tcase_add_test(tc, test_ckpt_restore_chosen_generation);
	tcase_add_test(tc, test_ckpt_restore_into_existing_scratch);
	tcase_add_test(tc, test_ckpt_restore_refuses_missing_and_incomplete);
	suite_add_tcase(s, tc);

	tc = tcase_create("multipart");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ckpt_multipart_complete_after_last_part);
	tcase_add_test(tc, test_ckpt_multipart_older_seq_removed_on_publish);
	tcase_add_test(tc, test_ckpt_multipart_ended_part_stands_in);
	tcase_add_test(tc, test_ckpt_multipart_needs_job_and_seq);
	tcase_add_test(tc, test_ckpt_drop_attempt_removes_only_that_jobs_staging);
	suite_add_tcase(s, tc);

	tc = tcase_create("privileges_and_arguments");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ckpt_foreign_owner_refused);
	tcase_add_test(tc, test_ckpt_setuid_setgid_never_saved_or_restored);
	tcase_add_test(tc, test_ckpt_foreign_scratch_refused);
	tcase_add_test(tc, test_ckpt_symlinked_scratch_refused);
	tcase_add_test(tc, test_ckpt_nesting_seen_through_symlinks);
	tcase_add_test(tc, test_ckpt_fifo_and_huge_records_refused);
	tcase_add_test(tc, test_ckpt_sidecar_numbers_out_of_range);
	tcase_add_test(tc, test_ckpt_creates_dir_0700);
	tcase_add_test(tc, test_ckpt_unreadable_file_fails_cleanly);
	tcase_add_test(tc, test_ckpt_bad_arguments);
	tcase_add_test(tc, test_ckpt_gen_number);
	suite_add_tcase(s, tc);

	tc = tcase_create("error_paths");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_ckpt_lock_timeout_fails_save_cleanly);
	tcase_add_test(tc, test_ckpt_depth_limit);
	tcase_add_test(tc, test_ckpt_warnings_reach_the_hook);
	tcase_add_test(tc, test_ckpt_restore_refuses_unrecorded_older_generation);
	tcase_add_test(tc, test_ckpt_restore_parent_missing);
	tcase_add_test(tc, test_ckpt_multipart_part_saved_twice_is_replaced);
	tcase_add_test(tc, test_ckpt_vanished_entries_counted);
	suite_add_tcase(s, tc);

	tc = tcase_create("crash_recovery");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_ckpt_kill_at_every_point);
	tcase_add_test(tc, test_ckpt_kill_after_n_files);
	tcase_add_test(tc, test_ckpt_stale_staging_of_dead_process_removed);
	tcase_add_test(tc, test_ckpt_lost_latest_is_repaired_not_pruned);
	tcase_add_test(tc, test_ckpt_verify_detects_inconsistency);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ckpt_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
