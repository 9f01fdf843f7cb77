"""Layers: payload schemas per role, empty layers, family split."""

from __future__ import annotations

import numpy as np
import pytest

from takedown.enrich.layers import ASN_SCHEMA, GEO_SCHEMA, Layer, split_families


def test_empty_layers_know_nothing() -> None:
    for role, schema in (("asn", ASN_SCHEMA), ("geo", GEO_SCHEMA)):
        layer = Layer.empty(role)  # type: ignore[arg-type]
        assert layer.payload.schema.equals(schema) and layer.payload.num_rows == 0
        assert layer.v4.values.tolist() == [[-1]] and layer.v6.values.tolist() == [[-1]]


def test_split_families() -> None:
    hi = np.array([0, 1, 0], np.uint64)
    lo = np.array([5, 0, 2**32 - 1], np.uint64)
    v4, v6 = split_families(hi, lo, np.array([False, True, False]))
    assert v4.tolist() == [0, 2] and v6.tolist() == [1]
    with pytest.raises(ValueError):
        split_families(hi, lo, np.array([False, False, False]))
