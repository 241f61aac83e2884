/*
 * send.h - one bounded HTTP request to a metrics or alert receiver, and
 * the verdict on its answer.
 *
 * Every request has a connect timeout and a total timeout and runs with
 * CURLOPT_NOSIGNAL (no SIGALRM in the host process: slurmstepd has its
 * own signal handling).  No redirects are followed, only http and https
 * are spoken, no "Expect: 100-continue" pause.  Name resolution is bounded
 * by the same timeouts only with a libcurl built with an asynchronous
 * resolver (curl -V lists AsynchDNS; Debian's does): with the synchronous
 * one and NOSIGNAL, a stuck DNS lookup is bounded only by the background
 * sender's alarm() backstop (metrics.h).
 *
 * Verdict on an answer (rs_send_classify()):
 *   2xx                                  -> RS_SEND_DONE
 *   no answer (refused, reset, timeout, DNS, TLS ...), 1xx, 3xx,
 *   408, 429, 5xx                        -> RS_SEND_RETRY (with backoff)
 *   401, 403, 404, 407                   -> RS_SEND_RETRY: the receiver or our
 *        credentials are misconfigured (ClickHouse answers 404 for a table
 *        that does not exist yet, 401 for a wrong password); the event is
 *        fine and must not be thrown away while an operator fixes that
 *   other 4xx                            -> RS_SEND_REJECT (dead letter)
 *   5xx from ClickHouse whose body says "Code: N" with N a parse/type
 *   error (6, 16, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 130, 131)
 *                                        -> RS_SEND_REJECT: ClickHouse 18.16
 *        answers 500 for a malformed row or a wrong type (and 400 for some
 *        of them), so "5xx" alone cannot tell a bad row from a sick server
 *
 * Secrets: the bearer token and the ClickHouse key are only ever put in
 * request headers.  Every message this module writes (err, result
 * message) shows URLs without user info, query or fragment
 * (rs_send_redact_url()) and has any occurrence of the secrets and of
 * the URL's user info replaced by "***" - libcurl's error buffer and a
 * receiver's error body can both echo them.
 *
 * Return convention: 0 / -errno with err filled.  rs_send_init() is
 * thread-safe (pthread_once); a rs_send_t is not.
 */
#ifndef RS_SEND_H
#define RS_SEND_H

#include <stddef.h>

#include "err.h"

#define RS_SEND_DEFAULT_TIMEOUT_MS 2000L
#define RS_SEND_MAX_TIMEOUT_MS 60000L
#define RS_SEND_SECRET_MAX 4096

typedef enum rs_send_verdict {
	RS_SEND_DONE = 0,   /* delivered */
	RS_SEND_RETRY = 1,  /* keep it, try again later */
	RS_SEND_REJECT = 2, /* the receiver says the payload is bad */
} rs_send_verdict_t;

typedef struct rs_send_req {
	const char *url;          /* full URL, query included */
	const char *method;       /* "POST" (NULL) or "PUT" */
	const char *content_type; /* NULL = none */
	const char *body;
	size_t len;
	const char *bearer;       /* "Authorization: Bearer <bearer>", or NULL */
	const char *ch_user;      /* X-ClickHouse-User / -Key, or NULL */
	const char *ch_key;
	long timeout_ms;          /* total time of the request, > 0 */
	long connect_timeout_ms;  /* <= 0 or > timeout_ms: = timeout_ms */
	int clickhouse;           /* read ClickHouse error codes in 5xx bodies */
} rs_send_req_t;

typedef struct rs_send_result {
	rs_send_verdict_t verdict;
	long status;         /* HTTP status, 0 if there was no answer */
	int curl_code;       /* CURLcode, 0 if the transfer worked */
	double seconds;      /* wall time of the request */
	char message[512];   /* one line: what happened, receiver's words
	                      * truncated; redacted; "" when delivered */
} rs_send_result_t;

typedef struct rs_send rs_send_t;

/* curl_global_init(), once per process, whatever the number of callers.
 * -EIO if libcurl cannot initialise. */
int rs_send_init(rs_err_t *err);

/* A sender: one curl handle reused across requests (keeps the connection
 * to the receiver between spooled entries). */
int rs_send_new(rs_send_t **out, rs_err_t *err);
void rs_send_free(rs_send_t *s);

/* Make one request.  Returns 0 when the request was attempted (the
 * outcome is in res->verdict, whatever the network did), -EINVAL for a
 * request that cannot be made (no URL, timeout <= 0, secret with a
 * newline), -ENOMEM. */
int rs_send_request(rs_send_t *s, const rs_send_req_t *req, rs_send_result_t *res,
		    rs_err_t *err);

/* The verdict for an HTTP answer (status > 0) or a transport failure
 * (status 0).  body may be NULL.  Pure. */
rs_send_verdict_t rs_send_classify(long status, const char *body, int clickhouse);

/* N from a ClickHouse error body "Code: N, e.displayText() = ...", or -1. */
int rs_send_clickhouse_code(const char *body);

/* Copy url to out as scheme://host[:port]/path: user info, query and
 * fragment removed (they may hold passwords).  A string that is not a URL
 * becomes "(url)".  Always NUL-terminates when size > 0. */
void rs_send_redact_url(const char *url, char *out, size_t size);

/* Replace every occurrence of secret (if non-empty) in s with "***", in
 * place (s only shrinks or stays; a secret shorter than 3 bytes is
 * replaced by as many '*'). */
void rs_send_scrub(char *s, const char *secret);

/* Read a secret from path: the file must be a regular file (not a
 * symlink) owned by the effective user (root on a node) and not readable
 * or writable by group or others; its content is one line (trailing
 * whitespace removed), non-empty, without control characters, shorter
 * than size.  what names it in messages ("token_file").  Messages name
 * the file, never its content.  -EPERM (owner/mode), -EINVAL (content),
 * -ENOENT, other -errno.  buf is zeroed on failure. */
int rs_send_read_secret(const char *path, const char *what, char *buf, size_t size,
			rs_err_t *err);

/* A "user:password" line from path (same checks).  user is non-empty;
 * password may be empty. */
int rs_send_read_credentials(const char *path, const char *what, char *user,
			     size_t usize, char *pass, size_t psize, rs_err_t *err);

#endif
