/* test_spool.c - the on-disk spool: safety checks, durability format,
 * order, bounds, retry, dead letters, lock. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "spool.h"

static char base[64];
static char dir[128];

static void setup(void)
{
	snprintf(base, sizeof(base), "/tmp/rs-spool-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
	snprintf(dir, sizeof(dir), "%s/spool", base);
}

static void teardown(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	ck_assert_int_eq(system(cmd), 0);
}

static rs_spool_t *open_ok(const rs_spool_limits_t *lim)
{
	rs_spool_t *sp = NULL;
	rs_err_t err;

	ck_assert_msg(rs_spool_open(dir, lim, 1, &sp, &err) == 0, "%s", err.msg);
	return sp;
}

static void fill(rs_spool_entry_t *e, rs_spool_kind_t kind, const char *id, const char *payload)
{
	memset(e, 0, sizeof(*e));
	e->kind = kind;
	snprintf(e->format, sizeof(e->format), "%s", kind == RS_SPOOL_ALERT ? "alertmanager" : "clickhouse");
	snprintf(e->event_id, sizeof(e->event_id), "%s", id);
	e->payload = (char *)payload;
	e->len = strlen(payload);
}

static char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 16);
	size_t n;

	ck_assert_ptr_nonnull(f);
	n = fread(buf, 1, (1 << 16) - 1, f);
	fclose(f);
	if (len)
		*len = n;
	return buf;
}

static int count_files(const char *d, const char *prefix)
{
	char cmd[512];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof(cmd), "ls -A '%s' | grep -c '^%s' || true", d, prefix);
	p = popen(cmd, "r");
	ck_assert_int_eq(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

/* --------------------------------------------------------- opening --- */

