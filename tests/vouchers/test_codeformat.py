"""Normalisation, lookup tolerance, check characters and the guessability rule."""

from __future__ import annotations

import math

import pytest

from tests.factories import ProductFactory
from vouchers import codeformat
from vouchers.codeformat import (
    UNAMBIGUOUS_ALPHABET,
    CodeFormat,
    InvalidCode,
    TooGuessable,
    check_character,
    ensure_not_guessable,
    has_valid_check_character,
    normalise,
)
from vouchers.crypto import decrypt_code
from vouchers.models import Code
from vouchers.selectors import find_code
from vouchers.services.generation import generate_batch

CASE_SENSITIVE_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ"

# --- normalisation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("ABCD EFGH JKMN", "ABCDEFGHJKMN"),
        ("abcd-efgh-jkmn", "ABCDEFGHJKMN"),
        ("  aBcD\tEfGh\nJkMn  ", "ABCDEFGHJKMN"),
        ("ab_cd--ef  gh", "ABCDEFGH"),
        ("ＡＢＣＤ－ｅｆｇｈ　１２３４", "ABCDEFGH1234"),  # full-width, as in GBK supplier files
    ],
)
def test_normalise_strips_spaces_hyphens_and_folds_case_and_width(typed, expected):
    assert normalise(typed, case_sensitive=False) == expected


def test_normalise_keeps_case_for_a_case_sensitive_batch():
    assert normalise("aBcD-eFgH", case_sensitive=True) == "aBcDeFgH"
    assert normalise("ａＢｃＤ ｅＦ", case_sensitive=True) == "aBcDeF"


@pytest.mark.parametrize("typed", ["", "   ", "A-B-C", "x" * 65, "ABCD\u00e9FGH", "ABCD\u4e2dEFG"])
def test_normalise_refuses_what_cannot_be_a_code(typed):
    with pytest.raises(InvalidCode):
        normalise(typed, case_sensitive=False)


def test_lookup_forms_lists_the_folded_and_the_exact_form_once_each():
    assert codeformat.lookup_forms("ab-CD ef") == ["ABCDEF", "abCDef"]
    assert codeformat.lookup_forms("AB-CD EF") == ["ABCDEF"]
    assert codeformat.lookup_forms("a") == []


# --- lookup through the blind index ----------------------------------------------------


def test_find_code_in_a_case_insensitive_batch_ignores_case_spaces_and_hyphens(product):
    # given a generated code (display form with groups)
    batch = generate_batch(product=product, count=3, fmt=CodeFormat(group=4))
    code = Code.objects.filter(batch=batch).order_by("pk").first()
    display = decrypt_code(code)
    assert "-" in display
    # when a customer types it in lower case, with spaces instead of hyphens
    typed = "  " + display.lower().replace("-", " ") + " "
    # then
    assert batch.case_sensitive is False
    assert find_code(typed) == code
    assert find_code(display) == code


def test_find_code_in_a_case_sensitive_batch_needs_the_exact_case(product):
    # given a case-sensitive batch and a code of it containing letters
    batch = generate_batch(
        product=product, count=5, fmt=CodeFormat(alphabet=CASE_SENSITIVE_ALPHABET, length=16)
    )
    assert batch.case_sensitive is True
    codes = {decrypt_code(c): c for c in Code.objects.filter(batch=batch)}
    display, code = next((d, c) for d, c in codes.items() if d.swapcase() != d)
    # when / then the exact spelling (with separators) finds it, another case does not
    assert find_code(f"{display[:4]}-{display[4:]}") == code
    assert find_code(display.swapcase()) is None


def test_find_code_returns_none_for_unknown_or_malformed_input(product):
    generate_batch(product=product, count=2)
    assert find_code(CodeFormat().random_body()) is None
    assert find_code("") is None
    assert find_code("a") is None


# --- check characters ------------------------------------------------------------------


def test_a_generated_code_with_a_check_character_validates():
    fmt = CodeFormat(check_char=True)
    body = fmt.random_body()
    code = fmt.display(body)
    assert len(code) == fmt.length + 1
    assert code[-1] == check_character(body, UNAMBIGUOUS_ALPHABET)
    assert has_valid_check_character(code, UNAMBIGUOUS_ALPHABET) is True


