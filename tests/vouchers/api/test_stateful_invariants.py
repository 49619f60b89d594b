"""A stateful property test of the storefront API against a model of what it should do.

Hypothesis drives random sequences of issue, reserve, confirm, cancel, redeem, reverse,
check, replays of earlier requests under their Idempotency-Key, reservations running
out, a batch's validity window closing and another merchant's storefront naming our
objects, all through the HTTP API of one storefront whose product has 8 codes in 2
batches (one with a validity window, one with grouped codes). Every response is
compared with the model, and after every step the invariants of docs/invariants.md are checked
against the database:

1. a code is held by at most one issuance (the model's), and has at most one live
   redemption;
2. per batch, counts by state from the rows add up to the batch size and equal the
   sharded counters (and the model);
3. no plaintext code (ours, or an unknown one a caller typed) in events, idempotency
   records, issuance context or the fraud app's decisions and events;
4. every state change of a code has an event, and the events of a code form an
   unbroken chain from `available` to its current state;
5. an issuance is all or nothing (checked in the issue rule: out of stock creates
   nothing and moves nothing; and every held issuance holds exactly its quantity);
6. responses match the model (status, error `code`, bodies); another tenant's
   storefront gets 404 for all of our objects and keys.

Every example builds a fresh shop; rows of earlier examples stay in the test's
transaction and are ignored (everything is scoped to the example's shop).
"""

from __future__ import annotations

import json
import os
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from django.apps import apps
from django.core.cache import cache
from django.db.models import CharField, JSONField, Max, TextField
from django.utils import timezone
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from rest_framework import serializers

from tests.vouchers.api.conftest import StorefrontClient, make_shop
from vouchers import selectors
from vouchers.codeformat import UNAMBIGUOUS_ALPHABET, CodeFormat
from vouchers.crypto import decrypt_code
from vouchers.models import Batch, Code, CodeEvent, IdempotencyRecord, Issuance, Redemption
from vouchers.services.generation import generate_batch
from vouchers.tasks import release_expired_reservations

PROBLEM = "application/problem+json"
TEXT_FIELDS = (JSONField, CharField, TextField)
PRODUCTS = st.sampled_from(["ours"] * 3 + ["unknown"])
# Targets of a rule; repeats make the interesting ones likelier.
ISSUANCE_TARGETS = st.sampled_from(["reserved"] * 2 + ["any", "unknown"])
CODE_TARGETS = st.sampled_from(["issued"] * 3 + ["redeemed"] * 2 + ["stock", "any", "unknown"])
REDEMPTION_TARGETS = st.sampled_from(["live"] * 2 + ["any", "unknown"])
REPLAYS = st.sampled_from(["same_body"] * 2 + ["reordered_body", "other_body", "other_path", "no_key"])
SPELLINGS = st.sampled_from(["as_issued", "lowercase", "spaced"])
UNKNOWN_CODES = st.text(UNAMBIGUOUS_ALPHABET, min_size=8, max_size=20)
HELD = ("reserved", "issued", "redeemed")
STOCK = ("available", "reserved")  # answered like an unknown code by check and redemption

