"""The C modules under AddressSanitizer and UndefinedBehaviorSanitizer.

Bot traffic is hostile input and ``_scan`` reads it with pointers; ``_commit`` hands buffers to a
thread; ``_ipc`` writes a block's rows into one buffer it sized itself. Here all three are
compiled again with ``-fsanitize=address,undefined`` and the fuzz tests of test_scan.py,
test_commit.py and test_ipc.py run against those builds in a child process (preloading the
sanitizer runtimes): any out-of-bounds access, use after free or undefined behaviour aborts it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUFFIX = sysconfig.get_config_var("EXT_SUFFIX")
NAMES = ("_scan", "_commit", "_ipc")
LOADER = f"""
import importlib.util, sys
for name in {NAMES!r}:
    full = "takedown.sinkhole." + name
    spec = importlib.util.spec_from_file_location(full, sys.argv[1] + "/" + name + sys.argv[2])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[full] = module
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-p", "no:faulthandler", *sys.argv[3:]]))
"""


def _runtime(name: str) -> str | None:
    found = subprocess.run(
        ["gcc", f"-print-file-name={name}"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return found if found and os.path.isabs(found) and os.path.exists(found) else None


def test_fuzzing_the_c_modules_under_asan_and_ubsan(tmp_path: Path):
    if shutil.which("gcc") is None:
        pytest.skip("no gcc to build sanitized copies")
    asan, ubsan = _runtime("libasan.so"), _runtime("libubsan.so")
    if asan is None or ubsan is None:
        pytest.skip("gcc's sanitizer runtimes (libasan, libubsan) are not installed")
    include = sysconfig.get_paths()["include"]
    for name in NAMES:
        subprocess.run(
            [
                "gcc",
                "-O1",
                "-g",
                "-fsanitize=address,undefined",
                "-fno-omit-frame-pointer",
                "-fno-sanitize-recover=undefined",
                "-fPIC",
                "-shared",
                f"-I{include}",
                str(ROOT / "takedown" / "sinkhole" / f"{name}.c"),
                "-o",
                str(tmp_path / f"{name}{SUFFIX}"),
                "-lpthread",
            ],
            check=True,
        )
    env = {
        **os.environ,
        "LD_PRELOAD": f"{asan} {ubsan}",
        # Reports go to files: the child's pytest captures its stderr and dies with it.
        "ASAN_OPTIONS": f"detect_leaks=0:abort_on_error=1:log_path={tmp_path}/asan",
        "UBSAN_OPTIONS": f"print_stacktrace=1:halt_on_error=1:log_path={tmp_path}/ubsan",
        "FUZZ_EXAMPLES": "300",
        "PYTHONPATH": str(ROOT / "tests"),
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            LOADER,
            str(tmp_path),
            SUFFIX,
            str(ROOT / "tests" / "test_scan.py"),
            str(ROOT / "tests" / "test_commit.py"),
            str(ROOT / "tests" / "test_ipc.py"),
            "-k",
            "not uses_the_c_reader",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    reports = "".join(p.read_text() for p in sorted(tmp_path.glob("*san.*")))
    tail = reports[:3000] or (done.stdout + done.stderr)[-3000:]
    assert done.returncode == 0, tail
    assert not reports, tail
    assert " passed" in done.stdout and "failed" not in done.stdout, tail
