# tempo - TEMPO generation reference implementation
WEIGHTS ?= ../shared/weights
CC ?= cc
CFLAGS ?= -O3 -g -march=native
CFLAGS += -std=c11 -Wall -Wextra -Wno-format-truncation -fopenmp
LDLIBS = -lopenblas -lcjson -lm
PY = /usr/bin/python3
DEPS = libopenblas-dev libcriterion-dev libcjson-dev python3-numpy librsvg2-bin

all: tempo

# Builds run two at a time (the suite's programs, their objects); the test
# stages themselves run one after another (-j1 below).
MAKEFLAGS += -j2

# Installs the Debian packages tempo needs when any is missing.
.deps:
	@dpkg -s $(DEPS) >/dev/null 2>&1 || { \
	  echo "installing $(DEPS)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(DEPS) >/dev/null; }
	@touch .deps

# The capture tests (tests/test_capture.py) run a PyTorch model: installed only for them.
CAPTURE_DEPS = python3-torch
.capture-deps:
	@dpkg -s $(CAPTURE_DEPS) >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(CAPTURE_DEPS) >/dev/null; }
	@touch .capture-deps

# tempo.c is the algorithm; kernels/ holds its tuned kernels; formats/ reads
# and writes files; tools/ holds the command-line tool, the analysis and the
# synthetic models. build/iq_grids.c holds the IQ types' lookup grids, generated
# from llama.cpp's source (rule below: it needs the npm package).
IQ_GRIDS = build/iq_grids.c
CORE = tempo.c $(wildcard kernels/*.c) $(IQ_GRIDS) $(wildcard formats/*.c)
LIB = $(CORE) $(filter-out tools/cli.c tools/llama_tempo.c tools/make_iq_grids.c,$(wildcard tools/*.c))
SRC = $(LIB) tools/cli.c
HDR = tempo.h $(wildcard kernels/*.h) $(wildcard formats/*.h) $(wildcard tools/*.h)

# Each source compiled once per flavour (plain, and under the sanitizers for
# the ASan suite), then linked into every program that needs it.
OBJ = $(patsubst %.c,build/obj/%.o,$(LIB))
ASAN_OBJ = $(patsubst %.c,build/obj-asan/%.o,$(LIB))
build/obj/%.o: %.c $(HDR) .deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<
build/obj-asan/%.o: %.c $(HDR) .deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SAN) -c -o $@ $<
# The decode kernel is inlined once per stored type and row count: under the
# sanitizers at -O3 GCC takes 7 minutes on it, at -O1 one (always_inline still holds).
build/obj-asan/kernels/matmul.o: SAN += -O1

tempo: $(OBJ) build/obj/tools/cli.o
	$(CC) $(CFLAGS) -o $@ $^ $(LDLIBS)

# TEMPO on the readable model: the same prompt isolated, then visible, and where the two part.
RUN_ARGS = -m $(WEIGHTS)/stories260K.bin -z $(WEIGHTS)/tok512.bin -p "Once upon a time" --threshold 0.2 -n 40
run: tempo
	@echo "TEMPO on stories260K: at each step every token with p >= 0.2 joins one parallel set at one position."
	@echo "Legend: [a/b] is one parallel set, most probable first; the text goes on from its last member."
	@echo; echo "isolated mode (members of a set do not see each other):"
	@./tempo generate $(RUN_ARGS) --mode isolated --no-color
	@echo; echo "visible mode (later members see earlier ones):"
	@./tempo generate $(RUN_ARGS) --mode visible --no-color
	@echo; ./tempo compare $(RUN_ARGS) | grep "^free-running"

# Synthetic models for the fast tests, written by tempo itself (seeded).
build/synth-tied.bin: tempo
	@mkdir -p build
	./tempo synth --out $@ --seed 42
build/synth-untied.bin: tempo
	@mkdir -p build
	./tempo synth --out $@ --seed 7 --untied --layers 3
build/synth-hf-f32: tempo
	@mkdir -p build
	./tempo synth --format hf --out $@ --seed 11 --layers 2 --heads 4 --kv-heads 2 --vocab 384
build/synth-hf-bf16: tempo
	@mkdir -p build
	./tempo synth --format hf --dtype bf16 --out $@ --seed 12 --layers 2 --heads 4 --kv-heads 1 --vocab 320 --tokenizer gpt2
# GGUF: every stored type, each with one of the three vocabularies; K-quant files mix in Q6_K.
GGUF_TYPES = f32 f16 bf16 q8_0 q4_0 q4_k q5_k q6_k
GGUF_TOKENIZER_f32 = spm
GGUF_TOKENIZER_f16 = gpt2
GGUF_TOKENIZER_bf16 = llama3
GGUF_TOKENIZER_q8_0 = spm
GGUF_TOKENIZER_q4_0 = llama3
GGUF_TOKENIZER_q4_k = spm --untied
GGUF_TOKENIZER_q5_k = gpt2
GGUF_TOKENIZER_q6_k = llama3 --untied
build/synth-gguf-%.gguf: tempo
	@mkdir -p build
	./tempo synth --format gguf --dtype $* --out $@ --seed 21 --layers 2 --heads 4 --kv-heads 2 --tokenizer $(GGUF_TOKENIZER_$*)
# stories260K as GGUF, its tensors copied (f32) or rounded to Q8_0 where rows fill 32-value blocks.
build/stories260K-%.gguf: tempo
	@mkdir -p build
	./tempo convert $(WEIGHTS)/stories260K.bin $(WEIGHTS)/tok512.bin --dtype $* --out $@
SYNTH_GGUF = $(foreach t,$(GGUF_TYPES),build/synth-gguf-$(t).gguf) build/stories260K-f32.gguf build/stories260K-q8_0.gguf
SYNTH = build/synth-tied.bin build/synth-untied.bin build/synth-hf-f32 build/synth-hf-bf16 $(SYNTH_GGUF)

# The golden files come from the independent NumPy reference, never from tempo.
golden: $(SYNTH) .deps
	$(PY) oracle/reference.py golden --weights $(WEIGHTS) --synth build --out oracle/golden
.PHONY: all run test test-capture test-core-alone test-notes test-llama golden clean bench count fuzz memcheck

# The Criterion suite, built twice: plain, and under ASan+UBSan.
TEST_SRC = $(wildcard tests/test_*.c)
TEST_DEFS = -DWEIGHTS_DIR='"$(WEIGHTS)"' -DBUILD_DIR='"build"' -DGOLDEN_DIR='"oracle/golden"'
SAN = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

build/tests: $(TEST_SRC) tests/helpers.h tests/audited.h tests/check_pictures.py $(OBJ) $(HDR) .deps
	@mkdir -p build
	$(CC) $(CFLAGS) $(TEST_DEFS) -DTEMPO_BIN='"./tempo"' -o $@ $(TEST_SRC) $(OBJ) $(LDLIBS) -lcriterion
build/tests-asan: $(TEST_SRC) tests/helpers.h tests/audited.h $(ASAN_OBJ) $(HDR) .deps
	@mkdir -p build
	$(CC) $(CFLAGS) $(SAN) $(TEST_DEFS) -DTEMPO_BIN='"build/tempo-asan"' -o $@ $(TEST_SRC) $(ASAN_OBJ) $(LDLIBS) -lcriterion
build/tempo-asan: $(ASAN_OBJ) build/obj-asan/tools/cli.o
	@mkdir -p build
	$(CC) $(CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

# The library built for a CPU without AVX-512 (the AVX2 branches of kernels/), and the
# tests of its kernels run on it: both builds must equal the plain definitions bitwise.
AVX2_FLAGS = -O1 -mno-avx512f -Wno-psabi
AVX2_OBJ = $(patsubst %.c,build/obj-avx2/%.o,$(LIB))
AVX2_TESTS = kernels unpack quant quant_grids ggml_types numerics
build/obj-avx2/%.o: %.c $(HDR) .deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(AVX2_FLAGS) -c -o $@ $<
build/tests-avx2: $(TEST_SRC) tests/helpers.h tests/audited.h $(AVX2_OBJ) $(HDR) .deps
	@mkdir -p build
	$(CC) $(CFLAGS) $(AVX2_FLAGS) $(TEST_DEFS) -DTEMPO_BIN='"./tempo"' -o $@ $(TEST_SRC) $(AVX2_OBJ) $(LDLIBS) -lcriterion
test-avx2: build/tests-avx2 tempo $(SYNTH)
	@for s in $(AVX2_TESTS); do OPENBLAS_NUM_THREADS=1 build/tests-avx2 --jobs 2 --filter "$$s/*" >build/tests-avx2.log 2>&1 \
	  || { cat build/tests-avx2.log; exit 1; }; tail -1 build/tests-avx2.log; done

# tempo.c alone (no kernels/, formats/ or tools/): a forward pass with the plain kernels.
build/core-alone: tests/core_alone.c tempo.c tempo.h .deps
	@mkdir -p build
	$(CC) $(CFLAGS) -o $@ tests/core_alone.c tempo.c -lopenblas -lm
test-core-alone: build/core-alone
	build/core-alone

# One BLAS thread in tests: results are then bitwise reproducible.
test: tempo build/tests build/tests-asan build/tempo-asan $(SYNTH) .capture-deps test-core-alone test-avx2
	@for f in fortune.bin fortune-tok512.bin stories260K.bin tok512.bin stories260K-hf/model.safetensors; do \
	  [ -r $(WEIGHTS)/$$f ] || { echo "error: $(WEIGHTS)/$$f is missing (set WEIGHTS=DIR)"; exit 1; }; done
	OPENBLAS_NUM_THREADS=1 build/tests --jobs 2
	OPENBLAS_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1 build/tests-asan --jobs 2
	$(MAKE) -j1 --no-print-directory test-capture test-notes test-llama

# Every run NOTES.md quotes, rerun and compared (timings excepted).
test-notes: tempo .deps
	$(PY) tests/check_notes.py NOTES.md ./tempo $(WEIGHTS)

# The capture module on a PyTorch engine: recorded loops verified and audited by tempo (plain and ASan).
test-capture: tempo build/tempo-asan .capture-deps
	OPENBLAS_NUM_THREADS=1 $(PY) tests/test_capture.py ./tempo $(WEIGHTS) build/capture
	OPENBLAS_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1 $(PY) tests/test_capture.py build/tempo-asan $(WEIGHTS) build/capture-asan

clean:
	rm -rf build tempo .deps .capture-deps

# Benchmarks: figures, never timed assertions. A large synthetic model leaves the caches.
build/bench: tests/bench.c $(OBJ) $(HDR) .deps
	@mkdir -p build
	$(CC) $(CFLAGS) -o $@ tests/bench.c $(OBJ) $(LDLIBS)
build/bench-large.bin: tempo
	@mkdir -p build
	./tempo synth --out $@ --seed 1 --dim 1024 --hidden 2816 --layers 8 --heads 16 --kv-heads 4 --vocab 32000 --seq-len 1024
build/bench-large-bf16: tempo
	@mkdir -p build
	./tempo synth --format hf --dtype bf16 --out $@ --seed 1 --dim 1024 --hidden 2816 --layers 8 --heads 16 --kv-heads 4 --vocab 32000 --seq-len 1024
build/bench-large-q4_k.gguf: tempo
	@mkdir -p build
	./tempo synth --format gguf --dtype q4_k --out $@ --seed 1 --dim 1024 --hidden 2816 --layers 8 --heads 16 --kv-heads 4 --vocab 32000 --seq-len 1024
BENCH_MODELS = build/bench-large.bin build/bench-large-bf16 build/bench-large-q4_k.gguf
# tempo against llama.cpp (issue 23): one GGUF of the same shape, f32, then quantized by llama.cpp's
# own llama_model_quantize to Q8_0 and Q4_K_M; with tempo's own q4_k file above.
build/bench-llama-f32.gguf: tempo
	@mkdir -p build
	./tempo synth --format gguf --dtype f32 --out $@ --seed 1 --dim 1024 --hidden 2816 --layers 8 --heads 16 --kv-heads 4 --vocab 32000 --seq-len 1024 --tokenizer spm
# The other presets llama-quantize writes (issue 23: each >= 0.7x llama.cpp's decode): tg128 only, 3 pairs.
# (IQ2_XXS, IQ3_S: with llama-tempo quantize's uniform importance matrix; speed does not depend on the values)
LLAMA_BENCH_TG_TYPES = q4_0 q5_k_m q6_k q3_k_s q3_k_m q3_k_l q2_k iq4_xs q5_0 q5_1 q4_1 iq4_nl tq2_0 tq1_0 iq2_xxs iq2_xs iq2_s iq3_xxs iq3_s iq1_s iq1_m q1_0 q2_0
LLAMA_BENCH_TG = $(foreach t,$(LLAMA_BENCH_TG_TYPES),build/bench-llama-$(t).gguf)
$(foreach t,q8_0 q4_k_m $(LLAMA_BENCH_TG_TYPES),build/bench-llama-$(t).gguf): build/bench-llama-%.gguf: build/bench-llama-f32.gguf build/llama-tempo
	build/llama-tempo quantize $< $@ $$(echo $* | tr a-z A-Z)
LLAMA_BENCH_MODELS = build/bench-llama-f32.gguf build/bench-llama-q8_0.gguf build/bench-llama-q4_k_m.gguf build/bench-large-q4_k.gguf
# the same Q8_0 and Q4_K_M files with tempo under --numerics ggml (llama.cpp's arithmetic); and tg128 only,
# one type of each family of the other types' dots (kernels/ggml_dots_avx.c, ggml_ints_avx.c) and the repacked Q4_0, IQ4_NL
LLAMA_BENCH_GGML = build/bench-llama-q8_0.gguf build/bench-llama-q4_k_m.gguf
LLAMA_BENCH_TG_GGML = $(foreach t,q4_0 iq4_nl q5_0 q3_k_m iq4_xs tq1_0 iq2_xs iq3_s iq1_m,build/bench-llama-$(t).gguf)
bench: build/bench $(BENCH_MODELS) build/llama-tempo $(LLAMA_BENCH_MODELS) $(LLAMA_BENCH_TG)
	build/bench --weights $(WEIGHTS) --large build/bench-large.bin --large-bf16 build/bench-large-bf16 \
	  --large-q4k build/bench-large-q4_k.gguf --llama build/llama-tempo $(addprefix --vs-llama ,$(LLAMA_BENCH_MODELS)) \
	  $(addprefix --vs-llama-ggml ,$(LLAMA_BENCH_GGML)) $(addprefix --vs-llama-tg ,$(LLAMA_BENCH_TG)) \
	  $(addprefix --vs-llama-tg-ggml ,$(LLAMA_BENCH_TG_GGML)) --json bench.json
	build/bench --long 65536 --json bench-long.json

# Instructions of one decode step per stored type (callgrind: the same count on a busy machine).
# valgrind does not run AVX-512, so the counted build is AVX2.
COUNT_TYPES = f32 f16 bf16 q8_0 q4_0 q4_k q5_k q6_k $(COUNT_LLAMA_TYPES)
# the other presets llama-quantize writes, from the f32 file (llama.cpp's own quantizer and type mix)
COUNT_LLAMA_TYPES = q4_1 q5_0 q5_1 iq4_nl q2_k q3_k_m iq4_xs
COUNT_GGML_TYPES = q8_0 q4_0 q4_k q5_k q6_k
COUNT_SHAPE = --dim 1024 --hidden 2816 --layers 2 --heads 16 --kv-heads 4 --vocab 32000 --seq-len 64
build/count/%.gguf: | tempo
	@mkdir -p build/count
	./tempo synth --format gguf --dtype $* --out $@ --seed 3 $(COUNT_SHAPE)
$(foreach t,$(COUNT_LLAMA_TYPES),build/count/$(t).gguf): build/count/%.gguf: build/count/f32.gguf build/llama-tempo
	build/llama-tempo quantize $< $@ $$(echo $* | tr a-z A-Z) >/dev/null
build/count-steps: tests/count_steps.c $(LIB) $(HDR) .deps
	@mkdir -p build
	$(CC) $(CFLAGS) -mno-avx512f -Wno-psabi -o $@ tests/count_steps.c $(LIB) $(LDLIBS)
count: build/count-steps $(foreach t,$(COUNT_TYPES),build/count/$(t).gguf)
	@command -v valgrind >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get install -y -qq valgrind >/dev/null; }
	@echo "instructions of one step (AVX2 build, 1 thread; dim 1024, hidden 2816, 2 layers, vocab 32000)"
	@printf "%-6s %14s %14s %8s\n" type "1 row" "4 rows" "4/1"
	@for t in $(COUNT_TYPES); do \
	  for k in 1 4; do OPENBLAS_NUM_THREADS=1 valgrind --tool=callgrind --collect-atstart=no --toggle-collect=measured_step \
	    --callgrind-out-file=build/count/$$t.k$$k.out build/count-steps build/count/$$t.gguf $$k >/dev/null 2>&1 || exit 1; done; \
	  a=$$(sed -n 's/^totals: //p' build/count/$$t.k1.out); b=$$(sed -n 's/^totals: //p' build/count/$$t.k4.out); \
	  printf "%-6s %14s %14s %8.2f\n" $$t $$a $$b $$(echo "$$b / $$a" | bc -l); done
	@echo "the same step under --numerics ggml (integer dots on quantized activations, kernels/ggml_dots_avx.c)"
	@printf "%-6s %14s %14s %8s\n" type "1 row" "4 rows" "4/1"
	@for t in $(COUNT_GGML_TYPES); do \
	  for k in 1 4; do OPENBLAS_NUM_THREADS=1 valgrind --tool=callgrind --collect-atstart=no --toggle-collect=measured_step \
	    --callgrind-out-file=build/count/$$t.ggml.k$$k.out build/count-steps build/count/$$t.gguf $$k ggml >/dev/null 2>&1 || exit 1; done; \
	  a=$$(sed -n 's/^totals: //p' build/count/$$t.ggml.k1.out); b=$$(sed -n 's/^totals: //p' build/count/$$t.ggml.k4.out); \
	  printf "%-6s %14s %14s %8.2f\n" $$t $$a $$b $$(echo "$$b / $$a" | bc -l); done

# libFuzzer targets (clang), each run FUZZ_SECONDS on seeds built from valid synthetic files.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = checkpoint hf tokenizer trace mask cli gguf
FUZZ_FLAGS = -g -O1 -std=c11 -fopenmp -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_DEPS = clang libclang-rt-14-dev libomp-14-dev
.fuzz-deps:
	@dpkg -s $(FUZZ_DEPS) >/dev/null 2>&1 || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(FUZZ_DEPS) >/dev/null; }
	@touch .fuzz-deps
# The library compiled once with the fuzzers' instrumentation, linked into each target.
FUZZ_OBJ = $(patsubst %.c,build/obj-fuzz/%.o,$(LIB))
build/obj-fuzz/%.o: %.c $(HDR) .deps .fuzz-deps
	@mkdir -p $(dir $@)
	clang $(subst -fsanitize=fuzzer,-fsanitize=fuzzer-no-link,$(FUZZ_FLAGS)) -c -o $@ $<
build/fuzz/fuzz_cli: tests/fuzz/fuzz_cli.c tools/cli.c $(FUZZ_OBJ) $(HDR)
	@mkdir -p build/fuzz
	clang $(FUZZ_FLAGS) -Dmain=tempo_cli_main -o $@ tests/fuzz/fuzz_cli.c tools/cli.c $(FUZZ_OBJ) $(LDLIBS)
build/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ) $(HDR)
	@mkdir -p build/fuzz
	clang $(FUZZ_FLAGS) -o $@ $< $(FUZZ_OBJ) $(LDLIBS)
# Seeds: valid files of each kind, made by tempo and the reference.
build/fuzz/seeds: tempo tests/fuzz/make_seeds.sh
	rm -rf $@
	sh tests/fuzz/make_seeds.sh ./tempo $(WEIGHTS) build/fuzz/seeds
fuzz: $(addprefix build/fuzz/fuzz_,$(FUZZ_TARGETS)) build/fuzz/seeds
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpus/$$t; \
	  echo "fuzzing $$t for $(FUZZ_SECONDS) s"; \
	  TEMPO_FUZZ_TOKENIZER=$(WEIGHTS)/tok512.bin build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -close_fd_mask=3 \
	    -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=$(CURDIR)/build/fuzz/ $(CURDIR)/build/fuzz/corpus/$$t \
	    $(CURDIR)/build/fuzz/seeds/$$t $(CURDIR)/tests/fuzz/regressions/$$t \
	    2> build/fuzz/$$t.log || { tail -40 build/fuzz/$$t.log; exit 1; }; \
	  grep -E "stat::number_of_executed_units|Done" build/fuzz/$$t.log | tr '\n' ' '; echo; done

# valgrind memcheck: the suite and the CLI, built without -march=native (valgrind lacks AVX-512).
# Programs that are not tempo are not traced: iconv (a test checks UTF-8 with it) and rsvg-convert
# (fontconfig, pango) leak by design, python3 (the README example) trips valgrind in its loader,
# and make runs ./tempo, the -march=native build, which valgrind cannot run.
MEMCHECK_CFLAGS = -O1 -g -std=c11 -Wall -Wextra -Wno-format-truncation -fopenmp
VALGRIND = valgrind --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite,indirect \
	--show-leak-kinds=definite,indirect --trace-children=yes --trace-children-skip='*/iconv,*/rsvg-convert,*/python3*,*/make' -q
build/memcheck/tempo: $(SRC) $(HDR) .deps
	@mkdir -p build/memcheck
	$(CC) $(MEMCHECK_CFLAGS) -o $@ $(SRC) $(LDLIBS)
build/memcheck/tests: $(TEST_SRC) tests/helpers.h tests/audited.h $(LIB) $(HDR) .deps
	@mkdir -p build/memcheck
	$(CC) $(MEMCHECK_CFLAGS) $(TEST_DEFS) -DTEMPO_BIN='"build/memcheck/tempo"' -o $@ $(TEST_SRC) $(LIB) $(LDLIBS) -lcriterion
memcheck: build/memcheck/tempo build/memcheck/tests $(SYNTH)
	@command -v valgrind >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); $$SUDO apt-get install -y -qq valgrind >/dev/null; }
	OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 $(VALGRIND) build/memcheck/tests --jobs 1

