# tempo - TEMPO generation reference implementation
WEIGHTS ?= ../shared/weights
CC ?= cc
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -Wall -Wextra -Wno-format-truncation
LDLIBS = -lopenblas -lcjson -lm
PY = /usr/bin/python3
DEPS = libopenblas-dev libcriterion-dev libcjson-dev python3-numpy

all: tempo

# Installs the Debian packages tempo needs when any is missing.
.deps:
	@dpkg -s $(DEPS) >/dev/null 2>&1 || { \
	  echo "installing $(DEPS)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(DEPS) >/dev/null; }
	@touch .deps

tempo: tempo.c cli.c tempo.h .deps
	$(CC) $(CFLAGS) -o $@ tempo.c cli.c $(LDLIBS)

run: tempo
	./tempo generate -m $(WEIGHTS)/fortune.bin -z $(WEIGHTS)/fortune-tok512.bin \
	  -p "The cat sat on the" --greedy -n 64



# Synthetic models for the fast tests, written by tempo itself (seeded).
build/synth-tied.bin: tempo
	@mkdir -p build
	./tempo synth --out $@ --seed 42
build/synth-untied.bin: tempo
	@mkdir -p build
	./tempo synth --out $@ --seed 7 --untied --layers 3
SYNTH = build/synth-tied.bin build/synth-untied.bin

# The golden files come from the independent NumPy reference, never from tempo.
golden: $(SYNTH) .deps
	$(PY) oracle/reference.py golden --weights $(WEIGHTS) --synth build --out oracle/golden
.PHONY: all run test golden clean
