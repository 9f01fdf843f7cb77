"""Requests/second of the takedown HTTP sinkhole next to nginx, measured with wrk on loopback.

Both servers run on this machine in the same run, rounds interleaved, and are driven by the
same wrk script: a Rustock-like check-in (POST /login.php, 96-byte body, a C2 Host name), once
with keep-alive and once with ``Connection: close`` on every request.

* nginx (the system's /usr/sbin/nginx) runs from a temporary prefix with its own config:
  ``worker_processes 2``, an unbuffered ``access_log`` in the default combined format and
  ``return 200 ""`` for every request. Its access log is counted afterwards.
* the sinkhole is ``python -m takedown --home TMP sinkhole serve --workers N``: every request
  is fdatasync'd to the spool (group commit) before it is answered. After each run the spool
  is ingested and the lake's event count is checked against what wrk saw answered.

Traffic stays on 127.0.0.1; every wrk run is bounded by ``--duration`` and every wait has a
timeout. Run from the project root::

    .venv/bin/python bench/bench_sinkhole.py            # full: 10 s runs, 3 rounds
    .venv/bin/python bench/bench_sinkhole.py --quick    # smoke: 2 s, 1 round
    .venv/bin/python bench/bench_sinkhole.py --write    # and update bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

SECTION = "## Sinkhole vs nginx (wrk)"
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
RESULTS_HEADER = (
    "# takedown benchmarks\n\n"
    "Measured figures, one section per benchmark; each section names the command, date and "
    "machine that produced it. Sections are rewritten by their own script (`--write`).\n"
)
HOST = "127.0.0.1"
C2_HOST = "onlinescannow.example"
USER_AGENT = "Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1; SV1)"
BODY_SIZE = 96
MODES = ("keep-alive", "close")
TARGETS = {"keep-alive": 0.50, "close": 0.80}  # sinkhole rps / nginx rps, from the issue
NGINX = "/usr/sbin/nginx"
WRK = "/usr/bin/wrk"
TICK = os.sysconf("SC_CLK_TCK")


# -- the request -------------------------------------------------------------------------------
def checkin_body() -> bytes:
    """96 bytes that look like Rustock's RC4-encrypted key exchange (fixed, random-looking)."""
    return (hashlib.sha256(b"rustock-login").digest() * 3)[:BODY_SIZE]


def wrk_script(close: bool) -> str:
    body = "".join(f"\\{b:03d}" for b in checkin_body())
    lines = [
        'wrk.method = "POST"',
        'wrk.path = "/login.php"',
        f'wrk.body = "{body}"',
        f'wrk.headers["Host"] = "{C2_HOST}"',
        f'wrk.headers["User-Agent"] = "{USER_AGENT}"',
        'wrk.headers["Content-Type"] = "application/octet-stream"',
    ]
    if close:
        lines.append('wrk.headers["Connection"] = "close"')
    lines += [
        "done = function(summary, latency, requests)",
        "  local e = summary.errors",
        '  io.write(string.format("WRKJSON {\\"requests\\":%d,\\"duration_us\\":%d,'
        '\\"connect\\":%d,\\"read\\":%d,\\"write\\":%d,\\"status\\":%d,\\"timeout\\":%d,'
        '\\"p50_us\\":%d,\\"p90_us\\":%d,\\"p99_us\\":%d,\\"max_us\\":%d}\\n",',
        "    summary.requests, summary.duration, e.connect, e.read, e.write, e.status,",
        "    e.timeout, latency:percentile(50), latency:percentile(90),",
        "    latency:percentile(99), latency.max))",
        "end",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class WrkResult:
    requests: int
    seconds: float
    errors: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def run_wrk(port: int, script: Path, seconds: float, threads: int, connections: int) -> WrkResult:
    cmd = [
        WRK,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "5s",
        "--latency",
        "-s",
        str(script),
        f"http://{HOST}:{port}/",
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
    match = re.search(r"^WRKJSON (\{.*\})$", out.stdout, re.M)
    if out.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stdout}\n{out.stderr}")
    data = json.loads(match.group(1))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors={k: data[k] for k in ("connect", "read", "write", "status", "timeout") if data[k]},
        p50_ms=data["p50_us"] / 1e3,
        p90_ms=data["p90_us"] / 1e3,
        p99_ms=data["p99_us"] / 1e3,
        max_ms=data["max_us"] / 1e3,
    )


