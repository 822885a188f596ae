# qvm — plain Makefile with pkg-config. `make help` lists the targets.

PREFIX  ?= /usr/local
DESTDIR ?=
SANITIZE ?=
CC      ?= cc
PKGS    := jansson libnl-3.0 libnl-route-3.0 libcurl

# Each compiler and sanitizer mix builds into its own folder (BUILD=... on
# the command line overrides): build/release, build/asan, and with CC=clang
# build/clang, build/clang-asan.
ifneq ($(findstring clang,$(notdir $(CC))),)
BUILD_PREFIX := clang-
else
BUILD_PREFIX :=
endif
ifeq ($(SANITIZE),1)
BUILD   := build/$(BUILD_PREFIX)asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   := $(if $(BUILD_PREFIX),build/clang,build/release)
SANFLAGS :=
endif

# A missing -dev package (or pkg-config) would otherwise surface as a
# puzzling "jansson.h: No such file". Targets that install the packages
# first (their sub-makes check again) or need none are spared.
NO_LIB_GOALS := deps help clean format format-check check demo bench guest
ifneq ($(filter-out $(NO_LIB_GOALS),$(or $(MAKECMDGOALS),all)),)
PKG_MISSING := $(shell for p in $(PKGS); do pkg-config --exists $$p 2>/dev/null || echo $$p; done)
ifneq ($(PKG_MISSING),)
$(error pkg-config finds no $(PKG_MISSING) (a -dev package or pkg-config itself is missing); run 'sudo make deps')
endif
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
# libcurl and libnl are not linked: storage/curl_dl.c and net/nl_dl.c load
# them when a download or a network operation needs them (linked, they would
# slow every qvm's exec and fatten every VM's supervisor). Their headers
# still come from pkg-config.
PKG_LIBS   := $(shell pkg-config --libs jansson 2>/dev/null)

CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wformat=2 -Wno-format-nonliteral -Werror
QVM_VERSION ?= 0.1
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE -DQVM_VERSION=\"$(QVM_VERSION)\" $(WARN) $(CFLAGS) $(SANFLAGS) -I. $(PKG_CFLAGS) -MMD -MP
ALL_LDFLAGS := $(LDFLAGS) $(SANFLAGS)
LIBS    := $(PKG_LIBS) -lrt