# A real llama.cpp for the tests (NOTES "A real llama.cpp in the tests"): npm's node-llama-cpp
# 3.22.1, packed (never installed: no scripts run, no CUDA/Vulkan builds pulled), then unpacked.
# Its source is a git bundle (llama.h, ggml headers, gguf-py, ggml-cpu); its CPU libraries come from
# @node-llama-cpp/linux-x64. Nothing of llama.cpp is committed.
LLAMA_NPM = node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1
LLAMA_DIR = build/llama.cpp
LLAMA_LIBDIR = $(LLAMA_DIR)/npm-libs/package/bins/linux-x64
LLAMA_LIBS = $(LLAMA_LIBDIR)/libllama.v0.5.0.so $(LLAMA_LIBDIR)/libggml.v0.5.0.so $(LLAMA_LIBDIR)/libggml-base.so
$(LLAMA_DIR)/stamp:
	@command -v npm >/dev/null || { echo "error: npm is missing: install Debian's npm to fetch llama.cpp (node-llama-cpp 3.22.1)"; exit 1; }
	@rm -rf $(LLAMA_DIR) && mkdir -p $(LLAMA_DIR)/npm-src $(LLAMA_DIR)/npm-libs
	@npm pack --ignore-scripts --silent --fetch-retries 1 --fetch-retry-mintimeout 2000 --fetch-retry-maxtimeout 5000 --pack-destination $(LLAMA_DIR) $(LLAMA_NPM) >$(LLAMA_DIR)/npm-pack.log 2>&1 || { \
	  echo "error: npm could not fetch $(LLAMA_NPM) (no network or registry?); see $(LLAMA_DIR)/npm-pack.log"; exit 1; }
	@tar xzf $(LLAMA_DIR)/node-llama-cpp-3.22.1.tgz -C $(LLAMA_DIR)/npm-src package/llama/gitRelease.bundle
	@tar xzf $(LLAMA_DIR)/node-llama-cpp-linux-x64-3.22.1.tgz -C $(LLAMA_DIR)/npm-libs
	@git clone -q $(LLAMA_DIR)/npm-src/package/llama/gitRelease.bundle $(LLAMA_DIR)/src 2>/dev/null || { \
	  echo "error: the llama.cpp git bundle of node-llama-cpp 3.22.1 could not be cloned"; exit 1; }
	@for f in $(LLAMA_LIBS) $(LLAMA_DIR)/src/include/llama.h $(LLAMA_DIR)/src/gguf-py/gguf/quants.py $(LLAMA_DIR)/src/ggml/src/ggml-common.h; do \
	  [ -r $$f ] || { echo "error: node-llama-cpp 3.22.1 lacks $$f"; exit 1; }; done
	@rm -f $(LLAMA_DIR)/*.tgz
	@touch $@

# The lookup grids of IQ1_S/M, IQ2_XXS/XS/S and IQ3_XXS/S (NOTES §16) are llama.cpp's data: never
# committed, but printed at build time by tools/make_iq_grids.c from ggml-common.h of the npm source.
# So every build of tempo needs node-llama-cpp's source once (the rule above fetches it).
build/make-iq-grids: tools/make_iq_grids.c $(LLAMA_DIR)/stamp
	$(CC) -std=c11 -Wall -Wextra -I$(LLAMA_DIR)/src/ggml/src -o $@ $<
$(IQ_GRIDS): build/make-iq-grids kernels/iq_grids.h
	build/make-iq-grids > $@.tmp && mv $@.tmp $@

# llama-tempo: TEMPO run through llama.cpp's C API, written as tempo traces; and llama_model_quantize.
LLAMA_CFLAGS = -I$(LLAMA_DIR)/src/include -I$(LLAMA_DIR)/src/ggml/include -DLLAMA_BACKEND_DIR='"$(abspath $(LLAMA_LIBDIR))"'
build/llama-tempo: tools/llama_tempo.c $(OBJ) $(HDR) $(LLAMA_DIR)/stamp .deps
	$(CC) $(CFLAGS) $(LLAMA_CFLAGS) -o $@ tools/llama_tempo.c $(OBJ) $(LLAMA_LIBS) -Wl,-rpath,$(abspath $(LLAMA_LIBDIR)) $(LDLIBS)
# tempo's dequantization of a GGUF, every matrix as f32 in a safetensors file (checked against gguf-py).
build/tempo-dequant: tests/tempo_dequant.c $(OBJ) $(HDR) .deps
	@mkdir -p build
	$(CC) $(CFLAGS) -o $@ tests/tempo_dequant.c $(OBJ) $(LDLIBS)
# llama.cpp's TEMPO traces judged by tempo verify and audit; quantized files read by tempo.
test-llama: tempo build/llama-tempo build/tempo-dequant build/synth-gguf-f32.gguf
	OPENBLAS_NUM_THREADS=1 $(PY) tests/test_llama.py ./tempo build/llama-tempo build/tempo-dequant $(LLAMA_DIR)/src/gguf-py \
	  build/synth-gguf-f32.gguf build/llama
