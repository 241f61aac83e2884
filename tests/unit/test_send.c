/* test_send.c - the HTTP sender: classification of answers, bounded
 * requests against a loopback stub, secrets kept out of messages, secret
 * files refused unless private. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "send.h"
#include "http_stub.h"

#define TOKEN "tok-3f9a-SECRET-77"

static char base[64];

static void setup(void)
{
	snprintf(base, sizeof(base), "/tmp/rs-send-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
}

static void teardown(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	ck_assert_int_eq(system(cmd), 0);
}

static void write_file(const char *path, const char *content, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, content, strlen(content)), (ssize_t)strlen(content));
	close(fd);
	ck_assert_int_eq(chmod(path, mode), 0);
}

/* ---------------------------------------------------- classification --- */

START_TEST(test_send_classify_status_table)
{
	static const struct {
		long status;
		rs_send_verdict_t v;
	} t[] = {
		{ 200, RS_SEND_DONE }, { 202, RS_SEND_DONE }, { 204, RS_SEND_DONE },
		{ 299, RS_SEND_DONE }, { 0, RS_SEND_RETRY }, { 100, RS_SEND_RETRY },
		{ 301, RS_SEND_RETRY }, { 400, RS_SEND_REJECT }, { 401, RS_SEND_RETRY },
		{ 403, RS_SEND_RETRY }, { 404, RS_SEND_RETRY }, { 405, RS_SEND_REJECT },
		{ 407, RS_SEND_RETRY }, { 408, RS_SEND_RETRY }, { 413, RS_SEND_REJECT },
		{ 415, RS_SEND_REJECT }, { 422, RS_SEND_REJECT }, { 429, RS_SEND_RETRY },
		{ 499, RS_SEND_REJECT }, { 500, RS_SEND_RETRY }, { 502, RS_SEND_RETRY },
		{ 503, RS_SEND_RETRY }, { 599, RS_SEND_RETRY }, { 600, RS_SEND_RETRY },
		{ -1, RS_SEND_RETRY },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		ck_assert_msg(rs_send_classify(t[i].status, NULL, 0) == t[i].v, "status %ld", t[i].status);
		ck_assert_msg(rs_send_classify(t[i].status, "", 1) == t[i].v, "status %ld ch", t[i].status);
	}
}
END_TEST

START_TEST(test_send_classify_clickhouse_bad_row_vs_server_down)
{
	/* exact bodies seen from ClickHouse 18.16 */
	const char *bad_type = "Code: 27, e.displayText() = DB::Exception: Cannot parse input: "
			       "expected \" before: abc\"}: (at row 1)\n, e.what() = DB::Exception\n";
	const char *unknown = "Code: 117, e.displayText() = DB::Exception: Unknown field found "
			      "while parsing JSONEachRow format: zz: (at row 1)\n";
	const char *cut = "Code: 33, e.displayText() = DB::Exception: Unexpected end of stream";
	const char *mem = "Code: 241, e.displayText() = DB::Exception: Memory limit exceeded";
	const char *no_table = "Code: 60, e.displayText() = DB::Exception: Table default.nope "
			       "doesn't exist., e.what() = DB::Exception\n";

	ck_assert_int_eq(rs_send_classify(500, bad_type, 1), RS_SEND_REJECT);
	ck_assert_int_eq(rs_send_classify(500, unknown, 1), RS_SEND_REJECT);
	ck_assert_int_eq(rs_send_classify(500, cut, 1), RS_SEND_REJECT);
	/* a sick server, not a bad row: retry */
	ck_assert_int_eq(rs_send_classify(500, mem, 1), RS_SEND_RETRY);
	ck_assert_int_eq(rs_send_classify(503, "", 1), RS_SEND_RETRY);
	ck_assert_int_eq(rs_send_classify(500, NULL, 1), RS_SEND_RETRY);
	/* table missing: ClickHouse says 404; the event is fine, keep it */
	ck_assert_int_eq(rs_send_classify(404, no_table, 1), RS_SEND_RETRY);
	/* a webhook's 500 that happens to start like ClickHouse: not read */
	ck_assert_int_eq(rs_send_classify(500, bad_type, 0), RS_SEND_RETRY);
}
END_TEST

