"""Random addresses: uniform over a space, or inside given networks. Vectorised, seeded.

Used to test the enricher against geoip2fast, and handy for a simulator that places bots in
real announced networks (``addresses_in(enricher.prefixes(asn), n)``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from takedown.enrich.ipformat import format_v4, format_v6
from takedown.enrich.ipparse import parse_ips

__all__ = ["addresses_in", "mixed_sample", "uniform_addresses"]

_ALL = np.uint64(0xFFFF_FFFF_FFFF_FFFF)


def _host_masks(
    plen: NDArray[np.int64], bits: NDArray[np.int64]
) -> tuple[NDArray[np.uint64], NDArray[np.uint64]]:
    host = bits - plen
    h_lo = np.clip(host, 0, 64)
    h_hi = np.clip(host - 64, 0, 64)
    lo = np.where(h_lo >= 64, _ALL, (np.uint64(1) << np.minimum(h_lo, 63).astype(np.uint64)) - 1)
    hi = np.where(h_hi >= 64, _ALL, (np.uint64(1) << np.minimum(h_hi, 63).astype(np.uint64)) - 1)
    return hi.astype(np.uint64), lo.astype(np.uint64)


def _text(version: NDArray[np.int8], hi: NDArray[np.uint64], lo: NDArray[np.uint64]) -> pa.Array:
    v4 = np.flatnonzero(version == 4)
    v6 = np.flatnonzero(version != 4)
    both = pa.concat_arrays([format_v4(lo[v4]), format_v6(hi[v6], lo[v6])])
    order = np.empty(version.shape[0], np.int64)
    order[np.concatenate([v4, v6])] = np.arange(version.shape[0])
    return both.take(pa.array(order))


def addresses_in(networks: Sequence[str] | pa.Array, n: int, *, seed: int = 0) -> pa.Array:
    """``n`` addresses, each uniform inside a network picked uniformly from ``networks``."""
    nets = pa.array(networks, pa.string()) if not isinstance(networks, pa.Array) else networks
    if len(nets) == 0:
        raise ValueError("no networks to draw addresses from")
    parts = pc.split_pattern(nets, "/", max_splits=1)
    base = parse_ips(pc.list_element(parts, 0))
    plen = np.asarray(pc.cast(pc.list_element(parts, 1), pa.int64()).to_numpy(), np.int64)
    if (base.version == 0).any():
        bad = nets.filter(pa.array(base.version == 0))[0]
        raise ValueError(f"not a network: {bad}")
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(nets), n)
    bits = np.where(base.version[pick] == 4, 32, 128)
    m_hi, m_lo = _host_masks(plen[pick], bits)
    r_hi = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    r_lo = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)
    hi = (base.hi[pick] & ~m_hi) | (r_hi & m_hi)
    lo = (base.lo[pick] & ~m_lo) | (r_lo & m_lo)
    return _text(base.version[pick], hi, lo)


def uniform_addresses(n: int, network: str, *, seed: int = 0) -> pa.Array:
    """``n`` addresses drawn uniformly from one network, e.g. ``0.0.0.0/0`` or ``2000::/3``."""
    ipaddress.ip_network(network)  # validate
    return addresses_in([network], n, seed=seed)


def mixed_sample(
    announced: Sequence[str] | pa.Array,
    n: int,
    *,
    seed: int = 0,
    v6_share: float = 0.3,
    announced_share: float = 0.5,
) -> pa.Array:
    """IPv4 and IPv6 addresses, part uniform over the space and part inside ``announced``.

    Uniform IPv4 is drawn from 0.0.0.0/0; uniform IPv6 mostly from 2000::/3 (global unicast),
    a tenth from the whole space. The order is shuffled.
    """
    nets = pa.array(announced, pa.string()) if not isinstance(announced, pa.Array) else announced
    is6 = np.asarray(pc.match_substring(nets, ":").to_numpy(zero_copy_only=False), bool)
    n6 = round(n * v6_share)
    n4 = n - n6
    pieces = []
    for count, fam_nets, spaces, salt in (
        (n4, nets.filter(pa.array(~is6)), (("0.0.0.0/0", 1.0),), 1),
        (n6, nets.filter(pa.array(is6)), (("2000::/3", 0.9), ("::/0", 0.1)), 2),
    ):
        k_ann = round(count * announced_share) if len(fam_nets) else 0
        if k_ann:
            pieces.append(addresses_in(fam_nets, k_ann, seed=seed * 10 + salt))
        left = count - k_ann
        for i, (space, share) in enumerate(spaces):
            k = left if i == len(spaces) - 1 else round((count - k_ann) * share)
            left -= k
            if k:
                pieces.append(uniform_addresses(k, space, seed=seed * 10 + salt + 5 * (i + 1)))
    out = pa.concat_arrays(pieces) if pieces else pa.array([], pa.string())
    order = np.random.default_rng(seed).permutation(len(out))
    return out.take(pa.array(order))
