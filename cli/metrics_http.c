/* qvm metrics --listen: a small HTTP/1.x server for a Prometheus scrape.
 * GET (or HEAD) /metrics only, one request per connection, a bounded
 * number of connections at once, each with a deadline and a request size
 * cap; SIGTERM or SIGINT ends it cleanly (exit 0). A systemd socket unit
 * may hand it the listening socket (LISTEN_FDS=1, fd 3). */
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>

#include "cli.h"

#define HTTP_MAX_CLIENTS  8    /* more wait in the listen backlog */
#define HTTP_REQUEST_MAX  8192 /* a request line and headers, no body */
#define HTTP_DEADLINE_MS  5000 /* to send a whole request, and to take the reply */
#define HTTP_BACKLOG      16
#define HTTP_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* What the server answers with: the scrape the caller makes. */
typedef struct server {
	const cli_ctx *ctx;
	cli_scrape_fn scrape;
} server;

typedef struct client {
	int fd; /* -1: a free slot */
	int64_t deadline_ms;
	size_t len;
	char buf[HTTP_REQUEST_MAX + 1];
} client;

/* ADDR:PORT, [ADDR6]:PORT: a numeric address and port only (no name
 * lookups). */
static int listen_socket(const char *spec, int *ret_fd, util_err *err)
{
	struct addrinfo hints = { .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
		                  .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai = NULL;
	_cleanup_free_ char *host = NULL;
	_cleanup_close_ int fd = -1;
	const char *colon = strrchr(spec, ':');
	int one = 1, r;

	if (!colon || colon == spec || !colon[1])
		return cli_usage(err, "--listen '%s' is not ADDR:PORT (e.g. 127.0.0.1:9187)", spec);
	if (spec[0] == '[' && colon[-1] == ']')
		host = util_xasprintf("%.*s", (int)(colon - spec - 2), spec + 1);
	else
		host = util_xasprintf("%.*s", (int)(colon - spec), spec);
	r = getaddrinfo(host, colon + 1, &hints, &ai);
	if (r != 0)
		return cli_usage(err, "--listen '%s' is not ADDR:PORT with a numeric address: %s",
		                 spec, gai_strerror(r));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return util_err_errno(err, -errno, "cannot listen on '%s'", spec);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	r = bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, HTTP_BACKLOG) < 0 ? -errno : 0;
	freeaddrinfo(ai);
	if (r < 0)
		return util_err_errno(err, r, "cannot listen on '%s'", spec);
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* The socket a systemd socket unit passed (LISTEN_PID is us, LISTEN_FDS
 * 1), or -1. */
static int inherited_socket(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");

	if (!pid || !fds || strtol(pid, NULL, 10) != getpid() || !util_streq(fds, "1"))
		return -1;
	fcntl(3, F_SETFD, FD_CLOEXEC);
	fcntl(3, F_SETFL, fcntl(3, F_GETFL) | O_NONBLOCK);
	return 3;
}

static void reply(int fd, const char *status, const char *type, const char *body, size_t len,
                  bool head)
{
	char hdr[256];
	int n = snprintf(hdr, sizeof(hdr),
	                 "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	                 "Connection: close\r\n\r\n",
	                 status, type, len);

	/* the client had its deadline to read; a slow one loses the rest */
	util_write_all(fd, hdr, (size_t)n);
	if (!head)
		util_write_all(fd, body, len);
}

static void error_reply(int fd, const char *status, const char *text)
{
	reply(fd, status, "text/plain; charset=utf-8", text, strlen(text), false);
}

/* A whole request in c->buf: answer it. */
static void answer(const server *srv, client *c)
{
	char method[16] = "", path[256] = "";
	_cleanup_free_ char *text = NULL;
	util_err err = { 0 };
	size_t plen;
	bool head;

	c->buf[c->len] = '\0';
	if (sscanf(c->buf, "%15[A-Z] %255[^ \r\n] HTTP/1.%*1[01]", method, path) != 2)
		return error_reply(c->fd, "400 Bad Request", "a request line was expected\n");
	head = util_streq(method, "HEAD");
	if (!head && !util_streq(method, "GET"))
		return error_reply(c->fd, "405 Method Not Allowed", "only GET /metrics\n");
	plen = strcspn(path, "?");
	if (plen != strlen("/metrics") || strncmp(path, "/metrics", plen))
		return error_reply(c->fd, "404 Not Found", "only /metrics is served here\n");
	if (srv->scrape(srv->ctx, &text, &err) < 0) {
		char msg[sizeof(err.msg) + 2];

		snprintf(msg, sizeof(msg), "%s\n", err.msg);
		return error_reply(c->fd, "500 Internal Server Error", msg);
	}
	reply(c->fd, "200 OK", HTTP_CONTENT_TYPE, text, strlen(text), head);
}

static void drop(client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->len = 0;
}

/* Read what the client sent; answer once the headers are complete. */
static void on_readable(const server *srv, client *c)
{
	ssize_t n = read(c->fd, c->buf + c->len, HTTP_REQUEST_MAX - c->len);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0)
		return drop(c);
	c->len += (size_t)n;
	c->buf[c->len] = '\0';
	if (strstr(c->buf, "\r\n\r\n") || strstr(c->buf, "\n\n")) {
		struct timeval tv = { HTTP_DEADLINE_MS / 1000, 0 };

		/* the reply is written blocking, bounded by the deadline */
		fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) & ~O_NONBLOCK);
		setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		answer(srv, c);
		drop(c);
	} else if (c->len == HTTP_REQUEST_MAX) {
		error_reply(c->fd, "431 Request Header Fields Too Large", "request too large\n");
		drop(c);
	}
}