# -- processes ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with code {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {HOST}:{port} after {timeout:.0f}s")


def process_tree(pid: int) -> list[int]:
    """pid and its descendants (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, todo = [pid], [pid]
    while todo:
        cur = todo.pop()
        kids = [p for p, pp in parents.items() if pp == cur]
        tree += kids
        todo += kids
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """User+system CPU seconds used so far by these processes (threads included)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def machine_cpu_seconds() -> float:
    """CPU seconds all CPUs have spent busy since boot (/proc/stat, idle and iowait excluded)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = [int(x) for x in fields]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / TICK  # user..steal minus idle, iowait


def time_wait_sockets() -> int:
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            parts = line.split()
            return int(parts[parts.index("tw") + 1])
    return 0


def children_cpu_seconds() -> float:
    use = resource.getrusage(resource.RUSAGE_CHILDREN)
    return use.ru_utime + use.ru_stime


def settle(max_wait: float, busy_cpus: float = 0.25, max_tw: int = 2000) -> tuple[float, float]:
    """Wait for a quiet machine: few TIME_WAIT sockets (at most 75 s, their lifetime is 60 s)
    and little CPU use by others (at most max_wait s).

    The TIME_WAIT sockets a previous `Connection: close` run left slow down connect() once the
    ephemeral ports run short, and other work on the machine takes CPU from both servers alike;
    either would tilt the next run. Returns (seconds waited, CPUs busy in the last sample).
    """
    start = time.monotonic()
    while True:
        cpu0 = machine_cpu_seconds()
        time.sleep(0.5)
        busy = (machine_cpu_seconds() - cpu0) / 0.5
        waited = time.monotonic() - start
        ports_ok = time_wait_sockets() <= max_tw or waited >= 75
        cpu_ok = busy <= busy_cpus or waited >= max_wait
        if ports_ok and cpu_ok:
            return waited, busy


def stop(proc: subprocess.Popen[bytes], sig: int, timeout: float = 60.0) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        for pid in reversed(process_tree(proc.pid)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        proc.wait(10)
        raise RuntimeError(f"server pid {proc.pid} ignored signal {sig}; killed") from None


NGINX_CONF = """\
worker_processes 2;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    # Default combined format, unbuffered: one write(2) per request.
    access_log {dir}/access.log combined;
    # Let keep-alive connections live as long as the sinkhole's (nginx's default is 1000).
    keepalive_requests 1000000;
    server {{
        listen {host}:{port} backlog=4096;
        location / {{ return 200 ""; }}
    }}
}}
"""


@dataclass
class Run:
    server: str
    mode: str
    round: int
    wrk: WrkResult
    cpu_s: float  # server processes' CPU seconds during the measured wrk run
    wrk_cpu_s: float
    other_cpus: float  # mean CPUs used by anything else on the machine during the run
    waited_s: float  # time spent waiting for a quiet machine before this run
    logged: int  # nginx: access-log lines; sinkhole: events in the lake after ingest
    answered: int  # requests wrk saw completed in this server's life (warm-up included)

    @property
    def durable_ok(self) -> bool:
        return self.logged >= self.answered


@contextlib.contextmanager
def nginx_server(base: Path) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    work = Path(tempfile.mkdtemp(prefix="nginx-", dir=base))
    (work / "tmp").mkdir()
    work.chmod(0o755)
    port = free_port()
    (work / "nginx.conf").write_text(NGINX_CONF.format(dir=work, host=HOST, port=port))
    cmd = [NGINX, "-p", str(work), "-c", str(work / "nginx.conf"), "-e", str(work / "error.log")]
    cmd += ["-g", "daemon off;"]
    with open(work / "stdout.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, proc)
        yield port, proc, work
    finally:
        stop(proc, signal.SIGQUIT)  # graceful: finish requests, flush, exit


@contextlib.contextmanager
def sinkhole_server(
    base: Path, python: str, workers: int
) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    home = Path(tempfile.mkdtemp(prefix=f"sinkhole-w{workers}-", dir=base))
    port = free_port()
    cmd = [python, "-m", "takedown", "--home", str(home), "sinkhole", "serve"]
    cmd += ["--http", f"{HOST}:{port}", "--workers", str(workers)]
    with open(home / "server.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        names = [f"sinkhole-w{i}.json" for i in range(workers)]
        if workers == 1:
            names = ["sinkhole.json"]
        deadline = time.monotonic() + 30
        while not all((home / "run" / n).exists() for n in names):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sinkhole did not start; see {home / 'server.log'}")
            time.sleep(0.05)
        wait_listening(port, proc)
        yield port, proc, home
    finally:
        code = stop(proc, signal.SIGTERM)
        if code != 0:
            raise RuntimeError(f"sinkhole exited with {code}; see {home / 'server.log'}")


def lake_events(python: str, home: Path) -> int:
    """Ingest the spool, then count the lake's events (takedown status)."""
    base = [python, "-m", "takedown", "--home", str(home)]
    subprocess.run([*base, "ingest"], check=True, capture_output=True, timeout=300)
    out = subprocess.run(
        [*base, "status", "--format", "json"], check=True, capture_output=True, timeout=120
    )
    rows = json.loads(out.stdout)
    waiting = sum(r.get("waiting_events") or 0 for r in rows if r.get("kind") == "spool")
    if waiting:
        raise RuntimeError(f"{waiting} events still waiting in {home}/spool after ingest")
    return sum(r.get("events") or 0 for r in rows if r.get("kind") == "lake-day")