START_TEST(test_send_clickhouse_code_parse)
{
	ck_assert_int_eq(rs_send_clickhouse_code("Code: 27, e.displayText() = x"), 27);
	ck_assert_int_eq(rs_send_clickhouse_code("\n  Code: 6, x"), 6);
	ck_assert_int_eq(rs_send_clickhouse_code("Code: 27 e"), -1);
	ck_assert_int_eq(rs_send_clickhouse_code("Code: , x"), -1);
	ck_assert_int_eq(rs_send_clickhouse_code("Code: -5, x"), -1);
	ck_assert_int_eq(rs_send_clickhouse_code("Code: 99999999999999999999, x"), -1);
	ck_assert_int_eq(rs_send_clickhouse_code("code: 27, x"), -1);
	ck_assert_int_eq(rs_send_clickhouse_code(""), -1);
	ck_assert_int_eq(rs_send_clickhouse_code(NULL), -1);
}
END_TEST

/* ------------------------------------------------------- redaction --- */

START_TEST(test_send_redact_url_drops_userinfo_query_fragment)
{
	char out[128];

	rs_send_redact_url("http://writer:pw@127.0.0.1:8123/?query=INSERT&password=pw#x",
			   out, sizeof(out));
	ck_assert_str_eq(out, "http://127.0.0.1:8123/");
	rs_send_redact_url("https://a@b@host/p/q?x", out, sizeof(out));
	ck_assert_str_eq(out, "https://host/p/q");
	rs_send_redact_url("http://host", out, sizeof(out));
	ck_assert_str_eq(out, "http://host");
	rs_send_redact_url("http://u:p@host#frag@x", out, sizeof(out));
	ck_assert_str_eq(out, "http://host");
	rs_send_redact_url("no scheme", out, sizeof(out));
	ck_assert_str_eq(out, "(url)");
	rs_send_redact_url("://x", out, sizeof(out));
	ck_assert_str_eq(out, "(url)");
	rs_send_redact_url(NULL, out, sizeof(out));
	ck_assert_str_eq(out, "(url)");
	rs_send_redact_url("http://u:p@host/long/path", out, 12);
	ck_assert_str_eq(out, "http://host");
	out[0] = 'Z';
	rs_send_redact_url("http://h", out, 0);
	ck_assert_int_eq(out[0], 'Z');
}
END_TEST

START_TEST(test_send_scrub_replaces_every_occurrence)
{
	char s[128];

	strcpy(s, "token abc123 and abc123!");
	rs_send_scrub(s, "abc123");
	ck_assert_str_eq(s, "token *** and ***!");
	strcpy(s, "ab-ab");
	rs_send_scrub(s, "ab");
	ck_assert_str_eq(s, "**-**");
	strcpy(s, "unchanged");
	rs_send_scrub(s, "");
	rs_send_scrub(s, NULL);
	rs_send_scrub(NULL, "x");
	ck_assert_str_eq(s, "unchanged");
	/* a secret made of stars cannot loop forever */
	strcpy(s, "a****b");
	rs_send_scrub(s, "****");
	ck_assert_str_eq(s, "a***b");
}
END_TEST

/* ---------------------------------------------------------- secrets --- */

START_TEST(test_send_secret_file_accepted_when_private)
{
	char path[128], buf[64];
	rs_err_t err;

	snprintf(path, sizeof(path), "%s/token", base);
	write_file(path, TOKEN "\r\n", 0600);
	ck_assert_int_eq(rs_send_read_secret(path, "token_file", buf, sizeof(buf), &err), 0);
	ck_assert_str_eq(buf, TOKEN);
	write_file(path, TOKEN, 0400);
	ck_assert_int_eq(rs_send_read_secret(path, "token_file", buf, sizeof(buf), &err), 0);
	ck_assert_str_eq(buf, TOKEN);
}
END_TEST

