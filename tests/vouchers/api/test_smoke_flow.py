from vouchers.models import Code


def test_issue_then_redeem_then_reverse_round_trip(shop):
    # given a shop with 10 codes
    # when one code is issued
    issued = shop.client.issue(shop.product.sku, customer="c-1")
    # then it comes back in clear once, and stock drops by one
    assert issued.status_code == 201, issued.json()
    body = issued.json()
    assert body["status"] == "issued" and len(body["codes"]) == 1
    code = body["codes"][0]["code"]
    products = shop.client.get("/api/v1/products/").json()["results"]
    assert products == [{"sku": shop.product.sku, "name": shop.product.name, "face_value": "50.00",
                         "currency": "USD", "available": 9}]
    # when it is redeemed twice
    first = shop.client.redeem(code)
    second = shop.client.redeem(code)
    assert first.status_code == 201, first.json()
    assert second.status_code == 409
    assert second.json()["code"] == "already_redeemed"
    assert second.json()["redeemed_at"] == first.json()["redeemed_at"]
    assert second["Content-Type"] == "application/problem+json"
    # when the redemption is reversed, the code is redeemable again
    reversed_ = shop.client.reverse(first.json()["id"])
    assert reversed_.status_code == 200
    assert Code.objects.get(pk=body["codes"][0]["id"]).state == "issued"
    assert shop.client.redeem(code).status_code == 201
