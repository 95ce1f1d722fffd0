# The two README commands: `make` (set up, then build the book: every chapter runs) and `make test`.
VENV := .venv
BIN := $(VENV)/bin
JB_FLAGS := -W -n --keep-going

.PHONY: all setup lock book check test quick bench vgg16 reproduce clean
all: book check

setup:
	bash scripts/setup.sh

# regenerate requirements.lock (exact versions with hashes) from pyproject.toml and scripts/pins.in
lock:
	bash scripts/lock.sh

book: setup
	$(BIN)/python -m nadbook.book
	NADKIT_QUIET=1 timeout 1800 $(BIN)/jupyter-book build . $(JB_FLAGS) || { echo "book: a chapter failed or \
	timed out (_config.yml gives each cell 1200 s, the whole build 1800 s); the lines above name the \
	chapter and show the cell; rerun that chapter alone: $(BIN)/papermill book/CHAPTER.ipynb \
	out.ipynb --execution-timeout 1200" >&2; exit 1; }
	@echo "book: open _build/html/index.html"

# the page checks of tests/test_book.py (Chromium at 1280 and 390 px: widths, console, Vega
# warnings, "nan", raw reprs, unresolved references) on the full profile's build
check: setup
	NADKIT_HTML=$(CURDIR)/_build/html timeout 900 $(BIN)/python -m pytest tests/test_book.py

# the smoke profile's results go to a folder of this run (NADKIT_RESULTS), shared by the book test's
# precompute and build and nbmake's chapters, then removed: never runs/book, so a run's cost does
# not depend on what an earlier one left
test: setup
	@results=$$(mktemp -d -t nadkit-test-XXXXXX); trap 'rm -rf "$$results"' EXIT; \
	NADKIT_RESULTS=$$results NADKIT_PROFILE=smoke timeout 3600 $(BIN)/python -m pytest --nbmake \
	--nbmake-timeout=1500 --durations=30 tests book || { rc=$$?; [ $$rc = 124 ] && echo "test: stopped \
	after 60 min (timeout 3600): the last test named above is where it stopped" >&2; exit $$rc; }

# the quick tier: every test that runs no NAD, trains nothing, builds no book and opens no browser
# (those are marked slow); well under 2 minutes on two cores
quick: setup
	NADKIT_PROFILE=smoke timeout 600 $(BIN)/python -m pytest -m "not slow" --durations=10 tests

# recompute every result the book ships in data/results/, from scratch (hours of CPU), with one
# thread as they were made (a convolution's sums, so the last bits, depend on the thread count),
# two networks at a time in two processes
reproduce: setup
	OMP_NUM_THREADS=1 $(BIN)/python -m nadbook.book reproduce --jobs 2

bench: setup
	$(BIN)/python benchmarks/nad_throughput.py

vgg16: setup
	$(BIN)/nadkit disentangle --arch vgg16 --out runs/vgg16
	$(BIN)/nadkit evaluate runs/vgg16 --json runs/vgg16/evaluation.json

clean:
	rm -rf runs _build