START_TEST(test_spool_open_creates_private_folders)
{
	rs_spool_t *sp = NULL;
	struct stat st;
	char dead[256];
	rs_err_t err;

	ck_assert_int_eq(rs_spool_open(dir, NULL, 0, &sp, &err), -ENOENT);
	ck_assert_ptr_null(sp);
	ck_assert_str_eq(err.msg + strlen(err.msg) - strlen("No such file or directory"),
			 "No such file or directory");
	sp = open_ok(NULL);
	ck_assert_str_eq(rs_spool_dir(sp), dir);
	ck_assert_int_eq(stat(dir, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0700);
	ck_assert_int_eq(st.st_uid, geteuid());
	snprintf(dead, sizeof(dead), "%s/dead", dir);
	ck_assert_int_eq(stat(dead, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(st.st_mode & 07777, 0700);
	rs_spool_close(sp);
	rs_spool_close(NULL);
	/* existing folder: opens without create */
	ck_assert_int_eq(rs_spool_open(dir, NULL, 0, &sp, &err), 0);
	rs_spool_close(sp);
}
END_TEST

START_TEST(test_spool_open_refuses_unsafe_folders)
{
	rs_spool_t *sp = NULL;
	char link[256], file[256], msg[512];
	rs_err_t err;

	ck_assert_int_eq(rs_spool_open(NULL, NULL, 1, &sp, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "spool: no folder given (spool_dir=)");
	ck_assert_int_eq(rs_spool_open("", NULL, 1, &sp, &err), -EINVAL);

	ck_assert_int_eq(mkdir(dir, 0700), 0);
	ck_assert_int_eq(chmod(dir, 0777), 0);
	ck_assert_int_eq(rs_spool_open(dir, NULL, 1, &sp, &err), -EPERM);
	snprintf(msg, sizeof(msg), "spool %s: mode 0777 is group/world-writable", dir);
	ck_assert_str_eq(err.msg, msg);
	ck_assert_int_eq(chmod(dir, 0720), 0);
	ck_assert_int_eq(rs_spool_open(dir, NULL, 1, &sp, &err), -EPERM);
	ck_assert_ptr_null(sp);

	/* owned by someone else (nobody) */
	ck_assert_int_eq(chmod(dir, 0700), 0);
	if (geteuid() == 0) {
		ck_assert_int_eq(chown(dir, 65534, 65534), 0);
		ck_assert_int_eq(rs_spool_open(dir, NULL, 1, &sp, &err), -EPERM);
		snprintf(msg, sizeof(msg), "spool %s: owned by uid 65534, must be owned by uid 0 "
			 "(root on a node)", dir);
		ck_assert_str_eq(err.msg, msg);
		ck_assert_int_eq(chown(dir, 0, 0), 0);
	}

	/* a symlink to a good folder is refused: it could be swapped */
	snprintf(link, sizeof(link), "%s/link", base);
	ck_assert_int_eq(symlink(dir, link), 0);
	ck_assert_int_eq(rs_spool_open(link, NULL, 1, &sp, &err), -EPERM);
	snprintf(msg, sizeof(msg), "spool %s: is a symlink", link);
	ck_assert_str_eq(err.msg, msg);

	/* a file is not a folder */
	snprintf(file, sizeof(file), "%s/file", base);
	close(open(file, O_CREAT | O_WRONLY, 0600));
	ck_assert_int_eq(rs_spool_open(file, NULL, 1, &sp, &err), -ENOTDIR);

	/* dead/ as a symlink is refused too */
	{
		char dead[256];
		snprintf(dead, sizeof(dead), "%s/dead", dir);
		ck_assert_int_eq(symlink("/tmp", dead), 0);
		ck_assert_int_eq(rs_spool_open(dir, NULL, 1, &sp, &err), -EPERM);
		snprintf(msg, sizeof(msg), "spool %s/dead: is a symlink", dir);
		ck_assert_str_eq(err.msg, msg);
	}
}
END_TEST

/* ------------------------------------------------------ put and read --- */

START_TEST(test_spool_put_writes_documented_format)
{
	rs_spool_t *sp = open_ok(NULL);
	rs_spool_entry_t e, r;
	rs_err_t err;
	char path[512], expect[1024], *text;
	struct stat st;
	size_t len;
	time_t before = time(NULL);

	fill(&e, RS_SPOOL_METRICS, "alpha:42:1", "{\"a\":1}\n");
	snprintf(e.path, sizeof(e.path), "/metrics/job/x");
	e.next_try = 0;
	e.attempts = 9;           /* reset by put */
	strcpy(e.last_error, "x"); /* reset by put */
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), 0);
	ck_assert_int_eq(strncmp(e.name, "e-", 2), 0);
	/* the name ends in the payload length */
	ck_assert_str_eq(e.name + strlen(e.name) - 2, "-8");
	ck_assert_int_ge(e.created, before);
	snprintf(path, sizeof(path), "%s/%s", dir, e.name);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	text = slurp(path, &len);
	snprintf(expect, sizeof(expect),
		 "rs-spool 1\nkind metrics\nformat clickhouse\nevent_id alpha:42:1\n"
		 "path /metrics/job/x\nattempts 0\ncreated %lld\nnext_try 0\nlast_error \n\n"
		 "{\"a\":1}\n", (long long)e.created);
	ck_assert_str_eq(text, expect);
	free(text);
	/* nothing temporary left */
	ck_assert_int_eq(count_files(dir, ".tmp-"), 0);

	ck_assert_int_eq(rs_spool_read(sp, e.name, 0, &r, &err), 0);
	ck_assert_str_eq(r.name, e.name);
	ck_assert_int_eq(r.kind, RS_SPOOL_METRICS);
	ck_assert_str_eq(r.format, "clickhouse");
	ck_assert_str_eq(r.event_id, "alpha:42:1");
	ck_assert_str_eq(r.path, "/metrics/job/x");
	ck_assert_uint_eq(r.attempts, 0);
	ck_assert_int_eq(r.created, e.created);
	ck_assert_int_eq(r.next_try, 0);
	ck_assert_str_eq(r.last_error, "");
	ck_assert_uint_eq(r.len, 8);
	ck_assert_str_eq(r.payload, "{\"a\":1}\n");
	rs_spool_entry_free(&r);
	ck_assert_ptr_null(r.payload);
	rs_spool_entry_free(NULL);
	rs_spool_close(sp);
}
END_TEST

START_TEST(test_spool_payload_bytes_kept_exactly)
{
	rs_spool_t *sp = open_ok(NULL);
	rs_spool_entry_t e, r;
	rs_err_t err;
	char payload[3000];

	/* binary-ish payload: newlines, a blank line, "rs-spool 1" inside */
	for (size_t i = 0; i < sizeof(payload) - 1; i++)
		payload[i] = (char)(1 + i % 250);
	payload[sizeof(payload) - 1] = '\0';
	memcpy(payload, "\n\nrs-spool 1\n", 13);
	fill(&e, RS_SPOOL_ALERT, "c:1:1", payload);
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), 0);
	ck_assert_int_eq(rs_spool_read(sp, e.name, 0, &r, &err), 0);
	ck_assert_int_eq(r.kind, RS_SPOOL_ALERT);
	ck_assert_uint_eq(r.len, sizeof(payload) - 1);
	ck_assert_int_eq(memcmp(r.payload, payload, r.len), 0);
	rs_spool_entry_free(&r);
	rs_spool_close(sp);
}
END_TEST