static void accept_one(int lfd, client *clients)
{
	for (size_t i = 0; i < HTTP_MAX_CLIENTS; i++) {
		if (clients[i].fd >= 0)
			continue;
		clients[i].fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		clients[i].len = 0;
		clients[i].deadline_ms = util_now_ms() + HTTP_DEADLINE_MS;
		return;
	}
}

/* poll()'s timeout: until the nearest client deadline. */
static int next_timeout(const client *clients)
{
	int64_t now = util_now_ms(), t = -1;

	for (size_t i = 0; i < HTTP_MAX_CLIENTS; i++)
		if (clients[i].fd >= 0 && (t < 0 || clients[i].deadline_ms - now < t))
			t = clients[i].deadline_ms - now > 0 ? clients[i].deadline_ms - now : 0;
	return (int)t;
}

static int serve_loop(const server *srv, int lfd, int sfd, client *clients)
{
	for (;;) {
		struct pollfd pfd[HTTP_MAX_CLIENTS + 2];
		size_t busy = 0;
		int64_t now;

		for (size_t i = 0; i < HTTP_MAX_CLIENTS; i++) {
			pfd[i] = (struct pollfd){ clients[i].fd, POLLIN, 0 };
			busy += clients[i].fd >= 0;
		}
		/* all slots taken: new connections wait in the backlog */
		pfd[HTTP_MAX_CLIENTS] =
		        (struct pollfd){ busy < HTTP_MAX_CLIENTS ? lfd : -1, POLLIN, 0 };
		pfd[HTTP_MAX_CLIENTS + 1] = (struct pollfd){ sfd, POLLIN, 0 };
		if (poll(pfd, HTTP_MAX_CLIENTS + 2, next_timeout(clients)) < 0 && errno != EINTR)
			return -errno;
		if (pfd[HTTP_MAX_CLIENTS + 1].revents)
			return 0; /* SIGTERM, SIGINT */
		now = util_now_ms();
		for (size_t i = 0; i < HTTP_MAX_CLIENTS; i++) {
			if (clients[i].fd >= 0 && pfd[i].revents)
				on_readable(srv, &clients[i]);
			if (clients[i].fd >= 0 && now >= clients[i].deadline_ms)
				drop(&clients[i]); /* too slow to ask */
		}
		if (pfd[HTTP_MAX_CLIENTS].revents)
			accept_one(lfd, clients);
	}
}

int cli_metrics_serve(const cli_ctx *ctx, const char *spec, cli_scrape_fn scrape, util_err *err)
{
	const server srv = { ctx, scrape };
	_cleanup_close_ int lfd = inherited_socket(), sfd = -1;
	_cleanup_free_ client *clients = util_xcalloc(HTTP_MAX_CLIENTS, sizeof(*clients));
	sigset_t mask;
	int r = 0;

	bool inherited = lfd >= 0;

	if (!inherited)
		r = listen_socket(spec, &lfd, err);
	if (r < 0)
		return r;
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	/* a client that goes away mid-reply is not our death */
	signal(SIGPIPE, SIG_IGN);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0)
		return util_err_errno(err, -errno, "cannot wait for signals");
	for (size_t i = 0; i < HTTP_MAX_CLIENTS; i++)
		clients[i].fd = -1;
	if (ctx->verbosity >= 0 && inherited)
		fprintf(stderr,
		        "qvm: serving metrics at /metrics on the socket passed (LISTEN_FDS)\n");
	else if (ctx->verbosity >= 0)
		fprintf(stderr, "qvm: serving metrics at http://%s/metrics\n", spec);
	r = serve_loop(&srv, lfd, sfd, clients);
	for (size_t i = 0; i < HTTP_MAX_CLIENTS; i++)
		drop(&clients[i]);
	if (r < 0)
		return util_err_errno(err, r, "cannot serve metrics on '%s'", spec);
	return 0;
}
