"""Build step: put the pinned socket.io browser client into the package.

The dashboard and the HTML test client load ``/vendor/socket.io.min.js``. At build time (wheel,
sdist's wheel, ``pip install -e .``) this fetches the npm tarball of the version locked in
``package-lock.json`` (``npm pack``, from npm's cache when it is there), checks its sha512
against the lock file's ``integrity``, and copies ``dist/socket.io.min.js`` (and its source map)
to ``optio/webapp/static/``. The copies are git-ignored: nothing third-party is committed.
Metadata lives in setup.cfg.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
PACKAGE = "socket.io-client"
FILES = ("socket.io.min.js", "socket.io.min.js.map")
TARGET = HERE / "optio" / "webapp" / "static"
#: What was copied last, and from which tarball (skips npm when nothing changed).
STAMP = HERE / "build" / "socket.io-client.stamp"


def _locked() -> tuple[str, str]:
    """Version and sha512 (base64) of the npm tarball pinned by package-lock.json."""
    lock = json.loads((HERE / "package-lock.json").read_text())
    entry = lock["packages"][f"node_modules/{PACKAGE}"]
    algorithm, _, digest = entry["integrity"].partition("-")
    if algorithm != "sha512":
        raise SystemExit(f"package-lock.json: {PACKAGE} has a {algorithm} integrity, not sha512")
    return entry["version"], digest


def _stamp(tarball_digest: str) -> str:
    files = {name: hashlib.sha256((TARGET / name).read_bytes()).hexdigest() for name in FILES}
    return json.dumps({"tarball": tarball_digest, "files": files}, sort_keys=True)


def vendor_socketio() -> None:
    version, expected = _locked()
    if all((TARGET / n).is_file() for n in FILES) and STAMP.is_file():
        if STAMP.read_text() == _stamp(expected):
            return  # copied from this very tarball, untouched since
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(
            f"building optio needs npm: it copies {PACKAGE} {version} (the dashboard's live feed) "
            "from the npm registry into the package"
        )
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [npm, "pack", f"{PACKAGE}@{version}", "--pack-destination", tmp]
            + ["--prefer-offline", "--loglevel=error"],
            cwd=tmp,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        tarball = next(Path(tmp).glob("*.tgz"))
        found = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
        if found != expected:
            raise SystemExit(
                f"{tarball.name}: sha512 {found} differs from package-lock.json's {expected}"
            )
        with tarfile.open(tarball) as tar:
            for name in FILES:
                member = tar.extractfile(f"package/dist/{name}")
                if member is None:
                    raise SystemExit(f"{tarball.name} has no dist/{name}")
                (TARGET / name).write_bytes(member.read())
    STAMP.parent.mkdir(exist_ok=True)
    STAMP.write_text(_stamp(expected))
    print(f"copied {PACKAGE} {version} (sha512 checked against package-lock.json) to {TARGET}")


class BuildWithVendor(build_py):
    def run(self) -> None:
        vendor_socketio()
        super().run()


setup(cmdclass={"build_py": BuildWithVendor})
