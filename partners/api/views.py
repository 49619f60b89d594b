"""Partner API views: a partner key reads and answers its own settlement (404 for anything else)."""

from __future__ import annotations

import csv
import io
from decimal import Decimal, InvalidOperation

from django.http import Http404, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from config.callers import Caller
from partners.api import serializers as s
from partners.csvexport import csv_rows
from partners.exceptions import InvalidRequest, NotFound
from partners.models import AgreementVersion, LedgerEntry, Statement, StatementLine
from partners.money import format_minor, to_minor
from partners.services import statements as statement_service
from partners.signing import published_keys
from vouchers.api.base import IdempotentApiView, StorefrontApiView
from vouchers.api.toolkit import (
    COMMON_ERRORS,
    IDEMPOTENCY_ERRORS,
    IDEMPOTENCY_KEY,
    RETRY_AFTER,
    BoundedTextParser,
    documented,
    problem,
    replayed,
)

READ_ERRORS = {
    401: COMMON_ERRORS[401],
    404: problem("`not_found`."),
    429: COMMON_ERRORS[429],
    503: COMMON_ERRORS[503],
}
PARTNER_TAG = ["partner"]


class IsPartner(BasePermission):
    """A partner key; a storefront key on a partner path is 404 not_found; no key is 401."""

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.user, Caller):
            return False  # not authenticated: 401 not_authenticated, as on every other path
        if request.user.kind == "partner":
            return True
        raise Http404


class PartnerApiView(StorefrontApiView):
    permission_classes = [IsPartner]

    def statement(self: StorefrontApiView, statement_id) -> Statement:  # shared with the POST views
        statement = (
            Statement.objects.select_related("merchant")
            .defer("document")  # several hundred MB for a large statement: streamed where needed
            .filter(pk=statement_id, partner_id=self.caller.own_partner_id)
            .first()
        )
        if statement is None:
            raise NotFound("No such statement.")
        return statement

    def paged(self, rows, serialise):
        """One page of `rows` (Page), each page serialised by `serialise(page) -> list`."""
        paginator = Page()
        page = paginator.paginate_queryset(rows, self.request, view=self)
        return paginator.get_paginated_response(serialise(page))


class PartnerIdempotentApiView(IdempotentApiView):
    permission_classes = [IsPartner]
    statement = PartnerApiView.statement


class Page(PageNumberPagination):
    page_size = 100
    max_page_size = 1000
    page_size_query_param = "page_size"


PAGE_PARAMS = [
    OpenApiParameter("page", int, OpenApiParameter.QUERY, description="Page number, from 1."),
    OpenApiParameter(
        "page_size", int, OpenApiParameter.QUERY, description="Rows per page (default 100, max 1000)."
    ),
]


class AgreementListApi(PartnerApiView):
    pagination_class = Page

    @extend_schema(
        operation_id="partner_agreements_list",
        tags=PARTNER_TAG,
        parameters=[*PAGE_PARAMS, RETRY_AFTER],
        summary="The partner's agreements, one row per version",
        responses=documented({200: s.AgreementOutput(many=True), **READ_ERRORS}),
    )
    def get(self, request):
        versions = (
            AgreementVersion.objects.filter(agreement__partner_id=self.caller.own_partner_id)
            .select_related("agreement__merchant")
            .prefetch_related("products")
            .order_by("agreement_id", "number")
        )
        return self.paged(versions, lambda page: [s.agreement_row(v) for v in page])


class StatementListApi(PartnerApiView):
    pagination_class = Page

    @extend_schema(
        operation_id="partner_statements_list",
        tags=PARTNER_TAG,
        parameters=[*PAGE_PARAMS, RETRY_AFTER],
        summary="The partner's statements, newest first",
        responses=documented({200: s.StatementOutput(many=True), **READ_ERRORS}),
    )
    def get(self, request):
        rows = (
            Statement.objects.filter(partner_id=self.caller.own_partner_id)
            .select_related("merchant")
            .defer("document")
            .order_by("-issued_at", "-number")
        )
        return self.paged(rows, lambda page: [s.statement_row(st) for st in page])


class StatementDetailApi(PartnerApiView):
    @extend_schema(
        operation_id="partner_statements_retrieve",
        parameters=[RETRY_AFTER],
        tags=PARTNER_TAG,
        summary="One statement",
        responses=documented({200: s.StatementOutput, **READ_ERRORS}),
    )
    def get(self, request, statement_id):
        return Response(s.statement_row(self.statement(statement_id)))


def _line_rows(statement: Statement, lines) -> list[dict]:
    return [
        statement_service.line_document(
            (
                line.line_no,
                e.pk,
                e.seq,
                e.kind,
                e.occurred_at,
                e.recorded_at,
                e.sku,
                e.source_type,
                e.source_id,
                e.code_last4,
                e.amount_minor,
                e.reverses_id,
                line.original_statement_id,
                e.hash,
            ),
            statement.currency,
        )
        for line in lines
        for e in [line.entry]
    ]


