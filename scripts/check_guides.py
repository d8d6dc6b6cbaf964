#!/usr/bin/env python
"""Follow the user guides (docs/*.md) word for word against a running MIS server.

Every fenced ``bash`` and ``python`` block of a guide is run, in the order of the guide,
the way a reader would run it:

- **bash** blocks run one after the other as if typed into one shell: variables,
  ``export``s and the current directory carry over from block to block (the shell starts
  in an empty folder, with the venv's ``bin`` first on ``PATH`` and the environment the
  caller gives, e.g. ``MIS_DATABASE_URL`` and ``MIS_HOME``). Each block runs under
  ``set -e -o pipefail``: a failing command fails the guide.
- **python** blocks run in one namespace per guide, as if typed into one Python session
  started from that shell (its current directory and environment).
- The guides use the server address ``http://127.0.0.1:5000`` (and ``--port 5000``);
  the checker replaces the port with the one of the server it checks.

An HTML comment just before a fence says more (only these forms):

``<!-- guide-test: skip (reason) -->``
    do not run the next block (the reason is required: it says why it cannot be run
    word for word, e.g. it needs a QGIS window, or it is an illustration with made-up
    names);
``<!-- guide-test: server -->``
    the next block starts the server: the checker does not run it inline; whoever starts
    the server for the check runs exactly this command (see :func:`server_command`);
``<!-- guide-test: exit N -->``
    the next block must end with exit status N (e.g. 1 for a refused dry run);
``<!-- guide-test: output -->``
    the next block (``text``) shows what the previous run block prints: each of its lines
    must appear in that output (``…`` stands for any text, runs of spaces for any
    whitespace);
``<!-- guide-test: urls -->``
    the next block (``text``) lists request paths, one per line (what follows three or
    more spaces is a comment): each is sent to the server and must answer 200 with at
    least one feature (``f=json`` is added to ``/collections`` paths that have no ``f``;
    an answer that is not a feature collection, e.g. an HTML page, needs only the 200).

Blocks in other languages (``text``, ``json``, ``yaml`` ...) are shown, not run.

Usage (against a server you started, e.g. ``mis demo --small``)::

    python scripts/check_guides.py docs/gis-user.md docs/modeller.md --url http://127.0.0.1:5000

``tests/test_guides.py`` runs the same checks against a fresh ``mis demo --small`` on a
free port with the test database.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import subprocess
import sys
import tempfile
import textwrap
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

DOC_PORT = 5000
RUNNABLE = {"bash", "sh", "shell", "console", "python", "py"}
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`]*)$")
_DIRECTIVE = re.compile(r"^\s*<!--\s*guide-test:\s*(?P<what>[a-z]+)\s*(?P<arg>.*?)\s*-->\s*$")


@dataclass
class Block:
    """One fenced code block of a guide."""

    guide: str
    line: int                 # line of the opening fence (1-based)
    lang: str
    code: str
    directive: str | None = None   # skip, server, exit, output, urls
    argument: str = ""

    @property
    def where(self) -> str:
        return f"{self.guide}:{self.line}"

    @property
    def runnable(self) -> bool:
        return self.lang in RUNNABLE and self.directive not in ("skip", "server")


class GuideError(AssertionError):
    """A guide's block did not work word for word."""


