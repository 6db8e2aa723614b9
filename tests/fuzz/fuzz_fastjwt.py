"""Coverage-guided fuzz target (atheris / libFuzzer) for agw's JWT core.

    python tests/fuzz/fuzz_fastjwt.py -atheris_runs=100000 [CORPUS_DIR ...] [libFuzzer flags]
    python tests/fuzz/fuzz_fastjwt.py --write-seeds DIR    # seed inputs made from the hostile corpus

Input format: the first byte picks the operation (tests/fuzz/targets.OPERATIONS), the rest is its data. A
contract violation (an exception other than the documented ones, an allowed forgery) is an uncaught exception,
which atheris reports as a crash with the input that caused it.

Coverage: atheris instruments the Python code (agw.jwt, agw.config, the checks); the Cython extension
agw._fastjwt is compiled C and is not instrumented unless built with `-fsanitize=fuzzer-no-link`, so inside it
libFuzzer sees no edges and the search there is blind (mutations seeded by the hostile corpus still reach it).
"""
from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # the repository root, for `tests` and `agw`


def write_seeds(directory: str) -> int:
    from tests.fuzz.targets import OPERATIONS
    from tests.hostile import corpus

    os.makedirs(directory, exist_ok=True)
    count = 0
    tokens = [v for c in corpus.token_cases() for _, v in c.headers]
    tokens += [v for _, lines in corpus.valid_requests() for _, v in lines]
    for i, value in enumerate(tokens):
        token = value[7:] if value[:7].lower() == b"bearer " else value
        for op, data in (("verify_token", token), ("authorization", value), ("b64url", token.split(b".")[0])):
            with open(os.path.join(directory, f"seed-{i:04d}-{op}"), "wb") as f:
                f.write(bytes([OPERATIONS.index(op)]) + data)
            count += 1
    return count


def main(argv: list[str]) -> None:
    if len(argv) >= 3 and argv[1] == "--write-seeds":
        print(f"{write_seeds(argv[2])} seeds written to {argv[2]}")
        return
    import atheris

    # Instrument agw's Python and the checks; not the corpus and key generation (slow when instrumented).
    with atheris.instrument_imports(include=["agw", "tests.fuzz"]):
        from tests.fuzz.targets import OPERATIONS, Checker

    checker = Checker()

    def test_one_input(data: bytes) -> None:
        if not data:
            return
        checker.exercise(OPERATIONS[data[0] % len(OPERATIONS)], data[1:])

    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
