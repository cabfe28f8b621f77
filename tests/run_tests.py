"""run_tests.py - the one loop of the Python test scripts (test_capture.py,
test_llama.py): every test_* function of a module's globals, in order,
reported as 'ok'/'FAIL' lines and a closing 'LABEL: N passed, N failed'.
The environment variable ONLY_VAR runs the tests whose name contains it."""
import os
import traceback


def run_tests(namespace, label, only_var):
    tests = [(name, f) for name, f in namespace.items() if name.startswith("test_") and callable(f)]
    only = os.environ.get(only_var)
    failed = 0
    for name, f in tests:
        if only and only not in name:
            continue
        try:
            f()
            print(f"ok    {name}")
        except Exception:
            failed += 1
            print(f"FAIL  {name}\n{traceback.format_exc()}")
    print(f"{label}: {len(tests) - failed} passed, {failed} failed" if not only else f"{failed} failed")
    return 1 if failed else 0
