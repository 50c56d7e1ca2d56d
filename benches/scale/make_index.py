#!/usr/bin/env python3
"""A find-links folder of N tiny sdists with an in-tree backend and a dependency DAG, for
benches/scale.sh. Package i requires 0-3 earlier packages at run time and, one time in five,
one earlier package at build time: install edges and build edges, as a real closure has.
Deterministic for a seed. Writes OUT/*.tar.gz and OUT/requirements.txt (every package pinned)."""
import io
import random
import sys
import tarfile

BACKEND = '''import base64, hashlib, os, zipfile

def get_requires_for_build_wheel(config_settings=None):
    return []

def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    meta = open("PKG-INFO", "rb").read()
    name = [l.split(": ")[1] for l in meta.decode().splitlines() if l.startswith("Name: ")][0]
    files = {
        name + "/__init__.py": b"VALUE = 1\\n",
        name + "-1.0.dist-info/METADATA": meta,
        name + "-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\\nGenerator: scale\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    record = []
    for path, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (path, digest, len(data)))
    record.append(name + "-1.0.dist-info/RECORD,,")
    files[name + "-1.0.dist-info/RECORD"] = ("\\n".join(record) + "\\n").encode()
    filename = name + "-1.0-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(wheel_directory, filename), "w") as z:
        for path, data in files.items():
            z.writestr(zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return filename
'''


def add(tar, path, text):
    data = text.encode()
    info = tarfile.TarInfo(path)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def main():
    n, out = int(sys.argv[1]), sys.argv[2]
    rng = random.Random(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
    names = ["s%05d" % i for i in range(n)]
    for i, name in enumerate(names):
        runtime = rng.sample(names[:i], min(i, rng.choice([0, 1, 2, 3])))
        build = rng.sample(names[:i], 1) if i and rng.random() < 0.2 else []
        top = "%s-1.0" % name
        with tarfile.open("%s/%s.tar.gz" % (out, top), "w:gz", compresslevel=1) as tar:
            requires = ", ".join('"%s"' % b for b in build)
            add(tar, top + "/pyproject.toml",
                '[build-system]\nrequires = [%s]\nbuild-backend = "scaleback"\nbackend-path = ["."]\n' % requires)
            add(tar, top + "/PKG-INFO", "Metadata-Version: 2.2\nName: %s\nVersion: 1.0\n%s" % (
                name, "".join("Requires-Dist: %s\n" % r for r in runtime)))
            add(tar, top + "/scaleback.py", BACKEND)
    with open(out + "/requirements.txt", "w") as f:
        f.writelines("%s==1.0\n" % name for name in names)


if __name__ == "__main__":
    main()
