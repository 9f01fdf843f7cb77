"""Benchmark offline enrichment (IP → ASN, AS name, network, country) against geoip2fast.

Same addresses, same run, same data: geoip2fast 1.2.2's ``geoip2fast-asn-ipv6.dat.gz`` is what
``Enricher.default()`` embeds. The sample (not timed) is ``--n`` addresses, seeded: a share
IPv6 (``--v6-share``), and in each family a share drawn inside announced networks
(``--announced-share``) with the rest uniform over the space (IPv4 over 0.0.0.0/0, IPv6 over
2000::/3 and a tenth over ::/0).

Timed, ``--reps`` times each, medians reported:

* ours: ``Enricher.enrich_arrow`` on an Arrow string array (parse text, search, build the
  result struct of asn, as_name, network, cc, error with plain string columns), for the mixed
  sample and for its IPv4 and IPv6 parts alone; ``enrich_arrow(dictionary=True)``; and
  ``Enricher.lookup`` (a list of dicts, the per-address convenience form);
* geoip2fast: ``[GeoIP2Fast.lookup(ip) for ip in ips]`` over the same addresses (IPv4 part and
  IPv6 part timed separately; their sum is the mixed figure).

Agreement with geoip2fast is counted on the whole sample, with every disagreement put in a
class (see ``takedown.enrich.crosscheck``).

Usage::

    .venv/bin/python bench/bench_enrich.py                    # 1,000,000 addresses, 3 reps
    .venv/bin/python bench/bench_enrich.py --n 200000 --reps 3
    .venv/bin/python bench/bench_enrich.py --write            # and update bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from results import write_section

from takedown.enrich import Enricher
from takedown.enrich.crosscheck import CrossCheck, geoip2fast_reader, tally
from takedown.enrich.ipsample import mixed_sample

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
SECTION = "## Enrichment vs geoip2fast"
TARGET = 20.0


@dataclass
class Timing:
    """Wall and CPU seconds of each repetition."""

    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, wall: float, cpu: float) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)


def timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def machine() -> dict[str, str]:
    model = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import geoip2fast
    import maxminddb

    return {
        "nproc": str(os.cpu_count()),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": (
            f"numpy {np.__version__}, pyarrow {pa.__version__}, geoip2fast "
            f"{geoip2fast.__version__}, maxminddb {maxminddb.__version__}"
        ),
    }


def load_average() -> str:
    try:
        return " / ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}" if seconds > 0 else "∞"


def our_rows(result: pa.StructArray) -> list[dict[str, Any]]:
    cols = {k: result.field(k).to_pylist() for k in ("as_name", "network", "cc")}
    return [
        {"as_name": a, "network": n, "cc": c}
        for a, n, c in zip(cols["as_name"], cols["network"], cols["cc"], strict=True)
    ]


def run(args: argparse.Namespace) -> str:
    load_before = load_average()
    e, t_load_ours, _ = timed(Enricher.default)
    reader, t_load_g2f, _ = timed(geoip2fast_reader)
    sample = mixed_sample(
        e.asn_table().column("network"),
        args.n,
        seed=args.seed,
        v6_share=args.v6_share,
        announced_share=args.announced_share,
    )
    is6 = np.asarray(pc.match_substring(sample, ":").to_numpy(zero_copy_only=False), bool)
    arr4 = sample.filter(pa.array(~is6))
    arr6 = sample.filter(pa.array(is6))
    ips4, ips6 = arr4.to_pylist(), arr6.to_pylist()
    ips = sample.to_pylist()
    n, n4, n6 = len(ips), len(ips4), len(ips6)
    print(f"sample: {n:,} addresses ({n4:,} IPv4, {n6:,} IPv6)", file=sys.stderr)

    ours: dict[str, Timing] = {k: Timing() for k in ("mixed", "v4", "v6", "dict", "lookup")}
    theirs: dict[str, Timing] = {k: Timing() for k in ("v4", "v6")}
    first_theirs: list[Any] = []
    first_ours: pa.StructArray | None = None
    lookup = reader.lookup
    for rep in range(args.reps):
        print(f"rep {rep + 1}/{args.reps}", file=sys.stderr)
        out, w, c = timed(lambda: e.enrich_arrow(sample))
        ours["mixed"].add(w, c)
        if first_ours is None:
            first_ours = out
        del out
        for key, arr in (("v4", arr4), ("v6", arr6)):
            _, w, c = timed(lambda arr=arr: e.enrich_arrow(arr))  # type: ignore[misc]
            ours[key].add(w, c)
        _, w, c = timed(lambda: e.enrich_arrow(sample, dictionary=True))
        ours["dict"].add(w, c)
        if not args.skip_lookup:
            _, w, c = timed(lambda: e.lookup(ips))
            ours["lookup"].add(w, c)
        for key, lst in (("v4", ips4), ("v6", ips6)):
            res, w, c = timed(lambda lst=lst: [lookup(ip) for ip in lst])  # type: ignore[misc]
            theirs[key].add(w, c)
            if rep == 0:
                first_theirs.extend(res)
            del res
    assert first_ours is not None
    # Agreement on the whole sample (geoip2fast results of rep 1, in v4-then-v6 order).
    ours_rows = our_rows(first_ours)
    order = np.concatenate([np.flatnonzero(~is6), np.flatnonzero(is6)])
    ours_sorted = [ours_rows[i] for i in order.tolist()]
    ips_sorted = [ips[i] for i in order.tolist()]
    check = tally(ips_sorted, ours_sorted, first_theirs)
    missing = {
        fam: sum(r.country_name == "<not found in database>" for r in part) / max(len(part), 1)
        for fam, part in (("v4", first_theirs[:n4]), ("v6", first_theirs[n4:]))
    }
    return render(
        args, n, n4, n6, ours, theirs, check, t_load_ours, t_load_g2f, load_before, missing
    )


def render(
    args: argparse.Namespace,
    n: int,
    n4: int,
    n6: int,
    ours: dict[str, Timing],
    theirs: dict[str, Timing],
    check: CrossCheck,
    t_load_ours: float,
    t_load_g2f: float,
    load_before: str,
    missing: dict[str, float],
) -> str:
    info = machine()
    g_mixed = statistics.median(
        [a + b for a, b in zip(theirs["v4"].wall, theirs["v6"].wall, strict=True)]
    )
    g_mixed_cpu = statistics.median(
        [a + b for a, b in zip(theirs["v4"].cpu, theirs["v6"].cpu, strict=True)]
    )

    def row(what: str, count: int, mine: Timing, g_wall: float, g_cpu: float) -> str:
        ratio = g_wall / mine.median
        ok = "met" if ratio >= TARGET else "**missed**"
        return (
            f"| {what} | {count:,} | {mine.median:.3f} | {rate(count, mine.median)} | "
            f"{g_wall:.2f} | {rate(count, g_wall)} | **{ratio:.1f}×** | "
            f"{g_cpu / mine.median_cpu:.1f}× | ≥ {TARGET:.0f}×: {ok} |"
        )

    lines = [
        SECTION,
        "",
        f"Command: `{shlex.join(['.venv/bin/python', 'bench/bench_enrich.py', *sys.argv[1:]])}` "
        "(from the project root)  ",
        f"Date: {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC  ",
        f"Machine: {info['nproc']} CPUs, {info['cpu']}, Linux {info['kernel']}; load average "
        f"(1/5/15 min) before: {load_before}, after: {load_average()}  ",
        f"Versions: Python {info['python']}, {info['versions']}",
        "",
        f"{n:,} addresses ({n4:,} IPv4, {n6:,} IPv6; seed {args.seed}; "
        f"{args.announced_share:.0%} inside announced networks, the rest uniform), "
        f"{args.reps} repetitions, medians. Ours: `Enricher.enrich_arrow` on an Arrow string "
        "array, text parsing included, result = struct of asn, as_name, network, cc, error "
        "(plain strings). geoip2fast: `[g.lookup(ip) for ip in ips]`, same data file "
        "(`geoip2fast-asn-ipv6.dat.gz`, GeoLite2 2024-06-18). Ratio = geoip2fast wall time / "
        "ours; CPU ratio from process CPU time.",
        "",
        "| addresses | count | ours s | ours addr/s | geoip2fast s | geoip2fast addr/s | "
        "ratio (wall) | ratio (CPU) | target |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
        row("mixed (headline)", n, ours["mixed"], g_mixed, g_mixed_cpu),
        row("IPv4 only", n4, ours["v4"], theirs["v4"].median, theirs["v4"].median_cpu),
        row("IPv6 only", n6, ours["v6"], theirs["v6"].median, theirs["v6"].median_cpu),
        row("mixed, dictionary=True", n, ours["dict"], g_mixed, g_mixed_cpu),
    ]
    if ours["lookup"].wall:
        lines.append(
            row("mixed, `lookup()` → list of dicts", n, ours["lookup"], g_mixed, g_mixed_cpu)
        )
    lines += [
        "",
        f"Addresses in no range of the data: IPv4 {missing['v4']:.0%}, IPv6 {missing['v6']:.0%} "
        "(uniform IPv6 addresses almost never fall in an announced network). geoip2fast returns "
        "early for those, which makes its IPv6 lookups cheaper; ours costs the same either way, "
        "and IPv6 text takes more work to parse than IPv4, hence the lower IPv6 ratio.",
        "",
        f"Start-up: `Enricher.default()` {t_load_ours:.2f} s (converted tables from the cache "
        f"under `~/.cache/takedown`, or built on first use), `GeoIP2Fast()` {t_load_g2f:.2f} s.",
        "",
        f"Agreement with `GeoIP2Fast.lookup` on all {check.total:,} addresses (as_name, "
        f'network = asn_cidr, cc = country_code; "" and "--" read as null): '
        f"**{check.agree:,} ({check.rate:.3%})**; explained: {check.explained_rate:.3%}.",
        "",
        "| disagreement class | count | share | example (ours / geoip2fast) |",
        "| --- | ---: | ---: | --- |",
    ]
    for cls, count in check.classes.most_common():
        ip, mine, theirs_ex = check.examples[cls]
        lines.append(
            f"| `{cls}` | {count:,} | {count / check.total:.3%} | `{ip}`: "
            f"{mine['as_name']} {mine['network']} {mine['cc']} / "
            f"{theirs_ex['asn_name']} {theirs_ex['asn_cidr']} {theirs_ex['country_code']} |"
        )
    if not check.classes:
        lines.append("| (none) | 0 | 0% | |")
    lines += [
        "",
        "`g2f-asn-range-misses-ip`: in its IPv4+IPv6 files geoip2fast checks every ASN range "
        "with the IPv6 prefix size, so an IPv4 address in a gap between ASN ranges is given the "
        "range before the gap, whose CIDR does not contain it; we return no ASN there (as "
        "geoip2fast does with its IPv4-only `-asn` file). Neither side has AS numbers: the "
        "embedded data carries AS names only.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="addresses in the sample")
    ap.add_argument("--reps", type=int, default=3, help="repetitions (medians reported)")
    ap.add_argument("--seed", type=int, default=20240618)
    ap.add_argument("--v6-share", type=float, default=0.3)
    ap.add_argument("--announced-share", type=float, default=0.5)
    ap.add_argument("--skip-lookup", action="store_true", help="do not time Enricher.lookup")
    ap.add_argument("--write", action="store_true", help=f"update {RESULTS.name}")
    args = ap.parse_args()
    if args.reps < 1 or args.n < 10:
        ap.error("need --reps >= 1 and --n >= 10")
    section = run(args)
    print(section)
    if args.write:
        write_section(SECTION, section)
        print(f"updated {RESULTS}", file=sys.stderr)


if __name__ == "__main__":
    main()