START_TEST(test_send_secret_file_refused_with_name_not_content)
{
	char path[128], link[128], buf[64], msg[512];
	rs_err_t err;

	snprintf(path, sizeof(path), "%s/token", base);
	write_file(path, TOKEN "\n", 0644);
	ck_assert_int_eq(rs_send_read_secret(path, "token_file", buf, sizeof(buf), &err), -EPERM);
	snprintf(msg, sizeof(msg), "token_file %s: owner uid %u, mode 0644; refused: it must be "
		 "owned by uid %u (root on a node) and not accessible to group or others "
		 "(chmod 600)", path, (unsigned)geteuid(), (unsigned)geteuid());
	ck_assert_str_eq(err.msg, msg);
	ck_assert_ptr_null(strstr(err.msg, TOKEN));
	ck_assert_str_eq(buf, "");
	ck_assert_int_eq(chmod(path, 0640), 0);
	ck_assert_int_eq(rs_send_read_secret(path, "token_file", buf, sizeof(buf), &err), -EPERM);
	ck_assert_int_eq(chmod(path, 0604), 0);
	ck_assert_int_eq(rs_send_read_secret(path, "token_file", buf, sizeof(buf), &err), -EPERM);
	ck_assert_int_eq(chmod(path, 0610), 0);
	ck_assert_int_eq(rs_send_read_secret(path, "token_file", buf, sizeof(buf), &err), -EPERM);
	if (geteuid() == 0) {
		ck_assert_int_eq(chmod(path, 0600), 0);
		ck_assert_int_eq(chown(path, 65534, 65534), 0);
		ck_assert_int_eq(rs_send_read_secret(path, "token_file", buf, sizeof(buf), &err), -EPERM);
		ck_assert_ptr_nonnull(strstr(err.msg, "owner uid 65534"));
		ck_assert_int_eq(chown(path, 0, 0), 0);
	}
	ck_assert_int_eq(chmod(path, 0600), 0);
	snprintf(link, sizeof(link), "%s/link", base);
	ck_assert_int_eq(symlink(path, link), 0);
	ck_assert_int_eq(rs_send_read_secret(link, "token_file", buf, sizeof(buf), &err), -EPERM);
	ck_assert_ptr_nonnull(strstr(err.msg, "is a symlink; refused"));
	ck_assert_int_eq(rs_send_read_secret(base, "token_file", buf, sizeof(buf), &err), -EPERM);
	ck_assert_ptr_nonnull(strstr(err.msg, "not a regular file"));
	snprintf(link, sizeof(link), "%s/missing", base);
	ck_assert_int_eq(rs_send_read_secret(link, "token_file", buf, sizeof(buf), &err), -ENOENT);
	ck_assert_int_eq(rs_send_read_secret(NULL, "token_file", buf, sizeof(buf), &err), -EINVAL);
	ck_assert_int_eq(rs_send_read_secret("", "token_file", buf, sizeof(buf), &err), -EINVAL);
}
END_TEST

START_TEST(test_send_secret_file_content_checked)
{
	char path[128], buf[16];
	rs_err_t err;

	snprintf(path, sizeof(path), "%s/token", base);
	write_file(path, "\n\n", 0600);
	ck_assert_int_eq(rs_send_read_secret(path, "token_file", buf, sizeof(buf), &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, ": empty"));
	write_file(path, "line1\nline2\n", 0600);
	ck_assert_int_eq(rs_send_read_secret(path, "token_file", buf, sizeof(buf), &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "expected one line"));
	ck_assert_ptr_null(strstr(err.msg, "line1"));
	ck_assert_str_eq(buf, "");
	write_file(path, "0123456789abcdef", 0600); /* 16 bytes: no room for NUL */
	ck_assert_int_eq(rs_send_read_secret(path, "token_file", buf, sizeof(buf), &err), -EINVAL);
	write_file(path, "0123456789abcde", 0600);
	ck_assert_int_eq(rs_send_read_secret(path, "token_file", buf, sizeof(buf), &err), 0);
	ck_assert_str_eq(buf, "0123456789abcde");
}
END_TEST

START_TEST(test_send_credentials_split_user_password)
{
	char path[128], user[32], pass[32];
	rs_err_t err;

	snprintf(path, sizeof(path), "%s/ch", base);
	write_file(path, "writer:s3cret:with:colons\n", 0600);
	ck_assert_int_eq(rs_send_read_credentials(path, "clickhouse_credentials", user,
						  sizeof(user), pass, sizeof(pass), &err), 0);
	ck_assert_str_eq(user, "writer");
	ck_assert_str_eq(pass, "s3cret:with:colons");
	write_file(path, "writer:\n", 0600);
	ck_assert_int_eq(rs_send_read_credentials(path, "clickhouse_credentials", user,
						  sizeof(user), pass, sizeof(pass), &err), 0);
	ck_assert_str_eq(user, "writer");
	ck_assert_str_eq(pass, "");
	write_file(path, ":pw\n", 0600);
	ck_assert_int_eq(rs_send_read_credentials(path, "clickhouse_credentials", user,
						  sizeof(user), pass, sizeof(pass), &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "expected one line user:password"));
	ck_assert_ptr_null(strstr(err.msg, "pw"));
	write_file(path, "nocolon\n", 0600);
	ck_assert_int_eq(rs_send_read_credentials(path, "clickhouse_credentials", user,
						  sizeof(user), pass, sizeof(pass), &err), -EINVAL);
	write_file(path, "writer:pw\n", 0644);
	ck_assert_int_eq(rs_send_read_credentials(path, "clickhouse_credentials", user,
						  sizeof(user), pass, sizeof(pass), &err), -EPERM);
	ck_assert_str_eq(user, "");
	ck_assert_str_eq(pass, "");
}
END_TEST

