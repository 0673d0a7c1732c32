# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv when it is
# missing or older than pyproject.toml, install the project into it, and run.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --no-compile -e '.[dev]'
	# Byte-compile what streamdet imports once, here, rather than in the first (timed) processes of a run.
	$(VENV)/bin/python -W ignore -c "import streamdet.bus, streamdet.formats, streamdet.dataset, streamdet.train, \
	streamdet.evaluate, streamdet.convert, streamdet.snn, streamdet.detector, streamdet.demo, \
	streamdet.viewer, streamdet.launcher, streamdet.cli, cv2, h5py, pycocotools.coco, snntorch, norse, \
	expelliarmus, dv_processing, tqdm"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/streamdet demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check streamdet drivers tests bench
