/* Choosing the accelerator: KVM only where it really works. A /dev/kvm
 * that opens is not enough — nested paravirtual setups expose one without
 * hardware virtualisation, and guests hang on it — so the CPU must also
 * advertise vmx or svm. */
#include <fcntl.h>
#include <string.h>

#include "lifecycle.h"

static bool cpu_has_hw_virt(void)
{
	_cleanup_free_ char *info = NULL;
	const char *p;

	if (util_read_file("/proc/cpuinfo", 64u << 20, &info, NULL, NULL) < 0)
		return false;
	for (p = info; (p = strstr(p, "\nflags")); p++) {
		const char *eol = strchr(p + 1, '\n');
		_cleanup_free_ char *line = strndup(p, eol ? (size_t)(eol - p) : strlen(p));

		if (line && (strstr(line, " vmx") || strstr(line, " svm")))
			return true;
	}
	return false;
}

static bool kvm_opens(void)
{
	int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

int lc_accel_resolve(lc_accel requested, lc_accel *ret_accel, const char **ret_reason,
                     util_err *err)
{
	const char *env = getenv("QVM_ACCEL");
	lc_accel want = requested;
	const char *reason = "set in the vm's definition";

	if (env && *env) {
		int r = lc_accel_parse(env, &want, err);

		if (r < 0)
			return util_err_prefix(err, "QVM_ACCEL");
		reason = "set by QVM_ACCEL";
	}
	if (want == LC_ACCEL_AUTO) {
		if (!kvm_opens()) {
			want = LC_ACCEL_TCG;
			reason = "auto: /dev/kvm cannot be opened";
		} else if (!cpu_has_hw_virt()) {
			want = LC_ACCEL_TCG;
			reason = "auto: the CPU advertises neither vmx nor svm";
		} else {
			want = LC_ACCEL_KVM;
			reason = "auto: /dev/kvm opens and the CPU has hardware virtualisation";
		}
	} else if (want == LC_ACCEL_KVM && !kvm_opens()) {
		return util_err_set(
		        err, -ENODEV,
		        "kvm was requested but /dev/kvm cannot be opened; use --accel tcg or auto");
	}
	*ret_accel = want;
	if (ret_reason)
		*ret_reason = reason;
	return 0;
}
