"""Domain and IP lists: good lines normalised, bad lines named by file:line, hostile input safe."""

import ipaddress

from hypothesis import example, given, settings
from hypothesis import strategies as st

from takedown.case.legal.lists import (
    MAX_LINE,
    check_domain,
    check_ip,
    parse_domain_list,
    parse_ip_list,
)

DOMAINS = (
    "\ufeffExample.COM.   # the C2, from the complaint\n"
    "\n"
    "   # a comment line\n"
    "xn--e1afmkfd.xn--p1ai\n"
    "ПРИМЕР.рф\n"
    "http://bad.example/path\n"
    "203.0.113.7\n"
    "a..b.example\n"
    "example.com\n"
    "-bad.example\n"
    "xn--zz.example\n"
    "bad_label.example\n"
    "single\n"
    "a.123\n"
    "*.wild.example\n"
    "user@mail.example\n"
    "two names.example\n"
)


def test_domains_are_normalised_and_bad_lines_named():
    parsed = parse_domain_list(DOMAINS.encode(), "c2.txt")
    assert [(e.value, e.line, e.note) for e in parsed.entries] == [
        ("example.com", 1, "the C2, from the complaint"),
        ("xn--e1afmkfd.xn--p1ai", 4, ""),
    ]
    assert parsed.duplicates == 2  # the Unicode form of line 4, and example.com again
    reasons = {e.line: e.reason for e in parsed.errors}
    assert sorted(reasons) == [6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17]
    assert "URL" in reasons[6] and "IP address" in reasons[7] and "empty label" in reasons[8]
    assert "punycode" in reasons[11] and "single label" in reasons[13]
    assert "numeric" in reasons[14] and "wildcard" in reasons[15] and "e-mail" in reasons[16]
    assert "space" in reasons[17]
    message = parsed.first_error()
    assert message.startswith("c2.txt:6: 'http://bad.example/path' looks like a URL")
    assert "10 more bad lines: 7, 8, 10, 11, 12, 13, 14, 15, 16, 17" in message
    assert "\n" not in message


def test_unicode_domain_round_trip():
    assert check_domain("Пример.РФ") == ("xn--e1afmkfd.xn--p1ai", "пример.рф")
    assert check_domain("xn--e1afmkfd.xn--p1ai.") == ("xn--e1afmkfd.xn--p1ai", "пример.рф")


def test_undecodable_nul_and_long_lines_are_errors_not_crashes():
    data = b"good.example\n\xff\xfe\xfd\nnul\x00.example\n" + b"a" * (MAX_LINE + 1) + b"\n"
    parsed = parse_domain_list(data, "x.txt")
    assert [e.value for e in parsed.entries] == ["good.example"]
    assert [(e.line, e.reason) for e in parsed.errors] == [
        (2, "is not UTF-8 text"),
        (3, "has a NUL character in it"),
        (4, f"is longer than {MAX_LINE} characters"),
    ]


def test_ip_list():
    text = (
        "192.0.2.10  # primary\n"
        "198.51.100.0/28\n"
        "198.51.100.5/24\n"
        "::ffff:192.0.2.10\n"
        "2001:DB8::C2\n"
        "10.0.0.1/32\n"
        "fe80::1%eth0\n"
        "01.2.3.4\n"
        "not-an-ip\n"
    )
    parsed = parse_ip_list(text, "ips.txt")
    assert [(e.value, e.line) for e in parsed.entries] == [
        ("192.0.2.10", 1),
        ("198.51.100.0/28", 2),
        ("2001:db8::c2", 5),
        ("10.0.0.1", 6),
    ]
    assert parsed.duplicates == 1  # the IPv4-mapped form of line 1
    errors = {e.line: e.reason for e in parsed.errors}
    assert errors[3] == "has host bits set (did you mean 198.51.100.0/24?)"
    assert "zone index" in errors[7] and "not an IP address" in errors[8]
    assert parsed.first_error().startswith("ips.txt:3: '198.51.100.5/24' has host bits set")


# -- hostile input: the parsers never raise, and what they accept is canonical ---------------
_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_text, st.binary(max_size=300)))
def test_parsers_never_raise_on_arbitrary_input(data):
    for parse in (parse_domain_list, parse_ip_list):
        parsed = parse(data, "fuzz")
        for entry in parsed.entries:
            assert entry.line >= 1 and "\n" not in entry.value
        for error in parsed.errors:
            assert "\n" not in error.where("fuzz").replace("\\n", "")
        if parsed.errors:
            assert parsed.first_error().startswith("fuzz:")


_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?", fullmatch=True)


@settings(max_examples=300, deadline=None)
@given(st.lists(_label, min_size=1, max_size=4), st.sampled_from(["com", "xn--p1ai", "example"]))
def test_valid_domains_are_accepted_and_idempotent(labels, tld):
    name = ".".join([*labels, tld])
    if any(label.startswith("xn--") or label[2:4] == "--" for label in labels):
        return  # reserved ACE-like labels need valid punycode
    value, unicode = check_domain(name.upper())
    assert value == name
    assert check_domain(value) == (value, unicode)
    assert check_domain(unicode)[0] == value


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), st.integers(0, 128))
@example(address=ipaddress.IPv6Address("::ffff:0:0"), prefix=128)  # mapped, one address
def test_ips_and_networks_are_canonical(address, prefix):
    canonical = str(getattr(address, "ipv4_mapped", None) or address)
    assert check_ip(str(address)) == canonical
    prefix = min(prefix, address.max_prefixlen)
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    value = check_ip(str(network))
    assert value == (str(network) if network.num_addresses > 1 else canonical)
    assert check_ip(value) == value
