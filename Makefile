# spank-resilience: plain Makefile.
#
#   make                 build/resilience.so, build/slurm-resilience,
#                        build/resilience-supervisor
#   make check           unit tests (+ valgrind), fuzz smoke, symbol check,
#                        integration tests on a private real Slurm cluster
#   make install         honours DESTDIR, PREFIX, SLURM_PLUGIN_DIR
#   make demo            private cluster + one job walked through the plugin
#   make fuzz            longer fuzz runs of the parsers
#   make bench           benchmarks (bench/)
#   make slurm SLURM_SRC=../shared/slurm/slurm-25.11.7.tar.xz
#                        build that Slurm release into /opt/slurm-25.11
#                        (once per machine; tests/slurm-build)
#   make check-release SLURM_RELEASE=25.11
#                        build that release if missing, then the plugin
#                        against it and the integration suite on it
#
# One switch chooses the Slurm release for the build and the tests:
# SLURM_PREFIX=/opt/slurm-25.11 (or SLURM_RELEASE=25.11, the same).  The
# default, /usr, is Debian's 22.05.  With another prefix the CLI links
# that prefix's libslurm (rpath) and `make integration` puts its bin and
# sbin first in PATH (slurmd finds slurmstepd in its own sbin).
#
# Layout rule (so modules can be added without editing this file):
#   src/plugin.c, plugin_*.c   -> only in resilience.so (SPANK hooks and
#                                 the slurmstepd-side modules that call
#                                 Slurm's API: include/plugin_job.h)
#   src/cli.c, src/cli_*.c     -> only in slurm-resilience
#   src/supervisor_main.c      -> only in resilience-supervisor
#   every other src/*.c        -> build/libresilience.a, linked into all three
#   tests/unit/test_*.c        -> one Check executable each (own main())

PREFIX          ?= /usr/local
BINDIR          ?= $(PREFIX)/bin
LIBEXECDIR      ?= $(PREFIX)/libexec/slurm-resilience
# Node-local, root-only, emptied at boot: per-attempt job facts (facts.h).
RUNDIR          ?= /run/slurm-resilience
SYSCONFDIR      ?= /etc/slurm
DOCDIR          ?= $(PREFIX)/share/doc/slurm-resilience
SLURM_RELEASE   ?=
SLURM_PREFIX    ?= $(if $(SLURM_RELEASE),/opt/slurm-$(SLURM_RELEASE),/usr)
SLURM_INCDIR    ?= $(SLURM_PREFIX)/include
# Where Slurm looks for plugins: Debian uses the multiarch slurm-wlm folder.
SLURM_PLUGIN_DIR ?= $(shell for d in $(SLURM_PREFIX)/lib/x86_64-linux-gnu/slurm-wlm $(SLURM_PREFIX)/lib64/slurm $(SLURM_PREFIX)/lib/slurm; do [ -d $$d ] && { echo $$d; exit; }; done; echo $(PREFIX)/lib/slurm)

VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)

CC      ?= cc
PKGS    := libcurl json-c
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
# json-c's shared object, which the plugin loads only for a resilient job.
JSONC_SONAME := $(or $(shell objdump -p $$(pkg-config --variable=libdir json-c)/libjson-c.so 2>/dev/null | awk '/SONAME/{print $$2}'),libjson-c.so.5)
CHECK_CFLAGS := $(shell pkg-config --cflags check)
CHECK_LIBS   := $(shell pkg-config --libs check)

# Slurm >= 23.11 has spank_prepend_task_argv(): detected from the header we
# build against, never from a version number.
HAVE_PREPEND := $(shell grep -q spank_prepend_task_argv $(SLURM_INCDIR)/slurm/spank.h 2>/dev/null && echo 1 || echo 0)
# Slurm >= 25.11 reads slurm_spank_init_failure_mode (plugin.c).
HAVE_INIT_FAILURE_MODE := $(shell grep -q slurm_spank_init_failure_mode $(SLURM_INCDIR)/slurm/spank.h 2>/dev/null && echo 1 || echo 0)
# libslurm of another prefix: linked with an rpath, so the CLI never
# talks to a cluster with another release's library.  (The plugin is not
# linked against libslurm: its host process provides it.)
SLURM_LIBDIR ?= $(SLURM_PREFIX)/lib
SLURM_LDFLAGS := $(if $(filter /usr,$(SLURM_PREFIX)),,-L$(SLURM_LIBDIR) -Wl,-rpath,$(SLURM_LIBDIR))

