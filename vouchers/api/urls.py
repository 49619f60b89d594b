from django.urls import path

from vouchers.api import listing, views

app_name = "api"

urlpatterns = [
    path("products/", views.ProductListApi.as_view(), name="products"),
    path("issuances/", listing.IssuanceCollectionApi.as_view(), name="issuances"),
    path("issuances/<uuid:issuance_id>/", views.IssuanceDetailApi.as_view(), name="issuance"),
    path(
        "issuances/<uuid:issuance_id>/confirm/", views.IssuanceConfirmApi.as_view(),
        name="issuance-confirm",
    ),
    path(
        "issuances/<uuid:issuance_id>/cancel/", views.IssuanceCancelApi.as_view(),
        name="issuance-cancel",
    ),
    path("codes/check/", views.CodeCheckApi.as_view(), name="code-check"),
    path("redemptions/", listing.RedemptionCollectionApi.as_view(), name="redemptions"),
    path("redemptions/<uuid:redemption_id>/", listing.RedemptionDetailApi.as_view(), name="redemption"),
    path(
        "redemptions/<uuid:redemption_id>/reversal/", views.RedemptionReversalApi.as_view(),
        name="redemption-reversal",
    ),
]
