# colabmagic's own commands (spec section 8). Each does all of its own set-up on a fresh
# Debian/Ubuntu machine as root: the Debian packages the tests and demo need, a virtual
# environment, and the package itself.

PYTHON ?= python3
VENV ?= .venv
VENV_OLD ?= .venv-ipython734
PY := $(VENV)/bin/python
export COLABMAGIC_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

# Test-only tools. The product's own packages (openssh-server, aria2, rclone, fuse3,
# tigervnc, xfce4, novnc, websockify) are installed by colabmagic's installer when a test
# first needs them, which exercises that installer for real.
TEST_DEBS := openssh-client procps psmisc iproute2 ca-certificates python3-venv \
	chromium mktorrent opentracker python3-libtorrent curl openssl python3-yaml e2fsprogs util-linux mount debootstrap

# Hosted Colab pins IPython 7.34: the foundation and one end-to-end file per magic run again under it.
IPYTHON734_TESTS := tests/foundation tests/tunnel/test_ssh_relay.py tests/aria2/test_http.py \
	tests/drive/test_drive_security.py tests/vnc/test_vnc_desktop.py

.PHONY: setup test lint typecheck unit test-ipython734 matrix demo bench faults clean

$(VENV)/.done: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $@

$(VENV_OLD)/.done: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV_OLD)
	$(VENV_OLD)/bin/python -m pip install -q --upgrade pip
	$(VENV_OLD)/bin/python -m pip install -q -e '.[test]' 'ipython==7.34.0'
	touch $@

debs:
	@missing=""; for p in $(TEST_DEBS); do dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null | grep -qx installed || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

setup: debs $(VENV)/.done

lint: setup
	$(VENV)/bin/ruff check .

typecheck: setup
	$(VENV)/bin/mypy

unit: setup
	$(VENV)/bin/pytest -q -m "not slow"

test-ipython734: debs $(VENV_OLD)/.done
	$(VENV_OLD)/bin/python -c "import IPython; assert IPython.__version__ == '7.34.0', IPython.__version__"
	$(VENV_OLD)/bin/pytest -q -p no:cacheprovider $(IPYTHON734_TESTS)

# The platform matrix: one end-to-end test per magic inside Debian 11 and Debian 13 chroots
# (tests/matrix/run.sh; the roots are built once with debootstrap and cached under
# /var/cache/colabmagic-matrix). Prints, per release, what passed.
MATRIX_RELEASES ?= bullseye trixie

matrix: debs $(VENV)/.done
	HOST_PYTEST=$(VENV)/bin/pytest tests/matrix/run.sh $(MATRIX_RELEASES)

test: lint typecheck
	$(VENV)/bin/pytest -q -rs --durations=15
	$(MAKE) test-ipython734
	$(MAKE) matrix

demo: setup
	$(PY) -m colabmagic.demo

bench: setup
	$(PY) -m benchmarks --results benchmarks/RESULTS.md --readme README.md

faults: setup
	$(VENV)/bin/pytest -q -s tests/faults

clean:
	rm -rf $(VENV) $(VENV_OLD) build *.egg-info