START_TEST(test_spool_put_rejects_bad_entries)
{
	rs_spool_t *sp = open_ok(NULL);
	rs_spool_entry_t e;
	rs_err_t err;
	char *big;

	fill(&e, RS_SPOOL_METRICS, "c:1:1", "");
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), -EINVAL);
	ck_assert_str_eq(err.msg + strlen(err.msg) - strlen("empty payload for c:1:1"),
			 "empty payload for c:1:1");
	fill(&e, RS_SPOOL_METRICS, "c:1:1", "x");
	e.payload = NULL;
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), -EINVAL);
	fill(&e, RS_SPOOL_METRICS, "c:1:1\nattempts 5", "x");
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), -EINVAL);
	fill(&e, RS_SPOOL_METRICS, "c:1:1", "x");
	strcpy(e.path, "/a\r");
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), -EINVAL);
	fill(&e, RS_SPOOL_METRICS, "c:1:1", "x");
	e.format[0] = '\0';
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), -EINVAL);
	big = malloc(RS_SPOOL_MAX_PAYLOAD + 2);
	memset(big, 'x', RS_SPOOL_MAX_PAYLOAD + 1);
	big[RS_SPOOL_MAX_PAYLOAD + 1] = '\0';
	fill(&e, RS_SPOOL_METRICS, "c:1:1", big);
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), -EINVAL);
	/* exactly the limit is fine */
	big[RS_SPOOL_MAX_PAYLOAD] = '\0';
	fill(&e, RS_SPOOL_METRICS, "c:1:1", big);
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), 0);
	free(big);
	ck_assert_int_eq(count_files(dir, "e-"), 1);
	rs_spool_close(sp);
}
END_TEST

START_TEST(test_spool_list_in_creation_order)
{
	rs_spool_t *sp = open_ok(NULL);
	rs_spool_entry_t e, r;
	rs_err_t err;
	char **names = NULL, id[32], other[512];
	size_t n = 0;

	for (int i = 0; i < 25; i++) {
		snprintf(id, sizeof(id), "c:%d:1", i);
		fill(&e, RS_SPOOL_METRICS, id, "p");
		ck_assert_int_eq(rs_spool_put(sp, &e, &err), 0);
	}
	/* files that are not entries are ignored */
	snprintf(other, sizeof(other), "%s/README", dir);
	close(open(other, O_CREAT | O_WRONLY, 0600));
	snprintf(other, sizeof(other), "%s/.tmp-1-2-3", dir);
	close(open(other, O_CREAT | O_WRONLY, 0600));
	ck_assert_int_eq(rs_spool_list(sp, 0, &names, &n, &err), 0);
	ck_assert_uint_eq(n, 25);
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_eq(rs_spool_read(sp, names[i], 0, &r, &err), 0);
		snprintf(id, sizeof(id), "c:%zu:1", i);
		ck_assert_str_eq(r.event_id, id);
		rs_spool_entry_free(&r);
	}
	rs_spool_names_free(names, n);
	ck_assert_int_eq(rs_spool_list(sp, 1, &names, &n, &err), 0);
	ck_assert_uint_eq(n, 0);
	ck_assert_ptr_null(names);
	rs_spool_close(sp);
}
END_TEST

