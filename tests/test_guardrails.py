"""Guardrails: PII found and redacted, topics and words blocked, rules files checked.

Valid CPFs, CNPJs and card numbers are made here by computing their check
digits with the textbook formulas (written independently of omad's), next to
well-known public test values; each valid value also yields an invalid twin with
a wrong last digit, which must be left alone.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import ollama
import pytest
import yaml
from pydantic import BaseModel

from omad.errors import ConfigError, GuardrailBlocked, StageFailed, ToolMissing, TransientError
from omad.guardrails import (
    DEFAULT_REPLACEMENTS,
    Finding,
    Guardrails,
    GuardrailsFile,
    GuardResult,
    load_guardrails,
    parse_llama_guard,
)

SHIPPED = Path(__file__).resolve().parents[1] / "config" / "guardrails.yaml"


# --------------------------------------------------------------------------- value makers


def make_cpf(base9: str) -> str:
    d = [int(c) for c in base9]
    for first_weight in (10, 11):
        s = sum(v * w for v, w in zip(d, range(first_weight, 1, -1), strict=False))
        r = 11 - s % 11
        d.append(0 if r >= 10 else r)
    return "".join(map(str, d))


def make_cnpj(base12: str) -> str:
    w1 = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2]
    vals = [ord(c) - 48 for c in base12]
    out = base12
    for weights in (w1, [6, *w1]):
        r = sum(v * w for v, w in zip(vals, weights, strict=True)) % 11
        dv = 0 if r < 2 else 11 - r
        vals.append(dv)
        out += str(dv)
    return out


def make_card(partial: str) -> str:
    """``partial`` plus the Luhn check digit."""
    total = 0
    for i, c in enumerate(reversed(partial)):
        x = int(c)
        if i % 2 == 0:
            x *= 2
            x = x - 9 if x > 9 else x
        total += x
    return partial + str((10 - total % 10) % 10)


def wrong_last_digit(value: str) -> str:
    return value[:-1] + str((int(value[-1]) + 1) % 10)


def fmt_cpf(d: str) -> str:
    return f"{d[:3]}.{d[3:6]}.{d[6:9]}-{d[9:]}"


def fmt_cnpj(d: str) -> str:
    return f"{d[:2]}.{d[2:5]}.{d[5:8]}/{d[8:12]}-{d[12:]}"


def group4(d: str, sep: str = " ") -> str:
    return sep.join(d[i : i + 4] for i in range(0, len(d), 4))


_rng = random.Random(20240607)
GEN_CPFS = [make_cpf(f"{_rng.randrange(10**9):09d}") for _ in range(12)]
GEN_CNPJS = [make_cnpj(f"{_rng.randrange(10**8):08d}{_rng.randrange(1, 10**4):04d}") for _ in range(8)]
GEN_CARDS = [make_card(p + "".join(str(_rng.randrange(10)) for _ in range(15 - len(p)))) for p in ("4", "51", "6011")]

WELL_KNOWN_CPFS = ["529.982.247-25", "111.444.777-35", "123.456.789-09", "52998224725"]
WELL_KNOWN_CNPJS = ["11.222.333/0001-81", "11222333000181", "12.ABC.345/01DE-35"]
WELL_KNOWN_CARDS = [
    "4111 1111 1111 1111",  # Visa
    "4012888888881881",  # Visa
    "4222222222222",  # Visa, 13 digits
    "5555-5555-5555-4444",  # Mastercard
    "2223 0031 2200 3222",  # Mastercard 2-series
    "3782 822463 10005",  # Amex 4-6-5
    "371449635398431",  # Amex
    "6011 1111 1111 1117",  # Discover
    "3056 930902 5904",  # Diners 4-6-4
    "3530111333300000",  # JCB
    "6362 9700 0045 7013",  # Elo
]


def rules(**data: Any) -> Guardrails:
    return Guardrails(GuardrailsFile.model_validate(data))


DEFAULT = Guardrails()


def kinds(result: GuardResult) -> list[str]:
    return [f.type for f in result.findings]


# --------------------------------------------------------------------------- CPF / CNPJ


@pytest.mark.parametrize(
    "cpf",
    WELL_KNOWN_CPFS + [fmt_cpf(c) for c in GEN_CPFS[:6]] + GEN_CPFS[6:] + [f"{GEN_CPFS[0][:9]}-{GEN_CPFS[0][9:]}"],
)
def test_a_valid_cpf_is_found_and_redacted(cpf: str) -> None:
    """GIVEN a sentence with a CPF whose check digits are right WHEN checked THEN it is replaced."""
    result = DEFAULT.check(f"Meu CPF é {cpf}, anote.", "brief.prompt")
    assert kinds(result) == ["cpf"]
    assert result.text == "Meu CPF é [CPF removido], anote."


@pytest.mark.parametrize(
    "number",
    [
        "111.111.111-11",
        "000.000.000-00",
        "99999999999",
        "123.456.789-00",
        "529.982.247-26",
        "123.456.789-0",
        "1234.567.890-12",
        *[fmt_cpf(wrong_last_digit(c)) for c in GEN_CPFS[:6]],
        *[wrong_last_digit(make_cpf(f"{n:09d}")) for n in (123456780, 400500600)],
    ],
)
def test_an_invalid_cpf_is_just_a_number(number: str) -> None:
    result = DEFAULT.check(f"Protocolo {number} registrado.", "brief.prompt")
    assert result.findings == []
    assert result.text == f"Protocolo {number} registrado."


@pytest.mark.parametrize("cnpj", WELL_KNOWN_CNPJS + [fmt_cnpj(c) for c in GEN_CNPJS[:4]] + GEN_CNPJS[4:])
def test_a_valid_cnpj_is_found_and_redacted(cnpj: str) -> None:
    result = DEFAULT.check(f"Empresa CNPJ {cnpj}.", "script.scene[0].narration")
    assert kinds(result) == ["cnpj"]
    assert result.text == "Empresa CNPJ [CNPJ removido]."


@pytest.mark.parametrize(
    "number",
    [
        "11.222.333/0001-80",
        "11.111.111/1111-11",
        "00000000000000",
        "12.ABC.345/01DE-36",
        "12ABC34501DE35",  # alphanumeric only counts when punctuated
        *[fmt_cnpj(wrong_last_digit(c)) for c in GEN_CNPJS[:4]],
    ],
)
def test_an_invalid_cnpj_is_left_alone(number: str) -> None:
    result = DEFAULT.check(f"Código {number}.", "brief.prompt")
    assert result.findings == []


# --------------------------------------------------------------------------- cards


@pytest.mark.parametrize(
    "card",
    WELL_KNOWN_CARDS
    + [group4(c) for c in GEN_CARDS]
    + [group4(c, "-") for c in GEN_CARDS]
    + GEN_CARDS
    + [make_card("4" + "1" * 17)],  # 19 digits
)
def test_a_luhn_valid_card_is_found_and_redacted(card: str) -> None:
    result = DEFAULT.check(f"Pague com {card} hoje.", "brief.prompt")
    assert kinds(result) == ["card"]
    assert result.text == "Pague com [cartão removido] hoje."


def test_a_card_followed_by_its_expiry_is_still_found() -> None:
    result = DEFAULT.check("Cartão 4111 1111 1111 1111 12 28", "brief.prompt")
    assert kinds(result) == ["card"]
    assert result.text == "Cartão [cartão removido] 12 28"


@pytest.mark.parametrize(
    "number",
    [
        "4111 1111 1111 1112",
        "0000 0000 0000 0000",  # Luhn-valid, but no card starts with 0
        make_card("1" + "2" * 14),  # nor with 1
        "4111 1111 1111",  # 12 digits
        "4111-1111 1111-1111",  # mixed separators
        *[group4(wrong_last_digit(c)) for c in GEN_CARDS],
        "2019 2020 2021 2022",
    ],
)
def test_a_number_that_is_not_a_card_is_left_alone(number: str) -> None:
    result = DEFAULT.check(f"Número {number}.", "brief.prompt")
    assert "card" not in kinds(result)


# --------------------------------------------------------------------------- phones and e-mails


@pytest.mark.parametrize(
    "phone",
    [
        "+55 11 91234-5678",
        "+55 (11) 91234-5678",
        "+5511912345678",
        "(11) 91234-5678",
        "(11) 3456-7890",
        "(021) 2345-6789",
        "11 3456-7890",
        "11 91234-5678",
        "21 9 8765-4321",
        "61.3456.7890",
        "0800 123 4567",
        "0800-123-4567",
        "91234-5678",
        "11987654321",
    ],
)
def test_a_brazilian_phone_is_found(phone: str) -> None:
    result = DEFAULT.check(f"Ligue {phone} hoje.", "srt line 14")
    assert kinds(result) == ["phone_br"]
    assert result.text == "Ligue [telefone removido] hoje."
    assert result.findings[0].where == "srt line 14"


@pytest.mark.parametrize(
    "text",
    [
        "Em 2024 foram 1500 vídeos.",
        "Custa R$ 1.234,50 à vista ou R$ 12.345,00 a prazo.",
        "No dia 12/03/2024 às 11:30, ou 2024-03-12.",
        "A temporada 2019-2020 acabou.",
        "CEP 01310-100, São Paulo.",
        "Pedido 1134567890.",  # a bare 10-digit number is not taken for a landline
        "(20) 91234-5678",  # 20 is no area code
        "Processo 0001234-56.2024.8.26.0100.",
        "Pi vale 3,14159265358979.",
    ],
)
def test_ordinary_numbers_are_not_pii(text: str) -> None:
    result = DEFAULT.check(text, "brief.prompt")
    assert result.findings == []
    assert result.text == text


@pytest.mark.parametrize(
    "email",
    ["joao.silva@empresa.com.br", "maria+news@gmail.com", "ana_b@sub.dominio.org", "joão@exemplo.com.br", "X@Y.IO"],
)
def test_an_email_is_found(email: str) -> None:
    result = DEFAULT.check(f"Escreva para {email}.", "brief.prompt")
    assert kinds(result) == ["email"]
    assert result.text == "Escreva para [e-mail removido]."


@pytest.mark.parametrize("text", ["joao@localhost", "siga @usuario", "visite empresa.com.br", "a@b", "x@@y.com"])
def test_text_that_is_not_an_email(text: str) -> None:
    assert "email" not in kinds(DEFAULT.check(text, "brief.prompt"))


# --------------------------------------------------------------------------- precedence and redaction


def test_each_value_is_reported_once_as_its_most_specific_kind() -> None:
    """GIVEN a CPF shaped like a phone, a CNPJ of 14 digits and an e-mail made of a CPF
    WHEN checked THEN each is one finding of its own kind, never also a phone or a card."""
    cpf = "52998224725"
    text = f"CPF {cpf}; CNPJ 11222333000181; mail {cpf}@exemplo.com"
    result = DEFAULT.check(text, "brief.prompt")
    assert kinds(result) == ["cpf", "cnpj", "email"]


def test_a_disabled_detector_still_keeps_its_value_from_other_detectors() -> None:
    g = rules(pii={"cpf": {"enabled": False}})
    result = g.check("Meu CPF 52998224725.", "brief.prompt")
    assert result.findings == []
    assert result.text == "Meu CPF 52998224725."


def test_redaction_output_text() -> None:
    """GIVEN a narration line with every kind of PII WHEN checked THEN the spoken text keeps only labels."""
    text = (
        "Olá, sou a Ana, CPF 529.982.247-25, e-mail ana@empresa.com.br, celular (11) 91234-5678, "
        "cartão 4111 1111 1111 1111 e CNPJ 11.222.333/0001-81. Em 2024, R$ 1.234,50."
    )
    result = DEFAULT.check(text, "script.scene[2].narration")
    assert result.text == (
        "Olá, sou a Ana, CPF [CPF removido], e-mail [e-mail removido], celular [telefone removido], "
        "cartão [cartão removido] e CNPJ [CNPJ removido]. Em 2024, R$ 1.234,50."
    )
    assert kinds(result) == ["cpf", "email", "phone_br", "card", "cnpj"]
    assert {f.where for f in result.findings} == {"script.scene[2].narration"}
    assert {f.action for f in result.findings} == {"redact"}


def test_redacted_text_passes_a_second_check_unchanged() -> None:
    """Generated text is checked again downstream (script, then narration, then captions): labels are inert."""
    first = DEFAULT.check(" ".join(RAW_VALUES.values()), "script.hook")
    second = DEFAULT.check(first.text, "narration")
    assert second.findings == [] and second.text == first.text


def test_custom_and_empty_replacements() -> None:
    g = rules(pii={"cpf": {"replacement": ""}, "email": {"replacement": "(endereço omitido)"}})
    result = g.check("CPF 529.982.247-25, mail a@b.com", "x")
    assert result.text == "CPF , mail (endereço omitido)"


RAW_VALUES = {
    "cpf": "529.982.247-25",
    "cnpj": "11.222.333/0001-81",
    "email": "joao.silva@empresa.com.br",
    "phone_br": "(11) 91234-5678",
    "card": "4111 1111 1111 1111",
}


@pytest.mark.parametrize("kind", list(RAW_VALUES))
def test_the_raw_value_never_appears_in_a_finding(kind: str) -> None:
    raw = RAW_VALUES[kind]
    result = DEFAULT.check(f"dado: {raw}", "brief.prompt")
    (finding,) = result.findings
    assert finding.type == kind
    digits = re.sub(r"\D", "", raw)
    for shown in (str(finding), repr(finding), json.dumps(finding.to_dict()), finding.sample):
        assert raw not in shown
        if digits:
            assert digits not in re.sub(r"\D", "", shown)
    assert "joao.silva" not in finding.sample and "empresa" not in finding.sample
    assert raw not in result.text


def test_masked_samples_keep_only_the_last_digits() -> None:
    samples = {f.type: f.sample for f in DEFAULT.check(" ".join(RAW_VALUES.values()), "x").findings}
    assert samples == {
        "cpf": "***.***.***-25",
        "cnpj": "**.***.***/****-81",
        "email": "j***@***.com.br",
        "phone_br": "(**) *****-**78",
        "card": "**** **** **** 1111",
    }


# --------------------------------------------------------------------------- actions


def test_block_raises_naming_the_finding_and_where() -> None:
    """GIVEN cpf set to block WHEN a brief prompt holds a CPF THEN the job is blocked with the finding named."""
    g = Guardrails(GuardrailsFile.model_validate({"pii": {"cpf": {"action": "block"}}}), source=Path("g.yaml"))
    with pytest.raises(GuardrailBlocked) as info:
        g.check("Fale do cliente 529.982.247-25.", "brief.prompt", file="inbox/video.yaml")
    err = info.value
    assert err.details["finding"] == {
        "type": "cpf",
        "action": "block",
        "where": "brief.prompt",
        "sample": "***.***.***-25",
        "rule": None,
    }
    message = str(err)
    assert message.startswith("inbox/video.yaml: ")
    assert "cpf" in message and "brief.prompt" in message and "pii.cpf.action" in message and "g.yaml" in message
    assert "529.982.247-25" not in message and "52998224725" not in json.dumps(err.to_dict())


def test_warn_keeps_the_text_and_reports() -> None:
    g = rules(pii={"email": {"action": "warn"}})
    text = "Contato: ana@empresa.com.br"
    result = g.check(text, "brief.prompt")
    assert result.text == text
    assert [(f.type, f.action) for f in result.findings] == [("email", "warn")]


def test_check_many_scans_everything_before_blocking() -> None:
    g = rules(blocked_words={"words": ["proibido"], "action": "block"})
    items = {"script.hook": "ligue 11 91234-5678", "script.scene[1].narration": "isso é PROIBIDO"}
    with pytest.raises(GuardrailBlocked) as info:
        g.check_many(items)
    assert info.value.details["finding"]["where"] == "script.scene[1].narration"
    assert [f["type"] for f in info.value.details["findings"]] == ["phone_br", "blocked_word"]


def test_check_many_returns_redacted_texts_and_findings() -> None:
    texts, findings = DEFAULT.check_many({"srt line 1": "mail a@b.com", "srt line 2": "nada aqui"})
    assert texts == {"srt line 1": "mail [e-mail removido]", "srt line 2": "nada aqui"}
    assert [(f.type, f.where) for f in findings] == [("email", "srt line 1")]


# --------------------------------------------------------------------------- topics and words

VIOLENCE = {"name": "violence", "keywords": ["violência"], "action": "block"}


@pytest.mark.parametrize("text", ["Um vídeo sobre violência.", "UM VIDEO SOBRE VIOLENCIA", "Violência!", "violencia"])
@pytest.mark.parametrize("keyword", ["violência", "VIOLENCIA"])
def test_topic_blocking_ignores_case_and_accents(text: str, keyword: str) -> None:
    g = rules(blocked_topics=[{**VIOLENCE, "keywords": [keyword]}])
    with pytest.raises(GuardrailBlocked) as info:
        g.check(text, "brief.topic")
    finding = info.value.details["finding"]
    assert finding["type"] == "topic:violence" and finding["where"] == "brief.topic"
    assert finding["rule"] == keyword
    assert "topic:violence" in str(info.value) and "brief.topic" in str(info.value)


@pytest.mark.parametrize("text", ["violino e violão", "violências no plural", "nãoviolência"])
def test_topic_keywords_match_whole_words_only(text: str) -> None:
    assert rules(blocked_topics=[VIOLENCE]).check(text, "x").findings == []


def test_topic_wildcards_phrases_and_patterns() -> None:
    g = rules(
        blocked_topics=[
            {"name": "weapons", "keywords": ["explosivo caseiro", "arma*"], "patterns": [r"\bfazer (uma )?bomba\b"]}
        ],
    )
    for text in ("Como fazer uma BOMBA", "Explosivo   Caseiro", "armamento pesado", "ARMAS"):
        with pytest.raises(GuardrailBlocked):
            g.check(text, "x")
    assert g.check("alarmado com a bomba d'água", "x").findings == []


def test_topic_redact_replaces_only_the_match() -> None:
    g = rules(blocked_topics=[{**VIOLENCE, "action": "redact", "replacement": "[tema removido]"}])
    result = g.check("Falamos de Violência hoje.", "x")
    assert result.text == "Falamos de [tema removido] hoje."
    assert result.findings[0].sample == "V*******a"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("que porra de dia", "que de dia"),
        ("Porra, que dia", ", que dia"),
        ("que dia, PÔRRA", "que dia,"),
        ("porrada é outra palavra", "porrada é outra palavra"),
    ],
)
def test_blocked_words_are_removed_by_default(text: str, expected: str) -> None:
    result = rules(blocked_words={"words": ["porra"]}).check(text, "x")
    assert result.text == expected


def test_a_blocked_word_set_to_block_raises() -> None:
    with pytest.raises(GuardrailBlocked, match="blocked_word"):
        rules(blocked_words={"words": ["droga*"], "action": "block"}).check("Que DROGAS!", "script.hook")


def test_when_rules_overlap_the_strictest_action_wins() -> None:
    g = rules(
        blocked_topics=[{"name": "drugs", "keywords": ["droga"], "action": "warn"}],
        blocked_words={"words": ["droga"], "action": "block"},
    )
    with pytest.raises(GuardrailBlocked) as info:
        g.check("que droga", "x")
    assert info.value.details["finding"]["type"] == "blocked_word"


# --------------------------------------------------------------------------- the rules file


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "guardrails.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_file_loads_with_the_documented_defaults() -> None:
    g = load_guardrails(SHIPPED)
    assert g.source == SHIPPED
    for kind, label in DEFAULT_REPLACEMENTS.items():
        det = getattr(g.rules.pii, kind)
        assert (det.enabled, det.action, det.replacement) == (True, "redact", label)
    assert not g.safety_enabled and g.rules.safety_model.model == "llama-guard3:1b"
    assert g.check("um vídeo sobre VIOLENCIA", "x").findings[0].action == "warn"
    with pytest.raises(GuardrailBlocked):
        g.check("como fabricar uma bomba", "x")


def _model_keys(model: type[BaseModel]) -> set[str]:
    keys: set[str] = set()
    for name, info in model.model_fields.items():
        keys.add(name)
        ann: Any = info.annotation
        inner = getattr(ann, "__args__", (ann,))[0] if getattr(ann, "__origin__", None) is list else ann
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            keys |= _model_keys(inner)
    return keys


def test_the_shipped_file_documents_every_key() -> None:
    """Every key of the rules model appears in the shipped file, each with a comment just above it."""
    lines = SHIPPED.read_text(encoding="utf-8").splitlines()
    seen: set[str] = set()
    for i, line in enumerate(lines):
        m = re.match(r"^\s*(?:- )?([a-z_]+):", line)
        if not m:
            continue
        seen.add(m.group(1))
        assert lines[i - 1].strip().startswith("#"), f"line {i + 1} ({m.group(1)}) has no comment above it"
    assert _model_keys(GuardrailsFile) <= seen, _model_keys(GuardrailsFile) - seen


def test_an_empty_file_means_the_defaults(tmp_path: Path) -> None:
    g = load_guardrails(write(tmp_path, "# nothing yet\n"))
    assert g.rules == GuardrailsFile()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pii_rules: {}\n", ["unknown key 'pii_rules'", "allowed here: version, pii, blocked_topics"]),
        ("pii:\n  ssn: {}\n", ["unknown key 'pii.ssn'", "cpf, cnpj, email, phone_br, card"]),
        ("pii:\n  cpf:\n    action: delete\n", ["'pii.cpf.action'", "block", "redact", "warn"]),
        ("blocked_topics:\n  - name: x\n    keywords: [a]\n    when: always\n", ["'blocked_topics.0.when'"]),
        ("blocked_topics:\n  - name: x\n    patterns: ['(unclosed']\n", ["blocked_topics.0.patterns", "regular"]),
        ("blocked_topics:\n  - name: x\n", ["needs at least one keyword or pattern"]),
        ("blocked_topics:\n  - {name: x, keywords: [a]}\n  - {name: x, keywords: [b]}\n", ["repeated: x"]),
        ("blocked_words:\n  words: ['  ']\n", ["blocked_words.words", "empty"]),
        ("safety_model:\n  action: redact\n", ["safety_model.action"]),
        ("safety_model:\n  ignore_categories: [S99]\n", ["S99"]),
        ("version: 2\n", ["'version'"]),
        ("- a\n- b\n", ["must be a mapping"]),
        ("pii: [unclosed\n", ["not valid YAML"]),
    ],
)
def test_a_bad_rules_file_is_a_clear_config_error(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_guardrails(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    for part in expected:
        assert part in message


def test_a_missing_rules_file_says_how_to_fix_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"cannot read the guardrails file .*guardrails\.file"):
        load_guardrails(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- safety model


@pytest.mark.parametrize(
    ("answer", "safe", "categories"),
    [
        ("safe", True, ()),
        ("  Safe\n", True, ()),
        ("unsafe\nS1", False, ("S1",)),
        ("unsafe\nS1,S10", False, ("S1", "S10")),
        ("unsafe\ns2, S2 ,S11\n", False, ("S2", "S11")),
        ("unsafe S9", False, ("S9",)),
        ("unsafe", False, ()),
    ],
)
def test_llama_guard_answers_are_read(answer: str, safe: bool, categories: tuple[str, ...]) -> None:
    verdict = parse_llama_guard(answer)
    assert (verdict.safe, verdict.categories) == (safe, categories)


@pytest.mark.parametrize("answer", ["", "   ", "I think this is fine", "safely done", "unsafely", "safe\nS1"])
def test_an_unreadable_llama_guard_answer_is_never_taken_as_safe(answer: str) -> None:
    with pytest.raises(ValueError):
        parse_llama_guard(answer)


Handler = Callable[[httpx.Request], httpx.Response]


def chat_answer(content: str, seen: list[dict[str, Any]] | None = None) -> Handler:
    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if seen is not None:
            seen.append({"path": request.url.path, **body})
        reply = {"model": body["model"], "message": {"role": "assistant", "content": content}, "done": True}
        return httpx.Response(200, json=reply)

    return handle


def guard_client(handler: Handler) -> ollama.Client:
    # The real ollama client and httpx stack; only the socket is replaced.
    return ollama.Client(host="http://ollama.test:11434", transport=httpx.MockTransport(handler))


SAFETY_ON = {"safety_model": {"enabled": True}}


def test_the_safety_model_is_asked_with_the_text_and_a_safe_answer_passes() -> None:
    seen: list[dict[str, Any]] = []
    result = rules(**SAFETY_ON).check_safety(
        "Um vídeo sobre jardinagem.", "brief.prompt", guard_client(chat_answer("safe", seen))
    )
    assert result.findings == [] and result.text == "Um vídeo sobre jardinagem."
    assert seen[0]["path"] == "/api/chat" and seen[0]["model"] == "llama-guard3:1b"
    assert seen[0]["messages"] == [{"role": "user", "content": "Um vídeo sobre jardinagem."}]


def test_an_unsafe_verdict_blocks_with_its_category() -> None:
    with pytest.raises(GuardrailBlocked) as info:
        rules(**SAFETY_ON).check_safety("texto", "script.scene[0].narration", guard_client(chat_answer("unsafe\nS1")))
    assert info.value.details["finding"]["type"] == "safety:S1"
    assert "violent crimes" in str(info.value) and "safety_model.action" in str(info.value)


def test_an_unsafe_verdict_warns_when_told_and_ignored_categories_pass() -> None:
    g = rules(safety_model={"enabled": True, "action": "warn", "ignore_categories": ["s6"]})
    result = g.check_safety("texto", "x", guard_client(chat_answer("unsafe\nS6,S10")))
    assert [(f.type, f.action) for f in result.findings] == [("safety:S10", "warn")]
    assert g.check_safety("texto", "x", guard_client(chat_answer("unsafe\nS6"))).findings == []


def test_a_disabled_safety_model_is_never_called() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise AssertionError("the safety model must not be called")

    assert DEFAULT.check_safety("texto", "x", guard_client(refuse)).findings == []


def test_a_garbled_safety_answer_fails_the_stage() -> None:
    with pytest.raises(StageFailed, match="llama-guard3:1b"):
        rules(**SAFETY_ON).check_safety("texto", "x", guard_client(chat_answer("Sure! Here is")))


def test_a_safety_model_not_pulled_says_how_to_pull_it() -> None:
    def missing(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": "model 'llama-guard3:1b' not found"})

    with pytest.raises(ToolMissing, match=r"ollama pull llama-guard3:1b"):
        rules(**SAFETY_ON).check_safety("texto", "x", guard_client(missing))


def test_an_unreachable_ollama_is_transient_and_names_the_host() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = ollama.Client(host=f"http://127.0.0.1:{port}")
    with pytest.raises(TransientError, match=rf"127\.0\.0\.1:{port}.*ollama serve"):
        rules(**SAFETY_ON).check_safety("texto", "x", client)


def test_the_async_safety_check_reads_the_same_verdicts() -> None:
    client = ollama.AsyncClient(
        host="http://ollama.test:11434", transport=httpx.MockTransport(chat_answer("unsafe\nS10"))
    )
    g = rules(safety_model={"enabled": True, "action": "warn"})
    result = asyncio.run(g.acheck_safety("texto", "x", client))
    assert [f.type for f in result.findings] == ["safety:S10"]


def test_findings_serialise_for_the_sidecar() -> None:
    f = Finding("topic:violence", "warn", "brief.prompt", "v*******a", "violência")
    assert yaml.safe_load(json.dumps(f.to_dict())) == {
        "type": "topic:violence",
        "action": "warn",
        "where": "brief.prompt",
        "sample": "v*******a",
        "rule": "violência",
    }
    assert str(f) == "topic:violence (v*******a, rule 'violência') in brief.prompt: warn"
