/* Unit tests for the layout of the sources themselves (dependencies one
 * way, small functions): within storage/ the calls between files go one
 * way, the lower folders have no function over 100 lines and no function
 * twice, the store (lifecycle/store/) calls nothing above it, the
 * lifecycle files call each other one way, and
 * lifecycle/ does not know the CLI's supervisor verb. Reads
 * the tree at $QVM_SOURCE. */
#include <dirent.h>
#include <string.h>

#include "lifecycle/lifecycle.h"
#include "lifecycle/run.h"
#include "tap.h"
#include "util/util.h"

#define MAX_LINES 100

static const char *src;

/* One function of a file: where it is, its name and its body. */
typedef struct fn {
	char *file, *name, *body; /* body: lines stripped of their indent */
	unsigned line, lines;     /* line of its signature, lines up to its '}' */
	util_strv calls;          /* the stor_* and lc_* names its body calls */
	bool strict;              /* of a folder held to the length and copy rules */
} fn;

static fn *fns;
static size_t nfns;

/* The identifier just before the first '(' of a signature line. */
static char *fn_name(const char *sig)
{
	const char *paren = strchr(sig, '('), *b = paren;

	while (b > sig && (b[-1] == '_' || (b[-1] >= 'a' && b[-1] <= 'z') ||
	                   (b[-1] >= 'A' && b[-1] <= 'Z') || (b[-1] >= '0' && b[-1] <= '9')))
		b--;
	return strndup(b, (size_t)(paren - b));
}

/* Braces that count: not in comments, strings or character constants. */
static int brace_delta(const char *l, bool *in_comment)
{
	int d = 0;

	for (const char *p = l; *p; p++) {
		if (*in_comment) {
			if (p[0] == '*' && p[1] == '/')
				*in_comment = false, p++;
			continue;
		}
		if (p[0] == '/' && p[1] == '*')
			*in_comment = true, p++;
		else if (p[0] == '/' && p[1] == '/')
			break;
		else if (*p == '"' || *p == '\'') {
			char q = *p;

			for (p++; *p && *p != q; p++)
				if (*p == '\\' && p[1])
					p++;
			if (!*p)
				break;
		} else if (*p == '{')
			d++;
		else if (*p == '}')
			d--;
	}
	return d;
}

