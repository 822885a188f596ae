/* storage: small helpers the storage files share — finding qemu-img,
 * message-safe strings, qemu-img error text, the format allow-list, early
 * writeback of files being written, a rename that never replaces. Any
 * storage file may call these; they call no other storage file. */
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "storage/internal.h"

#define SAFE_MAX        400
#define WRITEBACK_CHUNK (8ull << 20)

int stor_qemu_img(char **ret_path, util_err *err)
{
	const char *env = getenv("QVM_QEMU_IMG");

	return util_find_program(env && *env ? env : "qemu-img", ret_path, err);
}

char *stor_safe(const char *s)
{
	size_t n, i;
	char *out;

	if (!s)
		return util_xstrdup("(null)");
	n = strlen(s);
	if (n > SAFE_MAX)
		n = SAFE_MAX;
	out = util_xmalloc(n + 4);
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		out[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (s[n]) {
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n] = '\0';
	return out;
}

bool stor_format_supported(const char *format)
{
	return util_streq(format, "qcow2") || util_streq(format, "raw");
}

int stor_qemu_img_failed(util_err *err, const char *stderr_text, const char *fmt, ...)
{
	_cleanup_free_ char *text = util_xstrdup(stderr_text ? stderr_text : "");
	_cleanup_free_ char *joined = NULL, *safe = NULL;
	char context[1024];
	size_t len = 0;
	int lines = 0;
	char *save = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(context, sizeof(context), fmt, ap);
	va_end(ap);
	/* qemu-img explains over a few lines ("x: Image is not in qcow2
	 * format" then "Could not open backing image."): keep the first
	 * three, on one line, without its own "qemu-img: " prefix. */
	joined = util_xcalloc(1, strlen(text) + 1);
	for (char *line = strtok_r(text, "\n", &save); line && lines < 3;
	     line = strtok_r(NULL, "\n", &save)) {
		size_t n;

		line += strspn(line, " \t");
		if (util_startswith(line, "qemu-img: "))
			line += 10;
		n = strlen(line);
		while (n && strchr(" \t\r.", line[n - 1]))
			n--;
		if (!n)
			continue;
		if (lines++) {
			memcpy(joined + len, "; ", 2);
			len += 2;
		}
		memcpy(joined + len, line, n);
		len += n;
		joined[len] = '\0';
	}
	safe = stor_safe(joined);
	if (!*safe)
		return util_err_set(err, -EIO, "%s: qemu-img failed without a message", context);
	return util_err_set(err, -EIO, "%s: %s", context, safe);
}

void stor_writeback(int fd, uint64_t from, uint64_t to)
{
	/* each time the file crosses a WRITEBACK_CHUNK boundary, start
	 * writing back the chunk before it: the final fsync() then has
	 * little left to do, and the disk works while the network does */
	uint64_t chunk = from / WRITEBACK_CHUNK;

	if (to / WRITEBACK_CHUNK == chunk)
		return;
	sync_file_range(fd, (off64_t)(chunk * WRITEBACK_CHUNK), WRITEBACK_CHUNK,
	                SYNC_FILE_RANGE_WRITE);
}

int stor_rename_noreplace(const char *tmp, const char *path)
{
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) == 0)
		return 0;
	if (errno != EINVAL && errno != ENOSYS)
		return -errno;
	/* A filesystem without RENAME_NOREPLACE: link() never replaces. */
	if (link(tmp, path) < 0)
		return -errno;
	unlink(tmp);
	return 0;
}