START_TEST(test_spool_read_refuses_bad_files)
{
	rs_spool_t *sp = open_ok(NULL);
	rs_spool_entry_t r;
	rs_err_t err;
	char path[512];
	FILE *f;

	ck_assert_int_eq(rs_spool_read(sp, "../../etc/passwd", 0, &r, &err), -EINVAL);
	ck_assert_int_eq(rs_spool_read(sp, "e-000000000001-000000001-1-1-5", 0, &r, &err), -ENOENT);

	snprintf(path, sizeof(path), "%s/e-000000000001-000000002-1-1-5", dir);
	f = fopen(path, "w");
	fputs("rs-spool 1\nkind metrics\nformat json\nevent_id x\n\nhello", f);
	fclose(f);
	ck_assert_int_eq(rs_spool_read(sp, "e-000000000001-000000002-1-1-5", 0, &r, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "malformed header"));
	ck_assert_ptr_null(r.payload);

	snprintf(path, sizeof(path), "%s/e-000000000001-000000003-1-1-5", dir);
	f = fopen(path, "w");
	fputs("rs-spool 1\nkind bogus\nformat json\nevent_id x\npath \nattempts 0\n"
	      "created 1\nnext_try 0\nlast_error \n\nhello", f);
	fclose(f);
	ck_assert_int_eq(rs_spool_read(sp, "e-000000000001-000000003-1-1-5", 0, &r, &err), -EINVAL);

	snprintf(path, sizeof(path), "%s/e-000000000001-000000004-1-1-5", dir);
	f = fopen(path, "w");
	fputs("rs-spool 1\nkind metrics\nformat json\nevent_id x\npath \nattempts -1\n"
	      "created 1\nnext_try 0\nlast_error \n\nhello", f);
	fclose(f);
	ck_assert_int_eq(rs_spool_read(sp, "e-000000000001-000000004-1-1-5", 0, &r, &err), -EINVAL);

	/* header fine, no payload */
	snprintf(path, sizeof(path), "%s/e-000000000001-000000005-1-1-0", dir);
	f = fopen(path, "w");
	fputs("rs-spool 1\nkind metrics\nformat json\nevent_id x\npath \nattempts 0\n"
	      "created 1\nnext_try 0\nlast_error \n\n", f);
	fclose(f);
	ck_assert_int_eq(rs_spool_read(sp, "e-000000000001-000000005-1-1-0", 0, &r, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "has no payload"));

	/* a symlink planted as an entry is not followed */
	snprintf(path, sizeof(path), "%s/e-000000000001-000000006-1-1-5", dir);
	ck_assert_int_eq(symlink("/etc/passwd", path), 0);
	ck_assert_int_eq(rs_spool_read(sp, "e-000000000001-000000006-1-1-5", 0, &r, &err), -EPERM);
	ck_assert_ptr_nonnull(strstr(err.msg, "is a symlink"));

	/* a file owned by another user is not trusted */
	if (geteuid() == 0) {
		snprintf(path, sizeof(path), "%s/e-000000000001-000000007-1-1-5", dir);
		f = fopen(path, "w");
		fputs("rs-spool 1\nkind metrics\nformat json\nevent_id x\npath \nattempts 0\n"
		      "created 1\nnext_try 0\nlast_error \n\nhello", f);
		fclose(f);
		ck_assert_int_eq(chown(path, 65534, 65534), 0);
		ck_assert_int_eq(rs_spool_read(sp, "e-000000000001-000000007-1-1-5", 0, &r, &err),
				 -EPERM);
	}
	rs_spool_close(sp);
}
END_TEST

