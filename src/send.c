/* send.c - see include/send.h */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "send.h"

#define BODY_KEEP 4096   /* bytes of a receiver's answer kept for messages */
#define REASON_SHOWN 300 /* bytes of it shown in a message */

struct rs_send {
	CURL *curl;
};

static struct {
	pthread_once_t once;
	CURLcode rc;
} g = { PTHREAD_ONCE_INIT, CURLE_OK };

static void _global_init(void)
{
	g.rc = curl_global_init(CURL_GLOBAL_ALL);
}

int rs_send_init(rs_err_t *err)
{
	pthread_once(&g.once, _global_init);
	if (g.rc != CURLE_OK)
		return rs_err_set(err, EIO, "libcurl: init failed: %s", curl_easy_strerror(g.rc));
	return 0;
}

int rs_send_new(rs_send_t **out, rs_err_t *err)
{
	rs_send_t *s = NULL;
	int rc;

	*out = NULL;
	rc = rs_send_init(err);
	if (rc)
		return rc;
	s = calloc(1, sizeof(*s));
	if (!s)
		return rs_err_set(err, ENOMEM, "sender: out of memory");
	s->curl = curl_easy_init();
	if (!s->curl) {
		free(s);
		return rs_err_set(err, ENOMEM, "sender: curl_easy_init failed");
	}
	*out = s;
	return 0;
}

void rs_send_free(rs_send_t *s)
{
	if (!s)
		return;
	curl_easy_cleanup(s->curl);
	free(s);
}

/* ------------------------------------------------------ pure helpers --- */

void rs_send_redact_url(const char *url, char *out, size_t size)
{
	const char *p, *auth, *auth_end, *at, *path_end;

	if (size == 0)
		return;
	p = url ? strstr(url, "://") : NULL;
	if (!p || p == url) {
		snprintf(out, size, "(url)");
		return;
	}
	auth = p + 3;
	auth_end = auth + strcspn(auth, "/?#");
	/* The host follows the last '@' of the authority. */
	at = NULL;
	for (const char *q = auth; q < auth_end; q++)
		if (*q == '@')
			at = q;
	if (at)
		auth = at + 1;
	path_end = auth_end + strcspn(auth_end, "?#");
	snprintf(out, size, "%.*s://%.*s%.*s", (int)(p - url), url, (int)(auth_end - auth),
		 auth, (int)(path_end - auth_end), auth_end);
}

void rs_send_scrub(char *s, const char *secret)
{
	size_t n;
	char *hit;

	if (!s || !secret || !secret[0])
		return;
	n = strlen(secret);
	while ((hit = strstr(s, secret))) {
		size_t stars = n < 3 ? n : 3;

		memset(hit, '*', stars);
		memmove(hit + stars, hit + n, strlen(hit + n) + 1);
	}
}

int rs_send_clickhouse_code(const char *body)
{
	char *end = NULL;
	long code;

	if (!body)
		return -1;
	body += strspn(body, " \t\r\n");
	/* 18.16 writes "Code: 27, e.displayText() = DB::Exception: ...". */
	if (strncmp(body, "Code: ", 6) != 0)
		return -1;
	errno = 0;
	code = strtol(body + 6, &end, 10);
	if (errno || end == body + 6 || *end != ',' || code < 0 || code > 100000)
		return -1;
	return (int)code;
}

/* ClickHouse error codes that mean "this data is bad", from 18.16's
 * ErrorCodes.cpp: parse errors, type mismatches, unknown fields. */
static const int ch_bad_data[] = {
	6,   /* CANNOT_PARSE_TEXT */
	16,  /* NO_SUCH_COLUMN_IN_TABLE */
	26,  /* CANNOT_PARSE_QUOTED_STRING */
	27,  /* CANNOT_PARSE_INPUT_ASSERTION_FAILED */
	32,  /* ATTEMPT_TO_READ_AFTER_EOF */
	33,  /* CANNOT_READ_ALL_DATA */
	38,  /* CANNOT_PARSE_DATE */
	41,  /* CANNOT_PARSE_DATETIME */
	53,  /* TYPE_MISMATCH */
	69,  /* ARGUMENT_OUT_OF_BOUND */
	70,  /* CANNOT_CONVERT_TYPE */
	72,  /* CANNOT_PARSE_NUMBER */
	117, /* INCORRECT_DATA (unknown field in JSONEachRow) */
	130, /* CANNOT_READ_ARRAY_FROM_TEXT */
	131, /* TOO_LARGE_STRING_SIZE */
};