# Every folder's sources except the CLI entry point go into one static
# library that the binary and the unit tests link.
LIB_SRC := $(sort $(wildcard util/*.c qmp/*.c net/*.c storage/*.c lifecycle/*.c lifecycle/store/*.c))
CLI_SRC := $(sort $(wildcard cli/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/%.o)
LIBQVM  := $(BUILD)/libqvm.a
# Whole for the binary: the operations register their handlers with the
# store from constructors, which a plain archive link drops with an object
# nothing else calls. Unit tests link the plain archive (some include the
# file they test), so each gets the handlers of the operations it uses.
LINK_LIBQVM := -Wl,--whole-archive $(LIBQVM) -Wl,--no-whole-archive
QVM     := $(BUILD)/qvm

UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
GUEST   := build/guest

.PHONY: deps-check all deps check unit unit-build clang e2e guest install uninstall demo format format-check bench clean help
.DEFAULT_GOAL := all

all: $(QVM) build/qvm

# build/qvm always names the binary of the last build, for tests and users.
build/qvm: $(QVM)
	@ln -sfn $(patsubst build/%,%,$(QVM)) $@

$(QVM): $(CLI_OBJ) $(LIBQVM)
	$(CC) $(ALL_LDFLAGS) -o $@ $(CLI_OBJ) $(LINK_LIBQVM) $(LIBS)

$(LIBQVM): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c tests/unit/tap.h tests/unit/ops_fake.h $(LIBQVM)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit -o $@ $< $(LIBQVM) $(LIBS) $(ALL_LDFLAGS)

# Installs with apt-get whatever building and testing need and is missing.
deps:
	@tests/lib/deps.sh

deps-check:
	@command -v clang-format >/dev/null && command -v clang >/dev/null && \
		command -v qemu-system-x86_64 >/dev/null && command -v prove >/dev/null || \
		{ echo "check: packages are missing: run ./setup (or make deps) first" >&2; exit 1; }

guest: deps
	@tests/guest/build.sh $(GUEST)

unit: $(UNIT_BIN) $(QVM)
	QVM_BUILD=$(BUILD) QVM_SOURCE=$(CURDIR) prove -f $(UNIT_BIN)

unit-build: $(UNIT_BIN) $(QVM)

# SPEC: the code is gcc- and clang-clean. This compiles the binary and the
# unit tests with clang into build/clang (build/qvm keeps naming the gcc
# build); running them again would add nothing the gcc runs do not cover.
clang:
	$(MAKE) CC=clang BUILD=build/clang SANITIZE= unit-build

e2e: all guest
	QVM=$(CURDIR)/$(QVM) QVM_GUEST=$(CURDIR)/$(GUEST) QVM_SOURCE=$(CURDIR) \
		QVM_TEST_SINCE=$$(date +%s) \
		prove -f --timer tests/e2e/*.t

# The README's test command (./setup --check runs it after `make deps`):
# checks the format, builds (with gcc, and with clang to keep both clean),
# runs every unit and end-to-end test, then the unit suite again under
# ASan/UBSan. It installs nothing; deps-check names what is missing.
check: deps-check
	$(MAKE) format-check
	$(MAKE) clang
	$(MAKE) all
	$(MAKE) unit
	$(MAKE) e2e
ifneq ($(SANITIZE),1)
	$(MAKE) SANITIZE=1 unit
endif

demo: deps
	$(MAKE) all
	@tests/guest/build.sh $(GUEST)
	@QVM=$(CURDIR)/$(QVM) QVM_GUEST=$(CURDIR)/$(GUEST) tests/lib/demo.sh

bench: deps
	$(MAKE) all
	@tests/guest/build.sh $(GUEST)
	QVM=$(CURDIR)/$(QVM) QVM_GUEST=$(CURDIR)/$(GUEST) bench/run.sh

# install: the binary, the man page, the systemd units (qvm-guests.service
# runs host boot/shutdown, qvm-scheduler.timer a scheduler pass a minute,
# qvm-metrics.socket starts the Prometheus endpoint at its first scrape)
# and bash completion; their folders from pkg-config where it knows them.
# uninstall removes exactly those files. INSTALL_BIN installs another
# binary (tests/e2e/72-install.t: the one under test).
BINDIR         ?= $(PREFIX)/bin
MANDIR         ?= $(PREFIX)/share/man
INSTALL_BIN    ?= $(QVM)
SYSTEMDUNITDIR ?= $(or $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null),$(PREFIX)/lib/systemd/system)
BASHCOMPDIR    ?= $(or $(shell pkg-config --variable=completionsdir bash-completion 2>/dev/null),$(PREFIX)/share/bash-completion/completions)
UNITS          := qvm-guests.service qvm-scheduler.service qvm-scheduler.timer \
                  qvm-metrics.service qvm-metrics.socket
INSTALLED      := $(BINDIR)/qvm $(MANDIR)/man8/qvm.8 $(addprefix $(SYSTEMDUNITDIR)/,$(UNITS)) $(BASHCOMPDIR)/qvm

install: $(INSTALL_BIN)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(BASHCOMPDIR)
	install -m 0755 $(INSTALL_BIN) $(DESTDIR)$(BINDIR)/qvm
	install -m 0644 doc/qvm.8 $(DESTDIR)$(MANDIR)/man8/qvm.8
	for u in qvm-guests.service qvm-scheduler.service qvm-metrics.service; do \
		sed 's|@BINDIR@|$(BINDIR)|g' dist/$$u.in >$(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp && \
		chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp && \
		mv $(DESTDIR)$(SYSTEMDUNITDIR)/$$u.tmp $(DESTDIR)$(SYSTEMDUNITDIR)/$$u || exit 1; \
	done
	install -m 0644 dist/qvm-scheduler.timer $(DESTDIR)$(SYSTEMDUNITDIR)/qvm-scheduler.timer
	install -m 0644 dist/qvm-metrics.socket $(DESTDIR)$(SYSTEMDUNITDIR)/qvm-metrics.socket
	install -m 0644 dist/qvm.bash-completion $(DESTDIR)$(BASHCOMPDIR)/qvm

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED))

FORMAT_SRC = $(LIB_SRC) $(CLI_SRC) $(wildcard */*.h) $(UNIT_SRC) tests/unit/tap.h tests/unit/ops_fake.h

format:
	clang-format -i $(FORMAT_SRC)

# What `make check` runs first: the sources are as `make format` leaves them.
format-check:
	@clang-format --dry-run --Werror $(FORMAT_SRC) || \
		{ echo "format-check: run 'make format'" >&2; exit 1; }

clean:
	rm -rf build/release build/asan build/clang build/clang-asan build/qvm

help:
	@echo "targets: all deps check unit unit-build clang e2e guest demo bench install uninstall format format-check clean"
	@echo "options: SANITIZE=1 (ASan+UBSan build in build/asan), CC=clang (build/clang), BUILD, PREFIX, DESTDIR"
	@echo "         install/uninstall: BINDIR, MANDIR, SYSTEMDUNITDIR, BASHCOMPDIR (default: pkg-config's)"

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
