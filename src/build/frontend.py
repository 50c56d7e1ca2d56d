"""rewheel's PEP 517 frontend, run inside each build job.

It calls the build backend's hooks directly. The build environment is a site directory that
rewheel filled from wheels it built; nothing is installed here and nothing is fetched.

usage: python -S frontend.py REQUEST_JSON RESULT_JSON
"""
import importlib
import json
import os
import re
import shutil
import site
import sys
import traceback


def load_backend(spec, source_dir, backend_path):
    # PEP 517: backend-path entries come first on sys.path and must stay inside the tree, also
    # once links are followed.
    root = os.path.realpath(source_dir)
    for entry in reversed(backend_path):
        path = os.path.realpath(os.path.join(source_dir, entry))
        if os.path.commonpath([root, path]) != root:
            raise RuntimeError(f"backend-path entry {entry!r} leaves the source tree")
        sys.path.insert(0, path)
    module_name, _, attrs = spec.partition(":")
    backend = importlib.import_module(module_name.strip())
    for attr in filter(None, attrs.strip().split(".")):
        backend = getattr(backend, attr)
    return backend


class SetupPy:
    """`python setup.py bdist_wheel OPTIONS`, run here as pip ran builds before PEP 517 (and
    maintainers by hand, `--universal`): no hook asks for requirements, and setuptools older
    than 40.8 has no build_meta to call."""

    def __init__(self, options):
        self.options = list(options)

    def get_requires_for_build_wheel(self, config_settings=None):
        return []

    def build_wheel(self, wheel_directory, config_settings=None):
        import tempfile

        dist = tempfile.mkdtemp(prefix="setup-py-", dir=os.path.dirname(wheel_directory))
        # What `python setup.py` sets up: its folder first on sys.path, its name as argv[0]
        # and __file__; setuptools imported first, as pip's shim did, for distutils scripts.
        sys.path.insert(0, os.getcwd())
        sys.argv = ["setup.py", "bdist_wheel", "--dist-dir", dist, *self.options]
        import setuptools  # noqa: F401

        with open("setup.py", "rb") as f:
            code = compile(f.read(), "setup.py", "exec")
        exec(code, {"__file__": "setup.py", "__name__": "__main__"})
        wheels = [n for n in os.listdir(dist) if n.endswith(".whl")]
        if len(wheels) != 1:
            raise RuntimeError(f"setup.py bdist_wheel made {len(wheels)} wheels, not one")
        os.replace(os.path.join(dist, wheels[0]), os.path.join(wheel_directory, wheels[0]))
        return wheels[0]


def requirement_name(requirement):
    return re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement).group(1)


def normalize(name):
    return re.sub(r"[-_.]+", "-", name).lower()


class Unsure(Exception):
    """A marker this evaluator does not decide; rewheel decides it (PEP 508, pep508_rs)."""


MARKER_TOKEN = re.compile(
    r"\s*(?:(?P<paren>[()])|(?P<op>not\s+in\b|in\b|===|==|!=|<=|>=|~=|<|>)"
    r"|(?P<logic>and\b|or\b)|(?P<string>'[^']*'|\"[^\"]*\")|(?P<name>[A-Za-z_][A-Za-z0-9_.]*))"
)
RELEASE = re.compile(r"\d+(\.\d+)*")


def marker_environment():
    # What pip would evaluate with: this very interpreter, inside the job.
    import platform
    version = sys.implementation.version
    implementation_version = "%d.%d.%d" % version[:3]
    if version.releaselevel != "final":
        implementation_version += version.releaselevel[0] + str(version.serial)
    return {
        "implementation_name": sys.implementation.name,
        "implementation_version": implementation_version,
        "os_name": os.name,
        "platform_machine": platform.machine(),
        "platform_release": platform.release(),
        "platform_system": platform.system(),
        "platform_version": platform.version(),
        "platform_python_implementation": platform.python_implementation(),
        "python_full_version": platform.python_version(),
        "python_version": ".".join(platform.python_version_tuple()[:2]),
        "sys_platform": sys.platform,
    }


