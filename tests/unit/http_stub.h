/*
 * http_stub.h - a tiny HTTP/1.1 server on a loopback socket, in a thread,
 * for unit tests of the sender: answers a status and body, hangs, or
 * closes the connection without a word, and records each request.
 * Header-only (static functions) so each test program includes its own.
 */
#ifndef RS_HTTP_STUB_H
#define RS_HTTP_STUB_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef enum { STUB_REPLY, STUB_HANG, STUB_CLOSE } stub_mode_t;

typedef struct stub {
	int fd;
	int port;
	pthread_t thread;
	pthread_mutex_t mu;
	volatile int stop;
	/* behaviour (set before requests arrive) */
	stub_mode_t mode;
	int status;
	char body[2048];
	int echo_auth;           /* body = the Authorization header value */
	/* last request */
	int requests;
	char method[16];
	char target[2048];
	char headers[8192];
	char *req_body;
	size_t req_len;
} stub_t;

/* Header value of name in the recorded request (case-insensitive), or
 * NULL; copied into out. */
__attribute__((unused)) static const char *stub_header(stub_t *s, const char *name, char *out, size_t size)
{
	const char *p = s->headers;
	size_t n = strlen(name);

	while (p && *p) {
		const char *eol = strstr(p, "\r\n");
		if (!eol)
			break;
		if ((size_t)(eol - p) > n && strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1;
			while (*v == ' ')
				v++;
			snprintf(out, size, "%.*s", (int)(eol - v), v);
			return out;
		}
		p = eol + 2;
	}
	return NULL;
}

static void _stub_serve(stub_t *s, int c)
{
	char buf[65536], out[4096], auth[1024];
	size_t got = 0, hlen, clen = 0;
	char *end = NULL, *cl;
	struct timespec until;

	/* read the head */
	while (got < sizeof(buf) - 1) {
		struct pollfd pf = { c, POLLIN, 0 };
		if (poll(&pf, 1, 2000) <= 0)
			return;
		ssize_t r = read(c, buf + got, sizeof(buf) - 1 - got);
		if (r <= 0)
			return;
		got += (size_t)r;
		buf[got] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end)
			break;
	}
	if (!end)
		return;
	hlen = (size_t)(end - buf) + 4;
	cl = strcasestr(buf, "\r\nContent-Length:");
	if (cl && cl < end)
		clen = strtoul(cl + 17, NULL, 10);
	while (got < hlen + clen && got < sizeof(buf) - 1) {
		struct pollfd pf = { c, POLLIN, 0 };
		if (poll(&pf, 1, 2000) <= 0)
			break;
		ssize_t r = read(c, buf + got, sizeof(buf) - 1 - got);
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	pthread_mutex_lock(&s->mu);
	s->requests++;
	sscanf(buf, "%15s %2047s", s->method, s->target);
	{
		char *first_eol = strstr(buf, "\r\n");
		snprintf(s->headers, sizeof(s->headers), "%.*s", (int)(end + 2 - (first_eol + 2)),
			 first_eol + 2);
	}
	free(s->req_body);
	s->req_len = got > hlen ? got - hlen : 0;
	s->req_body = malloc(s->req_len + 1);
	memcpy(s->req_body, buf + hlen, s->req_len);
	s->req_body[s->req_len] = '\0';
	pthread_mutex_unlock(&s->mu);

	if (s->mode == STUB_CLOSE)
		return;
	if (s->mode == STUB_HANG) {
		clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += 10;
		while (!s->stop) {
			struct timespec now, nap = { 0, 10 * 1000 * 1000 };
			clock_gettime(CLOCK_MONOTONIC, &now);
			if (now.tv_sec > until.tv_sec)
				break;
			nanosleep(&nap, NULL);
		}
		return;
	}
	const char *body = s->body;
	if (s->echo_auth)
		body = stub_header(s, "Authorization", auth, sizeof(auth)) ? auth : "";
	int n = snprintf(out, sizeof(out), "HTTP/1.1 %d X\r\nContent-Length: %zu\r\n"
			 "Connection: close\r\n\r\n%s", s->status, strlen(body), body);
	if (write(c, out, (size_t)n) < 0) {
		/* the client gave up: nothing to do */
	}
}

static void *_stub_main(void *arg)
{
	stub_t *s = arg;

	while (!s->stop) {
		struct pollfd pf = { s->fd, POLLIN, 0 };
		if (poll(&pf, 1, 20) <= 0)
			continue;
		int c = accept(s->fd, NULL, NULL);
		if (c < 0)
			continue;
		_stub_serve(s, c);
		close(c);
	}
	return NULL;
}

/* Start a stub answering status/body. */
__attribute__((unused)) static stub_t *stub_start(stub_mode_t mode, int status, const char *body)
{
	stub_t *s = calloc(1, sizeof(*s));
	struct sockaddr_in a = { 0 };
	socklen_t al = sizeof(a);
	int one = 1;

	s->mode = mode;
	s->status = status;
	snprintf(s->body, sizeof(s->body), "%s", body ? body : "");
	pthread_mutex_init(&s->mu, NULL);
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(s->fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s->fd, 16) < 0)
		abort();
	getsockname(s->fd, (struct sockaddr *)&a, &al);
	s->port = ntohs(a.sin_port);
	pthread_create(&s->thread, NULL, _stub_main, s);
	return s;
}

__attribute__((unused)) static int stub_requests(stub_t *s)
{
	int n;
	pthread_mutex_lock(&s->mu);
	n = s->requests;
	pthread_mutex_unlock(&s->mu);
	return n;
}

__attribute__((unused)) static void stub_stop(stub_t *s)
{
	if (!s)
		return;
	s->stop = 1;
	pthread_join(s->thread, NULL);
	close(s->fd);
	pthread_mutex_destroy(&s->mu);
	free(s->req_body);
	free(s);
}

/* A loopback port nobody listens on (bound, then closed). */
__attribute__((unused)) static int stub_dead_port(void)
{
	struct sockaddr_in a = { 0 };
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(fd, (struct sockaddr *)&a, sizeof(a));
	getsockname(fd, (struct sockaddr *)&a, &al);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

#endif