WARN    := -Wall -Wextra -Werror -Wstrict-prototypes -Wmissing-prototypes \
           -Wshadow -Wformat=2 -Werror=implicit-function-declaration -fno-common
CFLAGS  ?= -O2 -g
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE -fPIC -fvisibility=hidden $(WARN) \
           -Iinclude -isystem $(SLURM_INCDIR) $(PKG_CFLAGS) \
           -DRS_VERSION='"$(VERSION)"' -DRS_LIBEXECDIR='"$(LIBEXECDIR)"' -DRS_BINDIR='"$(BINDIR)"' -DRS_RUNDIR='"$(RUNDIR)"' -DRS_JSONC_SONAME='"$(JSONC_SONAME)"' \
           -DHAVE_SPANK_PREPEND_TASK_ARGV=$(HAVE_PREPEND) \
           -DHAVE_SPANK_INIT_FAILURE_MODE=$(HAVE_INIT_FAILURE_MODE) $(CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS ?=

B := build
PLUGIN_SRC := src/plugin.c $(wildcard src/plugin_*.c)
PLUGIN_OBJ := $(PLUGIN_SRC:src/%.c=$(B)/obj/%.o)
PROG_SRC   := $(PLUGIN_SRC) src/supervisor_main.c $(wildcard src/cli.c src/cli_*.c)
LIB_SRC    := $(filter-out $(PROG_SRC),$(wildcard src/*.c))
LIB_OBJ    := $(LIB_SRC:src/%.c=$(B)/obj/%.o)
CLI_OBJ    := $(patsubst src/%.c,$(B)/obj/%.o,$(wildcard src/cli.c src/cli_*.c))
UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(B)/tests/%)
FUZZ_SRC   := $(wildcard tests/fuzz/fuzz_*.c)
# Fuzz targets link the whole library (built once, instrumented).
FUZZ_LIB   := $(LIB_SRC)

# Debian 12 packages the build, the tests, the demo and the benchmarks need.
DEB_PACKAGES := gcc make pkg-config libc6-dev libslurm-dev libcurl4-openssl-dev \
  libjson-c-dev check valgrind clang libclang-rt-14-dev slurmd slurmctld \
  slurm-client munge python3 python3-pytest python3-yaml procps rsync \
  util-linux passwd bc hyperfine \
  clickhouse-server clickhouse-client prometheus prometheus-pushgateway \
  prometheus-alertmanager

# What tests/slurm-build needs to build a Slurm release (make slurm-deps).
SLURM_BUILD_PACKAGES := gcc make pkg-config xz-utils libmunge-dev munge \
  libjson-c-dev libcurl4-openssl-dev libssl-dev libyaml-dev zlib1g-dev \
  libreadline-dev python3

# Slurm source tarballs: the folder `shared` beside the checkout (CI puts a
# copy there; no internet), or SLURM_SHARED=DIR.
SLURM_SHARED ?= $(abspath $(CURDIR)/../shared/slurm)
SLURM_TARBALL ?= $(or $(filter %.tar.xz %.tar.bz2 %.tar.gz,$(SLURM_SRC)),$(if $(SLURM_RELEASE),$(lastword $(sort $(wildcard $(SLURM_SHARED)/slurm-$(SLURM_RELEASE).*.tar.*)))))
# X.Y of the tarball, when no SLURM_RELEASE is given.
SLURM_TAR_RELEASE = $(shell echo '$(notdir $(SLURM_TARBALL))' | sed -n 's/^slurm-\([0-9]*\.[0-9]*\)\..*/\1/p')

.PHONY: all deps check check-run suites check-slurm-headers FORCE unit unit-valgrind unit-asan \
        unit-asan-gcc unit-asan-clang unit-san-run symbols fuzz-smoke fuzz \
        integration install uninstall clean demo bench slurm slurm-deps check-release \
        man check-man dist check-package
all: $(B)/resilience.so $(B)/slurm-resilience $(B)/resilience-supervisor

$(B)/obj/%.o: src/%.c $(wildcard include/*.h) Makefile
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	@$(CC) $(ALL_CFLAGS) -c -o $@ $<

# plugin.o embeds LIBEXECDIR (where it finds the supervisor): rebuild it
# when `make install PREFIX=...` differs from the PREFIX of the build.
$(B)/paths.stamp: FORCE
	@mkdir -p $(B); echo '$(LIBEXECDIR) $(BINDIR) $(RUNDIR)' | cmp -s - $@ || echo '$(LIBEXECDIR) $(BINDIR) $(RUNDIR)' > $@
$(PLUGIN_OBJ) $(B)/obj/metrics.o: $(B)/paths.stamp
# Every object depends on the Slurm headers: switching SLURM_PREFIX in
# one build tree rebuilds everything.
$(B)/slurm.stamp: FORCE
	@mkdir -p $(B); echo '$(SLURM_INCDIR) $(SLURM_LDFLAGS)' | cmp -s - $@ || echo '$(SLURM_INCDIR) $(SLURM_LDFLAGS)' > $@
$(PLUGIN_OBJ) $(LIB_OBJ) $(CLI_OBJ) $(B)/obj/supervisor_main.o $(B)/slurm-resilience: $(B)/slurm.stamp
FORCE:

$(B)/libresilience.a: $(LIB_OBJ)
	@mkdir -p $(B)
	rm -f $@ && ar rcs $@ $^

# The plugin: libslurm symbols resolve from the host process (sbatch, srun,
# slurmstepd), so it is not linked against libslurm.  Nor against json-c:
# SPANK loads the plugin into every srun and slurmstepd, and a NEEDED
# json-c cost every step ~0.3 ms (bench/steps.sh, (j)); the plugin loads it
# (RTLD_GLOBAL) for resilient jobs only, and its calls bind lazily (Slurm
# dlopens plugins RTLD_LAZY).  `make symbols` checks both.
# -z lazy comes after LDFLAGS: distributions' hardening flags (Debian's
# dpkg-buildflags, Fedora's build_ldflags) add -z now, which would make
# dlopen fail on the json-c symbols in every sbatch and srun.
$(B)/resilience.so: $(PLUGIN_OBJ) $(B)/libresilience.a
	$(CC) -shared -Wl,-z,defs -Wl,--unresolved-symbols=ignore-in-object-files \
	  -o $@ $(PLUGIN_OBJ) $(B)/libresilience.a $(LDFLAGS) -Wl,-z,lazy

$(B)/slurm-resilience: $(CLI_OBJ) $(B)/libresilience.a
	$(CC) -o $@ $(CLI_OBJ) $(B)/libresilience.a $(LDFLAGS) $(PKG_LIBS) $(SLURM_LDFLAGS) -lslurm

$(B)/resilience-supervisor: $(B)/obj/supervisor_main.o $(B)/libresilience.a
	$(CC) -o $@ $(B)/obj/supervisor_main.o $(B)/libresilience.a $(LDFLAGS) -Wl,--as-needed $(PKG_LIBS)

$(B)/tests/%: tests/unit/%.c $(B)/libresilience.a $(wildcard include/*.h)
	@mkdir -p $(dir $@)
	@echo "  CCLD    $@"
	@$(CC) $(ALL_CFLAGS) $(CHECK_CFLAGS) -Wno-missing-prototypes -o $@ $< \
	  $(B)/libresilience.a $(PKG_LIBS) $(CHECK_LIBS)

# Install what is missing (as root, apt-get); a no-op when all is there.
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "deps: installing" $$missing; \
	  if [ "$$(id -u)" != 0 ]; then echo "deps: run as root to install them" >&2; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

slurm-deps:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(SLURM_BUILD_PACKAGES)"

# A Slurm release from its tarball into /opt/slurm-X.Y (or SLURM_PREFIX),
# once per machine: tests/slurm-build skips a prefix built from the same
# tarball.  SLURM_SRC=TARBALL, or SLURM_RELEASE=X.Y (found in SLURM_SHARED).
slurm: slurm-deps
	@if [ -z "$(SLURM_TARBALL)" ]; then \
	  if [ "$(SLURM_PREFIX)" != /usr ] && [ -x $(SLURM_PREFIX)/sbin/slurmctld ]; then \
	    echo "slurm: no tarball in $(SLURM_SHARED); $(SLURM_PREFIX) used as it is"; exit 0; fi; \
	  echo "usage: make slurm SLURM_SRC=slurm-X.Y.Z.tar.xz | SLURM_RELEASE=X.Y (no tarball in $(SLURM_SHARED))" >&2; exit 2; \
	fi; \
	tests/slurm-build $(SLURM_TARBALL) $(filter-out /usr,$(SLURM_PREFIX))

# The integration suite on another release, built if missing: the CI's
# second pass (the unit, sanitizer and fuzz suites do not depend on the
# release and ran in `make check`).  Its own build tree, build-X.Y.
check-release: deps
	@rel='$(or $(SLURM_RELEASE),$(SLURM_TAR_RELEASE))'; \
	test -n "$$rel" || { echo "usage: make check-release SLURM_RELEASE=X.Y | SLURM_SRC=slurm-X.Y.Z.tar.xz" >&2; exit 2; }; \
	set -e; $(MAKE) --no-print-directory slurm SLURM_RELEASE=$$rel; \
	$(MAKE) --no-print-directory B=build-$$rel SLURM_RELEASE=$$rel all symbols integration

# Build against another Slurm's headers (e.g. 23.11 or 24.11, where
# spank_prepend_task_argv exists): SLURM_SRC=/path/to/slurm-source.
# On demand (Slurm's sources are not part of this project).
check-slurm-headers:
	@test -n "$(SLURM_SRC)" || { echo "usage: make check-slurm-headers SLURM_SRC=DIR"; exit 2; }
	@set -e; inc=$$(mktemp -d); mkdir -p $$inc/slurm; \
	  cp $(SLURM_SRC)/slurm/*.h $$inc/slurm/; \
	  maj=$$(awk '/^ *Major:/{print $$2}' $(SLURM_SRC)/META); \
	  min=$$(awk '/^ *Minor:/{print $$2}' $(SLURM_SRC)/META); \
	  mic=$$(awk '/^ *Micro:/{print $$2}' $(SLURM_SRC)/META); \
	  sed "s/#undef SLURM_VERSION_NUMBER/#define SLURM_VERSION_NUMBER SLURM_VERSION_NUM($$maj,$$min,$$mic)/" \
	    $(SLURM_SRC)/slurm/slurm_version.h.in > $$inc/slurm/slurm_version.h; \
	  $(MAKE) --no-print-directory B=$$inc/build SLURM_INCDIR=$$inc $$inc/build/resilience.so; \
	  echo "built against Slurm $$maj.$$min.$$mic headers: prepend_task_argv=$$(grep -c spank_prepend_task_argv $$inc/slurm/spank.h)"; \
	  nm -D --defined-only $$inc/build/resilience.so | awk '{print $$3}' | tr '\n' ' '; echo; \
	  rm -rf $$inc

# ---------------------------------------------------------------- tests ---
check: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory check-run

check-run: unit unit-valgrind unit-asan symbols check-man fuzz-smoke suites integration check-package

# Component suites that need real processes but no cluster: checkpoint
# fault injection, the supervisor, the metrics receivers.
SUITES := $(wildcard tests/fault/run tests/supervisor/run tests/metrics/run)
suites: all
	@set -e; for s in $(SUITES); do echo "== $$s"; $$s; done

unit: $(UNIT_BIN) all
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; RS_BUILD=$(CURDIR)/$(B) $$t; done

# Every unit test again under valgrind (no fork mode, so leaks are counted).
unit-valgrind: $(UNIT_BIN) all
	@set -e; for t in $(UNIT_BIN); do echo "== valgrind $$t"; \
	  CK_FORK=no RS_BUILD=$(CURDIR)/$(B) valgrind -q --error-exitcode=99 \
	    --leak-check=full --errors-for-leak-kinds=definite $$t >/dev/null; done; \
	  echo "valgrind: no errors in $(words $(UNIT_BIN)) unit test programs"

# ASan/UBSan builds of the unit tests, one tree per compiler (they warn
# and instrument differently): build-asan-gcc, build-asan-clang.  Undefined
# behaviour aborts the test (-fno-sanitize-recover), as does any ASan
# report or leak.  Only what the unit tests run is built (the library and
# the CLI, which test_metrics execs): the plugin is not part of them.
SAN_CFLAGS  := -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               -fno-omit-frame-pointer
SAN_LDFLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined
SAN_ENV     := ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 \
               UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# gcc at -O1 guesses string lengths worse than at -O2 and flags deliberate
# snprintf truncation; the regular build (-O2) keeps that warning.
SAN_EXTRA_gcc   := -Wno-format-truncation
SAN_EXTRA_clang :=
unit-asan: unit-asan-gcc unit-asan-clang
unit-asan-gcc unit-asan-clang: unit-asan-%:
	@echo "== unit tests under ASan/UBSan, $*"
	@$(MAKE) --no-print-directory B=build-asan-$* CC=$* CFLAGS="$(SAN_CFLAGS)" \
	  EXTRA_CFLAGS="$(SAN_EXTRA_$*)" LDFLAGS="$(SAN_LDFLAGS)" unit-san-run

# (internal) run the unit tests of tree $(B) under the sanitizers' options.
unit-san-run: $(UNIT_BIN) $(B)/slurm-resilience
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; \
	  $(SAN_ENV) RS_BUILD=$(CURDIR)/$(B) $$t; done

# Only the SPANK entry points and plugin identity may be exported: sbatch,
# srun and slurmstepd have globals of their own (sbatch has `opt`).  And the
# plugin must not pull in libcurl (its ~30 libraries cost every job step
# ~20 ms, jobs without --resilience included): the metrics sender is the CLI.
symbols: $(B)/resilience.so
	@bad=$$(nm -D --defined-only $< | awk '{print $$3}' | \
	  grep -vE '^(plugin_name|plugin_type|plugin_version|slurm_spank_[a-z_]+)$$' || true); \
	if [ -n "$$bad" ]; then echo "symbols: unexpected exports in $<:"; echo "$$bad"; exit 1; fi; \
	echo "symbols: only plugin and SPANK symbols exported"; \
	need=$$(readelf -d $< | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p' | tr '\n' ' '); \
	case "$$need" in *curl*|*json*) echo "symbols: $< needs libcurl or json-c ($$need): every srun and slurmstepd would load it"; exit 1;; esac; \
	echo "symbols: $< needs only $$need"; \
	if readelf -d $< | grep -qE '\((FLAGS|FLAGS_1)\).*\b(BIND_NOW|NOW)\b'; then \
	  echo "symbols: $< is linked -z now: dlopen would fail on json-c symbols"; exit 1; fi

FUZZ_SECONDS ?= 120
fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS)
FUZZ_SMOKE_SECONDS ?= 5

FUZZ_FLAGS := -g -O1 -std=gnu11 -D_GNU_SOURCE -Iinclude -isystem $(SLURM_INCDIR) \
  $(PKG_CFLAGS) -fsanitize=fuzzer-no-link,address,undefined \
  -fno-sanitize-recover=all -DRS_VERSION='"$(VERSION)"' \
  -DRS_LIBEXECDIR='"$(LIBEXECDIR)"' -DRS_BINDIR='"$(BINDIR)"' -DRS_RUNDIR='"$(RUNDIR)"' -DRS_JSONC_SONAME='"$(JSONC_SONAME)"' -DHAVE_SPANK_PREPEND_TASK_ARGV=$(HAVE_PREPEND)
FUZZ_OBJ := $(FUZZ_LIB:src/%.c=$(B)/fuzz/obj/%.o)

$(B)/fuzz/obj/%.o: src/%.c $(wildcard include/*.h)
	@mkdir -p $(dir $@)
	@clang $(FUZZ_FLAGS) -c -o $@ $<

fuzz: $(FUZZ_SRC) $(FUZZ_OBJ)
	@set -e; mkdir -p $(B)/fuzz; for f in $(FUZZ_SRC); do \
	  n=$$(basename $$f .c); \
	  clang $(FUZZ_FLAGS) -fsanitize=fuzzer -o $(B)/fuzz/$$n $$f $(FUZZ_OBJ) $(PKG_LIBS); \
	  echo "== fuzz $$n for $(FUZZ_SECONDS)s"; \
	  mkdir -p $(B)/fuzz/corpus-$$n; \
	  $(B)/fuzz/$$n -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	    $(B)/fuzz/corpus-$$n tests/fuzz/seeds >$(B)/fuzz/$$n.log 2>&1 \
	    || { tail -40 $(B)/fuzz/$$n.log; exit 1; }; \
	  grep -E '^(#[0-9]+ *DONE|Done)' $(B)/fuzz/$$n.log | tail -1; \
	done

# With SLURM_PREFIX, the cluster runs that prefix's daemons and clients.
integration: all
	$(if $(filter /usr,$(SLURM_PREFIX)),,PATH=$(SLURM_PREFIX)/bin:$(SLURM_PREFIX)/sbin:$$PATH) \
	  RS_BUILD=$(abspath $(B)) tests/integration/run

# The process-lifetime tests again on ONE cluster with proctrack/cgroup +
# task/cgroup (cgroup/v1): what the plugin leaves running after a step
# (supervisor, end-time poller, metrics sender, restore after requeue,
# the applier of a decision slurmctld could not take: a 30 s outage here)
# must survive, or be meant to die, where Slurm kills the step's cgroup.
# About 4-5 minutes (4m17 here).  One cgroup cluster per machine at a time (a lock).
CGROUP_TESTS := test_tutorial_job_checkpoints_on_usr1_and_restores or \
  test_signal_via_time_limit_warning or \
  test_time_limited_job_without_signal_checkpoints_and_continues or \
  test_retry_three_times_then_hold or test_cgroup or \
  test_slurmd_restarted_while_running_and_while_saving or \
  test_sigkill_mid_save_keeps_previous_generation or \
  test_failure_while_controller_down_is_requeued_when_it_returns
.PHONY: integration-cgroup
check-run: integration-cgroup
integration-cgroup: all
	$(if $(filter /usr,$(SLURM_PREFIX)),,PATH=$(SLURM_PREFIX)/bin:$(SLURM_PREFIX)/sbin:$$PATH) \
	  RS_CGROUP=1 RS_CTLD_OUTAGE=30 RS_BUILD=$(abspath $(B)) tests/integration/run -k '$(CGROUP_TESTS)'

bench: all
	@set -e; for b in bench/*.sh; do echo "== $$b"; bash $$b; done

demo: deps
	@$(MAKE) --no-print-directory all
	/usr/bin/python3 tests/integration/demo.py

# -------------------------------------------------------------- install ---
# Install, dist and packages (issue 14; docs/admin.md, "Install").
MANDIR          ?= $(PREFIX)/share/man
SYSTEMDUNITDIR  ?= $(PREFIX)/lib/systemd/system
SLURM_VERSION   := $(shell packaging/slurm-version $(SLURM_INCDIR) 2>/dev/null)
MANPAGES        := slurm-resilience.1 resilience.7 spank-resilience.8
# docs/metrics-flush.{service,timer}, installed under a name that says
# whose they are (the timer starts the service of its own name).
UNITS           := slurm-resilience-flush.service slurm-resilience-flush.timer
# What make check-package needs (installed by make deps).
DEB_PACKAGES    += debhelper dpkg-dev fakeroot lintian rpm rpmlint cpio binutils groff man-db
# Installed paths and versions go into the man pages, units and snippet.
SUBST = sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@SLURM@|$(SLURM_VERSION)|g' \
  -e 's|@PLUGINDIR@|$(SLURM_PLUGIN_DIR)|g' -e 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' \
  -e 's|@BINDIR@|$(BINDIR)|g' -e 's|/usr/local/bin/slurm-resilience|$(BINDIR)/slurm-resilience|g' \
  -e 's|/usr/local/share/doc/slurm-resilience|$(DOCDIR)|g'

$(B)/man/%: man/% VERSION $(B)/paths.stamp
	@mkdir -p $(dir $@); $(SUBST) $< > $@
$(B)/units/slurm-resilience-flush.%: docs/metrics-flush.% $(B)/paths.stamp
	@mkdir -p $(dir $@); $(SUBST) $< > $@
$(B)/resilience.conf: packaging/resilience.conf.in $(B)/paths.stamp
	@$(SUBST) $< > $@
man: $(MANPAGES:%=$(B)/man/%) $(UNITS:%=$(B)/units/%) $(B)/resilience.conf

# groff must render every page without a warning.
check-man: man
	@set -e; for m in $(MANPAGES:%=$(B)/man/%); do \
	  out=$$(LC_ALL=C.UTF-8 groff -man -ww -z $$m 2>&1); \
	  [ -z "$$out" ] || { echo "check-man: $$m:"; echo "$$out"; exit 1; }; done; \
	  echo "check-man: $(MANPAGES) render without groff warnings"

# The example plugstack.conf.d snippet (commented out) is installed only
# with INSTALL_SNIPPET=1: the packages do, a plain `make install` does not
# write into /etc.
install: all man
	install -d $(DESTDIR)$(SLURM_PLUGIN_DIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(DOCDIR) \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man7 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(SYSTEMDUNITDIR)
	install -m 0755 $(B)/resilience.so $(DESTDIR)$(SLURM_PLUGIN_DIR)/resilience.so
	install -m 0755 $(B)/slurm-resilience $(DESTDIR)$(BINDIR)/slurm-resilience
	install -m 0755 $(B)/resilience-supervisor $(DESTDIR)$(LIBEXECDIR)/resilience-supervisor
	install -m 0644 plugstack.conf.example README.md $(DESTDIR)$(DOCDIR)/
	cp -r docs $(DESTDIR)$(DOCDIR)/
	rm -f $(DESTDIR)$(DOCDIR)/docs/metrics-flush.*
	install -m 0644 $(B)/man/slurm-resilience.1 $(DESTDIR)$(MANDIR)/man1/
	install -m 0644 $(B)/man/resilience.7 $(DESTDIR)$(MANDIR)/man7/
	install -m 0644 $(B)/man/spank-resilience.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 $(UNITS:%=$(B)/units/%) $(DESTDIR)$(SYSTEMDUNITDIR)/
	$(if $(filter 1,$(INSTALL_SNIPPET)),install -d $(DESTDIR)$(SYSCONFDIR)/plugstack.conf.d && \
	  install -m 0644 $(B)/resilience.conf $(DESTDIR)$(SYSCONFDIR)/plugstack.conf.d/resilience.conf)

uninstall:
	rm -f $(DESTDIR)$(SLURM_PLUGIN_DIR)/resilience.so $(DESTDIR)$(BINDIR)/slurm-resilience
	rm -f $(DESTDIR)$(MANDIR)/man1/slurm-resilience.1 $(DESTDIR)$(MANDIR)/man7/resilience.7 \
	  $(DESTDIR)$(MANDIR)/man8/spank-resilience.8 $(UNITS:%=$(DESTDIR)$(SYSTEMDUNITDIR)/%)
	rm -rf $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(DOCDIR)

# A source tarball that builds on its own: the tracked files (as they are
# in the work tree), VERSION, debian/ and the spec with VERSION filled in
# at the top (where `rpmbuild -ta` looks).  debian/changelog must agree.
DIST := spank-resilience-$(VERSION)
dist:
	@deb=$$(dpkg-parsechangelog -l debian/changelog -S Version 2>/dev/null | sed 's/-[^-]*$$//'); \
	  [ "$$deb" = "$(VERSION)" ] || { echo "dist: debian/changelog says $$deb, VERSION says $(VERSION): add a changelog entry (dch -v $(VERSION)-1)" >&2; exit 1; }
	@set -e; rm -rf $(B)/dist; mkdir -p $(B)/dist/$(DIST); \
	  git ls-files -z | xargs -0 cp -P --parents -t $(B)/dist/$(DIST); \
	  sed 's|@VERSION@|$(VERSION)|g' packaging/spank-resilience.spec.in > $(B)/dist/$(DIST)/spank-resilience.spec; \
	  tar -C $(B)/dist --owner=0 --group=0 --sort=name -czf $(B)/$(DIST).tar.gz $(DIST); \
	  echo "dist: $(B)/$(DIST).tar.gz"

# Build both packages from the tarball, lint them, install the .deb, run a
# few integration tests on the installed files, remove it and check the
# node is clean (tests/package/run; root; a few minutes).
check-package: dist
	tests/package/run $(abspath $(B))/$(DIST).tar.gz

clean:
	rm -rf build build-asan build-asan-gcc build-asan-clang
