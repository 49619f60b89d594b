"""Normalisation, generation alphabet, check characters and the guessability rule.

The same normalisation runs on import, generation and lookup, so a customer may
type a code with spaces, hyphens or (where the batch allows) any letter case.
"""

from __future__ import annotations

import math
import re
import secrets
import unicodedata
from dataclasses import dataclass, field

from django.conf import settings

# No 0/O, 1/I/L: nothing a customer can misread.
UNAMBIGUOUS_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
DEFAULT_MIN_ENTROPY_BITS = 80
MIN_CODE_LENGTH = 4
MAX_CODE_LENGTH = 64
_SEPARATORS = re.compile(r"[\s\-_]+")
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")


class InvalidCode(ValueError):
    """A raw code that cannot be a code at all (empty, too long, odd characters)."""


def normalise(raw: str, *, case_sensitive: bool) -> str:
    """Fold a typed or supplied code to its canonical form.

    NFKC first (full-width characters from GBK files become ASCII), then spaces,
    hyphens and underscores go, then case is folded unless the batch is case-sensitive.
    Raises InvalidCode.
    """
    text = _SEPARATORS.sub("", unicodedata.normalize("NFKC", raw))
    if not case_sensitive:
        text = text.upper()
    if len(text) < MIN_CODE_LENGTH:
        raise InvalidCode(f"a code has at least {MIN_CODE_LENGTH} characters")
    if len(text) > MAX_CODE_LENGTH:
        raise InvalidCode(f"a code has at most {MAX_CODE_LENGTH} characters")
    if not _PRINTABLE.match(text):
        raise InvalidCode("a code may contain only printable ASCII letters, digits and symbols")
    return text


def lookup_forms(raw: str) -> list[str]:
    """Every canonical form under which a typed code may be stored (case-folded or not)."""
    forms: list[str] = []
    for case_sensitive in (False, True):
        try:
            form = normalise(raw, case_sensitive=case_sensitive)
        except InvalidCode:
            continue
        if form not in forms:
            forms.append(form)
    return forms


# --- check character (Luhn mod N over the alphabet) --------------------------------

def check_character(payload: str, alphabet: str) -> str:
    """Luhn mod N over the alphabet: catches every single substitution and adjacent swap.

    Doubling must permute the alphabet's values. For an odd N (31 for the default
    alphabet) `2v mod N` does; the classic "sum the digits of 2v" step does only for
    even N, so it is used there alone.
    """
    n = len(alphabet)
    factor, total = 2, 0
    for char in reversed(payload):
        addend = factor * alphabet.index(char)
        factor = 1 if factor == 2 else 2
        total += addend % n if n % 2 else addend // n + addend % n
    return alphabet[(n - total % n) % n]


def has_valid_check_character(code: str, alphabet: str) -> bool:
    if len(code) < 2 or any(c not in alphabet for c in code):
        return False
    return check_character(code[:-1], alphabet) == code[-1]


# --- guessability ---------------------------------------------------------------------

class TooGuessable(ValueError):
    """The code space is too small for the number of codes (10^9 guesses would hit one)."""


def min_code_space(count: int) -> int:
    return count * settings.VOUCHER_MIN_SPACE_PER_CODE


def ensure_not_guessable(*, count: int, space: int, what: str = "these settings") -> None:
    """Refuse a batch where 10^9 random guesses hit any code with probability > 1/1000.

    P(hit) <= guesses x count / space, so space must be at least count x 10^12.
    Raises TooGuessable.
    """
    required = min_code_space(count)
    if space < required:
        raise TooGuessable(
            f"{what} give a code space of about 10^{math.log10(space):.1f} for {count:,} codes; "
            f"at least 10^{math.log10(required):.1f} is needed so that a billion random guesses "
            "hit a code with probability under 1 in 1,000. Use longer codes or a larger alphabet."
        )


def estimated_space(normalised_code: str, *, case_sensitive: bool) -> int:
    """Estimate the space a supplier's code comes from, by its character classes and length."""
    size = 0
    if any(c.isdigit() for c in normalised_code):
        size += 10
    if any(c.isupper() for c in normalised_code):
        size += 26
    if case_sensitive and any(c.islower() for c in normalised_code):
        size += 26
    if any(not c.isalnum() for c in normalised_code):
        size += 32
    return max(size, 1) ** len(normalised_code)


# --- generation -----------------------------------------------------------------------

@dataclass(frozen=True)
class CodeFormat:
    """How generated codes look. `length` counts random characters only."""

    length: int | None = None
    alphabet: str = UNAMBIGUOUS_ALPHABET
    prefix: str = ""
    group: int = 0
    check_char: bool = False
    _rejection_limit: int = field(init=False, repr=False, default=0)

    def __post_init__(self) -> None:
        if len(set(self.alphabet)) != len(self.alphabet) or len(self.alphabet) < 2:
            raise ValueError("the alphabet needs at least 2 distinct characters")
        if not _PRINTABLE.match(self.alphabet) or _SEPARATORS.search(self.alphabet):
            raise ValueError("the alphabet may hold printable ASCII only, no spaces or hyphens")
        if self.prefix and (not _PRINTABLE.match(self.prefix) or _SEPARATORS.search(self.prefix)):
            raise ValueError("the prefix may hold printable ASCII only, no spaces or hyphens")
        if self.group < 0:
            raise ValueError("grouping must be 0 (none) or a positive group size")
        if self.length is None:
            object.__setattr__(self, "length", self.default_length(self.alphabet))
        if not 4 <= self.random_length <= 48:
            raise ValueError("length must be between 4 and 48")
        object.__setattr__(self, "_rejection_limit", 256 - 256 % len(self.alphabet))

    @property
    def random_length(self) -> int:
        """`length`, which __post_init__ fills in when it was not given."""
        if self.length is None:
            raise ValueError("length is set in __post_init__")
        return self.length

    @staticmethod
    def default_length(alphabet: str) -> int:
        return math.ceil(DEFAULT_MIN_ENTROPY_BITS / math.log2(len(alphabet)))

    @property
    def case_sensitive_alphabet(self) -> bool:
        return len({c.upper() for c in self.alphabet}) != len(self.alphabet)

    @property
    def space(self) -> int:
        return len(self.alphabet) ** self.random_length

    @property
    def entropy_bits(self) -> float:
        return self.random_length * math.log2(len(self.alphabet))

    def as_json(self) -> dict:
        return {
            "length": self.length, "alphabet": self.alphabet, "prefix": self.prefix,
            "group": self.group, "check_char": self.check_char,
        }

    def random_body(self) -> str:
        """`length` characters drawn uniformly (rejection sampling, no modulo bias)."""
        alphabet, limit, n = self.alphabet, self._rejection_limit, len(self.alphabet)
        out: list[str] = []
        while len(out) < self.random_length:
            for byte in secrets.token_bytes(self.random_length * 2):
                if byte < limit:
                    out.append(alphabet[byte % n])
                    if len(out) == self.length:
                        break
        return "".join(out)

    def display(self, body: str) -> str:
        """The code as handed out: prefix, body, check character, grouped with hyphens."""
        core = body + (check_character(body, self.alphabet) if self.check_char else "")
        if self.group:
            core = "-".join(core[i : i + self.group] for i in range(0, len(core), self.group))
        return f"{self.prefix}-{core}" if self.prefix and self.group else self.prefix + core
