/* Validation at the edge: names, sizes, numbers, and the one escaping
 * function for QEMU's key=value option syntax. */
#include <ctype.h>
#include <inttypes.h>
#include <string.h>

#include "util.h"

#define NAME_MAX_LEN 63

int util_validate_name(const char *name, const char *what, util_err *err)
{
	size_t len;

	if (!name || !*name)
		return util_err_set(err, -EINVAL, "%s is empty", what);
	len = strlen(name);
	if (len > NAME_MAX_LEN)
		return util_err_set(err, -EINVAL,
		                    "%s '%.20s...' is too long (%zu characters, at most %d)", what,
		                    name, len, NAME_MAX_LEN);
	if (!isalnum((unsigned char)name[0]) || (unsigned char)name[0] > 0x7f)
		goto bad;
	for (const char *p = name; *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (c > 0x7f || !(isalnum(c) || c == '.' || c == '_' || c == '-'))
			goto bad;
	}
	return 0;
bad:
	if (util_validate_printable(name, what, NULL) < 0)
		return util_err_set(
		        err, -EINVAL,
		        "%s contains a control character; use letters, digits, '.', '_' and '-'",
		        what);
	return util_err_set(
	        err, -EINVAL,
	        "invalid %s '%s': use letters, digits, '.', '_' and '-', starting with a letter or digit",
	        what, name);
}

int util_validate_printable(const char *s, const char *what, util_err *err)
{
	for (const unsigned char *p = (const unsigned char *)s; p && *p; p++)
		if (*p < 0x20 || *p == 0x7f)
			return util_err_set(err, -EINVAL,
			                    "%s contains a control character (0x%02x)", what, *p);
	return 0;
}

int util_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *ret, util_err *err)
{
	uint64_t v = 0;

	if (!s || !*s)
		return util_err_set(err, -EINVAL, "empty number");
	for (const char *p = s; *p; p++) {
		if (*p < '0' || *p > '9')
			return util_err_set(err, -EINVAL, "'%s' is not a number", s);
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return util_err_set(err, -ERANGE, "'%s' is too large", s);
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (v < min || v > max)
		return util_err_set(err, -ERANGE, "%s is out of range (%" PRIu64 "-%" PRIu64 ")", s,
		                    min, max);
	*ret = v;
	return 0;
}

int util_parse_size(const char *s, uint64_t *ret_bytes, util_err *err)
{
	static const char units[] = "BKMGTP";
	uint64_t v = 0, mult = 1;
	const char *p = s;
	const char *u;

	if (!s || !*s)
		return util_err_set(err, -EINVAL, "empty size");
	if (*p < '0' || *p > '9')
		goto bad;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return util_err_set(err, -ERANGE, "size '%s' is too large", s);
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (*p) {
		u = strchr(units, toupper((unsigned char)*p));
		if (!u)
			goto bad;
		for (long i = 0; i < u - units; i++)
			mult *= 1024;
		p++;
		/* accept "G", "GB", "GiB" */
		if (*p == 'i' && p[1] == 'B')
			p += 2;
		else if ((*p == 'B' || *p == 'b') && u != units)
			p++;
		if (*p)
			goto bad;
	}
	if (v == 0)
		return util_err_set(err, -EINVAL, "size '%s' must be greater than zero", s);
	if (v > UINT64_MAX / mult)
		return util_err_set(err, -ERANGE, "size '%s' is too large", s);
	*ret_bytes = v * mult;
	return 0;
bad:
	return util_err_set(err, -EINVAL,
	                    "invalid size '%s': use a number with an optional K, M, G or T suffix",
	                    s);
}

const char *util_format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char units[] = "KMGTP";
	int i = -1;
	uint64_t v = bytes;

	while (v >= 1024 && v % 1024 == 0 && i < 4) {
		v /= 1024;
		i++;
	}
	if (i < 0)
		snprintf(buf, len, "%" PRIu64, bytes);
	else
		snprintf(buf, len, "%" PRIu64 "%c", v, units[i]);
	return buf;
}

int util_qemu_opt_escape(const char *value, char **ret, util_err *err)
{
	size_t n = 0;
	char *out, *q;
	int r;

	r = util_validate_printable(value, "option value", err);
	if (r < 0)
		return r;
	for (const char *p = value; *p; p++)
		n += *p == ',' ? 2 : 1;
	out = q = util_xmalloc(n + 1);
	for (const char *p = value; *p; p++) {
		*q++ = *p;
		if (*p == ',')
			*q++ = ',';
	}
	*q = '\0';
	*ret = out;
	return 0;
}
