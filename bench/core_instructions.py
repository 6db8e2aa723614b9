"""Instructions per verification-core call, counted by callgrind (steady where timings on a shared VM are not).

    python bench/core_instructions.py [--algs HS256 RS256] [--tree DIR]

Runs itself under `valgrind --tool=callgrind` with N1 and N2 calls of the same token through the policy's
authenticate, cache off ("miss", as core_ratio.py's) and on ("hit": admitted in the warm-up), and prints
(Ir(N2) - Ir(N1)) / (N2 - N1): start-up, imports and warm-up cancel out.
`--tree` puts another checkout first on PYTHONPATH (an A/B of two builds in one session).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CALLS = {"miss": (100, 600), "hit": (2000, 22000)}   # (N1, N2): a hit is ~1/30 of a miss


def inner(case: str, alg: str, n: int) -> None:
    sys.path.insert(0, HERE)
    import mint_tokens
    from core_cases import agw_call, agw_policy, build_cases, jwks_doc_for
    cases = build_cases(mint_tokens.load_or_create_keys())
    fn = agw_call(agw_policy(jwks_doc_for(cases), cache=case == "hit").authenticate, cases[alg].token)
    for _ in range(20 + n):
        fn()


def instructions(tree: str, case: str, alg: str, n: int) -> int:
    env = dict(os.environ, PYTHONHASHSEED="0", PYTHONPATH=os.pathsep.join(filter(None, [tree, HERE])))
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/cg.out",
                              sys.executable, os.path.abspath(__file__), "--inner", case, alg, str(n)],
                             env=env, capture_output=True, text=True, check=True)
    return int(re.search(r"Collected : (\d+)", out.stderr).group(1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--algs", nargs="+", default=["HS256", "RS256"])
    ap.add_argument("--tree", default=os.path.dirname(HERE), help="checkout whose agw is measured")
    ap.add_argument("--cases", nargs="+", default=["miss", "hit"], choices=["miss", "hit"])
    ap.add_argument("--inner", nargs=3, metavar=("CASE", "ALG", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.inner:
        inner(args.inner[0], args.inner[1], int(args.inner[2]))
        return 0
    for alg in args.algs:
        for case in args.cases:
            n1, n2 = CALLS[case]
            per_call = (instructions(args.tree, case, alg, n2) - instructions(args.tree, case, alg, n1)) / (n2 - n1)
            print(f"{alg:6} {case:4} {per_call:9.0f} instructions per call  ({args.tree})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