def parse(path: Path | str) -> list[Block]:
    """The fenced code blocks of a Markdown file, each with the directive just before it."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    pending: tuple[str, str] | None = None
    i = 0
    while i < len(lines):
        text = lines[i]
        d = _DIRECTIVE.match(text)
        if d:
            pending = (d["what"], d["arg"].strip())
            i += 1
            continue
        m = _FENCE.match(text)
        if m:
            fence = m["fence"]
            lang = (m["info"].split() or [""])[0].lower()
            body: list[str] = []
            j = i + 1
            while j < len(lines) and not lines[j].lstrip().startswith(fence):
                body.append(lines[j])
                j += 1
            if j >= len(lines):
                raise GuideError(f"{path.name}:{i + 1}: code block never closed")
            indent = len(m["indent"])
            code = "\n".join(b[indent:] if b[:indent].isspace() else b for b in body)
            what, arg = pending or (None, "")
            if what not in (None, "skip", "server", "exit", "output", "urls"):
                raise GuideError(f"{path.name}:{i}: unknown guide-test directive {what!r}")
            if what == "skip" and not arg:
                raise GuideError(f"{path.name}:{i}: 'guide-test: skip' needs a reason in parentheses")
            blocks.append(Block(path.name, i + 1, lang, code + "\n", what, arg))
            pending = None
            i = j + 1
            continue
        if text.strip():
            pending = None  # a directive applies to the very next block only
        i += 1
    return blocks


def with_port(text: str, port: int) -> str:
    """The guide's text for a server on ``port`` instead of the documented 5000."""
    text = re.sub(rf"(127\.0\.0\.1|localhost):{DOC_PORT}\b", rf"\g<1>:{port}", text)
    return re.sub(rf"--port(=|\s+){DOC_PORT}\b", rf"--port\g<1>{port}", text)


def server_command(path: Path | str) -> str | None:
    """The command of the guide's ``guide-test: server`` block (None if it has none)."""
    for block in parse(path):
        if block.directive == "server":
            command = " ".join(line.split("#", 1)[0].strip() for line in block.code.splitlines()).strip()
            return command or None
    return None


def _expected_pattern(line: str) -> re.Pattern[str]:
    parts = [re.escape(p) for p in line.strip().split("…")]
    pattern = ".*".join(parts)
    pattern = re.sub(r"(\\ )+", r"\\s+", pattern)
    return re.compile(pattern)


def check_output(expected: str, output: str, where: str) -> None:
    """Every line of ``expected`` appears in ``output`` (see the module docstring)."""
    missing = [line for line in expected.splitlines()
               if line.strip() and not _expected_pattern(line).search(output)]
    if missing:
        raise GuideError(f"{where}: the output the guide shows is not what the command printed.\n"
                         f"missing:\n  " + "\n  ".join(missing) + f"\noutput:\n{output}")


