"""The admin's home page: the merchant's dashboard (unfold's DASHBOARD_CALLBACK fills its context).

Staff see their own merchant; a superuser picks one (?merchant=<id>, default the first);
a staff user of no merchant sees no figures at all.
"""

from __future__ import annotations

import json
from typing import cast

from django.http import HttpRequest
from django.urls import reverse
from django.utils.translation import gettext as _

from config.tenancy import is_unscoped, staff_merchant
from vouchers.dashboard.selectors import Dashboard, merchant_dashboard
from vouchers.models import Code, Merchant

# Chart colours (the theme's palette: violet primary, and one hue per state / outcome).
STATE_COLOURS = {
    Code.State.AVAILABLE: "#8b5cf6", Code.State.RESERVED: "#f59e0b", Code.State.ISSUED: "#3b82f6",
    Code.State.REDEEMED: "#10b981", Code.State.VOID: "#9ca3af",
}
OUTCOME_COLOURS = {"allow": "#10b981", "review": "#f59e0b", "deny": "#ef4444"}


def dashboard_merchant(request: HttpRequest) -> tuple[Merchant | None, list[Merchant]]:
    """The merchant whose figures this user sees, and (for a superuser) the merchants to pick from."""
    if is_unscoped(request):
        merchants = list(Merchant.objects.order_by("name", "pk"))
        chosen = request.GET.get("merchant", "")
        picked = next((m for m in merchants if str(m.pk) == chosen), merchants[0] if merchants else None)
        return picked, merchants
    return cast(Merchant | None, staff_merchant(request)), []  # the staff row's merchant


def state_label(state: str) -> str:
    return str(Code.State(state).label)


def charts(board: Dashboard) -> dict[str, str]:
    labels = [day.strftime("%m-%d") for day in board.days]
    sales = {
        "labels": labels,
        "datasets": [
            {"label": _("Issued"), "data": board.daily["issued"], "backgroundColor": "#8b5cf6",
             "borderColor": "#8b5cf6"},
            {"label": _("Redeemed"), "data": board.daily["redeemed"], "backgroundColor": "#10b981",
             "borderColor": "#10b981"},
        ],
    }
    stock = {
        "labels": [p.product.sku for p in board.products],
        "datasets": [
            {"label": state_label(state), "data": [p.by_state[state] for p in board.products],
             "backgroundColor": colour}
            for state, colour in STATE_COLOURS.items()
        ],
    }
    decisions = {
        "labels": labels,
        "datasets": [
            {"label": {"allow": _("Allowed"), "review": _("Held for review"), "deny": _("Denied")}[outcome],
             "data": counts, "backgroundColor": OUTCOME_COLOURS[outcome]}
            for outcome, counts in board.decisions_daily.items()
        ],
    }
    # Chart.js options replace the theme's defaults whole: grouped bars, legend shown.
    base = {"animation": False, "responsive": True, "maintainAspectRatio": False,
            "plugins": {"legend": {"display": True, "align": "end"}}}
    stacked = {**base, "scales": {"x": {"stacked": True}, "y": {"stacked": True, "beginAtZero": True}}}
    return {
        "sales_chart": json.dumps(sales),
        "sales_chart_options": json.dumps({**base, "scales": {"y": {"beginAtZero": True}}}),
        "stock_chart": json.dumps(stock),
        "stock_chart_options": json.dumps(stacked),
        "decisions_chart": json.dumps(decisions),
        "decisions_chart_options": json.dumps(stacked),
    }


def dashboard_callback(request: HttpRequest, context: dict) -> dict:
    merchant, merchants = dashboard_merchant(request)
    if merchant is None:
        context["dashboard"] = None
        return context
    board = merchant_dashboard(merchant=merchant)
    context.update(
        title=_("Dashboard"),
        dashboard=board,
        merchants=merchants,
        review_queue_url=reverse("admin:vouchers_issuance_review_queue"),
        fraud_events_url=reverse("admin:fraud_fraudevent_changelist"),
        batch_url_name="admin:vouchers_batch_change",
        **charts(board),
    )
    return context
