"""Encryption at rest: round trip, row binding, tampering, key ids."""

from __future__ import annotations

import base64
import secrets

import pytest

from tests.factories import ProductFactory
from vouchers import crypto
from vouchers.codeformat import CodeFormat
from vouchers.crypto import CodeIntegrityError, UnknownKeyId
from vouchers.models import Code
from vouchers.services.generation import generate_batch


def new_key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def two_codes(product) -> list[Code]:
    batch = generate_batch(product=product, count=2, fmt=CodeFormat())
    return list(Code.objects.filter(batch=batch).order_by("pk"))


def test_seal_then_open_returns_the_plaintext_under_the_primary_key(settings):
    # given a code and its blind index
    plaintext = CodeFormat().random_body()
    index = crypto.blind_index(plaintext)
    # when it is sealed and opened for the same row
    sealed = crypto.seal(plaintext, batch_id=7, blind_index=index)
    opened = crypto.open_sealed(
        ciphertext=sealed.ciphertext, nonce=sealed.nonce, key_id=sealed.key_id,
        batch_id=7, blind_index=index,
    )
    # then
    assert opened == plaintext
    assert sealed.key_id == settings.VOUCHER_PRIMARY_KEY_ID
    assert len(sealed.nonce) == crypto.NONCE_BYTES
    assert plaintext.encode() not in sealed.ciphertext


def test_the_same_code_sealed_twice_gets_fresh_nonces_and_different_ciphertexts():
    plaintext = CodeFormat().random_body()
    index = crypto.blind_index(plaintext)
    first = crypto.seal(plaintext, batch_id=1, blind_index=index)
    second = crypto.seal(plaintext, batch_id=1, blind_index=index)
    assert first.nonce != second.nonce
    assert first.ciphertext != second.ciphertext


def test_stored_codes_decrypt_to_what_was_generated_and_match_their_blind_index(two_codes):
    for code in two_codes:
        # when
        plaintext = crypto.decrypt_code(code)
        # then the plaintext hashes to the row's blind index and ends in its last4
        assert crypto.blind_index(plaintext) == bytes(code.blind_index)
        assert plaintext[-4:] == code.last4


def test_ciphertexts_swapped_between_two_rows_fail_to_decrypt(two_codes):
    # given two codes of one batch whose ciphertexts (with nonces and key ids) are swapped
    a, b = two_codes
    Code.objects.filter(pk=a.pk).update(ciphertext=b.ciphertext, nonce=b.nonce)
    Code.objects.filter(pk=b.pk).update(ciphertext=a.ciphertext, nonce=a.nonce)
    # when / then neither opens
    for pk in (a.pk, b.pk):
        with pytest.raises(CodeIntegrityError):
            crypto.decrypt_code(Code.objects.get(pk=pk))


def test_a_ciphertext_moved_to_another_batch_fails_to_decrypt(merchant):
    # given a code sealed for batch A
    batch_a = generate_batch(product=ProductFactory(merchant=merchant), count=1)
    batch_b = generate_batch(product=ProductFactory(merchant=merchant), count=1)
    code = Code.objects.get(batch=batch_a)
    # when it is opened as if it belonged to batch B (same blind index, same bytes)
    # then
    with pytest.raises(CodeIntegrityError):
        crypto.open_sealed(
            ciphertext=code.ciphertext, nonce=code.nonce, key_id=code.key_id,
            batch_id=batch_b.pk, blind_index=code.blind_index,
        )
    assert crypto.decrypt_code(code)  # and it still opens in its own row


def test_a_tampered_ciphertext_fails_to_decrypt(two_codes):
    # given one flipped bit in a stored ciphertext
    code = two_codes[0]
    tampered = bytearray(code.ciphertext)
    tampered[0] ^= 0x01
    Code.objects.filter(pk=code.pk).update(ciphertext=bytes(tampered))
    # when / then
    with pytest.raises(CodeIntegrityError):
        crypto.decrypt_code(Code.objects.get(pk=code.pk))


def test_a_tampered_nonce_fails_to_decrypt(two_codes):
    code = two_codes[0]
    nonce = bytearray(code.nonce)
    nonce[-1] ^= 0x80
    Code.objects.filter(pk=code.pk).update(nonce=bytes(nonce))
    with pytest.raises(CodeIntegrityError):
        crypto.decrypt_code(Code.objects.get(pk=code.pk))


def test_a_row_under_a_key_id_missing_from_the_ring_raises_unknown_key_id(settings, two_codes):
    # given the ring loses the key the codes were sealed with
    code = two_codes[0]
    old_id = code.key_id
    settings.VOUCHER_ENCRYPTION_KEYS = {"fresh": new_key()}
    settings.VOUCHER_PRIMARY_KEY_ID = "fresh"
    # when / then decrypting is a loud error naming the key id
    with pytest.raises(UnknownKeyId, match=repr(old_id)):
        crypto.decrypt_code(code)


def test_a_row_naming_a_bogus_key_id_raises_unknown_key_id(two_codes):
    code = two_codes[0]
    code.key_id = "no-such-key"
    with pytest.raises(UnknownKeyId, match="'no-such-key'"):
        crypto.decrypt_code(code)


def test_changing_the_primary_key_seals_new_codes_under_it_and_old_ones_still_open(settings, product):
    # given a batch under the first key
    settings.VOUCHER_ENCRYPTION_KEYS = {"k1": new_key(), "k2": new_key()}
    settings.VOUCHER_PRIMARY_KEY_ID = "k1"
    old = generate_batch(product=product, count=3)
    # when the primary key changes and another batch is generated
    settings.VOUCHER_PRIMARY_KEY_ID = "k2"
    new = generate_batch(product=product, count=3)
    # then each batch is under its own key and every code opens
    assert set(Code.objects.filter(batch=old).values_list("key_id", flat=True)) == {"k1"}
    assert set(Code.objects.filter(batch=new).values_list("key_id", flat=True)) == {"k2"}
    assert all(crypto.decrypt_code(c) for c in Code.objects.filter(batch__in=[old, new]))


def test_the_blind_index_depends_on_the_index_key(settings):
    code = CodeFormat().random_body()
    before = crypto.blind_index(code)
    settings.VOUCHER_INDEX_KEY = new_key()
    after = crypto.blind_index(code)
    assert len(before) == len(after) == 32
    assert before != after


def test_a_primary_key_id_outside_the_ring_is_refused(settings):
    settings.VOUCHER_ENCRYPTION_KEYS = {"k1": new_key()}
    settings.VOUCHER_PRIMARY_KEY_ID = "k9"
    with pytest.raises(UnknownKeyId, match="'k9'"):
        crypto.key_ring()


def test_keys_in_the_environment_format_parse_to_the_ring():
    # given the documented format 'id:base64,id:base64'
    from config.settings import _parse_key_ring

    k1, k2 = new_key(), new_key()
    spec = f"a:{base64.b64encode(k1).decode()}, b:{base64.b64encode(k2).decode()}"
    # then
    assert _parse_key_ring(spec) == {"a": k1, "b": k2}