/* --------------------------------------------------------- requests --- */

static rs_send_t *sender(void)
{
	rs_send_t *s = NULL;
	rs_err_t err;

	ck_assert_int_eq(rs_send_init(&err), 0);
	ck_assert_int_eq(rs_send_init(&err), 0); /* once, then a no-op */
	ck_assert_int_eq(rs_send_new(&s, &err), 0);
	return s;
}

static void req_for(rs_send_req_t *r, const char *url, const char *body)
{
	memset(r, 0, sizeof(*r));
	r->url = url;
	r->body = body;
	r->len = strlen(body);
	r->content_type = "application/json";
	r->timeout_ms = 2000;
}

START_TEST(test_send_request_delivers_with_headers)
{
	stub_t *st = stub_start(STUB_REPLY, 200, "");
	rs_send_t *s = sender();
	rs_send_req_t r;
	rs_send_result_t res;
	rs_err_t err;
	char url[128], h[256];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/hook?x=1", st->port);
	req_for(&r, url, "{\"a\":\"b\"}");
	r.bearer = TOKEN;
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), 0);
	ck_assert_int_eq(res.verdict, RS_SEND_DONE);
	ck_assert_int_eq(res.status, 200);
	ck_assert_int_eq(res.curl_code, 0);
	ck_assert_str_eq(res.message, "");
	ck_assert_str_eq(st->method, "POST");
	ck_assert_str_eq(st->target, "/hook?x=1");
	ck_assert_str_eq(st->req_body, "{\"a\":\"b\"}");
	ck_assert_str_eq(stub_header(st, "Authorization", h, sizeof(h)), "Bearer " TOKEN);
	ck_assert_str_eq(stub_header(st, "Content-Type", h, sizeof(h)), "application/json");
	ck_assert_ptr_null(stub_header(st, "Expect", h, sizeof(h)));
	ck_assert_ptr_null(stub_header(st, "X-ClickHouse-User", h, sizeof(h)));

	/* PUT, ClickHouse headers, no bearer */
	req_for(&r, url, "row\n");
	r.method = "PUT";
	r.content_type = NULL;
	r.ch_user = "writer";
	r.ch_key = "s3cret";
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), 0);
	ck_assert_int_eq(res.verdict, RS_SEND_DONE);
	ck_assert_str_eq(st->method, "PUT");
	ck_assert_str_eq(st->req_body, "row\n");
	ck_assert_str_eq(stub_header(st, "X-ClickHouse-User", h, sizeof(h)), "writer");
	ck_assert_str_eq(stub_header(st, "X-ClickHouse-Key", h, sizeof(h)), "s3cret");
	ck_assert_ptr_null(stub_header(st, "Authorization", h, sizeof(h)));
	ck_assert_int_eq(stub_requests(st), 2);
	rs_send_free(s);
	rs_send_free(NULL);
	stub_stop(st);
}
END_TEST

START_TEST(test_send_request_4xx_rejected_with_receiver_words)
{
	stub_t *st = stub_start(STUB_REPLY, 400, "text format parsing error in line 1:\nexpected float");
	rs_send_t *s = sender();
	rs_send_req_t r;
	rs_send_result_t res;
	rs_err_t err;
	char url[128], msg[256];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/metrics/job/x", st->port);
	req_for(&r, url, "bad\n");
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), 0);
	ck_assert_int_eq(res.verdict, RS_SEND_REJECT);
	ck_assert_int_eq(res.status, 400);
	snprintf(msg, sizeof(msg), "http://127.0.0.1:%d/metrics/job/x: HTTP 400: text format "
		 "parsing error in line 1: expected float", st->port);
	ck_assert_str_eq(res.message, msg);
	rs_send_free(s);
	stub_stop(st);
}
END_TEST

