"""Strip the debug symbols out of the shared objects in wheels, in place, for the image.

Several dependencies (aiohttp, PyYAML, multidict, frozenlist) ship unstripped extension
modules: about 10 MB the image does not need (docs/image.md). Each wheel stays valid:
its RECORD gets the new hashes and sizes, so pip installs it as it would the original.

Usage: python3 hack/strip_wheels.py WHEEL...   (needs `strip`, from binutils)
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path


def _stripped(data: bytes) -> bytes:
    with tempfile.NamedTemporaryFile(suffix=".so") as shared_object:
        shared_object.write(data)
        shared_object.flush()
        subprocess.run(["strip", "--strip-unneeded", shared_object.name], check=True)
        return Path(shared_object.name).read_bytes()


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return f"sha256={digest.decode()}"


def strip_wheel(path: Path) -> int:
    """Bytes saved in `path` (0: left as it was)."""
    with zipfile.ZipFile(path) as wheel:
        infos = wheel.infolist()
        members = {info.filename: wheel.read(info) for info in infos}
    changed = {}
    for name, data in members.items():
        if name.endswith(".so") or ".so." in name:
            smaller = _stripped(data)
            if len(smaller) < len(data):
                changed[name] = smaller
    if not changed:
        return 0
    record = next(name for name in members if name.endswith(".dist-info/RECORD"))
    rows = list(csv.reader(io.StringIO(members[record].decode())))
    for row in rows:
        if row and row[0] in changed:
            row[1:3] = [_record_hash(changed[row[0]]), str(len(changed[row[0]]))]
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    saved = sum(len(members[name]) - len(data) for name, data in changed.items())
    members.update(changed)
    members[record] = text.getvalue().encode()
    rewritten = path.with_name(path.name + ".part")
    with zipfile.ZipFile(rewritten, "w", zipfile.ZIP_DEFLATED) as wheel:
        for info in infos:  # the same entries, order and attributes (exec bits)
            wheel.writestr(info, members[info.filename])
    rewritten.replace(path)
    return saved


def main(paths: list[str]) -> int:
    total = sum(strip_wheel(Path(path)) for path in paths)
    print(f"strip_wheels: {total / 2**20:.1f} MiB of debug symbols removed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
