# Gatehouse build. `make` builds build/gatehouse; `make test` runs unit and integration tests;
# `make asan` builds with AddressSanitizer+UBSan and runs every test against that binary;
# `make fuzz` runs the libFuzzer harnesses for FUZZ_SECONDS each; `make lint` runs clang-tidy
# (.clang-tidy) and cppcheck over the sources.

PKGS      := yaml-0.1 libssl libcrypto libnghttp2 zlib libbrotlienc libzstd
CC        ?= cc
BUILD     ?= build
CFLAGS    ?= -O2 -g
WARN      := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
             -Wno-unused-parameter
CPPFLAGS  := -std=gnu11 -D_GNU_SOURCE -Isrc $(shell pkg-config --cflags $(PKGS))
LDLIBS    := $(shell pkg-config --libs $(PKGS)) -lpthread
# The unit tests also decode what the encoders produce (test_encoder): brotli's decoder is
# linked into the tests only.
TEST_LDLIBS := $(shell pkg-config --libs libbrotlidec)
VERSION   := $(shell cat VERSION 2>/dev/null || echo 0.1.0)
CPPFLAGS  += -DGH_VERSION=\"$(VERSION)\"

SRCS      := $(sort $(wildcard src/*/*.c))
OBJS      := $(SRCS:%.c=$(BUILD)/%.o)
MAIN_OBJ  := $(BUILD)/src/main.o
UNIT_SRCS := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
FUZZ_SRCS := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 60
PYTEST    ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3) -m pytest

.PHONY: all test unit integration asan fuzz format clean bench lint
all: $(BUILD)/gatehouse

$(BUILD)/gatehouse: $(OBJS) $(MAIN_OBJ)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(WARN) -Itests/unit -o $@ $< $(OBJS) $(LDLIBS) $(TEST_LDLIBS)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

integration: $(BUILD)/gatehouse
	GATEHOUSE_BIN=$(abspath $(BUILD)/gatehouse) $(PYTEST) -q tests/integration $(PYTEST_ARGS)

test: unit integration

# Sanitizer pass: same tests, instrumented binary. Slow tests are skipped via GH_SANITIZER.
asan:
	$(MAKE) BUILD=build/asan CC=clang \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  LDFLAGS="-fsanitize=address,undefined" unit
	GH_SANITIZER=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  GATEHOUSE_BIN=$(abspath build/asan/gatehouse) $(MAKE) BUILD=build/asan CC=clang \
	  CFLAGS="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	  LDFLAGS="-fsanitize=address,undefined" build/asan/gatehouse
	GH_SANITIZER=1 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  GATEHOUSE_BIN=$(abspath build/asan/gatehouse) $(PYTEST) -q tests/integration $(PYTEST_ARGS)

# libFuzzer harnesses link the library objects built with -fsanitize=fuzzer-no-link.
FUZZ_BUILD := build/fuzz
FUZZ_FLAGS := -O1 -g -fsanitize=address,undefined,fuzzer-no-link -fno-omit-frame-pointer
fuzz:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=clang CFLAGS="$(FUZZ_FLAGS)" fuzz-objs
	@set -e; for f in $(FUZZ_SRCS); do \
	  n=$$(basename $$f .c); \
	  clang $(CPPFLAGS) $(FUZZ_FLAGS) -fsanitize=fuzzer -o $(FUZZ_BUILD)/$$n $$f \
	    $(filter-out $(FUZZ_BUILD)/src/main.o,$(SRCS:%.c=$(FUZZ_BUILD)/%.o)) $(LDLIBS); \
	  mkdir -p tests/fuzz/corpus-run/$$n; \
	  echo "== $$n for $(FUZZ_SECONDS)s"; \
	  $(FUZZ_BUILD)/$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	    $$( [ -f tests/fuzz/$$n.dict ] && echo -dict=tests/fuzz/$$n.dict ) \
	    tests/fuzz/corpus-run/$$n tests/fuzz/corpus/$$n; \
	done

fuzz-objs: $(OBJS)

# Static analysis: clang-tidy with the repo's .clang-tidy (findings are errors), one process per
# core, then cppcheck. Both see the build's preprocessor flags.
LINT_SRCS := $(SRCS) src/main.c
LINT_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CPPCHECK  := cppcheck --enable=warning,performance,portability --error-exitcode=1 --inline-suppr -q \
             --std=c11 -D_GNU_SOURCE -DGH_VERSION=\"0\" -Isrc
lint:
	@echo "clang-tidy: $(words $(LINT_SRCS)) files, $(LINT_JOBS) at a time"
	@printf '%s\n' $(LINT_SRCS) | \
	  xargs -P$(LINT_JOBS) -I{} clang-tidy --quiet {} -- $(CPPFLAGS) 2>/dev/null
	@echo "cppcheck"
	@$(CPPCHECK) -j$(LINT_JOBS) $(LINT_SRCS)
	@echo "lint: clean"

bench: $(BUILD)/gatehouse
	bench/run.sh

format:
	clang-format -i $(SRCS) src/*/*.h src/main.c tests/unit/*.c tests/unit/*.h tests/fuzz/*.c

clean:
	rm -rf build

-include $(OBJS:.o=.d) $(MAIN_OBJ:.o=.d)
