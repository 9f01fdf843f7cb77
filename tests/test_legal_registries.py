"""Registered domains by the Public Suffix List (offline), and each TLD's registry operator."""

import pytest

from takedown.case.legal.registries import (
    PSL_VERSION,
    UNKNOWN_REGISTRY,
    DomainClassifier,
    load_registries,
)
from takedown.errors import LegalError


@pytest.fixture(scope="module")
def classifier():
    return DomainClassifier()


@pytest.mark.parametrize(
    ("name", "registered", "operator"),
    [
        ("cc.c2.example.com", "example.com", "VeriSign Global Registry Services"),
        ("a.b.example.net", "example.net", "VeriSign Global Registry Services"),
        ("www.example.org", "example.org", "Public Interest Registry (PIR)"),
        ("a.b.example.co.uk", "example.co.uk", "Nominet UK"),
        ("x.example.ru", "example.ru", "Coordination Center for TLD RU"),
        ("xn--e1afmkfd.xn--p1ai", "xn--e1afmkfd.xn--p1ai", "Coordination Center for TLD RU"),
        ("c2.example.su", "example.su", "Russian Institute for Development of Public Networks"),
        ("mail.example.com.ua", "example.com.ua", "Hostmaster Ltd."),
        ("example.com.cn", "example.com.cn", "China Internet Network Information Center (CNNIC)"),
        ("example.de", "example.de", "DENIC eG"),
        ("example.info", "example.info", "Afilias Limited"),
        ("example.biz", "example.biz", "Registry Services, LLC"),
        ("c2.example.eu", "example.eu", "EURid vzw/asbl"),
        ("example.co.in", "example.co.in", "National Internet Exchange of India"),
        ("example.com.br", "example.com.br", "Comite Gestor da Internet no Brasil"),
        ("cc.onlinescannow.example", "onlinescannow.example", "special-use name (RFC 6761)"),
        ("c2.example.zzzz", "example.zzzz", UNKNOWN_REGISTRY),
    ],
)
def test_registered_domain_and_registry(classifier, name, registered, operator):
    info = classifier.classify(name)
    assert info.registered == registered
    assert info.registry.operator.startswith(operator)
    assert info.seizable == registered and not info.platform


def test_idn_shown_in_unicode(classifier):
    info = classifier.classify("c2.xn--e1afmkfd.xn--p1ai")
    assert info.unicode == "c2.пример.рф" and info.registered_unicode == "пример.рф"
    assert info.tld == "xn--p1ai"


def test_hosting_platform_names_are_seized_below_the_platform(classifier):
    info = classifier.classify("evil.blogspot.com")
    assert info.registered == "blogspot.com"  # what the .com registry could act on
    assert info.platform == "blogspot.com"
    assert info.seizable == "evil.blogspot.com"  # what to ask the platform for


def test_public_suffix_is_not_seizable(classifier):
    with pytest.raises(ValueError, match=r"is a public suffix \(co.uk\)"):
        classifier.classify("co.uk")


def test_psl_snapshot_is_the_bundled_one():
    assert PSL_VERSION[:4].isdigit()  # "2026-10-22_..." from the pinned package's file


def test_user_registry_table_overrides_and_is_checked(tmp_path):
    mine = tmp_path / "mine.csv"
    mine.write_text("# mine\ntld,type,manager\ncom,generic,Newer Name Inc.\nzzzz,generic,Zed\n")
    table = load_registries(mine)
    assert table["com"].operator == "Newer Name Inc." and table["zzzz"].operator == "Zed"
    assert table["net"].operator == "VeriSign Global Registry Services"
    mine.write_text("tld,type,manager\ncom,bogus,X\n")
    with pytest.raises(LegalError, match=r"mine.csv: data row 2: type 'bogus'"):
        load_registries(mine)
    mine.write_text("tld,operator\ncom,X\n")
    with pytest.raises(LegalError, match="header needs the columns"):
        load_registries(mine)
