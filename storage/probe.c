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
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_V2_HEADER_LEN      72u
#define QCOW2_V3_HEADER_LEN      104u
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

/* The header extension of `type` in a qcow2 head whose extensions start
 * at off, copied into dst (NUL-terminated) when it fits; false without. */
static bool qcow2_extension(const unsigned char *buf, size_t len, size_t off, uint32_t type,
                            char *dst, size_t dst_len)
{
	while (off + 8 <= len) {
		uint32_t t = be32(buf + off), n = be32(buf + off + 4);

		if (t == 0 || n > len - off - 8)
			return false;
		if (t == type) {
			if (n == 0 || n >= dst_len || memchr(buf + off + 8, '\0', n))
				return false;
			memcpy(dst, buf + off + 8, n);
			dst[n] = '\0';
			return true;
		}
		off += 8 + ((n + 7u) & ~7u);
	}
	return false;
}

/* A qcow2 header (version 2 or 3): the external data file bit and the
 * file named by its header extension. */
static void qcow2_header(const unsigned char *buf, size_t len, stor_probe *p)
{
	char name[EXTENT_NAME_MAX + 1];

	if (be32(buf + 4) < 3 || len < QCOW2_V3_HEADER_LEN)
		return; /* version 2 has no incompatible features */
	if (!(be64(buf + 72) & QCOW2_INCOMPAT_DATA_FILE))
		return;
	p->data_file = true;
	/* header_length: the extensions follow */
	if (qcow2_extension(buf, len, be32(buf + 100), QCOW2_EXT_DATA_FILE, name, sizeof(name)))
		p->data_file_name = util_xstrdup(name);
}

/* A qcow2 whose header says all that `qemu-img info` would: version 2 or
 * 3, no encryption, no incompatible feature bits (dirty, corrupt, data
 * file, compression type, extended L2), a sane cluster size, and at most
 * a backing file named by an absolute path with its format recorded (as
 * qvm's own overlays are). Anything else is left to qemu-img. */
static void qcow2_describe(const unsigned char *buf, size_t len, stor_probe *p)
{
	uint32_t version, cluster_bits, header_len = QCOW2_V2_HEADER_LEN, backing_len;
	uint64_t backing_off;
	char name[STOR_PROBE_NAME_MAX];

	if (len < QCOW2_V2_HEADER_LEN)
		return;
	version = be32(buf + 4);
	backing_off = be64(buf + 8);
	backing_len = be32(buf + 16);
	if (version != 2 && version != 3)
		return;
	cluster_bits = be32(buf + 20);
	if (cluster_bits < 9 || cluster_bits > 21 || be32(buf + 32) != 0)
		return;
	if (version == 3) {
		if (len < QCOW2_V3_HEADER_LEN || be64(buf + 72) != 0)
			return;
		header_len = be32(buf + 100);
		if (header_len < QCOW2_V3_HEADER_LEN || header_len > len || header_len % 8)
			return;
	}
	if (backing_off) {
		if (backing_len == 0 || backing_len >= sizeof(name) || backing_off >= len ||
		    backing_len > len - backing_off)
			return;
		memcpy(name, buf + backing_off, backing_len);
		name[backing_len] = '\0';
		if (strlen(name) != backing_len || name[0] != '/' ||
		    !qcow2_extension(buf, len, header_len, QCOW2_EXT_BACKING_FORMAT,
		                     p->backing_format, sizeof(p->backing_format)))
			return;
		p->backing_name = util_xstrdup(name);
	}
	p->virtual_size = be64(buf + 24);
	p->self_described = true;
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
		if (!strcmp(fmt, "qcow2") && !p.data_file)
			qcow2_describe(buf, len, &p);
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
	free(p->backing_name);
	memset(p, 0, sizeof(*p));
}