class StatementLinesApi(PartnerApiView):
    pagination_class = Page

    @extend_schema(
        operation_id="partner_statement_lines",
        tags=PARTNER_TAG,
        parameters=[*PAGE_PARAMS, RETRY_AFTER],
        summary="A statement's lines, in order; never a code",
        responses=documented({200: s.LineOutput(many=True), **READ_ERRORS}),
    )
    def get(self, request, statement_id):
        statement = self.statement(statement_id)
        lines = StatementLine.objects.filter(statement=statement).select_related("entry").order_by("line_no")
        return self.paged(lines, lambda page: _line_rows(statement, page))


class StatementCsvApi(PartnerApiView):
    @extend_schema(
        operation_id="partner_statement_lines_csv",
        parameters=[RETRY_AFTER],
        tags=PARTNER_TAG,
        summary="A statement's lines as CSV (RFC 4180, UTF-8, formula cells neutralised)",
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR), **documented(READ_ERRORS)},
    )
    def get(self, request, statement_id):
        statement = self.statement(statement_id)
        response = StreamingHttpResponse(
            (row.encode("utf-8") for row in csv_rows(statement_service.iter_lines(statement))),
            content_type="text/csv; charset=utf-8",
        )
        response["Content-Disposition"] = (
            f'attachment; filename="statement-{statement.number}-{statement.pk}.csv"'
        )
        return response


class StatementDocumentApi(PartnerApiView):
    @extend_schema(
        operation_id="partner_statement_document",
        tags=PARTNER_TAG,
        summary="The exact signed bytes (RFC 8785 JSON); the detached JWS is in Statement-Signature",
        parameters=[
            RETRY_AFTER,
            OpenApiParameter(
                "Statement-Signature",
                str,
                OpenApiParameter.HEADER,
                response=[200],
                description="Compact JWS with detached payload (alg EdDSA, kid).",
            ),
        ],
        responses={
            (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT),
            **documented(READ_ERRORS),
        },
    )
    def get(self, request, statement_id):
        statement = self.statement(statement_id)
        size, chunks = statement_service.document_chunks(statement)
        response = StreamingHttpResponse(chunks, content_type="application/json")
        response["Content-Length"] = str(size)
        response["Statement-Signature"] = statement.signature
        response["Content-SHA256"] = statement.content_sha256
        return response


class KeysApi(PartnerApiView):
    @extend_schema(
        operation_id="partner_keys",
        parameters=[RETRY_AFTER],
        tags=PARTNER_TAG,
        summary="Statement-signing public keys (JWKS), retired ones included",
        responses=documented({200: s.KeysOutput, **READ_ERRORS}),
    )
    def get(self, request):
        return Response({"keys": published_keys()})


class StatementConfirmApi(PartnerIdempotentApiView):
    @extend_schema(
        operation_id="partner_statement_confirm",
        tags=PARTNER_TAG,
        request=s.ConfirmInput,
        summary="Confirm a statement, pinned to its content_sha256",
        parameters=[IDEMPOTENCY_KEY, replayed(200), RETRY_AFTER],
        responses=documented(
            {
                200: s.StatementOutput,
                **COMMON_ERRORS,
                **IDEMPOTENCY_ERRORS,
                404: problem("`not_found`."),
                409: problem("`content_mismatch`, `invalid_state` or `idempotency_in_progress`."),
            }
        ),
    )
    def post(self, request, statement_id):
        return super().post(request, statement_id)

    def perform(self, request, statement_id):
        data = self.validated(s.ConfirmInput)
        statement = statement_service.confirm_statement(
            statement=self.statement(statement_id),
            content_sha256=data["content_sha256"],
            actor=self.caller.identity,
        )
        return Response(s.statement_row(statement))


def dispute_row(dispute, currency: str) -> dict:
    claimed = dispute.claimed_amount_minor
    return {
        "id": str(dispute.pk),
        "status": dispute.status,
        "statement": str(dispute.statement_id),
        "reason": dispute.reason,
        "lines": dispute.lines,
        "claimed_amount": None if claimed is None else format_minor(claimed, currency),
        "claimed_amount_minor": claimed,
        "created_at": dispute.created_at.isoformat().replace("+00:00", "Z"),
    }


class StatementDisputeApi(PartnerIdempotentApiView):
    @extend_schema(
        operation_id="partner_statement_dispute",
        tags=PARTNER_TAG,
        request=s.DisputeInput,
        summary="Dispute a statement or some of its lines, within the dispute window",
        parameters=[IDEMPOTENCY_KEY, replayed(201), RETRY_AFTER],
        responses=documented(
            {
                201: s.DisputeOutput,
                **COMMON_ERRORS,
                **IDEMPOTENCY_ERRORS,
                404: problem("`not_found`."),
                409: problem(
                    "`invalid_state` (confirmed), `dispute_window_closed` or `idempotency_in_progress`."
                ),
            }
        ),
    )
    def post(self, request, statement_id):
        return super().post(request, statement_id)

    def perform(self, request, statement_id):
        data = self.validated(s.DisputeInput)
        statement = self.statement(statement_id)
        claimed = None
        if "claimed_amount" in data:
            try:
                claimed = to_minor(data["claimed_amount"], statement.currency)
            except (ValueError, InvalidOperation):
                raise InvalidRequest(
                    f"claimed_amount has more digits than {statement.currency} allows.",
                    errors={"claimed_amount": ["too many decimal digits"]},
                ) from None
        dispute = statement_service.open_dispute(
            statement=statement,
            reason=data["reason"],
            lines=data["lines"],
            claimed_amount_minor=claimed,
            actor=self.caller.identity,
        )
        return Response(dispute_row(dispute, statement.currency), status=201)


