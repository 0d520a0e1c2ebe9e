# Thin wrapper: every target installs what it needs and builds first.
#   make demo             setup, build, run the standard drills on 200-device fleets, write the
#                         HTML report and print its path and the summary table
#   make test             setup, build, run the whole test suite
#   make test SANITIZE=1  the same under AddressSanitizer + UndefinedBehaviorSanitizer
MAKEFLAGS += --no-print-directory
SANITIZE ?= 0
JOBS ?= $(shell nproc)
ifeq ($(SANITIZE),1)
BUILD ?= build-asan
CMAKE_FLAGS += -DFDL_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
else
BUILD ?= build
endif
STATE ?= .fleetdrill

.PHONY: all deps build demo test bench clean
all: build

deps:
	@scripts/setup-deps

build: deps
	@cmake -S . -B $(BUILD) $(CMAKE_FLAGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

DEMO_REPORT ?= $(STATE)/drill-report.html
demo: build
	@mkdir -p $(STATE)
	@$(BUILD)/fleetdrill drill scenarios/ --devices 200 --state $(STATE)/drills --quiet \
	  --html $(DEMO_REPORT) --json $(STATE)/drill-report.json; rc=$$?; \
	  echo; echo "HTML report: $(abspath $(DEMO_REPORT))"; exit $$rc

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS) --timeout 900

bench: build
	$(BUILD)/fleetdrill bench connect --devices 1000 --state $(STATE)-bench

clean:
	rm -rf build build-asan
