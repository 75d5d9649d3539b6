"""Avro compatibility levels of the schema registry, on the avro package's rules."""
import json

import pytest

from schemas.registry.compatibility import InvalidSchema, canonical, check


def record(*fields):
    return json.dumps({"type": "record", "name": "Order", "namespace": "shop", "fields": list(fields)})


V1 = record({"name": "id", "type": "long"})
WITH_DEFAULT = record({"name": "id", "type": "long"}, {"name": "currency", "type": "string", "default": "EUR"})
NO_DEFAULT = record({"name": "id", "type": "long"}, {"name": "channel", "type": "string"})
DROPPED_ID = record({"name": "currency", "type": "string", "default": "EUR"})


def test_adding_a_field_with_a_default_is_backward_and_forward_compatible():
    assert check(WITH_DEFAULT, [V1], "FULL") == []


def test_adding_a_field_without_default_breaks_backward_naming_field_and_rule():
    problems = check(NO_DEFAULT, [V1], "BACKWARD")
    assert len(problems) == 1
    assert "channel" in problems[0] and "reader_field_missing_default_value" in problems[0]
    assert check(NO_DEFAULT, [V1], "FORWARD") == []  # old readers just ignore the new field


def test_removing_a_field_without_default_breaks_forward():
    assert check(DROPPED_ID, [V1], "BACKWARD") == []
    assert check(DROPPED_ID, [V1], "FORWARD") != []


def test_transitive_levels_check_every_version():
    v2 = record({"name": "id", "type": "long"}, {"name": "x", "type": "int", "default": 0})
    v3 = record({"name": "id", "type": "long"}, {"name": "x", "type": "string", "default": ""})
    # v3 reads v2 data? No: int -> string is not a promotion. Against v1 alone it is fine.
    assert check(v3, [V1], "BACKWARD") == []
    assert check(v3, [V1, v2], "BACKWARD") != []
    assert check(v3, [v2, V1], "BACKWARD") == []          # only the latest counts
    assert check(v3, [v2, V1], "BACKWARD_TRANSITIVE") != []
    assert check(NO_DEFAULT, [V1], "NONE") == []


def test_canonical_form_ignores_layout_not_content():
    assert canonical(V1) == canonical(json.dumps(json.loads(V1), indent=4))
    assert canonical(V1) != canonical(WITH_DEFAULT)
    with pytest.raises(InvalidSchema):
        canonical('{"type": "record", "name": "X"}')
    with pytest.raises(ValueError, match="unknown compatibility level"):
        check(V1, [V1], "SIDEWAYS")
