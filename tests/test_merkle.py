"""RFC 9162 tree hashes and proofs, against the RFC 6962 vectors and an independent reference."""

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takedown.case.evidence import merkle

VECTORS = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "merkle" / "rfc6962-vectors.json"
)
PROPS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def vectors():
    if not VECTORS.is_file():
        pytest.skip(f"{VECTORS} not found (shared/data sits beside the checkout)")
    data = json.loads(VECTORS.read_text())
    leaves = [bytes.fromhex(h) for h in data["leaf_inputs_hex"]]
    roots = [bytes.fromhex(h) for h in data["root_by_tree_size_hex"]]
    assert len(roots) == len(leaves) + 1
    return leaves, roots


# An independent reference, written straight from RFC 9162 §2.1 over Python lists.
def h(data):
    return hashlib.sha256(data).digest()


def ref_mth(leaves):
    n = len(leaves)
    if n == 0:
        return h(b"")
    if n == 1:
        return h(b"\x00" + leaves[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return h(b"\x01" + ref_mth(leaves[:k]) + ref_mth(leaves[k:]))


def ref_path(m, leaves):
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return [*ref_path(m, leaves[:k]), ref_mth(leaves[k:])]
    return [*ref_path(m - k, leaves[k:]), ref_mth(leaves[:k])]


def ref_subproof(m, leaves, whole):
    n = len(leaves)
    if m == n:
        return [] if whole else [ref_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return [*ref_subproof(m, leaves[:k], whole), ref_mth(leaves[k:])]
    return [*ref_subproof(m - k, leaves[k:], False), ref_mth(leaves[:k])]


def tree_of(leaves):
    t = merkle.Tree()
    for leaf in leaves:
        t.append(leaf)
    return t


def test_every_vector_root(vectors):
    leaves, roots = vectors
    t = merkle.Tree()
    assert t.root() == roots[0] == merkle.EMPTY_ROOT
    for n in range(1, len(leaves) + 1):
        t.append(leaves[n - 1])
        assert t.root() == roots[n], f"tree of {n}"
        assert ref_mth(leaves[:n]) == roots[n]
        assert merkle.root_of([merkle.leaf_hash(x) for x in leaves[:n]]) == roots[n]
    # A grown tree still answers for each of its past sizes.
    for n in range(len(leaves) + 1):
        assert t.root(n) == roots[n]


def test_inclusion_proofs_verify_against_every_vector_root(vectors):
    leaves, roots = vectors
    t = tree_of(leaves)
    for n in range(1, len(leaves) + 1):
        for m in range(n):
            proof = t.inclusion_proof(m, n)
            assert proof == ref_path(m, leaves[:n])
            lh = merkle.leaf_hash(leaves[m])
            assert merkle.verify_inclusion(lh, m, n, proof, roots[n])
            assert not merkle.verify_inclusion(lh, m, n, proof, roots[n - 1])
            if n > 1:
                assert not merkle.verify_inclusion(lh, (m + 1) % n, n, proof, roots[n])
                assert not merkle.verify_inclusion(lh, m, n, proof[:-1], roots[n])
            assert not merkle.verify_inclusion(lh, m, n, [*proof, roots[0]], roots[n])
            assert not merkle.verify_inclusion(merkle.leaf_hash(b"x"), m, n, proof, roots[n])


def test_consistency_proofs_verify_against_every_vector_root(vectors):
    leaves, roots = vectors
    t = tree_of(leaves)
    for n in range(len(leaves) + 1):
        for m in range(n + 1):
            proof = t.consistency_proof(m, n)
            if 0 < m < n:
                assert proof == ref_subproof(m, leaves[:n], True)
            assert merkle.verify_consistency(m, n, roots[m], roots[n], proof), (m, n)
            if 0 < m < n:
                assert not merkle.verify_consistency(m, n, roots[m], roots[n - 1], proof)
                assert not merkle.verify_consistency(m, n, roots[n], roots[n], proof)
                if proof:
                    assert not merkle.verify_consistency(m, n, roots[m], roots[n], proof[1:])
                    bad = [proof[0][::-1], *proof[1:]]
                    assert not merkle.verify_consistency(m, n, roots[m], roots[n], bad)


def test_out_of_range_requests_are_refused():
    t = tree_of([b"a", b"b", b"c"])
    with pytest.raises(ValueError):
        t.inclusion_proof(3, 3)
    with pytest.raises(ValueError):
        t.root(4)
    with pytest.raises(ValueError):
        t.consistency_proof(3, 2)
    assert not merkle.verify_inclusion(t.leaf_hash(0), 0, 0, [], t.root())
    assert not merkle.verify_consistency(2, 1, t.root(2), t.root(1), [])
    # Equal sizes: the proof is empty and the roots equal.
    assert merkle.verify_consistency(3, 3, t.root(), t.root(), [])
    assert not merkle.verify_consistency(3, 3, t.root(), t.root(2), [])


leaf_lists = st.lists(st.binary(max_size=12), min_size=1, max_size=300)


@PROPS
@given(leaves=leaf_lists, data=st.data())
def test_inclusion_proofs_for_random_trees(leaves, data):
    t = tree_of(leaves)
    n = data.draw(st.integers(1, len(leaves)), label="size")
    m = data.draw(st.integers(0, n - 1), label="index")
    root = ref_mth(leaves[:n])
    assert t.root(n) == root
    proof = t.inclusion_proof(m, n)
    assert proof == ref_path(m, leaves[:n])
    assert merkle.verify_inclusion(t.leaf_hash(m), m, n, proof, root)
    if proof:
        i = data.draw(st.integers(0, len(proof) - 1), label="tampered element")
        bad = list(proof)
        bad[i] = hashlib.sha256(bad[i]).digest()
        assert not merkle.verify_inclusion(t.leaf_hash(m), m, n, bad, root)
    if n > 1 and len(set(leaves[:n])) == n:
        # With distinct leaves, no other position verifies.
        assert not merkle.verify_inclusion(t.leaf_hash(m), (m + 1) % n, n, proof, root)


@PROPS
@given(leaves=leaf_lists, data=st.data())
def test_consistency_proofs_for_random_trees(leaves, data):
    t = tree_of(leaves)
    n = data.draw(st.integers(1, len(leaves)), label="new size")
    m = data.draw(st.integers(1, n), label="old size")
    proof = t.consistency_proof(m, n)
    if m < n:
        assert proof == ref_subproof(m, leaves[:n], True)
    old, new = ref_mth(leaves[:m]), ref_mth(leaves[:n])
    assert merkle.verify_consistency(m, n, old, new, proof)
    if m < n:
        # A rewritten history: the old tree with a changed leaf is not consistent.
        changed = [*leaves[: m - 1], leaves[m - 1] + b"!"]
        assert not merkle.verify_consistency(m, n, ref_mth(changed), new, proof)
        if proof:
            i = data.draw(st.integers(0, len(proof) - 1), label="tampered element")
            bad = list(proof)
            bad[i] = hashlib.sha256(bad[i]).digest()
            assert not merkle.verify_consistency(m, n, old, new, bad)