def measure(
    server: str, mode: str, rnd: int, args: argparse.Namespace, base: Path, scripts: dict[str, Path]
) -> Run:
    script = scripts[mode]
    if server == "nginx":
        ctx = nginx_server(base)
    else:
        ctx = sinkhole_server(base, args.python, int(server.rsplit("w", 1)[1]))
    waited, _ = settle(args.settle)
    with ctx as (port, proc, work):
        answered = 0
        if args.warmup > 0:
            answered += run_wrk(port, script, args.warmup, args.threads, args.connections).requests
        pids = process_tree(proc.pid)
        cpu0, wrk0, all0 = cpu_seconds(pids), children_cpu_seconds(), machine_cpu_seconds()
        t0 = time.monotonic()
        result = run_wrk(port, script, args.duration, args.threads, args.connections)
        elapsed = time.monotonic() - t0
        cpu, wrk_cpu = cpu_seconds(pids) - cpu0, children_cpu_seconds() - wrk0
        other = max(0.0, machine_cpu_seconds() - all0 - cpu - wrk_cpu) / elapsed
        answered += result.requests
    if server == "nginx":
        with open(work / "access.log", "rb") as fh:
            logged = sum(1 for _ in fh)
    else:
        logged = lake_events(args.python, work)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return Run(server, mode, rnd, result, cpu, wrk_cpu, other, waited, logged, answered)


# -- report ------------------------------------------------------------------------------------
@dataclass
class Summary:
    server: str
    mode: str
    runs: list[Run] = field(default_factory=list)

    def med(self, attr: str) -> float:
        return statistics.median(getattr(r.wrk, attr) for r in self.runs)

    @property
    def cpu_us_per_req(self) -> float:
        return statistics.median(r.cpu_s / max(r.wrk.requests, 1) * 1e6 for r in self.runs)

    @property
    def wrk_us_per_req(self) -> float:
        return statistics.median(r.wrk_cpu_s / max(r.wrk.requests, 1) * 1e6 for r in self.runs)


def label(server: str) -> str:
    return "nginx (2 workers)" if server == "nginx" else f"sinkhole --workers {server[-1]}"


