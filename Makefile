# Two commands do everything on a fresh machine:
#   make demo   set up .venv, obtain fmnist6, train the default DDNN and print its figures
#   make test   set up .venv, obtain fmnist6, the phone app's LiteRT.js, chromium,
#               mosquitto (the MQTT broker), the Cortex-M toolchain and QEMU, PostgreSQL
#               (the shared study of the search's two-worker test), lint
#               (ruff, import-linter's layer contracts), build the docs site, and run the
#               whole test suite (the lean-install test among it)
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
FMNIST := /usr/share/datasets/fashion-mnist
EPOCHS ?= 5
RUN    ?= runs/default

.PHONY: demo test setup data web broker mcu postgres lint docs clean

setup: $(STAMP)

$(STAMP): setup.py pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

# fmnist6: use the IDX files if present; else Debian's dataset-fashion-mnist package when
# running as root with apt; else the Python loader tries the Keras cache and download, and
# its error names every option.
data: $(STAMP)
	@if [ -f $(FMNIST)/t10k-labels-idx1-ubyte.gz ] || [ -f $(FMNIST)/t10k-labels-idx1-ubyte ]; then \
		echo "fmnist6: using $(FMNIST)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "fmnist6: installing dataset-fashion-mnist with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist; \
	else \
		echo "fmnist6: $(FMNIST) absent and apt-get unavailable; trying the Keras download"; \
	fi
	$(BIN)/python -c "from ddnn_tf.data import load_dataset; d = load_dataset('fmnist6'); print('fmnist6:', len(d.train), 'train /', len(d.val), 'val /', len(d.test), 'test')"

# $(call system_tool,NAME,FOUND,WHERE,PACKAGES,SERVICE,USERS): a Debian tool the tests need.
# When the shell test FOUND passes, say where it is (the output of the command WHERE); else,
# as root with apt-get, install PACKAGES (and stop the system SERVICE a package starts: the
# project starts its own); else say which tests fail until it is installed (USERS).
define system_tool
	@if $(2); then \
		echo "$(1): $$($(3))"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "$(1): installing $(4) with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(4); \
		if [ -n "$(5)" ] && command -v service >/dev/null; then service $(5) stop >/dev/null 2>&1 || true; fi; \
	else \
		echo "$(1): missing; $(6) until it is installed (apt-get install -y $(4))"; \
	fi
endef

# The phone app (android_demo/): LiteRT.js from npm, and the browser its tests drive:
# Debian's chromium, installed with apt-get when running as root and it is missing.
NPM_STAMP := android_demo/node_modules/.package-lock.json
$(NPM_STAMP): android_demo/package.json android_demo/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: install Node.js 18+ and npm (apt-get install -y nodejs npm)"; exit 1; }
	npm ci --prefix android_demo --no-audit --no-fund

web: $(NPM_STAMP)
	$(call system_tool,chromium,[ -x /usr/bin/chromium ] || command -v chromium >/dev/null,\
		command -v chromium || echo /usr/bin/chromium,chromium,,the browser tests fail)

# The MQTT broker the MQTT tests and `ddnn deploy --transport mqtt` start on loopback:
# Debian's mosquitto, installed with apt-get when running as root and it is missing (it is
# started by the project's own code, never left running as a system service).
broker:
	$(call system_tool,mosquitto,command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ],\
		command -v mosquitto || echo /usr/sbin/mosquitto,mosquitto,mosquitto,the MQTT tests fail)

# Device tiers on a microcontroller (ddnn_tf.mcu): the Cortex-M cross compiler with newlib
# and QEMU's Arm boards, installed with apt-get when running as root and missing.
MCU_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm
mcu:
	$(call system_tool,mcu,command -v arm-none-eabi-gcc >/dev/null && command -v qemu-system-arm \
		>/dev/null && [ -f "$$(arm-none-eabi-gcc -print-file-name=rdimon.specs)" ],echo \
		"$$(arm-none-eabi-gcc --version | head -1); $$(qemu-system-arm --version | head -1)" \
		,$(MCU_PACKAGES),,the microcontroller tests fail)

# A shared search study (ddnn search --storage postgresql://...): the two-worker test starts
# Debian's PostgreSQL server in a temporary directory on loopback (as the postgres user: the
# server refuses to run as root), installed with apt-get when running as root and missing;
# its binaries live in /usr/lib/postgresql/VERSION/bin. The system service is not used.
postgres:
	$(call system_tool,postgres,command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb \
		>/dev/null 2>&1,command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | tail -1 \
		,postgresql,postgresql,the two-worker search test fails)

lint: $(STAMP)
	$(BIN)/ruff check ddnn_tf tests scripts
	$(BIN)/ruff format --check ddnn_tf tests scripts
	$(BIN)/lint-imports

# The documentation site (MkDocs + mkdocstrings), built into site/; any warning fails
# (--strict counts the warnings it logs, so the build must not run with --quiet, which
# hides them; tests/test_docs_build.py checks that a warning fails this target).
# NO_MKDOCS_2_WARNING=1 only silences Material's end-of-life banner on stderr.
MKDOCS_CONFIG ?= mkdocs.yml
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --config-file $(MKDOCS_CONFIG)

demo: data
	$(BIN)/ddnn train --data fmnist6 --out $(RUN) --epochs $(EPOCHS) --overwrite --verbose 2
	$(BIN)/ddnn evaluate $(RUN) --sweep

test: data lint docs web broker mcu postgres
	$(BIN)/python -m pytest -q -n auto --dist loadfile --durations=15

clean:
	rm -rf $(VENV) runs site .pytest_cache android_demo/node_modules