rs_send_verdict_t rs_send_classify(long status, const char *body, int clickhouse)
{
	if (status >= 200 && status < 300)
		return RS_SEND_DONE;
	if (status == 401 || status == 403 || status == 404 || status == 407 ||
	    status == 408 || status == 429)
		return RS_SEND_RETRY;
	if (status >= 400 && status < 500)
		return RS_SEND_REJECT;
	if (status >= 500 && status < 600 && clickhouse) {
		int code = rs_send_clickhouse_code(body);

		for (size_t i = 0; i < sizeof(ch_bad_data) / sizeof(ch_bad_data[0]); i++)
			if (code == ch_bad_data[i])
				return RS_SEND_REJECT;
	}
	/* No answer, 1xx, 3xx, 5xx, or nonsense: keep it and try later. */
	return RS_SEND_RETRY;
}


/* ----------------------------------------------------------- requests --- */

typedef struct body_buf {
	char data[BODY_KEEP];
	size_t len;
} body_buf_t;

/* Keep the start of the answer for messages; swallow the rest. */
static size_t _on_body(char *ptr, size_t size, size_t nmemb, void *user)
{
	body_buf_t *b = user;
	size_t n = size * nmemb, room = sizeof(b->data) - 1 - b->len;

	if (room) {
		size_t take = n < room ? n : room;
		memcpy(b->data + b->len, ptr, take);
		b->len += take;
		b->data[b->len] = '\0';
	}
	return n;
}

/* Fold s into one printable line of at most max bytes. */
static void _one_line(char *s, size_t max)
{
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			s[i] = ' ';
	while (n && s[n - 1] == ' ')
		s[--n] = '\0';
	if (n > max) {
		s[max] = '\0';
		if (max > 3)
			memcpy(s + max - 3, "...", 3);
	}
}

/* The user info of url ("user:pass" before '@' in the authority), for
 * scrubbing; "" if none. */
static void _userinfo(const char *url, char *out, size_t size)
{
	const char *p = url ? strstr(url, "://") : NULL, *auth, *end, *at = NULL;

	out[0] = '\0';
	if (!p)
		return;
	auth = p + 3;
	end = auth + strcspn(auth, "/?#");
	for (const char *q = auth; q < end; q++)
		if (*q == '@')
			at = q;
	if (at && (size_t)(at - auth) < size)
		snprintf(out, size, "%.*s", (int)(at - auth), auth);
}

static void _scrub_all(char *s, const rs_send_req_t *req, const char *userinfo)
{
	char user_only[512];

	rs_send_scrub(s, req->bearer);
	rs_send_scrub(s, req->ch_key);
	rs_send_scrub(s, userinfo);
	/* "user:pass" may also be shown split up, or percent-decoded. */
	snprintf(user_only, sizeof(user_only), "%s", userinfo);
	if (strchr(user_only, ':'))
		rs_send_scrub(s, strchr(user_only, ':') + 1);
}