def markdown(summaries: dict[tuple[str, str], Summary], servers: list[str], headline: str) -> str:
    out = [
        "| mode | server | rps (median) | rounds rps | p50 ms | p99 ms | vs nginx | target "
        "| server CPU µs/req | wrk CPU µs/req | other load (CPUs) | errors | logged ≥ answered |",
        "| --- | --- | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for mode in MODES:
        ref = summaries[("nginx", mode)].med("rps")
        for server in servers:
            s = summaries[(server, mode)]
            rps = s.med("rps")
            ratio = rps / ref if ref else 0.0
            if server == "nginx":
                verdict = "—"
            else:
                ok = ratio >= TARGETS[mode]
                verdict = f"≥ {TARGETS[mode]:.0%}: {'**met**' if ok else '**missed**'}"
                if server != headline:
                    verdict += " (not headline)"
            rounds = " / ".join(f"{r.wrk.rps:,.0f}" for r in s.runs)
            errors = sum(r.wrk.error_count for r in s.runs)
            durable = ", ".join(f"{r.logged:,}/{r.answered:,}" for r in s.runs)
            mark = "yes" if all(r.durable_ok for r in s.runs) else "**NO**"
            other = " / ".join(f"{r.other_cpus:.2f}" for r in s.runs)
            out.append(
                f"| {mode} | {label(server)} | {rps:,.0f} | {rounds} | {s.med('p50_ms'):.2f} "
                f"| {s.med('p99_ms'):.2f} | {ratio:.1%} | {verdict} | {s.cpu_us_per_req:,.0f} "
                f"| {s.wrk_us_per_req:,.0f} | {other} | {errors} | {mark} ({durable}) |"
            )
    busy = max(r.other_cpus for s in summaries.values() for r in s.runs)
    if busy > 0.5:
        out.append(
            f"\n**Caution:** other processes used up to {busy:.1f} of the machine's CPUs during "
            "these runs; absolute figures are depressed and noisy (interleaving keeps the ratios "
            "roughly comparable). Re-run on an idle machine for clean figures."
        )
    return "\n".join(out) + "\n"


def version_of(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except OSError as exc:
        return f"unavailable ({exc})"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0].strip() if text else "?"


def machine() -> dict[str, str]:
    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "kernel": platform.release(),
        "nginx": version_of([NGINX, "-v"]),
        "wrk": version_of([WRK, "-v"]),
        "python": platform.python_version(),
        "takedown": version_of(
            ["git", "-C", str(RESULTS.parent.parent), "describe", "--always", "--dirty"]
        ),
    }


def filesystem_of(path: Path) -> str:
    best = ("", "?", "?")
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            dev, mnt, fstype = line.split()[:3]
            if str(path).startswith(mnt) and len(mnt) >= len(best[0]):
                best = (mnt, fstype, dev)
    return f"{best[1]} on {best[2]} (mounted at {best[0]})"


def section(
    table: str, args: argparse.Namespace, info: dict[str, str], headline: str, base: Path
) -> str:
    cmd = shlex.join([".venv/bin/python", "bench/bench_sinkhole.py", *sys.argv[1:]])
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{SECTION}\n\n"
        f"Command: `{cmd}` (from the project root)  \n"
        f"Date: {when}  \n"
        f"Machine: {info['nproc']} CPUs, {info['cpu']}, Linux {info['kernel']}; spool and "
        f"nginx log on {filesystem_of(base)}  \n"
        f"Versions: {info['nginx']}; {info['wrk']}; Python {info['python']}; takedown at "
        f"`{info['takedown']}`\n\n"
        f"wrk `-t{args.threads} -c{args.connections} -d{args.duration:g}s --latency`, "
        f"{args.rounds} interleaved round(s) per mode, {args.warmup:g} s warm-up per server "
        f"start; request: `POST /login.php`, {BODY_SIZE}-byte body, `Host: {C2_HOST}`; mode "
        "`close` adds `Connection: close` to every request. Figures are medians over rounds. "
        "wrk shares the machine's CPUs with the server under test.\n\n"
        f"{table}\n"
        f"Headline: `{label(headline)}` (nginx runs `worker_processes 2`, so two sinkhole "
        "workers is the like-for-like setting on this 2-CPU machine).\n"
        'nginx: unbuffered combined `access_log`, `return 200 ""`, '
        "`keepalive_requests 1000000`. Sinkhole: every request fdatasync'd to its spool "
        "(group commit) before the answer.\n"
        "Logged ≥ answered: nginx access-log lines, or sinkhole events in the lake after "
        "`takedown ingest`, against requests wrk saw completed (warm-up included), per round.\n"
        "CPU columns: the server's processes (and wrk) in CPU µs per completed request; other "
        "load: CPUs used by anything else on the machine during the run (the script waits up "
        f"to {args.settle:g} s for it to drop below 0.25 before each run). `close` runs "
        "recycle ~28k ephemeral ports on loopback, so they are bounded by the kernel's "
        "connect() as much as by the server.\n"
    )


