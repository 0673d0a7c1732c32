# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv when it is
# missing or older than pyproject.toml, install the project into it, and run.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv bench bench-short

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --no-compile -e '.[dev]'
	# Byte-compile what streamdet imports once, here, rather than in the first (timed) processes of a run.
	$(VENV)/bin/python -W ignore -c "import streamdet.bus, streamdet.formats, streamdet.dataset, streamdet.train, \
	streamdet.evaluate, streamdet.convert, streamdet.snn, streamdet.detector, streamdet.demo, \
	streamdet.viewer, streamdet.launcher, streamdet.cli, streamdet.loading, streamdet.live, streamdet.fidelity, \
	streamdet.importing, streamdet.prophesee_boxes, cv2, h5py, pycocotools.coco, snntorch, norse, \
	expelliarmus, dv_processing, tqdm"
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/streamdet demo

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check streamdet drivers tests bench experiments tools

# The maintained benchmarks whose figures the docs quote (bench/), with the docs' commands; not part of
# `make test`. JSON results go to $(BENCH_OUT). Two inputs are optional, the rows that need them are
# skipped without: BENCH_DATA, a built split (`streamdet dataset build`, e.g. data/v3-maritime/test) for
# the streaming accuracy and peer converters; BENCH_RECORDINGS, a folder of Prophesee .raw recordings for
# the file-reader rows. The peer converters also need `pip install -e '.[peers]'`.
# `make bench-short` runs every benchmark (and the real-scenes scripts) on small sizes (2 min 49 s of CPU
# time, 2 min 57 s of wall time on the otherwise idle 2-core sandbox, `time make bench-short`,
# 2026-12-06): a check that they run, not figures to quote.
BENCH_OUT ?= out/bench
BENCH_DATA ?=
BENCH_RECORDINGS ?=
BENCH_PY := OMP_NUM_THREADS=1 $(VENV)/bin/python
HAVE_PEERS = $(VENV)/bin/python -c "import spikingjelly, sinabs" 2>/dev/null
HAVE_BF16 = $(VENV)/bin/python -c "from streamdet.snn import bfloat16_supported as s; raise SystemExit(not s())"

bench: $(STAMP)
	mkdir -p $(BENCH_OUT)
	$(BENCH_PY) bench/bench_wire.py --repeats 5 --json $(BENCH_OUT)/wire.json
	$(BENCH_PY) bench/ctrl_c_stress.py --tries 100 --json $(BENCH_OUT)/ctrl_c_stress.json
	$(BENCH_PY) bench/formats_throughput.py $(if $(BENCH_RECORDINGS),--recordings $(BENCH_RECORDINGS))
	$(BENCH_PY) bench/encoder_physics.py
	$(BENCH_PY) bench/bench_encoders.py --frames 300
	$(BENCH_PY) bench/bench_dataset.py --out $(BENCH_OUT)/dataset
	$(BENCH_PY) bench/model_cost.py --sizes tiny,small --repeats 3 \
		--models events-default,events-fast,intensity-default,intensity-fast
	$(BENCH_PY) bench/bench_snn.py --steps 32 --reference-steps 8 --chunks 1,8,16 --json $(BENCH_OUT)/snn.json
	$(BENCH_PY) bench/bench_latency.py --seconds 8 --dt-us 25000 --window-steps 8 --publish-every 2 \
		--threads 1 --json $(BENCH_OUT)/latency.json
	$(BENCH_PY) bench/demo_latency.py --rounds 3 --seconds 20 --json $(BENCH_OUT)/demo_latency.json
	$(BENCH_PY) bench/idle_step.py --model events-fast --threads 2 --json $(BENCH_OUT)/idle_step.json
	$(BENCH_PY) bench/window_parts.py --model events-fast --threads 2 --json $(BENCH_OUT)/window_parts.json
