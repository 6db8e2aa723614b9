"""Runs the coverage-guided fuzz target (tests/fuzz/fuzz_fastjwt.py) briefly, seeded with the hostile corpus.
Longer runs: `python tests/fuzz/fuzz_fastjwt.py -atheris_runs=1000000 DIR` (DIR from --write-seeds)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

TARGET = Path(__file__).with_name("fuzz_fastjwt.py")
RUNS = 20000


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None,
                    reason="atheris is not installed (pip install atheris; it ships libFuzzer in its wheel)")
def test_fuzz_target_runs_clean(tmp_path):
    seeds = tmp_path / "seeds"
    made = subprocess.run([sys.executable, str(TARGET), "--write-seeds", str(seeds)], capture_output=True,
                          text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    done = subprocess.run([sys.executable, str(TARGET), f"-atheris_runs={RUNS}", f"-artifact_prefix={tmp_path}/",
                           "-max_len=16384", str(seeds)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    crashes = sorted(p.name for p in tmp_path.glob("crash-*"))
    assert done.returncode == 0 and not crashes, f"fuzzing found a problem ({crashes}):\n{output[-4000:]}"
    assert f"Done {RUNS}" in output, output[-2000:]
