import pytest

from tests.snapshots import world
from tests.vouchers.api.conftest import make_shop

pytestmark = pytest.mark.django_db


@pytest.fixture
def a_and_b(db):
    return make_shop(codes=5), make_shop(codes=5)


def test_another_merchants_objects_are_404_and_untouched(a_and_b):
    a, b = a_and_b
    issued = a.client.issue(a.product.sku, quantity=2).json()
    reserved = a.client.issue(a.product.sku, reserve=True).json()
    redemption = a.client.redeem(issued["codes"][0]["code"]).json()
    before = world()
    # B asks for A's issuance, confirms and cancels A's reservation, reverses A's redemption
    assert b.client.get(f"/api/v1/issuances/{issued['id']}/").status_code == 404
    for response in (
        b.client.confirm(reserved["id"]), b.client.cancel(reserved["id"]),
        b.client.reverse(redemption["id"]),
    ):
        assert response.status_code == 404
        assert response.json()["code"] == "not_found"
    # B checks and redeems A's codes
    for response in (b.client.check(issued["codes"][1]["code"]), b.client.redeem(issued["codes"][1]["code"])):
        assert response.status_code == 404
        assert response.json()["code"] == "unknown_code"
    # B cannot buy A's product, nor see it
    assert b.client.issue(a.product.sku).json()["code"] == "unknown_product"
    assert [p["sku"] for p in b.client.get("/api/v1/products/").json()["results"]] == [b.product.sku]
    assert world() == before