ifneq ($(BENCH_DATA),)
	$(BENCH_PY) bench/stream_accuracy.py --data $(BENCH_DATA) --dt-us 25000 --window-steps 4 --threads 1 \
		--json $(BENCH_OUT)/stream_accuracy.json
	if $(HAVE_PEERS); then $(BENCH_PY) bench/peers.py --data $(BENCH_DATA) --steps 4,8,16,32 --limit 8 \
		--json $(BENCH_OUT)/peers.json; else echo "bench: peers skipped (pip install -e '.[peers]')"; fi
	$(BENCH_PY) bench/stream_accuracy.py --model events-fast --data $(BENCH_DATA) --burst on --dt-us 50000 \
		--window-steps 2 --membranes keep,fresh --threads 1 --json $(BENCH_OUT)/stream_accuracy_burst.json
	$(BENCH_PY) bench/stream_accuracy.py --model events-fast --data $(BENCH_DATA) --burst on --dt-us 100000 \
		--window-steps 1 --membranes fresh --phase-us 50000 --threads 1 \
		--json $(BENCH_OUT)/stream_accuracy_burst_one_step.json
	$(BENCH_PY) bench/stream_accuracy.py --model intensity-fast --data $(BENCH_DATA) --burst on --dt-us 50000 \
		--window-steps 1 --membranes fresh --threads 1 --json $(BENCH_OUT)/stream_accuracy_burst_intensity.json
	if $(HAVE_BF16); then $(BENCH_PY) bench/stream_accuracy.py --model events-fast --data $(BENCH_DATA) \
		--burst on --dt-us 50000 --window-steps 2 --threads 1 --precision bfloat16 \
		--json $(BENCH_OUT)/stream_accuracy_burst_bf16.json; else echo "bench: no bfloat16 convolution here"; fi
	$(BENCH_PY) bench/bench_cost.py --data $(BENCH_DATA) --json $(BENCH_OUT)/cost.json
else
	@echo "bench: stream_accuracy, burst stream accuracy, cost and peers skipped (set BENCH_DATA to a built split)"
endif
ifneq ($(BENCH_RECORDINGS),)
	$(BENCH_PY) bench/real_recordings.py --recordings $(BENCH_RECORDINGS) --seconds 40 --out $(BENCH_OUT)/real-sensors \
		--json $(BENCH_OUT)/real_recordings.json
endif
ifneq ($(BENCH_GEOMETRY_SPLITS),)
	$(BENCH_PY) bench/geometry.py $(foreach split,$(BENCH_GEOMETRY_SPLITS),--split $(split)) \
		--json $(BENCH_OUT)/geometry.json
else
	@echo "bench: geometry skipped (BENCH_GEOMETRY_SPLITS='346x260=DIR 640x480=DIR ...': splits of dataset build --size)"
endif

bench-short: $(STAMP)
	mkdir -p $(BENCH_OUT)
	$(BENCH_PY) bench/bench_wire.py --events 100000 --messages 100 --transports ipc --repeats 1
	$(BENCH_PY) bench/ctrl_c_stress.py --tries 2
	$(BENCH_PY) bench/formats_throughput.py $(if $(BENCH_RECORDINGS),--recordings $(BENCH_RECORDINGS))
	$(BENCH_PY) bench/encoder_physics.py
	$(BENCH_PY) bench/bench_encoders.py --frames 20 --spike-frames 5
	$(BENCH_PY) bench/bench_dataset.py --sequences 1 --seconds 1 --out $(BENCH_OUT)/dataset-short
	$(BENCH_PY) bench/model_cost.py --sizes tiny --repeats 1 --models events-fast
	$(BENCH_PY) bench/bench_snn.py --model events-fast --steps 4 --reference-steps 2 --chunks 1,4 --device cpu
	$(BENCH_PY) bench/bench_latency.py --model events-fast --seconds 2 --threads 1
	$(BENCH_PY) bench/demo_latency.py --rounds 1 --seconds 3 --out $(BENCH_OUT)/demo-short
	$(BENCH_PY) bench/idle_step.py --model events-fast --gaps-ms 0,50 --steps 3 --compile off
	$(BENCH_PY) bench/window_parts.py --model events-fast --seconds 1 --skip 2 --compile off
	# the real-scenes scripts on a split imported from the committed YOLO sample
	$(VENV)/bin/streamdet dataset import yolo tests/data/import/yolo/images --split val \
		--out $(BENCH_OUT)/import-short --overwrite
	$(BENCH_PY) -m streamdet eval --model events-fast --data $(BENCH_OUT)/import-short/val \
		--json $(BENCH_OUT)/import-short/eval.json
	$(BENCH_PY) bench/real_scenes_eval.py table $(BENCH_OUT)/import-short/eval.json
	$(BENCH_PY) bench/real_scenes_eval.py draw --model events-fast --data $(BENCH_OUT)/import-short/val \
		--index 0 --out $(BENCH_OUT)/import-short/draw.png
	$(BENCH_PY) experiments/window_sweep.py --models events-fast --windows native,50:2 \
		--data $(BENCH_OUT)/import-short/val --limit 6
ifneq ($(BENCH_DATA),)
	$(BENCH_PY) bench/stream_accuracy.py --data $(BENCH_DATA) --dt-us 25000 --window-steps 4 --threads 1
	$(BENCH_PY) bench/stream_accuracy.py --model intensity-fast --burst on --data $(BENCH_DATA) \
		--dt-us 50000 --window-steps 1 --membranes fresh --threads 1
else
	@echo "bench-short: stream_accuracy skipped (set BENCH_DATA to a built split)"
endif