/* ------------------------------------------------------------ bounds --- */

START_TEST(test_spool_full_by_entries_refuses_new)
{
	rs_spool_limits_t lim = { 2, 0 };
	rs_spool_t *sp = open_ok(&lim);
	rs_spool_entry_t e;
	rs_err_t err;
	char msg[512];
	size_t n = 0;
	uint64_t bytes = 0;

	fill(&e, RS_SPOOL_METRICS, "c:1:1", "aaa");
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), 0);
	fill(&e, RS_SPOOL_METRICS, "c:2:1", "bbbb");
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), 0);
	fill(&e, RS_SPOOL_METRICS, "c:3:1", "c");
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), -ENOSPC);
	snprintf(msg, sizeof(msg), "spool %s is full (2 entries, 7 bytes; bounds 2 entries, "
		 "67108864 bytes): metrics c:3:1 not spooled", dir);
	ck_assert_str_eq(err.msg, msg);
	ck_assert_int_eq(rs_spool_usage(sp, &n, &bytes, &err), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(bytes, 7);
	/* an alert still gets in: the reserve is max(1, 10%) entries */
	fill(&e, RS_SPOOL_ALERT, "c:3:1", "alert");
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), 0);
	fill(&e, RS_SPOOL_ALERT, "c:4:1", "alert");
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), -ENOSPC);
	ck_assert_int_eq(rs_spool_usage(sp, &n, &bytes, &err), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(count_files(dir, ".tmp-"), 0);
	rs_spool_close(sp);
}
END_TEST

START_TEST(test_spool_full_by_bytes_refuses_new)
{
	rs_spool_limits_t lim = { 100, 10 };
	rs_spool_t *sp = open_ok(&lim);
	rs_spool_entry_t e;
	rs_err_t err;

	fill(&e, RS_SPOOL_METRICS, "c:1:1", "123456");
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), 0);
	fill(&e, RS_SPOOL_METRICS, "c:2:1", "1234");    /* exactly 10: fits */
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), 0);
	fill(&e, RS_SPOOL_METRICS, "c:3:1", "1");
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), -ENOSPC);
	ck_assert_ptr_nonnull(strstr(err.msg, "(2 entries, 10 bytes; bounds 100 entries, 10 bytes)"));
	ck_assert_int_eq(count_files(dir, "e-"), 2);
	rs_spool_close(sp);
}
END_TEST

/* ------------------------------------------------ retry, done, dead --- */

START_TEST(test_spool_retry_rewrites_in_place)
{
	rs_spool_t *sp = open_ok(NULL);
	rs_spool_entry_t e, r;
	rs_err_t err;
	char name[96];

	fill(&e, RS_SPOOL_METRICS, "c:1:1", "payload");
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), 0);
	strcpy(name, e.name);
	ck_assert_int_eq(rs_spool_read(sp, name, 0, &r, &err), 0);
	ck_assert_int_eq(rs_spool_retry(sp, &r, 1700000030, "HTTP 500:\nline two", &err), 0);
	ck_assert_uint_eq(r.attempts, 1);
	rs_spool_entry_free(&r);
	ck_assert_int_eq(rs_spool_read(sp, name, 0, &r, &err), 0);
	ck_assert_uint_eq(r.attempts, 1);
	ck_assert_int_eq(r.next_try, 1700000030);
	ck_assert_str_eq(r.last_error, "HTTP 500: line two"); /* folded to one line */
	ck_assert_str_eq(r.payload, "payload");
	ck_assert_int_eq(rs_spool_retry(sp, &r, 1700000090, NULL, &err), 0);
	rs_spool_entry_free(&r);
	ck_assert_int_eq(rs_spool_read(sp, name, 0, &r, &err), 0);
	ck_assert_uint_eq(r.attempts, 2);
	ck_assert_str_eq(r.last_error, "");
	rs_spool_entry_free(&r);
	ck_assert_int_eq(count_files(dir, "e-"), 1);
	ck_assert_int_eq(count_files(dir, ".tmp-"), 0);
	strcpy(r.name, "nope");
	ck_assert_int_eq(rs_spool_retry(sp, &r, 0, "", &err), -EINVAL);
	rs_spool_close(sp);
}
END_TEST