START_TEST(test_send_request_long_answer_truncated)
{
	char body[2000];
	stub_t *st;
	rs_send_t *s = sender();
	rs_send_req_t r;
	rs_send_result_t res;
	rs_err_t err;
	char url[128];

	memset(body, 'x', sizeof(body) - 1);
	body[sizeof(body) - 1] = '\0';
	st = stub_start(STUB_REPLY, 422, body);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", st->port);
	req_for(&r, url, "{}");
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), 0);
	ck_assert_int_eq(res.verdict, RS_SEND_REJECT);
	ck_assert_uint_lt(strlen(res.message), sizeof(res.message));
	ck_assert_str_eq(res.message + strlen(res.message) - 4, "x...");
	rs_send_free(s);
	stub_stop(st);
}
END_TEST

START_TEST(test_send_request_5xx_retry_and_clickhouse_reject)
{
	stub_t *st = stub_start(STUB_REPLY, 500, "Code: 27, e.displayText() = DB::Exception: "
				"Cannot parse input");
	rs_send_t *s = sender();
	rs_send_req_t r;
	rs_send_result_t res;
	rs_err_t err;
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", st->port);
	req_for(&r, url, "{}\n");
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), 0);
	ck_assert_int_eq(res.verdict, RS_SEND_RETRY);
	ck_assert_int_eq(res.status, 500);
	r.clickhouse = 1;
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), 0);
	ck_assert_int_eq(res.verdict, RS_SEND_REJECT);
	ck_assert_ptr_nonnull(strstr(res.message, "HTTP 500: Code: 27, e.displayText()"));
	st->body[0] = '\0';
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), 0);
	ck_assert_int_eq(res.verdict, RS_SEND_RETRY);
	st->status = 429;
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), 0);
	ck_assert_int_eq(res.verdict, RS_SEND_RETRY);
	ck_assert_int_eq(res.status, 429);
	rs_send_free(s);
	stub_stop(st);
}
END_TEST

START_TEST(test_send_request_hang_bounded_by_timeout)
{
	stub_t *st = stub_start(STUB_HANG, 0, NULL);
	rs_send_t *s = sender();
	rs_send_req_t r;
	rs_send_result_t res;
	rs_err_t err;
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", st->port);
	req_for(&r, url, "{}");
	r.timeout_ms = 300;
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), 0);
	ck_assert_int_eq(res.verdict, RS_SEND_RETRY);
	ck_assert_int_eq(res.status, 0);
	ck_assert_int_eq(res.curl_code, 28); /* CURLE_OPERATION_TIMEDOUT */
	ck_assert_double_ge(res.seconds, 0.29);
	ck_assert_double_lt(res.seconds, 0.8);
	ck_assert_ptr_nonnull(strstr(res.message, "Timeout was reached"));
	rs_send_free(s);
	stub_stop(st);
}
END_TEST

START_TEST(test_send_request_close_and_refused_retry)
{
	stub_t *st = stub_start(STUB_CLOSE, 0, NULL);
	rs_send_t *s = sender();
	rs_send_req_t r;
	rs_send_result_t res;
	rs_err_t err;
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", st->port);
	req_for(&r, url, "{}");
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), 0);
	ck_assert_int_eq(res.verdict, RS_SEND_RETRY);
	ck_assert_int_eq(res.curl_code, 52); /* CURLE_GOT_NOTHING */
	ck_assert_int_eq(stub_requests(st), 1);
	stub_stop(st);

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", stub_dead_port());
	req_for(&r, url, "{}");
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), 0);
	ck_assert_int_eq(res.verdict, RS_SEND_RETRY);
	ck_assert_int_eq(res.curl_code, 7); /* CURLE_COULDNT_CONNECT */
	ck_assert_double_lt(res.seconds, 0.5);
	ck_assert_ptr_nonnull(strstr(res.message, "Couldn't connect to server"));
	rs_send_free(s);
}
END_TEST