def test_the_check_character_catches_every_single_character_substitution():
    body = "23456789ABCDEFGH"
    code = body + check_character(body, UNAMBIGUOUS_ALPHABET)
    for position in range(len(code)):
        for other in UNAMBIGUOUS_ALPHABET:
            if other == code[position]:
                continue
            typo = code[:position] + other + code[position + 1 :]
            assert has_valid_check_character(typo, UNAMBIGUOUS_ALPHABET) is False, typo


def test_the_check_character_catches_adjacent_transpositions_of_different_characters():
    body = "2345679ABCDEFGH"
    code = body + check_character(body, UNAMBIGUOUS_ALPHABET)
    caught = 0
    for i in range(len(code) - 1):
        if code[i] == code[i + 1]:
            continue
        swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
        caught += not has_valid_check_character(swapped, UNAMBIGUOUS_ALPHABET)
    assert caught == len(code) - 1


def test_a_code_with_characters_outside_the_alphabet_has_no_valid_check_character():
    assert has_valid_check_character("ABC0", UNAMBIGUOUS_ALPHABET) is False
    assert has_valid_check_character("A", UNAMBIGUOUS_ALPHABET) is False


def test_display_adds_prefix_grouping_and_check_character():
    fmt = CodeFormat(length=8, prefix="GIFT", group=4, check_char=True)
    body = "ABCDEFGH"
    assert fmt.display(body) == f"GIFT-ABCD-EFGH-{check_character(body, UNAMBIGUOUS_ALPHABET)}"
    assert CodeFormat(length=8, prefix="GC").display(body) == "GCABCDEFGH"


# --- formats and entropy ---------------------------------------------------------------


def test_the_default_format_has_at_least_80_bits_over_an_unambiguous_alphabet():
    fmt = CodeFormat()
    assert fmt.entropy_bits >= 80
    assert fmt.length == math.ceil(80 / math.log2(31)) == 17
    assert not set("01OILo") & set(fmt.alphabet)
    body = fmt.random_body()
    assert len(body) == 17
    assert set(body) <= set(UNAMBIGUOUS_ALPHABET)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alphabet": "AA23"},
        {"alphabet": "A"},
        {"alphabet": "AB CD"},
        {"alphabet": "AB-CD"},
        {"prefix": "GI FT"},
        {"group": -1},
        {"length": 3},
        {"length": 49},
    ],
)
def test_malformed_formats_are_refused(kwargs):
    with pytest.raises(ValueError):
        CodeFormat(**kwargs)


# --- guessability ----------------------------------------------------------------------


def test_guessability_accepts_a_space_of_exactly_count_times_10_to_the_12():
    # refusing raises TooGuessable; accepting returns nothing
    assert ensure_not_guessable(count=1_000, space=1_000 * 10**12) is None
    assert ensure_not_guessable(count=1, space=10**12) is None


def test_guessability_refuses_a_space_one_below_count_times_10_to_the_12():
    with pytest.raises(TooGuessable, match="billion random guesses"):
        ensure_not_guessable(count=1_000, space=1_000 * 10**12 - 1)
    with pytest.raises(TooGuessable):
        ensure_not_guessable(count=1, space=10**12 - 1)


def test_guessability_boundary_through_a_code_format():
    # given digits only, 13 long: a space of 10^13 holds at most 10 codes
    fmt = CodeFormat(alphabet="0123456789", length=13)
    assert fmt.space == 10**13
    ensure_not_guessable(count=10, space=fmt.space)
    with pytest.raises(TooGuessable):
        ensure_not_guessable(count=11, space=fmt.space)


def test_generation_at_the_guessability_boundary_is_accepted_and_one_more_code_is_refused(merchant):
    from vouchers.exceptions import InvalidBatchSettings
    from vouchers.models import Batch

    # given digits only, 12 long: a space of exactly 10^12, room for one code
    fmt = CodeFormat(alphabet="0123456789", length=12)
    product = ProductFactory(merchant=merchant)
    # when one code is generated, then it is accepted
    accepted = generate_batch(product=product, count=1, fmt=fmt)
    assert accepted.size == 1
    # when two are asked for, then the batch is refused with a clear message, nothing stored
    with pytest.raises(InvalidBatchSettings, match="billion random guesses"):
        generate_batch(product=product, count=2, fmt=fmt)
    assert Batch.objects.filter(product=product).count() == 1
    assert Code.objects.filter(batch__product=product).count() == 1
