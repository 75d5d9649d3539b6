"""Source records become contract fields, or a reason that names the field."""
import json

import pytest

from connectors.records import InvalidRecord, RecordMapper, event_id
from schemas import contracts


@pytest.fixture
def payments():
    return RecordMapper(json.loads(contracts.contract("shop.files.payments").schema))


def test_text_is_coerced_to_the_contract_types(payments):
    entity = payments.entity({"payment_id": "p-1", "order_id": "12", "amount": "10.5", "method": "",
                              "paid_at": "2026-11-26T00:00:00Z"})
    assert entity == {"payment_id": "p-1", "order_id": 12, "amount": 10.5, "currency": "EUR", "method": None,
                      "paid_at": 1_795_651_200_000}


def test_reasons_name_the_field(payments):
    with pytest.raises(InvalidRecord, match="field 'amount'"):
        payments.entity({"payment_id": "p", "order_id": 1, "amount": "ten", "paid_at": 0})
    with pytest.raises(InvalidRecord, match="missing required field 'order_id'"):
        payments.entity({"payment_id": "p", "amount": 1, "paid_at": 0})
    with pytest.raises(InvalidRecord, match="field 'order_id'"):
        payments.entity({"payment_id": "p", "order_id": 1.5, "amount": 1, "paid_at": 0})


def test_enums_and_field_maps():
    orders = RecordMapper(json.loads(contracts.contract("shop.api.orders").schema), {"order_id": "id"})
    record = {"id": 3, "customer_id": 1, "status": "PAID", "amount": 2, "updated_at": 5}
    assert orders.entity(record)["order_id"] == 3
    with pytest.raises(InvalidRecord, match="'LOST' is not one of"):
        orders.entity({**record, "status": "LOST"})


def test_event_ids_are_deterministic_and_distinct():
    assert event_id("file", "s3://b/k", 10, "etag", 3) == event_id("file", "s3://b/k", 10, "etag", 3)
    assert event_id("file", "s3://b/k", 10, "etag", 3) != event_id("file", "s3://b/k", 10, "etag", 4)
    assert len(event_id("x")) == 32