settings.register_profile(
    "storefront-stateful",
    max_examples=45,
    stateful_step_count=25,
    deadline=None,  # database round trips vary; timing is not a property here
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
# A longer hunt for local use: pytest ... with STOREFRONT_STATEFUL_PROFILE=storefront-stateful-long
settings.register_profile(
    "storefront-stateful-long", parent=settings.get_profile("storefront-stateful"),
    max_examples=300, stateful_step_count=60,
)


def as_api_time(value) -> str | None:
    """A datetime as the API renders it."""
    return None if value is None else serializers.DateTimeField().to_representation(value)


def spelled(plaintext: str, spelling: str) -> str:
    """The code as a customer might type it: normalisation must find it all the same."""
    if spelling == "lowercase":
        return plaintext.lower()
    if spelling == "spaced":
        return " ".join(plaintext[i : i + 4] for i in range(0, len(plaintext), 4))
    return plaintext


@dataclass
class BatchModel:
    size: int
    valid_until: datetime | None
    window_open: bool = True


@dataclass
class CodeModel:
    id: int
    batch_id: int
    plaintext: str
    last4: str
    state: str
    is_canary: bool
    issuance: str | None = None
    transitions: int = 0


@dataclass
class IssuanceModel:
    id: str
    quantity: int
    status: str
    code_ids: list[int]
    customer: str
    order_ref: str
    overdue: bool = False


@dataclass
class RedemptionModel:
    id: str
    code_id: int
    redeemed_at: str
    reversed: bool = False


@dataclass
class SentRequest:
    """An idempotent POST as first sent, with the response it got."""

    path: str
    body: dict
    key: str
    status: int
    response: dict


class StorefrontMachine(RuleBasedStateMachine):
    """One storefront selling one product of 8 codes; the model says what must happen."""

    def __init__(self) -> None:
        super().__init__()
        cache.clear()  # rate-limit counters of earlier examples
        self.shop = make_shop(codes=0)
        self.client = self.shop.client
        self.sku = self.shop.product.sku
        now = timezone.now()
        windowed = generate_batch(
            product=self.shop.product, count=4,
            valid_from=now - timedelta(days=1), valid_until=now + timedelta(days=30),
        )
        grouped = generate_batch(product=self.shop.product, count=4, fmt=CodeFormat(group=4))
        self.windowed_id = windowed.pk
        self.batches = {
            b.pk: BatchModel(size=b.size, valid_until=b.valid_until) for b in (windowed, grouped)
        }
        self.codes: dict[int, CodeModel] = {
            row.pk: CodeModel(
                id=row.pk, batch_id=row.batch_id, plaintext=decrypt_code(row), last4=row.last4,
                state=row.state, is_canary=row.is_canary,
            )
            for row in Code.objects.filter(batch_id__in=self.batches).order_by("pk")
        }
        self.issuances: dict[str, IssuanceModel] = {}
        self.redemptions: dict[str, RedemptionModel] = {}
        self.sent: list[SentRequest] = []
        self.typed_unknown: list[str] = []
        self.orders = 0
        self.stranger: StorefrontClient | None = None  # another merchant's storefront, made on first use
        self.stranger_keys: dict[str, dict] = {}  # our keys the stranger sent, with its answers
        self.merchant_ids = [self.shop.storefront.merchant_id]
        self.first_event_id = CodeEvent.objects.aggregate(m=Max("id"))["m"] or 0

    # --- helpers ---------------------------------------------------------------------

    def post(self, path: str, body: dict):
        key = str(uuid.uuid4())
        response = self.client.post(path, body, idempotency_key=key)
        self.sent.append(SentRequest(path, body, key, response.status_code, response.json()))
        return response

    def expect_problem(self, response, status: int, code: str, **extra) -> dict:
        body = response.json()
        assert (response.status_code, body.get("code")) == (status, code), body
        assert response["Content-Type"] == PROBLEM
        assert body["status"] == status
        for name, value in extra.items():
            assert body[name] == value, (name, body)
        return body

    def ordered_codes(self) -> list[CodeModel]:
        return [self.codes[pk] for pk in sorted(self.codes)]

    def sellable_code_ids(self) -> list[int]:
        """Codes an issuance takes, in order: first-expiring sellable batch first, then by id."""
        batches = sorted(
            (pk for pk, b in self.batches.items() if b.window_open),
            key=lambda pk: (self.batches[pk].valid_until is None, self.batches[pk].valid_until or 0, pk),
        )
        return [
            c.id for batch_id in batches for c in self.ordered_codes()
            if c.batch_id == batch_id and c.state == "available"
        ]

    def move(self, code_ids, *, state: str, issuance: str | None) -> None:
        for pk in code_ids:
            code = self.codes[pk]
            code.state, code.issuance = state, issuance
            code.transitions += 1

    def expires_at(self, code: CodeModel) -> str | None:
        return as_api_time(self.batches[code.batch_id].valid_until)

    def expected_codes(self, issuance: IssuanceModel) -> list[dict]:
        if issuance.status != "issued":
            return []
        return [
            {"id": pk, "code": self.codes[pk].plaintext, "serial": None,
             "expires_at": self.expires_at(self.codes[pk])}
            for pk in sorted(issuance.code_ids)
        ]

    def assert_issuance_body(self, body: dict, issuance: IssuanceModel) -> None:
        assert set(body) == {"id", "status", "sku", "quantity", "customer", "order_ref", "codes",
                             "reserved_until", "created_at"}
        assert body["id"] == issuance.id
        assert body["status"] == issuance.status
        assert (body["sku"], body["quantity"]) == (self.sku, issuance.quantity)
        assert (body["customer"], body["order_ref"]) == (issuance.customer, issuance.order_ref)
        assert body["codes"] == self.expected_codes(issuance)

    def pick(self, items: list, index: int):
        return items[index % len(items)] if items else None

    def pick_code(self, kind: str, index: int) -> CodeModel:
        """A code in the wanted state if there is one, else a sold one, else any."""
        wanted = {"issued": ("issued",), "redeemed": ("redeemed",), "stock": STOCK}.get(kind)
        codes = self.ordered_codes()
        candidates = [c for c in codes if wanted is None or c.state in wanted]
        sold = [c for c in codes if c.state in ("issued", "redeemed")]
        return self.pick(candidates, index) or self.pick(sold, index) or self.pick(codes, index)

    def pick_issuance(self, which: str, index: int) -> IssuanceModel | None:
        if which == "unknown":
            return None
        candidates = [i for i in self.issuances.values() if which == "any" or i.status == which]
        return self.pick(candidates, index) or self.pick(list(self.issuances.values()), index)

    def release(self, issuance: IssuanceModel, *, status: str) -> None:
        self.move(issuance.code_ids, state="available", issuance=None)
        issuance.status, issuance.code_ids, issuance.overdue = status, [], False

    def live_redemption(self, code_id: int) -> RedemptionModel:
        (live,) = [r for r in self.redemptions.values() if r.code_id == code_id and not r.reversed]
        return live

    def audit_texts(self):
        """The text columns of the fraud app's audit rows of our merchants (decisions, events).

        Audit rows are the models with a JSON column; rules and lists are configuration.
        """
        for model in apps.get_app_config("fraud").get_models():
            fields = model._meta.concrete_fields
            audited = "merchant" in {f.name for f in fields} and any(isinstance(f, JSONField) for f in fields)
            names = [f.name for f in fields if isinstance(f, TEXT_FIELDS) and not f.choices]
            if not audited:
                continue
            for row in model.objects.filter(merchant_id__in=self.merchant_ids).values_list(*names):
                yield json.dumps(row, default=str)

    # --- rules -----------------------------------------------------------------------

    @initialize(reserved=st.integers(0, 3), sold=st.integers(1, 3), redeem_one=st.booleans())
    def opening_orders(self, reserved: int, sold: int, redeem_one: bool) -> None:
        """Every example starts with sold codes (and maybe a reservation and a redemption), so
        that later rules have something to act on whichever of them the run enables."""
        if reserved:
            self.issue(quantity=reserved, reserve=True, product="ours")
        self.issue(quantity=sold, reserve=False, product="ours")
        if redeem_one:
            self.redeem(kind="issued", index=0, spelling="as_issued", typed="")

    @rule(quantity=st.integers(1, 4), reserve=st.booleans(), product=PRODUCTS)
    def issue(self, quantity: int, reserve: bool, product: str) -> None:
        if product == "unknown":
            response = self.post("/api/v1/issuances/", {"sku": f"{self.sku}-NOPE", "quantity": quantity})
            self.expect_problem(response, 404, "unknown_product")
            return
        # given what stock the model says is sellable now
        sellable = self.sellable_code_ids()
        issuances_before = Issuance.objects.filter(storefront=self.shop.storefront).count()
        self.orders += 1
        # one customer per order and no device or IP: the default fraud rules (velocity per
        # customer, e-mail, device, IP) stay out of the way of a model of stock
        customer = f"cust-{self.orders}"
        body = {"sku": self.sku, "quantity": quantity, "reserve": reserve, "customer": customer,
                "order_ref": f"order-{self.orders}", "email": f"{customer}@example.com"}
        # when
        response = self.post("/api/v1/issuances/", body)
        # then N codes or none
        if len(sellable) < quantity:
            self.expect_problem(response, 409, "out_of_stock", available=len(sellable))
            assert Issuance.objects.filter(storefront=self.shop.storefront).count() == issuances_before
            return  # the invariants check that no code moved
        assert response.status_code == 201, response.json()
        data = response.json()
        taken = sellable[:quantity]
        status = "reserved" if reserve else "issued"
        issuance = IssuanceModel(id=data["id"], quantity=quantity, status=status, code_ids=taken,
                                 customer=customer, order_ref=body["order_ref"])
        self.issuances[issuance.id] = issuance
        self.move(taken, state=status, issuance=issuance.id)
        self.assert_issuance_body(data, issuance)
        assert (data["reserved_until"] is None) == (not reserve)

    @rule(which=ISSUANCE_TARGETS, index=st.integers(0, 15))
    def confirm(self, which: str, index: int) -> None:
        issuance = self.pick_issuance(which, index)
        issuance_id = issuance.id if issuance else str(uuid.uuid4())
        response = self.post(f"/api/v1/issuances/{issuance_id}/confirm/", {})
        if issuance is None:
            self.expect_problem(response, 404, "not_found")
        elif issuance.status == "reserved" and (issuance.overdue or self.holds_dead_codes(issuance)):
            # found past its time, or holding codes whose window closed meanwhile: released
            # on the spot (that release is kept), and no dead code is sold
            self.release(issuance, status="expired")
            self.expect_problem(response, 409, "reservation_expired")
        elif issuance.status == "expired":
            self.expect_problem(response, 409, "reservation_expired")
        elif issuance.status == "cancelled":
            self.expect_problem(response, 409, "invalid_state")
        else:
            if issuance.status == "reserved":
                self.move(issuance.code_ids, state="issued", issuance=issuance.id)
                issuance.status = "issued"
            assert response.status_code == 200, response.json()
            self.assert_issuance_body(response.json(), issuance)

    def holds_dead_codes(self, issuance) -> bool:
        return any(not self.batches[self.codes[pk].batch_id].window_open for pk in issuance.code_ids)

    @rule(which=ISSUANCE_TARGETS, index=st.integers(0, 15))
    def cancel(self, which: str, index: int) -> None:
        issuance = self.pick_issuance(which, index)
        issuance_id = issuance.id if issuance else str(uuid.uuid4())
        response = self.post(f"/api/v1/issuances/{issuance_id}/cancel/", {})
        if issuance is None:
            self.expect_problem(response, 404, "not_found")
        elif issuance.status in ("issued", "expired"):
            self.expect_problem(response, 409, "invalid_state")
        else:
            if issuance.status == "reserved":  # also one past its time the task has not released
                self.release(issuance, status="cancelled")
            assert response.status_code == 200, response.json()
            self.assert_issuance_body(response.json(), issuance)

    @rule(which=ISSUANCE_TARGETS, index=st.integers(0, 15))
    def retrieve(self, which: str, index: int) -> None:
        issuance = self.pick_issuance(which, index)
        response = self.client.get(f"/api/v1/issuances/{issuance.id if issuance else uuid.uuid4()}/")
        if issuance is None:
            self.expect_problem(response, 404, "not_found")
        else:
            assert response.status_code == 200, response.json()
            self.assert_issuance_body(response.json(), issuance)

    @rule(kind=CODE_TARGETS, index=st.integers(0, 7), spelling=SPELLINGS, typed=UNKNOWN_CODES)
    def redeem(self, kind: str, index: int, spelling: str, typed: str) -> None:
        if kind == "unknown":
            self.typed_unknown.append(typed)
            self.expect_problem(self.post("/api/v1/redemptions/", {"code": typed}), 404, "unknown_code")
            return
        code = self.pick_code(kind, index)
        response = self.post("/api/v1/redemptions/", {"code": spelled(code.plaintext, spelling)})
        if code.state in STOCK or code.is_canary:
            self.expect_problem(response, 404, "unknown_code")
        elif code.state == "redeemed":
            live = self.live_redemption(code.id)
            self.expect_problem(response, 409, "already_redeemed", redeemed_at=live.redeemed_at)
        elif code.state == "void":
            self.expect_problem(response, 409, "code_void")
        elif not self.batches[code.batch_id].window_open:
            self.expect_problem(response, 410, "code_expired")
        else:
            assert response.status_code == 201, response.json()
            data = response.json()
            assert set(data) == {"id", "sku", "code_last4", "face_value", "currency", "redeemed_at"}
            assert (data["sku"], data["code_last4"], data["face_value"], data["currency"]) == (
                self.sku, code.last4, "50.00", "USD"
            )
            self.redemptions[data["id"]] = RedemptionModel(data["id"], code.id, data["redeemed_at"])
            self.move([code.id], state="redeemed", issuance=code.issuance)

    @precondition(lambda self: self.redemptions)
    @rule(which=REDEMPTION_TARGETS, index=st.integers(0, 15))
    def reverse(self, which: str, index: int) -> None:
        candidates = [r for r in self.redemptions.values() if which == "any" or not r.reversed]
        redemption = None if which == "unknown" else self.pick(candidates, index)
        redemption_id = redemption.id if redemption else str(uuid.uuid4())
        response = self.post(f"/api/v1/redemptions/{redemption_id}/reversal/", {"reason": "refund"})
        if redemption is None:
            self.expect_problem(response, 404, "not_found")
        elif redemption.reversed:
            self.expect_problem(response, 409, "already_reversed")
        else:
            assert response.status_code == 200, response.json()
            data = response.json()
            assert set(data) == {"id", "reversed_at"} and data["id"] == redemption.id
            redemption.reversed = True
            self.move([redemption.code_id], state="issued", issuance=self.codes[redemption.code_id].issuance)

    @rule(kind=CODE_TARGETS, index=st.integers(0, 7), spelling=SPELLINGS, typed=UNKNOWN_CODES)
    def check(self, kind: str, index: int, spelling: str, typed: str) -> None:
        if kind == "unknown":
            self.typed_unknown.append(typed)
            self.expect_problem(self.client.check(typed), 404, "unknown_code")
            return
        code = self.pick_code(kind, index)
        response = self.client.check(spelled(code.plaintext, spelling))
        if code.state in STOCK or code.is_canary:
            self.expect_problem(response, 404, "unknown_code")
            return
        assert response.status_code == 200, response.json()
        if code.state == "redeemed":
            status, redeemed_at = "redeemed", self.live_redemption(code.id).redeemed_at
        else:
            status = "void" if code.state == "void" else (
                "issued" if self.batches[code.batch_id].window_open else "expired"
            )
            redeemed_at = None
        assert response.json() == {"status": status, "sku": self.sku,
                                   "expires_at": self.expires_at(code), "redeemed_at": redeemed_at}

    @rule()
    def list_products(self) -> None:
        response = self.client.get("/api/v1/products/")
        assert response.status_code == 200
        assert response.json()["results"] == [{
            "sku": self.sku, "name": self.shop.product.name, "face_value": "50.00", "currency": "USD",
            "available": len(self.sellable_code_ids()),
        }]

    @precondition(lambda self: self.sent)
    @rule(index=st.integers(0, 100), mode=REPLAYS)
    def replay(self, index: int, mode: str) -> None:
        first = self.pick(self.sent, index)
        path, body = first.path, first.body
        if mode == "no_key":
            # the same request without a key is refused before anything happens
            response = self.client.post(path, body, idempotency_key=None)
            self.expect_problem(response, 400, "idempotency_key_required")
            return
        if mode == "reordered_body":  # the same JSON object, its members in another order
            body = dict(reversed(list(body.items())))
        elif mode == "other_body":
            ref = "another-order" if body.get("order_ref") != "another-order" else "yet-another-order"
            body = {**body, "order_ref": ref}
        elif mode == "other_path":
            path = "/api/v1/redemptions/" if path == "/api/v1/issuances/" else "/api/v1/issuances/"
        # when the request is sent again under its key
        response = self.client.post(path, body, idempotency_key=first.key)
        # then the same request gets the first response, another one is refused; no effect
        if mode in ("same_body", "reordered_body"):
            assert response.status_code == first.status
            assert response.json() == first.response
            assert response["Idempotent-Replayed"] == "true"
            if first.status >= 400:
                assert response["Content-Type"] == PROBLEM
        else:
            self.expect_problem(response, 422, "idempotency_key_reused")
            assert "Idempotent-Replayed" not in response

    @precondition(lambda self: any(i.status == "reserved" and not i.overdue for i in self.issuances.values()))
    @rule(index=st.integers(0, 15), run_task=st.booleans())
    def reservation_runs_out(self, index: int, run_task: bool) -> None:
        issuance = self.pick(
            [i for i in self.issuances.values() if i.status == "reserved" and not i.overdue], index
        )
        Issuance.objects.filter(pk=issuance.id).update(reserved_until=timezone.now() - timedelta(seconds=1))
        issuance.overdue = True
        if run_task:
            # the beat task releases every reservation past its time
            release_expired_reservations()
            for held in self.issuances.values():
                if held.status == "reserved" and held.overdue:
                    self.release(held, status="expired")

    @rule(
        action=st.sampled_from(["retrieve", "confirm", "cancel", "redeem", "check", "reverse", "reuse_key"]),
        index=st.integers(0, 100),
    )
    def another_tenant_tries(self, action: str, index: int) -> None:
        """A storefront of another merchant names our objects: 404, as if they did not exist."""
        if self.stranger is None:
            stranger = make_shop(codes=0)
            self.stranger = stranger.client
            self.merchant_ids.append(stranger.storefront.merchant_id)
        issuance = self.pick(list(self.issuances.values()), index)
        code = self.pick_code("issued", index)
        redemption = self.pick(list(self.redemptions.values()), index)
        if action == "retrieve":
            response = self.stranger.get(f"/api/v1/issuances/{issuance.id}/")
            self.expect_problem(response, 404, "not_found")
        elif action in ("confirm", "cancel"):
            response = self.stranger.post(f"/api/v1/issuances/{issuance.id}/{action}/", {})
            self.expect_problem(response, 404, "not_found")
        elif action == "redeem":
            self.expect_problem(self.stranger.redeem(code.plaintext), 404, "unknown_code")
        elif action == "check":
            self.expect_problem(self.stranger.check(code.plaintext), 404, "unknown_code")
        elif action == "reverse" and redemption is not None:
            self.expect_problem(self.stranger.reverse(redemption.id), 404, "not_found")
        elif action == "reuse_key":
            # our Idempotency-Key is ours alone: the stranger's request runs as its own
            first = self.pick(self.sent, index)
            response = self.stranger.post(first.path, first.body, idempotency_key=first.key)
            assert response.status_code == 404, response.json()
            if first.key in self.stranger_keys:  # the stranger's own first answer, replayed
                assert response.json() == self.stranger_keys[first.key]
                assert response["Idempotent-Replayed"] == "true"
            else:
                assert "Idempotent-Replayed" not in response
                self.stranger_keys[first.key] = response.json()

    @precondition(lambda self: self.batches[self.windowed_id].window_open)
    @rule()
    def validity_window_closes(self) -> None:
        Batch.objects.filter(pk=self.windowed_id).update(valid_until=timezone.now() - timedelta(seconds=1))
        batch = self.batches[self.windowed_id]
        batch.window_open = False
        batch.valid_until = Batch.objects.get(pk=self.windowed_id).valid_until

    # --- invariants ------------------------------------------------------------------

    @invariant()
    def codes_are_held_as_the_model_says(self) -> None:
        # (1) every held code has exactly one issuance, the model's; stock has none
        found = Code.objects.filter(batch_id__in=self.batches).values_list("pk", "state", "issuance_id")
        rows = {pk: state for pk, state, _ in found}
        holders = {pk: str(holder) if holder else None for pk, _, holder in found}
        assert rows == {pk: c.state for pk, c in self.codes.items()}
        assert holders == {pk: c.issuance for pk, c in self.codes.items()}
        for pk, state in rows.items():
            assert (holders[pk] is not None) == (state in HELD), (pk, state)
        # no code in two issuances; a held issuance holds exactly its quantity, others none
        claimed = [pk for i in self.issuances.values() for pk in i.code_ids]
        assert len(claimed) == len(set(claimed))
        for issuance in self.issuances.values():
            expected = issuance.quantity if issuance.status in ("reserved", "issued") else 0
            assert len(issuance.code_ids) == expected, issuance
        # redeemed at most once live, and live exactly when redeemed
        live = Counter(
            Redemption.objects.filter(code_id__in=self.codes, reversed_at__isnull=True)
            .values_list("code_id", flat=True)
        )
        assert max(live.values(), default=0) <= 1
        assert set(live) == {pk for pk, state in rows.items() if state == "redeemed"}

    @invariant()
    def issuances_are_as_the_model_says(self) -> None:
        rows = dict(Issuance.objects.filter(storefront=self.shop.storefront).values_list("pk", "status"))
        assert {str(pk): status for pk, status in rows.items()} == {
            pk: i.status for pk, i in self.issuances.items()
        }

    @invariant()
    def stock_adds_up(self) -> None:
        # (2) per batch: counted rows == sharded counters == model, summing to the batch size
        counters = selectors.stock_by_state(self.batches)
        sizes = dict(Batch.objects.filter(pk__in=self.batches).values_list("pk", "size"))
        for batch_id, batch in self.batches.items():
            counted = selectors.counted_stock_by_state(batch_id)
            modelled = Counter(c.state for c in self.codes.values() if c.batch_id == batch_id)
            assert counted == counters[batch_id], batch_id
            assert counted == {state: modelled.get(state, 0) for state in counted}, batch_id
            assert sum(counted.values()) == sizes[batch_id] == batch.size

    @invariant()
    def no_plaintext_is_stored(self) -> None:
        # (3) search the stored JSON for every code, as issued and normalised
        texts = [
            *(json.dumps(d) for d in CodeEvent.objects.filter(id__gt=self.first_event_id)
              .values_list("details", flat=True)),
            *(json.dumps([f, b]) for f, b in IdempotencyRecord.objects.filter(
                caller=f"storefront:{self.shop.storefront.pk}").values_list("fingerprint", "response_body")),
            *(json.dumps(c) for c in Issuance.objects.filter(storefront=self.shop.storefront)
              .values_list("context", flat=True)),
            *self.audit_texts(),
        ]
        haystack = "\n".join(texts).upper()
        squeezed = haystack.replace("-", "")
        for plaintext in [c.plaintext for c in self.codes.values()] + self.typed_unknown:
            assert plaintext.upper() not in haystack
            assert plaintext.upper().replace("-", "") not in squeezed

    @invariant()
    def every_state_change_has_an_event(self) -> None:
        # (4) at least one event per transition, chained from `available` to the current state
        chains: dict[int, list[tuple[str, str]]] = {pk: [] for pk in self.codes}
        for code_id, from_state, to_state in (
            CodeEvent.objects.filter(code_id__in=self.codes).order_by("id")
            .values_list("code_id", "from_state", "to_state")
        ):
            chains[code_id].append((from_state, to_state))
        for pk, code in self.codes.items():
            chain = chains[pk]
            assert len(chain) >= code.transitions, (pk, chain)
            state = "void" if code.is_canary else "available"
            for from_state, to_state in chain:
                assert from_state == state, (pk, chain)
                state = to_state
            assert state == code.state, (pk, chain)


@pytest.fixture
def settings_profile():
    return settings.get_profile(os.environ.get("STOREFRONT_STATEFUL_PROFILE", "storefront-stateful"))


def test_storefront_api_keeps_its_invariants(db, settings_profile):
    # given a fresh shop per example / when hypothesis runs random sequences of requests
    # then every response matches the model and every invariant holds after every step
    run_state_machine_as_test(StorefrontMachine, settings=settings_profile)
