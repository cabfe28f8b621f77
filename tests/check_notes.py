#!/usr/bin/python3
"""Reruns every run quoted in NOTES.md and compares its output.

A quoted run is a fenced block right after the line `<!-- checked-run -->`:

    <!-- checked-run -->
    ```
    $ ./tempo generate -m $W/stories260K.bin ... --no-color
    Once upon a time, there was a little[ g/ b]oat
    ```

Each line starting with `$ ` is a command (run by sh in a scratch folder that
links tempo, weights/ and oracle/, with W set to the weights folder and one
BLAS thread); the lines after it, up to the next command, are its standard
output, compared exactly. Timings are the only figures not compared: every
number followed by ms, s, tokens/s or steps/s is masked on both sides, and a
marker may name more with mask="REGEX" (the text around the block says which
figures those are). A fenced block whose first line is a `$ ` command without
the marker is an error: no run is quoted unchecked.

  check_notes.py NOTES TEMPO WEIGHTS           check; exit 1 naming each difference
  check_notes.py NOTES TEMPO WEIGHTS --update  write the actual outputs into NOTES
"""
import os, re, shutil, subprocess, sys, tempfile

MARKER = re.compile(r'^<!-- checked-run(?: mask="([^"]*)")? -->$')
TIMING = re.compile(r"\d+(?:\.\d+)?(?:e[-+]?\d+)? ?(?:ms|s|tokens/s|steps/s)\b")


def blocks(lines):
    """(marker index, mask, first line of the fence body, closing fence index) of each quoted run."""
    found, i = [], 0
    while i < len(lines):
        m = MARKER.match(lines[i])
        if lines[i].startswith("```") and i + 1 < len(lines) and lines[i + 1].startswith("$ "):
            if i == 0 or not MARKER.match(lines[i - 1]):
                sys.exit("NOTES.md:%d: a quoted run without <!-- checked-run --> above it" % (i + 1))
        if m:
            if i + 1 >= len(lines) or not lines[i + 1].startswith("```"):
                sys.exit("NOTES.md:%d: <!-- checked-run --> is not followed by a fenced block" % (i + 1))
            end = i + 2
            while end < len(lines) and not lines[end].startswith("```"):
                end += 1
            if end == len(lines):
                sys.exit("NOTES.md:%d: the fenced block is not closed" % (i + 2))
            found.append((i, m.group(1), i + 2, end))
            i = end
        i += 1
    return found


def commands(body):
    """[(command, expected output lines)] of one block."""
    runs = []
    for line in body:
        if line.startswith("$ "):
            runs.append((line[2:], []))
        elif not runs:
            sys.exit("a checked run must start with a `$ ` command line: %r" % line)
        else:
            runs[-1][1].append(line)
    return runs


def masked(text, extra):
    text = TIMING.sub("<timing>", text)
    return re.sub(extra, "<timing>", text, flags=re.M) if extra else text


def main():
    notes, tempo, weights = sys.argv[1:4]
    update = "--update" in sys.argv[4:]
    lines = open(notes, encoding="utf-8").read().split("\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
    scratch = tempfile.mkdtemp(prefix="tempo-notes-")
    for name, target in (("tempo", os.path.abspath(tempo)), ("weights", os.path.join(root, "weights")),
                         ("oracle", os.path.join(root, "oracle"))):
        os.symlink(target, os.path.join(scratch, name))
    env = dict(os.environ, W=os.path.abspath(weights), OPENBLAS_NUM_THREADS="1",
               PATH="/usr/bin:/bin:" + os.environ.get("PATH", ""))
    failures, count, out_lines, last = [], 0, [], 0
    try:
        for marker, mask, first, end in blocks(lines):
            out_lines += lines[last:first]
            for cmd, expected in commands(lines[first:end]):
                count += 1
                run = subprocess.run(["sh", "-c", cmd], cwd=scratch, env=env, capture_output=True, text=True)
                actual = run.stdout.rstrip("\n").split("\n") if run.stdout.strip() else []
                if run.returncode not in (0, 1):
                    failures.append("NOTES.md:%d: `%s` exited %d:\n%s" % (marker + 1, cmd, run.returncode, run.stderr))
                elif masked("\n".join(actual), mask) != masked("\n".join(expected), mask):
                    diff = [" expected: %s\n actual:   %s" % (e, a) for e, a in zip(expected + [""] * len(actual),
                            actual + [""] * len(expected)) if masked(e, mask) != masked(a, mask)]
                    failures.append("NOTES.md:%d: `%s` printed something else:\n%s" % (marker + 1, cmd, "\n".join(diff[:6])))
                out_lines += ["$ " + cmd] + actual
            last = end
        out_lines += lines[last:]
    finally:
        shutil.rmtree(scratch)
    if count == 0:
        sys.exit("%s quotes no checked run" % notes)
    if update:
        open(notes, "w", encoding="utf-8").write("\n".join(out_lines))
        print("check_notes: %d commands rerun, %s rewritten" % (count, notes))
        return
    for f in failures:
        print(f)
    print("check_notes: %d commands rerun, %d differ" % (count, len(failures)))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