@dataclass
class Reader:
    """The state of one reader following one guide: a shell and a Python session."""

    guide: str
    port: int
    env: dict[str, str]
    workdir: Path
    timeout: float = 300
    namespace: dict[str, Any] = field(default_factory=dict)
    last_output: str = ""
    log: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.state = self.workdir / ".guide-shell"
        self.state.mkdir(parents=True, exist_ok=True)
        (self.state / "cwd").write_text(str(self.workdir))
        self.shell_env = dict(self.env)
        self.namespace.setdefault("__name__", "__main__")

    # ---------------------------------------------------------------- bash
    def bash(self, block: Block, code: str) -> tuple[int, str]:
        st = shlex.quote(str(self.state))
        script = "\n".join([
            f"if [ -f {st}/vars ]; then . {st}/vars; fi",
            f'cd "$(cat {st}/cwd)"',
            f"trap 'export -p > {st}/vars; env -0 > {st}/env0; pwd > {st}/cwd' EXIT",
            "set -a -e -o pipefail",
            code,
        ])
        try:
            proc = subprocess.run(["bash", "-c", script, block.where], env=self.env, cwd=self.workdir,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  timeout=self.timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise GuideError(f"{block.where}: bash block ran past {self.timeout:.0f} s:\n{code}\n{exc.output}") from exc
        env0 = self.state / "env0"
        if env0.exists():
            pairs = [item.split("=", 1) for item in env0.read_text().split("\0") if "=" in item]
            self.shell_env = {k: v for k, v in pairs if k not in ("_", "SHLVL", "OLDPWD", "PWD")}
        return proc.returncode, proc.stdout

    # ---------------------------------------------------------------- python
    def python(self, block: Block, code: str) -> tuple[int, str]:
        buffer = io.StringIO()
        cwd = os.getcwd()
        saved = dict(os.environ)
        status = 0
        try:
            os.chdir((self.state / "cwd").read_text().strip())
            os.environ.clear()
            os.environ.update(self.shell_env)
            with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
                try:
                    exec(compile(code, block.where, "exec"), self.namespace)
                except SystemExit as exc:
                    status = exc.code if isinstance(exc.code, int) else 1
                # the guide's own code may raise anything: print it as the block's output, fail the block
                except BaseException:  # noqa: BLE001
                    traceback.print_exc()
                    status = 1
        finally:
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(saved)
        return status, buffer.getvalue()

    # ---------------------------------------------------------------- urls
    def urls(self, block: Block) -> None:
        with httpx.Client(timeout=60) as client:
            for raw in block.code.splitlines():
                path = re.split(r"\s{3,}", raw.strip())[0]
                if not path:
                    continue
                url = f"http://127.0.0.1:{self.port}{path}"
                ask_json = path.startswith("/collections") and not re.search(r"[?&]f=", path)
                r = client.get(url, params={"f": "json"} if ask_json else None)
                if r.status_code != 200:
                    raise GuideError(f"{block.where}: GET {path} answered {r.status_code}: {r.text[:500]}")
                if "json" in r.headers.get("content-type", ""):
                    body = r.json()
                    if isinstance(body, dict) and "features" in body and not body["features"]:
                        raise GuideError(f"{block.where}: GET {path} found no features")
                self.log.append(f"GET {path}: 200")

    # ---------------------------------------------------------------- one block
    def run(self, block: Block) -> None:
        code = with_port(block.code, self.port)
        if block.lang in ("python", "py"):
            status, output = self.python(block, code)
        else:
            status, output = self.bash(block, code)
        self.last_output = output
        self.log.append(f"--- {block.where} ({block.lang}) exit {status}\n{output}")
        want = int(block.argument) if block.directive == "exit" else 0
        if status != want:
            raise GuideError(f"{block.where}: the {block.lang} block ended with exit status {status} "
                             f"(expected {want}):\n{textwrap.indent(code, '  ')}\noutput:\n{output}")


def follow(path: Path | str, port: int, env: dict[str, str] | None = None,
           workdir: Path | str | None = None, timeout: float = 300) -> Reader:
    """Run a guide's blocks in order against the server on ``port``; raise GuideError at the
    first block that does not work. Returns the reader (its Python namespace, the log)."""
    path = Path(path)
    blocks = parse(path)
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix=f"guide-{path.stem}-"))
    base = dict(os.environ if env is None else env)
    venv_bin = str(Path(sys.executable).parent)
    base["PATH"] = os.pathsep.join([venv_bin, base.get("PATH", "/usr/bin:/bin")])
    reader = Reader(path.name, port, base, Path(workdir), timeout)
    previous: Block | None = None
    for block in blocks:
        if block.directive == "output":
            if previous is None:
                raise GuideError(f"{block.where}: 'guide-test: output' without a block run before it")
            check_output(with_port(block.code, port), reader.last_output, block.where)
        elif block.directive == "urls":
            reader.urls(block)
        elif block.runnable:
            reader.run(block)
            previous = block
    return reader


def _wait(url: str, proc: subprocess.Popen | None, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with status {proc.returncode}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("guides", nargs="*", type=Path,
                        default=[Path("docs") / g for g in ("gis-user.md", "modeller.md",
                                                            "data-manager.md", "api-writes.md")])
    parser.add_argument("--url", default=f"http://127.0.0.1:{DOC_PORT}",
                        help="the running server to check against (default %(default)s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every block's output")
    args = parser.parse_args(argv)
    port = int(httpx.URL(args.url).port or 80)
    _wait(f"{args.url}/collections?f=json", None, 30)
    failed = 0
    for guide in args.guides:
        try:
            reader = follow(guide, port)
            print(f"ok      {guide}")
            if args.verbose:
                print("\n".join(reader.log))
        except GuideError as exc:
            failed += 1
            print(f"FAILED  {guide}\n{exc}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