class CsvTextParser(BoundedTextParser):
    """A CSV body as text, read no further than API_MAX_UPLOAD_BYTES (413 beyond)."""

    media_type = "text/csv"
    limit_setting = "API_MAX_UPLOAD_BYTES"


class StatementReconcileApi(PartnerIdempotentApiView):
    parser_classes = [CsvTextParser]
    max_body_setting = CsvTextParser.limit_setting  # a statement's worth of rows, not a few KB

    @extend_schema(
        operation_id="partner_statement_reconcile",
        tags=PARTNER_TAG,
        request={"text/csv": OpenApiTypes.STR},
        summary="Diff the partner's records (CSV: source_id, amount) against a statement; changes nothing",
        parameters=[IDEMPOTENCY_KEY, replayed(200), RETRY_AFTER],
        responses=documented(
            {200: s.ReconcileOutput, **COMMON_ERRORS, **IDEMPOTENCY_ERRORS, 404: problem("`not_found`.")}
        ),
    )
    def post(self, request, statement_id):
        return super().post(request, statement_id)

    def perform(self, request, statement_id):
        statement = self.statement(statement_id)
        theirs = _parse_partner_csv(request.data if isinstance(request.data, str) else "", statement.currency)
        ours: dict[str, int] = {}
        for line in statement_service.iter_lines(statement):
            ours[line["source_id"]] = ours.get(line["source_id"], 0) + line["amount_minor"]
        c = statement.currency
        groups: dict[str, list] = {"matched": [], "missing": [], "unexpected": [], "mismatched": []}
        for source_id, amount in theirs.items():
            if source_id not in ours:
                groups["missing"].append({"source_id": source_id, "amount": format_minor(amount, c)})
            elif ours[source_id] == amount:
                groups["matched"].append({"source_id": source_id, "amount": format_minor(amount, c)})
            else:
                groups["mismatched"].append(
                    {
                        "source_id": source_id,
                        "amount": format_minor(amount, c),
                        "statement_amount": format_minor(ours[source_id], c),
                    }
                )
        for source_id, amount in ours.items():
            if source_id not in theirs:
                groups["unexpected"].append(
                    {"source_id": source_id, "statement_amount": format_minor(amount, c)}
                )
        return Response({name: {"count": len(rows), "rows": rows} for name, rows in groups.items()})


def _parse_partner_csv(text: str, currency: str) -> dict[str, int]:
    """{source_id: net amount in minor units} from the partner's CSV; bad rows are a 400 naming them."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or not {"source_id", "amount"} <= {f.strip() for f in reader.fieldnames}:
        raise InvalidRequest(
            "The CSV needs a header with at least source_id and amount.",
            errors={"csv": ["header must name source_id and amount"]},
        )
    totals: dict[str, int] = {}
    errors = {}
    for number, row in enumerate(reader, start=2):
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        try:
            amount = to_minor(Decimal(row["amount"].lstrip("'")), currency)
        except (ValueError, InvalidOperation):
            errors[f"line {number}"] = [f"amount is not a {currency} amount"]
            continue
        totals[row["source_id"]] = totals.get(row["source_id"], 0) + amount
    if errors:
        raise InvalidRequest("Some rows of the CSV are not valid.", errors=errors)
    return totals


class LedgerFeedApi(PartnerApiView):
    @extend_schema(
        operation_id="partner_ledger",
        tags=PARTNER_TAG,
        summary="The partner's ledger entries in sequence order, after a sequence number",
        parameters=[
            RETRY_AFTER,
            OpenApiParameter("after", int, OpenApiParameter.QUERY, description="Last seq seen (default 0)."),
            OpenApiParameter(
                "limit", int, OpenApiParameter.QUERY, description="Entries (default 100, max 1000)."
            ),
        ],
        responses=documented({200: s.LedgerEntryOutput(many=True), **READ_ERRORS}),
    )
    def get(self, request):
        try:
            after = int(request.query_params.get("after", 0))
            limit = min(max(int(request.query_params.get("limit", 100)), 1), 1000)
        except ValueError:
            raise InvalidRequest(
                "after and limit are integers.", errors={"after": ["integer"], "limit": ["integer"]}
            ) from None
        entries = list(
            LedgerEntry.objects.filter(partner_id=self.caller.own_partner_id, seq__gt=after)
            .select_related("line")
            .order_by("seq")[:limit]
        )
        rows = [s.ledger_row(e) for e in entries]
        next_after = rows[-1]["seq"] if len(rows) == limit else None
        next_url = None
        if next_after is not None:
            next_url = request.build_absolute_uri(f"{request.path}?after={next_after}&limit={limit}")
        return Response({"results": rows, "next": next_url, "next_after": next_after})
