"""Deterministic normalisation: known answers, idempotence, and hostile input."""

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from takedown.case.graph import normalize as n
from takedown.case.graph.model import ENTITY_KINDS

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
hostile = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=80),
    st.from_regex(r"[A-Za-z0-9.+_@:%\[\]/ -]{0,60}", fullmatch=True),
    st.binary(max_size=100).map(lambda b: b.decode("latin-1")),
)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("  K.Nightjar@Mail.Example ", "k.nightjar@mail.example"),
        ("<Vesper2k@MAIL.example>", "vesper2k@mail.example"),
        ("mailto:a@b.example", "a@b.example"),
        ("K.Night.Jar+c2@googlemail.com", "knightjar@gmail.com"),
        ("k.nightjar+x@gmail.com", "knightjar@gmail.com"),
        ("k.nightjar+x@outlook.com", "k.nightjar@outlook.com"),
        ("k.night+jar@mail.example", "k.night+jar@mail.example"),  # provider rules unknown
        ("user@Bücher.example", "user@xn--bcher-kva.example"),
    ],
)
def test_email(raw, key):
    assert n.email(raw) == key


@pytest.mark.parametrize("bad", ["", "no-at", "@x.example", "a@", "a..b@x.example", "a@nodot"])
def test_email_refuses(bad):
    with pytest.raises(n.NormalizeError):
        n.email(bad)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("EXAMPLE.com.", "example.com"),
        ("Bücher.Example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("_dmarc.example.com", "_dmarc.example.com"),
        ("ｅｘａｍｐｌｅ.com", "example.com"),
    ],
)
def test_domain(raw, key):
    assert n.domain(raw) == key


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("[2001:DB8::0001]", "2001:db8::1"),
        ("fe80::1%eth0", "fe80::1"),
    ],
)
def test_ip(raw, key):
    assert n.ip(raw) == key


def test_network_and_phone():
    assert n.network("198.51.100.7/24") == "198.51.100.0/24"
    assert n.network("::ffff:198.51.100.0/120") == "198.51.100.0/24"
    assert n.phone("+44 7700 900123") == "+447700900123"
    assert n.phone("0044 (7700) 900-123") == "+447700900123"
    assert n.phone("07700 900123", "GB") == "+447700900123"
    with pytest.raises(n.NormalizeError, match="region"):
        n.phone("07700 900123")


def test_handles_and_skeletons():
    assert n.handle("  @Vesper2K ") == "vesper2k"
    assert n.handle("ＶＥＳＰＥＲ") == "vesper"  # fullwidth folds under NFKC
    assert n.handle_skeleton("V3sp3r_2k") == n.handle_skeleton("vesper2k")
    assert n.handle_skeleton("vеsреr") == "vesper"  # Cyrillic е and р


def test_payment_ids():
    assert n.payment("z 1000-0000-0001") == "webmoney:Z100000000001"
    assert (
        n.payment("1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa") == "btc:1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa"
    )
    assert n.payment("GB82 WEST 1234 5698 7654 32") == "iban:GB82WEST12345698765432"
    assert n.payment("acct-77", provider="PayExample") == "payexample:acct-77"
    with pytest.raises(n.NormalizeError, match="provider"):
        n.payment("acct-77")
    with pytest.raises(n.NormalizeError):
        n.payment("iban:GB00WEST12345698765432")  # bad check digits


def test_card_keeps_no_number():
    key = n.card("4111 1111 1111 1111")
    assert key.startswith("411111******1111#") and "4111111111111111" not in key
    with pytest.raises(n.NormalizeError, match="Luhn"):
        n.card("4111 1111 1111 1112")


@pytest.mark.parametrize("kind", sorted(ENTITY_KINDS))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=hostile)
@example(value="\x00")
@example(value="a" * 5000)
@example(value="::ffff:1.2.3.4")
@example(value="ß.de")
def test_every_key_is_idempotent_and_never_crashes(kind, value):
    try:
        key = n.key_for(kind, value)
    except n.NormalizeError:
        return
    assert isinstance(key, str) and key
    assert n.key_for(kind, key) == key


@FUZZ
@given(value=hostile)
def test_skeleton_never_crashes(value):
    try:
        skel = n.handle_skeleton(value)
    except n.NormalizeError:
        return
    if skel:
        assert n.handle_skeleton(skel) == skel


@FUZZ
@given(
    local=st.from_regex(r"[a-z0-9][a-z0-9.+_-]{0,20}[a-z0-9]", fullmatch=True),
    dom=st.sampled_from(["gmail.com", "googlemail.com", "outlook.com", "mail.example"]),
)
@example(local="0.+0", dom="outlook.com")  # plus tag cut: "0." is no mailbox
def test_email_generated_addresses_are_idempotent(local, dom):
    try:
        key = n.email(f"{local}@{dom}")
    except n.NormalizeError:
        return
    assert n.email(key) == key
