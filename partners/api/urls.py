from django.urls import path

from partners.api import views

app_name = "partner-api"

urlpatterns = [
    path("agreements/", views.AgreementListApi.as_view(), name="agreements"),
    path("statements/", views.StatementListApi.as_view(), name="statements"),
    path("statements/<uuid:statement_id>/", views.StatementDetailApi.as_view(), name="statement"),
    path("statements/<uuid:statement_id>/lines/", views.StatementLinesApi.as_view(), name="statement-lines"),
    path("statements/<uuid:statement_id>/lines.csv", views.StatementCsvApi.as_view(), name="statement-csv"),
    path(
        "statements/<uuid:statement_id>/document/",
        views.StatementDocumentApi.as_view(),
        name="statement-document",
    ),
    path(
        "statements/<uuid:statement_id>/confirm/",
        views.StatementConfirmApi.as_view(),
        name="statement-confirm",
    ),
    path(
        "statements/<uuid:statement_id>/disputes/",
        views.StatementDisputeApi.as_view(),
        name="statement-disputes",
    ),
    path(
        "statements/<uuid:statement_id>/reconcile/",
        views.StatementReconcileApi.as_view(),
        name="statement-reconcile",
    ),
    path("keys/", views.KeysApi.as_view(), name="keys"),
    path("ledger/", views.LedgerFeedApi.as_view(), name="ledger"),
]
