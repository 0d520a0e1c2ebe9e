# Thin wrapper: every target installs what it needs and builds first.
#   make demo             setup, build, run the standard drills on 200-device fleets, write the
#                         HTML report and print its path and the summary table
#   make test             setup, build, run the whole test suite
#   make test SANITIZE=1  the same under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench-ota        a 1,000-device staged OTA rollout, completed and halted (docs/ota.md)
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

.PHONY: all deps build demo test bench bench-ota clean
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

# A 1,000-device OTA rollout with a 10 % canary: one that completes, one whose canary
# crashes and halts it (docs/ota.md has the figures).
bench-ota: build
	$(BUILD)/fleetdrill rollout --devices 1000 --canary 10 --state $(STATE)-bench --expect completed
	$(BUILD)/fleetdrill rollout --devices 1000 --canary 10 --behaviour crash --state $(STATE)-bench --expect halted

clean:
	rm -rf build build-asan