static void add_prefixed_calls(fn *f, const char *l, const char *prefix)
{
	for (const char *p = strstr(l, prefix); p; p = strstr(p + 1, prefix)) {
		size_t n = strspn(p, "abcdefghijklmnopqrstuvwxyz0123456789_");
		char *name;

		if (p[n] != '(' || (p > l && (p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z'))))
			continue;
		name = strndup(p, n);
		if (!util_strv_contains((const char *const *)f->calls.v, name))
			util_strv_push(&f->calls, name);
		free(name);
	}
}

static void add_calls(fn *f, const char *l)
{
	add_prefixed_calls(f, l, "stor_");
	add_prefixed_calls(f, l, "lc_");
}

/* Split one file into its functions: a signature line at depth 0, a '{'
 * opening a line, the '}' closing it at depth 0 (the tree's format). */
static void scan_file(const char *rel, bool strict)
{
	_cleanup_free_ char *path = util_xasprintf("%s/%s", src, rel), *text = NULL;
	char *save = NULL, *sig = NULL;
	unsigned no = 0, sig_line = 0;
	bool in_comment = false, was_in_comment;
	fn *cur = NULL;
	int depth = 0;
	size_t blen = 0;

	if (util_read_file(path, 1 << 22, &text, NULL, NULL) < 0) {
		ok(0, "read %s", rel);
		return;
	}
	for (char *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
		/* strtok_r skips empty lines: count them back */
		no = 1;
		for (const char *p = text; p < l; p++)
			no += *p == '\n' || *p == '\0';
		if (depth == 0 && !cur && strchr(l, '(') && l[0] != '#' && l[0] != ' ' &&
		    l[0] != '\t' && l[0] != '/' && l[0] != '*' && l[strlen(l) - 1] != ';') {
			free(sig);
			sig = strdup(l);
			sig_line = no;
		}
		if (depth == 0 && l[0] == '{' && sig) {
			fns = util_xrealloc(fns, (nfns + 1) * sizeof(*fns));
			cur = &fns[nfns++];
			*cur = (fn){ .file = strdup(rel),
				     .name = fn_name(sig),
				     .line = sig_line,
				     .strict = strict };
			cur->body = util_xstrdup("");
			blen = 0;
		}
		was_in_comment = in_comment;
		depth += brace_delta(l, &in_comment);
		/* comments are no part of a body: a copy with one is a copy */
		if (cur && !was_in_comment && strncmp(l + strspn(l, " \t"), "/*", 2)) {
			const char *t = l + strspn(l, " \t");
			size_t n = strlen(t);

			cur->body = util_xrealloc(cur->body, blen + n + 2);
			memcpy(cur->body + blen, t, n);
			blen += n;
			cur->body[blen++] = '\n';
			cur->body[blen] = '\0';
		}
		if (cur)
			add_calls(cur, l);
		if (cur && depth == 0 && l[0] == '}') {
			cur->lines = no - cur->line + 1;
			cur = NULL;
			free(sig);
			sig = NULL;
		}
	}
	free(sig);
}

static void scan_folder(const char *folder, bool strict)
{
	_cleanup_free_ char *dir = util_xasprintf("%s/%s", src, folder);
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort);

	if (!ok(n > 0, "%s/ has sources", folder))
		return;
	for (int i = 0; i < n; i++) {
		size_t len = strlen(names[i]->d_name);

		if (len > 2 && !strcmp(names[i]->d_name + len - 2, ".c")) {
			_cleanup_free_ char *rel =
			        util_xasprintf("%s/%s", folder, names[i]->d_name);

			scan_file(rel, strict);
		}
		free(names[i]);
	}
	free(names);
}

static const char *defined_in(const char *name)
{
	for (size_t i = 0; i < nfns; i++)
		if (!strcmp(fns[i].name, name))
			return fns[i].file;
	return NULL;
}

/* Does a file reach `to` through calls into other files,
 * starting from `from`? seen guards against walking a loop forever. */
static bool reaches(const char *from, const char *to, util_strv *seen)
{
	if (util_strv_contains((const char *const *)seen->v, from))
		return false;
	util_strv_push(seen, from);
	for (size_t i = 0; i < nfns; i++) {
		if (strcmp(fns[i].file, from))
			continue;
		for (size_t c = 0; c < fns[i].calls.n; c++) {
			const char *def = defined_in(fns[i].calls.v[c]);

			if (!def || !strcmp(def, from))
				continue;
			if (!strcmp(def, to) || reaches(def, to, seen))
				return true;
		}
	}
	return false;
}

/* The files of folder (a prefix such as "storage/") call each other one
 * way: no file reaches itself through calls into the others. */
static void test_calls_one_way(const char *folder)
{
	int cycles = 0;

	for (size_t i = 0; i < nfns; i++) {
		if (strncmp(fns[i].file, folder, strlen(folder)))
			continue;
		for (size_t c = 0; c < fns[i].calls.n; c++) {
			const char *def = defined_in(fns[i].calls.v[c]);
			util_strv seen = { 0 };

			if (def && strcmp(def, fns[i].file) && reaches(def, fns[i].file, &seen)) {
				diag("%s (%s) calls %s in %s, which calls back into %s",
				     fns[i].file, fns[i].name, fns[i].calls.v[c], def, fns[i].file);
				cycles++;
			}
			util_strv_clear(&seen);
		}
	}
	is_int(cycles, 0, "the %s files call each other one way only", folder);
}

static void test_storage_calls_one_way(void)
{
	test_calls_one_way("storage/");
	ok(defined_in("stor_download") && defined_in("stor_writeback") &&
	           defined_in("stor_inspect"),
	   "the scan found storage's functions");
}

/* The operations stand on the store and on each other one way: adding one
 * never means two files that need each other. */
static void test_lifecycle_calls_one_way(void)
{
	test_calls_one_way("lifecycle/");
	ok(defined_in("lc_vm_start") && defined_in("lc_hold_vm") && defined_in("lc_vm_disk_attach"),
	   "the scan found lifecycle's functions");
}

static void test_short_functions(void)
{
	int long_ones = 0;

	for (size_t i = 0; i < nfns; i++)
		if (fns[i].strict && fns[i].lines > MAX_LINES) {
			diag("%s:%u: %s is %u lines", fns[i].file, fns[i].line, fns[i].name,
			     fns[i].lines);
			long_ones++;
		}
	is_int(long_ones, 0, "no function in storage/, qmp/, net/, util/ is over %d lines",
	       MAX_LINES);
}

static void test_no_copies(void)
{
	int copies = 0;

	for (size_t i = 0; i < nfns; i++)
		for (size_t k = i + 1; k < nfns; k++) {
			/* the same body (of some length, comments aside), whatever
			 * its name: the same name alone may be a reader and a writer */
			if (fns[i].strict && fns[k].strict && fns[i].lines > 5 &&
			    !strcmp(fns[i].body, fns[k].body)) {
				diag("%s:%u %s and %s:%u %s are copies", fns[i].file, fns[i].line,
				     fns[i].name, fns[k].file, fns[k].line, fns[k].name);
				copies++;
			}
		}
	is_int(copies, 0, "each function of storage/, qmp/, net/, util/ exists once");
}

static bool in_store(const char *file)
{
	return !strncmp(file, "lifecycle/store/", 16);
}

/* The store is the floor under the operations: its files call no
 * lifecycle function defined outside lifecycle/store/ (what operations add
 * they register), and include no lifecycle header from outside it. */
static void test_store_calls_nothing_above(void)
{
	_cleanup_free_ char *dir = util_xasprintf("%s/lifecycle/store", src);
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort), up = 0, includes = 0;

	for (size_t i = 0; i < nfns; i++) {
		if (!in_store(fns[i].file))
			continue;
		for (size_t c = 0; c < fns[i].calls.n; c++) {
			const char *def = defined_in(fns[i].calls.v[c]);

			if (def && !in_store(def) && !strncmp(def, "lifecycle/", 10)) {
				diag("%s (%s) calls %s in %s", fns[i].file, fns[i].name,
				     fns[i].calls.v[c], def);
				up++;
			}
		}
	}
	for (int i = 0; i < n; i++) {
		_cleanup_free_ char *path = util_xasprintf("%s/%s", dir, names[i]->d_name);
		_cleanup_free_ char *text = NULL;

		if (names[i]->d_name[0] != '.' &&
		    util_read_file(path, 1 << 22, &text, NULL, NULL) == 0)
			for (const char *p = strstr(text, "#include \""); p;
			     p = strstr(p + 1, "#include \"")) {
				const char *h = p + 10;

				if ((!strncmp(h, "lifecycle/", 10) &&
				     strncmp(h, "lifecycle/store/", 16)) ||
				    !strncmp(h, "../", 3)) {
					diag("lifecycle/store/%s includes %.40s", names[i]->d_name,
					     h);
					includes++;
				}
			}
		free(names[i]);
	}
	free(names);
	ok(n > 2, "lifecycle/store/ has sources");
	ok(defined_in("lc_db_open") && in_store(defined_in("lc_db_open")),
	   "the scan found the store's functions");
	is_int(up, 0, "the store calls no lifecycle function above it");
	is_int(includes, 0, "the store includes no lifecycle header above it");
}

static void test_lifecycle_knows_no_verb(void)
{
	_cleanup_free_ char *dir = util_xasprintf("%s/lifecycle", src);
	struct dirent **names;
	int n = scandir(dir, &names, NULL, alphasort), hits = 0;

	for (int i = 0; i < n; i++) {
		_cleanup_free_ char *path = util_xasprintf("%s/%s", dir, names[i]->d_name);
		_cleanup_free_ char *text = NULL;

		if (names[i]->d_name[0] != '.' &&
		    util_read_file(path, 1 << 22, &text, NULL, NULL) == 0 &&
		    strstr(text, "__supervise")) {
			diag("lifecycle/%s names the CLI's supervisor verb", names[i]->d_name);
			hits++;
		}
		free(names[i]);
	}
	free(names);
	ok(n > 0, "lifecycle/ has sources");
	is_int(hits, 0, "lifecycle/ leaves the supervisor verb's name to cli/");
}

/* Without the CLI's verb lifecycle starts no supervisor (it has no name
 * of its own to fall back on). */
static void test_spawn_needs_a_verb(void)
{
	char root[] = "/tmp/qvm-unit-layout.XXXXXX";
	util_err err = { 0 };

	ok(mkdtemp(root) != NULL, "a temp root");
	is_int(lc_spawn_supervisor(root, 1, -1, false, false, 1000, &err), -ENOSYS,
	       "no verb set: lc_spawn_supervisor refuses");
	ok(strstr(err.msg, "no supervisor command is set") != NULL, "... saying why: %s", err.msg);
	util_rm_rf(root, NULL);
}

int main(void)
{
	src = getenv("QVM_SOURCE") ? getenv("QVM_SOURCE") : ".";
	scan_folder("storage", true);
	scan_folder("qmp", true);
	scan_folder("net", true);
	scan_folder("util", true);
	scan_folder("lifecycle", false);
	scan_folder("lifecycle/store", false);
	test_storage_calls_one_way();
	test_short_functions();
	test_no_copies();
	test_store_calls_nothing_above();
	test_lifecycle_calls_one_way();
	test_lifecycle_knows_no_verb();
	test_spawn_needs_a_verb();
	return done_testing();
}