static int _has_ctl(const char *s)
{
	for (; s && *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

int rs_send_request(rs_send_t *s, const rs_send_req_t *req, rs_send_result_t *res,
		    rs_err_t *err)
{
	struct curl_slist *hdrs = NULL;
	body_buf_t *body = NULL;
	char errbuf[CURL_ERROR_SIZE], shown[1024], userinfo[512], line[RS_SEND_SECRET_MAX + 64];
	struct timespec t0, t1;
	long connect_ms;
	CURLcode cc;
	CURL *c = s->curl;
	int rc = 0;

	memset(res, 0, sizeof(*res));
	res->verdict = RS_SEND_RETRY;
	if (!req->url || !req->url[0])
		return rs_err_set(err, EINVAL, "send: no URL");
	rs_send_redact_url(req->url, shown, sizeof(shown));
	if (req->timeout_ms <= 0)
		return rs_err_set(err, EINVAL, "send %s: timeout must be > 0 ms", shown);
	if (_has_ctl(req->bearer) || _has_ctl(req->ch_user) || _has_ctl(req->ch_key) ||
	    _has_ctl(req->content_type))
		return rs_err_set(err, EINVAL, "send %s: a header value has a control character",
				  shown);
	if (req->bearer && req->ch_user)
		return rs_err_set(err, EINVAL, "send %s: bearer token and ClickHouse user "
				  "together: ClickHouse refuses both (401/500)", shown);
	_userinfo(req->url, userinfo, sizeof(userinfo));
	body = calloc(1, sizeof(*body));
	if (!body)
		return rs_err_set(err, ENOMEM, "send %s: out of memory", shown);

	/* Headers.  "Expect:" turns off curl's 100-continue wait (up to 1 s
	 * with a server that never sends 100). */
#define ADD_HDR(...)                                                        \
	do {                                                                \
		struct curl_slist *n_;                                      \
		snprintf(line, sizeof(line), __VA_ARGS__);                  \
		n_ = curl_slist_append(hdrs, line);                         \
		if (!n_) {                                                  \
			rc = rs_err_set(err, ENOMEM, "send %s: out of memory", shown); \
			goto out;                                           \
		}                                                           \
		hdrs = n_;                                                  \
	} while (0)
	ADD_HDR("Expect:");
	if (req->content_type)
		ADD_HDR("Content-Type: %s", req->content_type);
	if (req->bearer)
		ADD_HDR("Authorization: Bearer %s", req->bearer);
	if (req->ch_user) {
		ADD_HDR("X-ClickHouse-User: %s", req->ch_user);
		ADD_HDR("X-ClickHouse-Key: %s", req->ch_key ? req->ch_key : "");
	}
#undef ADD_HDR

	connect_ms = req->connect_timeout_ms;
	if (connect_ms <= 0 || connect_ms > req->timeout_ms)
		connect_ms = req->timeout_ms;
	curl_easy_reset(c);
	errbuf[0] = '\0';
	cc = CURLE_OK;
	cc |= curl_easy_setopt(c, CURLOPT_URL, req->url);
	cc |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	cc |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms);
	cc |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
	cc |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
#if LIBCURL_VERSION_NUM >= 0x075500
	cc |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#endif
	cc |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	cc |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	cc |= curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
	cc |= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->len);
	cc |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, _on_body);
	cc |= curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
	cc |= curl_easy_setopt(c, CURLOPT_USERAGENT, "slurm-resilience/" RS_VERSION);
	if (req->method && strcmp(req->method, "POST") != 0)
		cc |= curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
	if (cc != CURLE_OK) {
		rc = rs_err_set(err, EINVAL, "send %s: cannot set up the request", shown);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cc = curl_easy_perform(c);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	res->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
	res->curl_code = (int)cc;
	if (cc != CURLE_OK) {
		/* The error buffer may name the URL, user info included. */
		_scrub_all(errbuf, req, userinfo);
		_one_line(errbuf, REASON_SHOWN);
		snprintf(res->message, sizeof(res->message), "%.160s: %.40s%s%.300s", shown,
			 curl_easy_strerror(cc), errbuf[0] ? ": " : "", errbuf);
		res->verdict = rs_send_classify(0, NULL, req->clickhouse);
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &res->status);
	res->verdict = rs_send_classify(res->status, body->data, req->clickhouse);
	if (res->verdict != RS_SEND_DONE) {
		_scrub_all(body->data, req, userinfo);
		_one_line(body->data, REASON_SHOWN);
		snprintf(res->message, sizeof(res->message), "%.160s: HTTP %ld%s%.300s", shown,
			 res->status, body->data[0] ? ": " : "", body->data);
	}
	_scrub_all(res->message, req, userinfo);
out:
	/* Do not leave pointers to our stack in the reused handle. */
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	explicit_bzero(line, sizeof(line));
	free(body);
	return rc;
}
