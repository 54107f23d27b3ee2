"""Encodings of dropped text: each decodes to the characters its author typed, and is named."""

from __future__ import annotations

import codecs

import pytest

from omad.text.encodings import decode_text

SRT = "1\n00:00:01,000 --> 00:00:02,000\n{}\n\n2\n00:00:02,000 --> 00:00:03,000\n{}\n"


@pytest.mark.parametrize(
    "encoding,first,second,expected",
    [
        ("cp1252", "Coração, não é? Ação!", "Você já viu a promoção de verão?", "cp1252"),
        ("cp1252", "Olá", "é", "cp1252"),
        ("cp1252", "“Citação” – fim…", "œuvre", "cp1252"),
        ("cp1252", "Straße über", "niño", "cp1252"),
        ("cp1250", "Příliš žluťoučký kůň úpěl ďábelské ódy.", "Zażółć gęślą jaźń, łódź.", "cp1250"),
        ("cp1250", "Šťastný nový rok", "„Ahoj“", "cp1250"),
        ("cp1250", "Árvíztűrő tükörfúrógép", "Öt szép szűz lány őrült írót nyúz", "cp1250"),
        ("cp1252", "Ça coûte très cher", "Não, obrigado", "cp1252"),
        ("iso8859_15", "L'Œuvre coûte 5 € à Noël.", "Ça déçoit l'œil.", "iso8859_15"),
        ("iso8859_2", "Příliš žluťoučký kůň úpěl ďábelské ódy.", "Zażółć gęślą jaźń, łódź.", "iso8859_2"),
        ("cp1251", "Привет, как дела?", "Съешь же ещё этих мягких булок.", "cp1251"),
        ("cp1253", "Καλημέρα κόσμε", "Γειά σου", "cp1253"),
        ("utf-8", "Olá ção", "日本語", "utf-8"),
        ("utf-8-sig", "Olá ção", "x", "utf-8-sig"),
        ("utf-16", "Olá ção", "x", "utf-16"),
        ("utf-16-le", "Olá ção", "x", "utf-16-le"),
        ("utf-16-be", "Olá ção", "x", "utf-16-be"),
    ],
)
def test_text_decodes_as_written(encoding: str, first: str, second: str, expected: str) -> None:
    text = SRT.format(first, second)
    decoded = decode_text(text.encode(encoding))
    assert decoded.text.lstrip("\ufeff") == text
    assert decoded.encoding == expected


def test_utf16_with_a_big_endian_bom() -> None:
    text = SRT.format("Olá", "ção")
    decoded = decode_text(codecs.BOM_UTF16_BE + text.encode("utf-16-be"))
    assert (decoded.text, decoded.how) == (text, "bom")


def test_a_script_no_profile_knows_goes_to_charset_normalizer() -> None:
    text = SRT.format("こんにちは世界、字幕のテストです。", "ありがとうございました")
    decoded = decode_text(text.encode("shift_jis"))
    assert decoded.text == text and decoded.how == "charset-normalizer"