def compare(left, op, right):
    # A build requirement is asked for with no extra: `extra` equals nothing.
    if left is None or right is None:
        if op in ("==", "!="):
            return op == "!="
        raise Unsure(op)
    if op in ("in", "not in"):
        return (left in right) == (op == "in")
    if op == "===":
        return left == right
    if RELEASE.fullmatch(left) and RELEASE.fullmatch(right):
        a, b = [int(x) for x in left.split(".")], [int(x) for x in right.split(".")]
        if op == "~=":
            if len(b) < 2:
                raise Unsure(op)
            return a + [0] * (len(b) - len(a)) >= b and a[: len(b) - 1] == b[:-1]
        width = max(len(a), len(b))
        a, b = a + [0] * (width - len(a)), b + [0] * (width - len(b))
        return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if op in ("==", "!="):
        return (left == right) == (op == "==")
    # An ordering of values that are not plain releases (pre-releases, wildcards): PEP 440's
    # rules, which rewheel applies.
    raise Unsure(op)


def evaluate_marker(text, env):
    tokens, at = [], 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = MARKER_TOKEN.match(text, at)
        if not match or match.end() == at:
            raise Unsure(text)
        kind = match.lastgroup
        tokens.append((kind, re.sub(r"\s+", " ", match.group(kind))))
        at = match.end()
    position = [0]

    def peek():
        return tokens[position[0]] if position[0] < len(tokens) else (None, None)

    def take():
        token = peek()
        position[0] += 1
        return token

    def value():
        kind, text = take()
        if kind == "string":
            return text[1:-1]
        if kind == "name" and text == "extra":
            return None
        if kind == "name" and text in env:
            return env[text]
        raise Unsure(text)

    def atom():
        if peek() == ("paren", "("):
            take()
            result = expression()
            if take() != ("paren", ")"):
                raise Unsure("parenthesis")
            return result
        left = value()
        kind, op = take()
        if kind != "op":
            raise Unsure(op)
        return compare(left, op, value())

    def conjunction():
        result = atom()
        while peek() == ("logic", "and"):
            take()
            result = atom() and result
        return result

    def expression():
        result = conjunction()
        while peek() == ("logic", "or"):
            take()
            result = conjunction() or result
        return result

    result = expression()
    if position[0] != len(tokens):
        raise Unsure(text)
    return result


def applies(requirement, env):
    # Whether a requirement a hook names is one for this interpreter; when unsure, it is.
    _, semicolon, marker = requirement.partition(";")
    if not semicolon or not marker.strip():
        return True
    try:
        return evaluate_marker(marker.strip(), env)
    except (Unsure, KeyError, IndexError, ValueError):
        return True


def copy_in_listing_order(source, target):
    # A tmpfs lists a folder newest first: entries created in the order the unpacked tree's
    # filesystem lists them come back reversed, so builds that walk folders unsorted see
    # another order than the first build did.
    for name in os.listdir(source):
        s, t = os.path.join(source, name), os.path.join(target, name)
        if os.path.islink(s):
            os.symlink(os.readlink(s), t)
        elif os.path.isdir(s):
            os.mkdir(t)
            shutil.copystat(s, t)
            copy_in_listing_order(s, t)
        else:
            shutil.copy2(s, t)