def write_results(text: str, path: Path = RESULTS) -> None:
    old = path.read_text() if path.exists() else RESULTS_HEADER
    start = old.find(SECTION + "\n")
    if start < 0:
        new = old.rstrip("\n") + "\n\n" + text
    else:
        nxt = re.search(r"^## ", old[start + len(SECTION) :], re.M)
        end = start + len(SECTION) + nxt.start() if nxt else len(old)
        rest = old[end:]
        new = old[:start] + text + ("\n" + rest if rest else "")
    path.write_text(new.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per mode")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 s, 1 round")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of wrk before measuring")
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", default="2,1", help="sinkhole worker counts to run, e.g. 2,1")
    p.add_argument("--modes", default=",".join(MODES), help="keep-alive,close")
    p.add_argument("--python", default=sys.executable, help="interpreter running the sinkhole")
    p.add_argument("--tmpdir", default=None, help="where homes and nginx prefixes go")
    p.add_argument(
        "--settle",
        type=float,
        default=30.0,
        help="before each run, wait at most this long for other CPU use to stop (0: don't)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary homes and logs")
    p.add_argument("--write", action="store_true", help=f"update the section in {RESULTS.name}")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.rounds = 2.0, 1
        args.warmup, args.settle = min(args.warmup, 0.5), min(args.settle, 5.0)
    for tool in (NGINX, WRK):
        if not os.access(tool, os.X_OK):
            p.error(f"{tool} is needed (apt-get install nginx-light wrk)")
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    servers = ["nginx", *[f"sinkhole-w{w}" for w in workers]]
    headline = "sinkhole-w2" if 2 in workers else servers[1]
    modes = [m for m in MODES if m in args.modes.split(",")]
    info = machine()
    print(f"# {info['nproc']} CPUs, {info['cpu']}; {info['nginx']}; {info['wrk']}", flush=True)

    base = Path(tempfile.mkdtemp(prefix="bench-sinkhole-", dir=args.tmpdir))
    base.chmod(0o755)
    summaries = {(s, m): Summary(s, m) for s in servers for m in MODES}
    try:
        scripts = {}
        for mode in MODES:
            scripts[mode] = base / f"checkin-{mode}.lua"
            scripts[mode].write_text(wrk_script(close=mode == "close"))
        for mode in modes:
            for rnd in range(args.rounds):
                order = servers[rnd % len(servers) :] + servers[: rnd % len(servers)]
                for server in order:
                    run = measure(server, mode, rnd, args, base, scripts)
                    summaries[(server, mode)].runs.append(run)
                    w = run.wrk
                    print(
                        f"{mode:10} round {rnd + 1} {label(server):22} {w.rps:9,.0f} rps  "
                        f"p50 {w.p50_ms:6.2f} ms  p99 {w.p99_ms:6.2f} ms  "
                        f"cpu {run.cpu_s:5.1f} s  wrk {run.wrk_cpu_s:4.1f} s  "
                        f"other {run.other_cpus:4.2f} CPUs (waited {run.waited_s:3.0f} s)  "
                        f"errors {w.errors or 0}  "
                        f"logged {run.logged:,} / answered {run.answered:,}",
                        flush=True,
                    )
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"# kept {base}")
    if len(modes) < len(MODES):
        print("# not every mode was run; no table")
        return 1
    table = markdown(summaries, servers, headline)
    print()
    print(table)
    if args.write:
        write_results(section(table, args, info, headline, base))
        print(f"# wrote {SECTION!r} in {RESULTS}")
    failed = [s for s in summaries.values() for r in s.runs if not r.durable_ok]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