START_TEST(test_spool_done_removes_and_tolerates_missing)
{
	rs_spool_t *sp = open_ok(NULL);
	rs_spool_entry_t e;
	rs_err_t err;

	fill(&e, RS_SPOOL_METRICS, "c:1:1", "x");
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), 0);
	ck_assert_int_eq(rs_spool_done(sp, e.name, &err), 0);
	ck_assert_int_eq(count_files(dir, "e-"), 0);
	ck_assert_int_eq(rs_spool_done(sp, e.name, &err), 0);
	ck_assert_int_eq(rs_spool_done(sp, "../dead", &err), -EINVAL);
	rs_spool_close(sp);
}
END_TEST

START_TEST(test_spool_dead_moves_with_reason_and_requeues)
{
	rs_spool_t *sp = open_ok(NULL);
	rs_spool_entry_t e, r;
	rs_err_t err;
	char **names = NULL, deaddir[256];
	size_t n = 0, moved = 0;

	fill(&e, RS_SPOOL_METRICS, "c:1:1", "row");
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), 0);
	ck_assert_int_eq(rs_spool_read(sp, e.name, 0, &r, &err), 0);
	r.attempts = 3;
	ck_assert_int_eq(rs_spool_dead(sp, &r, "HTTP 500: Code: 27, cannot parse", &err), 0);
	rs_spool_entry_free(&r);
	ck_assert_int_eq(count_files(dir, "e-"), 0);
	snprintf(deaddir, sizeof(deaddir), "%s/dead", dir);
	ck_assert_int_eq(count_files(deaddir, "e-"), 1);
	ck_assert_int_eq(rs_spool_list(sp, 1, &names, &n, &err), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(names[0], e.name);
	ck_assert_int_eq(rs_spool_read(sp, names[0], 1, &r, &err), 0);
	ck_assert_str_eq(r.last_error, "HTTP 500: Code: 27, cannot parse");
	ck_assert_uint_eq(r.attempts, 3);
	ck_assert_str_eq(r.payload, "row");
	rs_spool_entry_free(&r);
	rs_spool_names_free(names, n);

	ck_assert_int_eq(rs_spool_requeue_dead(sp, &moved, &err), 0);
	ck_assert_uint_eq(moved, 1);
	ck_assert_int_eq(count_files(deaddir, "e-"), 0);
	ck_assert_int_eq(rs_spool_read(sp, e.name, 0, &r, &err), 0);
	ck_assert_uint_eq(r.attempts, 0);
	ck_assert_int_eq(r.next_try, 0);
	ck_assert_str_eq(r.last_error, "");
	ck_assert_str_eq(r.payload, "row");
	rs_spool_entry_free(&r);
	rs_spool_close(sp);
}
END_TEST

START_TEST(test_spool_dead_full_deletes_and_says_so)
{
	rs_spool_limits_t lim = { 1, 0 };
	rs_spool_t *sp = open_ok(&lim);
	rs_spool_entry_t e, r;
	rs_err_t err;
	char deaddir[256];

	snprintf(deaddir, sizeof(deaddir), "%s/dead", dir);
	fill(&e, RS_SPOOL_METRICS, "c:1:1", "one");
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), 0);
	ck_assert_int_eq(rs_spool_read(sp, e.name, 0, &r, &err), 0);
	ck_assert_int_eq(rs_spool_dead(sp, &r, "bad", &err), 0);
	rs_spool_entry_free(&r);
	fill(&e, RS_SPOOL_METRICS, "c:2:1", "two");
	ck_assert_int_eq(rs_spool_put(sp, &e, &err), 0);
	ck_assert_int_eq(rs_spool_read(sp, e.name, 0, &r, &err), 0);
	ck_assert_int_eq(rs_spool_dead(sp, &r, "bad too", &err), -ENOSPC);
	ck_assert_ptr_nonnull(strstr(err.msg, "is full (1 entries): metrics c:2:1 deleted, not kept (bad too)"));
	rs_spool_entry_free(&r);
	ck_assert_int_eq(count_files(dir, "e-"), 0);
	ck_assert_int_eq(count_files(deaddir, "e-"), 1);
	rs_spool_close(sp);
}
END_TEST