def console_scripts(site_dirs, bin_dir):
    # The build environment's commands (meson, cython, …), as an installer would make them:
    # a script per console_scripts entry point, run by this job's interpreter. Returns how many.
    import configparser
    made = 0
    for directory in site_dirs:
        for info in sorted(os.listdir(directory)):
            path = os.path.join(directory, info, "entry_points.txt")
            if not info.endswith(".dist-info") or not os.path.isfile(path):
                continue
            parser = configparser.ConfigParser(interpolation=None)
            try:
                parser.read(path)
            except configparser.Error:
                continue
            if not parser.has_section("console_scripts"):
                continue
            for name, value in parser.items("console_scripts"):
                module, _, attr = value.partition(":")
                module, attr = module.strip(), attr.split("[")[0].strip()
                if not (re.fullmatch(r"[A-Za-z0-9._-]+", name)
                        and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", module)
                        and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", attr)):
                    continue
                os.makedirs(bin_dir, exist_ok=True)
                script = os.path.join(bin_dir, name)
                made += 1
                with open(script, "w") as f:
                    f.write(
                        f"#!{sys.executable}\nimport sys\nfrom {module} import {attr.split('.')[0]}\n"
                        f"sys.exit({attr}())\n"
                    )
                os.chmod(script, 0o755)
        # A wheel's own scripts (`.data/scripts`, which rewheel unpacks to `.scripts`): a
        # `#!python` line names this interpreter, as installers rewrite it; anything else
        # (maturin's binary) is linked as it is.
        scripts = os.path.join(directory, ".scripts")
        if not os.path.isdir(scripts):
            continue
        for name in sorted(os.listdir(scripts)):
            source = os.path.join(scripts, name)
            if not re.fullmatch(r"[A-Za-z0-9._-]+", name) or not os.path.isfile(source):
                continue
            os.makedirs(bin_dir, exist_ok=True)
            script = os.path.join(bin_dir, name)
            if os.path.lexists(script):
                os.remove(script)
            with open(source, "rb") as f:
                head = f.read(256)
            if head.startswith(b"#!python"):
                with open(source, "rb") as f:
                    body = f.read().split(b"\n", 1)[1:]
                with open(script, "wb") as f:
                    f.write(f"#!{sys.executable}\n".encode() + b"".join(body))
                os.chmod(script, 0o755)
            else:
                os.symlink(source, script)
            made += 1
    return made


def install_file_clock(scratch):
    """Files this build writes carry the time of the clock it runs under.

    libfaketime moves the clock a build reads, but the kernel stamps the files it writes with
    the real time, and a backend that zips files with their modification time (setuptools'
    bdist_wheel without SOURCE_DATE_EPOCH) then stores today. Debian's libfaketime cannot
    fake what Python's os.stat returns (it has no stat64), so the interpreter that runs the
    backend does: a file whose real time falls in this build's window (from a second ago to
    a day on) is reported at the faked clock's time for it; older and explicitly set times
    (copies that keep their source's times) are reported as they are. The backend still writes
    its own archive; only what it reads of the clock changed.
    """
    spec = os.environ.get("FAKETIME", "")
    if not spec:
        return
    probe = os.path.join(scratch, ".file-clock")
    with open(probe, "w"):
        pass
    # Less a second: the kernel stamps files from a coarse clock, which can lag the probe's
    # own (finer) stamp by tens of milliseconds, so files written after it may read earlier.
    real_start_ns = os.stat(probe).st_mtime_ns - 10**9
    os.unlink(probe)
    import time

    # Python 3.6 has no time_ns; the faked clock is whole seconds (frozen) or moves by them.
    now_ns = getattr(time, "time_ns", None) or (lambda: int(time.time() * 10**9))
    fake_start_ns = now_ns()
    frozen = not spec.startswith(("@", "+", "-"))
    window_ns = 86400 * 10**9

    def moved(ns):
        if not real_start_ns <= ns <= real_start_ns + window_ns:
            return ns
        # A frozen clock stamps every new file at its one time; a moving one keeps the
        # files' distances in time.
        return now_ns() if frozen else ns + fake_start_ns - real_start_ns

    def rewrite(result):
        cls, (seq, extra) = result.__reduce__()
        seq, extra = list(seq), dict(extra)
        for field, index in (("atime", 7), ("mtime", 8), ("ctime", 9)):
            ns = moved(extra[f"st_{field}_ns"])
            extra[f"st_{field}_ns"] = ns
            extra[f"st_{field}"] = ns / 1e9
            seq[index] = ns // 10**9
        return cls(seq, dict=extra)

    class Faked:
        # Not a function: a function stored as a class attribute becomes a method, and
        # Python 3.9's pathlib keeps `stat = os.stat` in a class.
        def __init__(self, call):
            self.__wrapped__ = call

        def __call__(self, *args, **kwargs):
            return rewrite(self.__wrapped__(*args, **kwargs))

    wrap = Faked

    os.stat, os.lstat, os.fstat = wrap(os.stat), wrap(os.lstat), wrap(os.fstat)


def ext4_hash(name, seed):
    """ext4's (major, minor) hash of a name (bytes) under a seed of four words: the kernel's
    half_md4 with signed characters (fs/ext4/hash.c), as rewheel's rebuild::listing has it."""
    mask = 0xFFFFFFFF
    rounds = (
        (lambda x, y, z: z ^ (x & (y ^ z)), 0,
         ((0, 3), (1, 7), (2, 11), (3, 19), (4, 3), (5, 7), (6, 11), (7, 19))),
        (lambda x, y, z: ((x & y) + ((x ^ y) & z)) & mask, 0o13240474631,
         ((1, 3), (3, 5), (5, 9), (7, 13), (0, 3), (2, 5), (4, 9), (6, 13))),
        (lambda x, y, z: x ^ y ^ z, 0o15666365641,
         ((3, 3), (7, 9), (2, 11), (6, 15), (1, 3), (5, 9), (0, 11), (4, 15))),
    )
    buf = list(seed) if any(seed) else [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476]
    for start in range(0, len(name), 32):
        rest = name[start:]
        pad = len(rest) | (len(rest) << 8)
        pad = (pad | (pad << 16)) & mask
        words, val = [], pad
        for i, ch in enumerate(rest[:32]):
            val = ((ch - 256 if ch > 127 else ch) + (val << 8)) & mask
            if i % 4 == 3:
                words.append(val)
                val = pad
        if len(words) < 8:
            words.append(val)
        words += [pad] * (8 - len(words))
        regs = buf[:]
        for func, k, steps in rounds:
            for j, (index, shift) in enumerate(steps):
                # The registers rotate a, d, c, b from one step to the next.
                a = (4 - j % 4) % 4
                b, c, d = (a + 1) % 4, (a + 2) % 4, (a + 3) % 4
                x = (regs[a] + func(regs[b], regs[c], regs[d]) + words[index] + k) & mask
                regs[a] = ((x << shift) | (x >> (32 - shift))) & mask
        buf = [(x + y) & mask for x, y in zip(buf, regs)]
    major = buf[1] & ~1 & mask
    if major == 0x7FFFFFFF << 1:
        major = (0x7FFFFFFF - 1) << 1
    return major, buf[2]


def install_listing_order(value):
    """Folders the build reads list in the order an ext4 filesystem with this hash seed
    (`ext4:UUID`), or macOS's HFS+ (`hfs+`), lists them, as the publisher's did: a backend that zips what it finds in
    the order it finds it (poetry-core copying its metadata folder) then writes that order.
    What this process reads through os.scandir and os.listdir (glob, pathlib, os.walk,
    shutil) is reordered; programs it starts list as the job's own filesystem does."""
    if not value:
        return
    if value == "hfs+":
        # macOS's HFS+ keeps a folder's names in its catalog sorted without case (Unicode
        # folded; for the ASCII names of builds, lowercase), and lists them so.
        def key(name):
            text = name if isinstance(name, str) else os.fsdecode(name)
            return text.casefold(), text
    else:
        import uuid

        raw = uuid.UUID(value.split(":", 1)[1]).bytes
        seed = [int.from_bytes(raw[i:i + 4], "little") for i in range(0, 16, 4)]

        def key(name):
            return ext4_hash(name if isinstance(name, bytes) else os.fsencode(name), seed)

    class Listing:
        def __init__(self, entries):
            self._entries = iter(entries)

        def __iter__(self):
            return self

        def __next__(self):
            return next(self._entries)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.close()

        def close(self):
            self._entries = iter(())

    class Scandir:
        # Not a function, as the file clock's wrapper: Python 3.9's pathlib keeps
        # `scandir = os.scandir` in a class.
        def __init__(self, call):
            self.__wrapped__ = call

        def __call__(self, *args, **kwargs):
            with self.__wrapped__(*args, **kwargs) as found:
                entries = list(found)
            entries.sort(key=lambda e: key(e.name))
            return Listing(entries)

    class Listdir:
        def __init__(self, call):
            self.__wrapped__ = call

        def __call__(self, *args, **kwargs):
            return sorted(self.__wrapped__(*args, **kwargs), key=key)

    os.scandir, os.listdir = Scandir(os.scandir), Listdir(os.listdir)
    accessor = getattr(sys.modules.get("pathlib"), "_NormalAccessor", None)
    if accessor is not None:
        accessor.scandir, accessor.listdir = os.scandir, os.listdir


def keep_sdist_times(times_file, base):
    # The sdist's own file times and permission bits, as `python -m build` unpacks an sdist
    # before building its wheel (tarfile sets the archive's bits, whatever the umask); paths
    # are the archive's, checked to stay below the unpacked tree, and links are neither
    # followed nor changed.
    with open(times_file) as f:
        times = json.load(f)
    root = os.path.realpath(base)
    for rel, mtime, mode in times:
        path = os.path.normpath(os.path.join(base, rel))
        if os.path.commonpath([root, os.path.realpath(os.path.dirname(path))]) != root:
            continue
        try:
            if not os.path.islink(path):
                os.chmod(path, mode & 0o777)
            os.utime(path, (mtime, mtime), follow_symlinks=False)
        except OSError:
            pass


def repair(command, out_dir, wheel):
    """The cell's repair step, as a manylinux image's release runs it after the build:
    `auditwheel repair` copies the libraries the extensions load from outside the policy into
    the wheel and retags it; its output replaces the backend's. A wheel with no platform tag
    of Linux's own (pure, or tagged already) is left as the backend made it."""
    if not wheel.endswith(("-linux_x86_64.whl", "-linux_aarch64.whl", "-linux_i686.whl")):
        return wheel
    import subprocess
    import tempfile

    repaired = tempfile.mkdtemp(prefix="repaired-", dir=os.path.dirname(out_dir))
    subprocess.run(
        list(command) + ["repair", "--wheel-dir", repaired, os.path.join(out_dir, wheel)],
        check=True,
        stdout=sys.stderr,
    )
    made = [n for n in os.listdir(repaired) if n.endswith(".whl")]
    if len(made) != 1:
        raise RuntimeError(f"{' '.join(command)} repair made {len(made)} wheels, not one")
    os.unlink(os.path.join(out_dir, wheel))
    os.replace(os.path.join(repaired, made[0]), os.path.join(out_dir, made[0]))
    os.rmdir(repaired)
    return made[0]


def main():
    request_path, result_path = sys.argv[1], sys.argv[2]
    with open(request_path) as f:
        request = json.load(f)
    result = {"phase": "start"}

    def write():
        with open(result_path + ".tmp", "w") as f:
            json.dump(result, f)
        os.replace(result_path + ".tmp", result_path)

    try:
        for directory in request["site_dirs"]:
            # addsitedir processes .pth files, as an installed environment would.
            site.addsitedir(directory)
        # Pythons the build starts (cmake running `python3 -m cython`, setup.py helpers) see the
        # build environment too, as they would under pip's isolation.
        os.environ["PYTHONPATH"] = os.pathsep.join(
            request["site_dirs"] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        )
        # Beside the environment, named after it: where its tools are moves with it.
        bin_dir = request["bin_dir"]
        # Only when there are any: PATH stays as the job set it (and as exec-path varies it).
        if console_scripts(request["site_dirs"], bin_dir):
            os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        source_dir = request["source_dir"]
        if request.get("order_from"):
            result["phase"] = "file-order"
            copy_in_listing_order(request["order_from"], request["order_to"])
        if request.get("times"):
            result["phase"] = "sdist-times"
            keep_sdist_times(request["times"], request["times_base"])
        os.chdir(source_dir)
        install_file_clock(os.path.dirname(request["out_dir"]))
        install_listing_order(request.get("listing_order"))
        result["phase"] = "load-backend"
        if request.get("setup_py") is not None:
            backend = SetupPy(request["setup_py"])
        else:
            backend = load_backend(request["backend"], source_dir, request["backend_path"])
        result["phase"] = "get_requires_for_build_wheel"
        hook = getattr(backend, "get_requires_for_build_wheel", None)
        # PEP 517 config_settings from the package's settings (strings or lists of strings).
        config = request.get("config_settings") or {}
        result["requires"] = list(hook(config)) if hook else []
        # A probe asks the hook only: rewheel learns what the backend adds at build time.
        if request.get("probe", False):
            result["phase"] = "requires"
            write()
            return
        # Requirements the backend adds at build time that apply to this interpreter (markers
        # first: flit-core names `ruff; extra == "all"` for idna) and are not installed: stop,
        # so rewheel can build them and run this job again with them.
        installed = set(request.get("installed", []))
        env = marker_environment()
        missing = [
            r for r in result["requires"]
            if applies(r, env) and normalize(requirement_name(r)) not in installed
        ]
        if missing and not request.get("proceed", False):
            result["phase"] = "needs"
            result["missing"] = missing
            write()
            return
        write()
        result["phase"] = "build_wheel"
        result["wheel"] = backend.build_wheel(request["out_dir"], config)
        if request.get("repair"):
            result["phase"] = "repair"
            result["wheel"] = repair(request["repair"], request["out_dir"], result["wheel"])
        result["phase"] = "done"
        write()
    except BaseException as error:  # noqa: BLE001 - any failure is reported, not raised
        result["error"] = "".join(traceback.format_exception_only(type(error), error)).strip()
        traceback.print_exc()
        write()
        sys.exit(1)


if __name__ == "__main__":
    main()