START_TEST(test_send_secrets_never_in_messages)
{
	stub_t *st = stub_start(STUB_REPLY, 400, NULL);
	rs_send_t *s = sender();
	rs_send_req_t r;
	rs_send_result_t res;
	rs_err_t err;
	char url[256];

	/* a receiver that echoes the Authorization header in its error */
	st->echo_auth = 1;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/x", st->port);
	req_for(&r, url, "{}");
	r.bearer = TOKEN;
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), 0);
	ck_assert_int_eq(res.verdict, RS_SEND_REJECT);
	ck_assert_ptr_null(strstr(res.message, TOKEN));
	ck_assert_ptr_nonnull(strstr(res.message, "HTTP 400: Bearer ***"));

	/* user info in the URL: curl sends it as basic auth; the echo and
	 * the URL in the message are both cleaned */
	snprintf(url, sizeof(url), "http://writer:pw-SECRET-9@127.0.0.1:%d/x?password=pw-SECRET-9",
		 st->port);
	req_for(&r, url, "{}");
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), 0);
	ck_assert_ptr_null(strstr(res.message, "pw-SECRET-9"));
	ck_assert_ptr_nonnull(strstr(res.message, "http://127.0.0.1:"));
	stub_stop(st);

	/* curl's own error text for a dead port with user info */
	snprintf(url, sizeof(url), "http://writer:pw-SECRET-9@127.0.0.1:%d/x", stub_dead_port());
	req_for(&r, url, "{}");
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), 0);
	ck_assert_int_eq(res.verdict, RS_SEND_RETRY);
	ck_assert_ptr_null(strstr(res.message, "pw-SECRET-9"));
	ck_assert_ptr_null(strstr(res.message, "writer"));
	rs_send_free(s);
}
END_TEST

START_TEST(test_send_request_refuses_impossible_requests)
{
	rs_send_t *s = sender();
	rs_send_req_t r;
	rs_send_result_t res;
	rs_err_t err;

	req_for(&r, NULL, "{}");
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "send: no URL");
	req_for(&r, "http://u:SECRETPW@127.0.0.1:1/", "{}");
	r.timeout_ms = 0;
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), -EINVAL);
	ck_assert_str_eq(err.msg, "send http://127.0.0.1:1/: timeout must be > 0 ms");
	req_for(&r, "http://127.0.0.1:1/", "{}");
	r.bearer = "abc\r\nX-Injected: 1";
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), -EINVAL);
	ck_assert_ptr_null(strstr(err.msg, "abc"));
	req_for(&r, "http://127.0.0.1:1/", "{}");
	r.bearer = "t";
	r.ch_user = "u";
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), -EINVAL);
	ck_assert_ptr_nonnull(strstr(err.msg, "ClickHouse refuses both"));
	/* not http(s): curl refuses, the entry would be kept */
	req_for(&r, "file:///etc/passwd", "{}");
	ck_assert_int_eq(rs_send_request(s, &r, &res, &err), 0);
	ck_assert_int_eq(res.verdict, RS_SEND_RETRY);
	ck_assert_int_eq(res.curl_code, 1); /* CURLE_UNSUPPORTED_PROTOCOL */
	rs_send_free(s);
}
END_TEST

static Suite *send_suite(void)
{
	Suite *s = suite_create("send");
	TCase *tc;

	tc = tcase_create("classification");
	tcase_add_test(tc, test_send_classify_status_table);
	tcase_add_test(tc, test_send_classify_clickhouse_bad_row_vs_server_down);
	tcase_add_test(tc, test_send_clickhouse_code_parse);
	suite_add_tcase(s, tc);

	tc = tcase_create("redaction");
	tcase_add_test(tc, test_send_redact_url_drops_userinfo_query_fragment);
	tcase_add_test(tc, test_send_scrub_replaces_every_occurrence);
	suite_add_tcase(s, tc);

	tc = tcase_create("secret_files_must_be_private");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_send_secret_file_accepted_when_private);
	tcase_add_test(tc, test_send_secret_file_refused_with_name_not_content);
	tcase_add_test(tc, test_send_secret_file_content_checked);
	tcase_add_test(tc, test_send_credentials_split_user_password);
	suite_add_tcase(s, tc);

	tc = tcase_create("requests_are_bounded_and_classified");
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_send_request_delivers_with_headers);
	tcase_add_test(tc, test_send_request_4xx_rejected_with_receiver_words);
	tcase_add_test(tc, test_send_request_long_answer_truncated);
	tcase_add_test(tc, test_send_request_5xx_retry_and_clickhouse_reject);
	tcase_add_test(tc, test_send_request_hang_bounded_by_timeout);
	tcase_add_test(tc, test_send_request_close_and_refused_retry);
	tcase_add_test(tc, test_send_secrets_never_in_messages);
	tcase_add_test(tc, test_send_request_refuses_impossible_requests);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(send_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	/* libcurl's global state, for valgrind's leak count */
	curl_global_cleanup();
	return failed ? 1 : 0;
}