/* -------------------------------------------------------------- lock --- */

START_TEST(test_spool_lock_is_exclusive_and_bounded)
{
	rs_spool_t *a = open_ok(NULL), *b = open_ok(NULL);
	struct timespec t0, t1;
	rs_err_t err;
	long ms;

	ck_assert_int_eq(rs_spool_lock(a, 0, &err), 0);
	ck_assert_int_eq(rs_spool_lock(a, 0, &err), 0); /* held: no-op */
	ck_assert_int_eq(rs_spool_lock(b, 0, &err), -EBUSY);
	ck_assert_str_eq(err.msg + strlen(err.msg) - strlen("another flush holds the lock"),
			 "another flush holds the lock");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(rs_spool_lock(b, 150, &err), -EBUSY);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	ck_assert_int_ge(ms, 150);
	ck_assert_int_lt(ms, 1000);
	rs_spool_unlock(a);
	ck_assert_int_eq(rs_spool_lock(b, 0, &err), 0);
	rs_spool_close(b); /* close releases */
	ck_assert_int_eq(rs_spool_lock(a, 0, &err), 0);
	rs_spool_close(a);
}
END_TEST

START_TEST(test_spool_clean_tmp_removes_only_old)
{
	rs_spool_t *sp = open_ok(NULL);
	struct timespec old[2] = { { 1000, 0 }, { 1000, 0 } };
	char p[512];
	rs_err_t err;

	snprintf(p, sizeof(p), "%s/.tmp-old", dir);
	close(open(p, O_CREAT | O_WRONLY, 0600));
	ck_assert_int_eq(utimensat(AT_FDCWD, p, old, 0), 0);
	snprintf(p, sizeof(p), "%s/.tmp-new", dir);
	close(open(p, O_CREAT | O_WRONLY, 0600));
	ck_assert_int_eq(rs_spool_clean_tmp(sp, 3600, &err), 1);
	ck_assert_int_eq(count_files(dir, ".tmp-new"), 1);
	ck_assert_int_eq(count_files(dir, ".tmp-old"), 0);
	rs_spool_close(sp);
}
END_TEST

static Suite *spool_suite(void)
{
	Suite *s = suite_create("spool");
	TCase *tc;

	tc = tcase_create("opening_is_safe");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_spool_open_creates_private_folders);
	tcase_add_test(tc, test_spool_open_refuses_unsafe_folders);
	suite_add_tcase(s, tc);

	tc = tcase_create("entries_are_durable_and_exact");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_spool_put_writes_documented_format);
	tcase_add_test(tc, test_spool_payload_bytes_kept_exactly);
	tcase_add_test(tc, test_spool_put_rejects_bad_entries);
	tcase_add_test(tc, test_spool_list_in_creation_order);
	tcase_add_test(tc, test_spool_read_refuses_bad_files);
	suite_add_tcase(s, tc);

	tc = tcase_create("bound_refuses_new");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_spool_full_by_entries_refuses_new);
	tcase_add_test(tc, test_spool_full_by_bytes_refuses_new);
	suite_add_tcase(s, tc);

	tc = tcase_create("retry_done_dead");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_spool_retry_rewrites_in_place);
	tcase_add_test(tc, test_spool_done_removes_and_tolerates_missing);
	tcase_add_test(tc, test_spool_dead_moves_with_reason_and_requeues);
	tcase_add_test(tc, test_spool_dead_full_deletes_and_says_so);
	suite_add_tcase(s, tc);

	tc = tcase_create("one_flusher_at_a_time");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_spool_lock_is_exclusive_and_bounded);
	tcase_add_test(tc, test_spool_clean_tmp_removes_only_old);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(spool_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
