/* storage: what an image file's first bytes make of it, read by qvm itself
 * before any qemu-img opens the file. QEMU's probes (block/<format>.c in
 * QEMU 7.2) are followed where they decide by content, so a declared
 * format is compared with what qemu-img would have taken the file for, and
 * the headers that make qemu open other files (a VMDK descriptor's
 * extents, a qcow2 external data file) are seen without opening them. */
#include <string.h>

#include "storage/internal.h"

#define QCOW_MAGIC               "QFI\xfb"
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_EXT_DATA_FILE      0x44415441u /* "DATA" */
#define EXTENT_NAME_MAX          1024

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t be64(const unsigned char *p)
{
	return (uint64_t)be32(p) << 32 | be32(p + 4);
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
}

static bool starts(const unsigned char *buf, size_t len, const char *magic, size_t n)
{
	return len >= n && !memcmp(buf, magic, n);
}

/* vmdk_probe(): comment lines and blank lines, then "version=1|2|3". QEMU
 * looks at the first 2048 bytes only. */
static bool vmdk_text(const unsigned char *buf, size_t len)
{
	const char *p = (const char *)buf, *end = p + (len < 2048 ? len : 2048);

	while (p < end) {
		if (*p == '#') {
			while (p < end && *p != '\n')
				p++;
			p++;
			continue;
		}
		if (*p == ' ') {
			while (p < end && *p == ' ')
				p++;
			if (p < end && *p == '\r')
				p++;
			if (p == end || *p != '\n')
				return false;
			p++;
			continue;
		}
		for (const char *v = "123"; *v; v++) {
			char want[16];

			snprintf(want, sizeof(want), "version=%c\n", *v);
			if ((size_t)(end - p) >= strlen(want) && !strncmp(p, want, strlen(want)))
				return true;
			snprintf(want, sizeof(want), "version=%c\r\n", *v);
			if ((size_t)(end - p) >= strlen(want) && !strncmp(p, want, strlen(want)))
				return true;
		}
		return false;
	}
	return false;
}

/* The extent lines of a descriptor: `RW|RDONLY|NOACCESS <sectors> <type>
 * "<file>" [offset]`. */
static void vmdk_extents(const unsigned char *buf, size_t len, stor_probe *p)
{
	const char *s = (const char *)buf, *end = s + len;

	while (s < end) {
		const char *eol = memchr(s, '\n', (size_t)(end - s));
		size_t n = (size_t)((eol ? eol : end) - s);
		char line[EXTENT_NAME_MAX + 64];
		char *q1, *q2;

		if (n < sizeof(line)) {
			memcpy(line, s, n);
			line[n] = '\0';
			if ((util_startswith(line, "RW ") || util_startswith(line, "RDONLY ") ||
			     util_startswith(line, "NOACCESS ")) &&
			    (q1 = strchr(line, '"')) && (q2 = strchr(q1 + 1, '"'))) {
				if (!p->extents++)
					p->first_extent = strndup(q1 + 1, (size_t)(q2 - q1 - 1));
			}
		}
		s += n + 1;
	}
}

/* A qcow2 header (version 2 or 3): the external data file bit and the
 * file named by its header extension. */
static void qcow2_header(const unsigned char *buf, size_t len, stor_probe *p)
{
	uint32_t version = be32(buf + 4);
	size_t off;

	if (version < 3 || len < 104)
		return; /* version 2 has no incompatible features */
	if (!(be64(buf + 72) & QCOW2_INCOMPAT_DATA_FILE))
		return;
	p->data_file = true;
	off = be32(buf + 100); /* header_length: the extensions follow */
	while (off + 8 <= len) {
		uint32_t type = be32(buf + off), n = be32(buf + off + 4);

		if (type == 0 || n > len - off - 8)
			break;
		if (type == QCOW2_EXT_DATA_FILE && n > 0 && n <= EXTENT_NAME_MAX) {
			p->data_file_name = strndup((const char *)buf + off + 8, n);
			break;
		}
		off += 8 + ((n + 7u) & ~7u);
	}
}

void stor_probe_buf(const void *vbuf, size_t len, stor_probe *ret)
{
	const unsigned char *buf = vbuf;
	const char *fmt = "raw";
	stor_probe p = { .extents = 0 };

	/* qcow2_probe() also needs a whole header; a short file with the
	 * magic still counts as qcow2 here, so that it is never taken for
	 * raw and qemu-img says what is wrong with it */
	if (starts(buf, len, QCOW_MAGIC, 4)) {
		fmt = len >= 8 && be32(buf + 4) == 1 ? "qcow" : "qcow2";
		if (!strcmp(fmt, "qcow2") && len >= 8)
			qcow2_header(buf, len, &p);
	} else if (starts(buf, len, "QED\0", 4)) {
		fmt = "qed";
	} else if (starts(buf, len, "KDMV", 4) || starts(buf, len, "COWD", 4)) {
		fmt = "vmdk";
	} else if (vmdk_text(buf, len)) {
		fmt = "vmdk";
		p.vmdk_descriptor = true;
		vmdk_extents(buf, len, &p);
	} else if (len >= 0x44 && le32(buf + 0x40) == 0xbeda107fu) {
		fmt = "vdi";
	} else if (starts(buf, len, "vhdxfile", 8)) {
		fmt = "vhdx";
	} else if (starts(buf, len, "conectix", 8)) {
		fmt = "vpc";
	} else if (starts(buf, len, "LUKS\xba\xbe", 6)) {
		fmt = "luks";
	} else if (starts(buf, len, "WithoutFreeSpace", 16) ||
	           starts(buf, len, "WithouFreSpacExt", 16)) {
		fmt = "parallels";
	} else if (starts(buf, len, "Bochs Virtual HD Image", 22)) {
		fmt = "bochs";
	} else if (starts(buf, len, "#!/bin/sh\n#V2.0 Format\n", 23)) {
		fmt = "cloop";
	}
	snprintf(p.format, sizeof(p.format), "%s", fmt);
	*ret = p;
}

void stor_probe_clear(stor_probe *p)
{
	if (!p)
		return;
	free(p->first_extent);
	free(p->data_file_name);
	memset(p, 0, sizeof(*p));
}
