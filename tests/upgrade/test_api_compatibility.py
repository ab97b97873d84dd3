"""The /app API of the previous release keeps working: the current OpenAPI document breaks none of its routes.

Then the checker itself, on small before/after documents: each kind of breaking change is found, the same
change is accepted once the previous release marked the thing deprecated, and additions pass.
"""

from __future__ import annotations

import copy

from tests.upgrade.openapi_compat import breaking_changes, previous_release_document

PREVIOUS = "0.1.0"


def test_the_current_app_routes_keep_every_promise_of_the_previous_release(app):
    current = app.openapi_schema.to_schema()
    previous = previous_release_document(PREVIOUS)
    assert [p for p in previous["paths"] if p.startswith("/app/")], "the baseline has /app routes"
    breaks = breaking_changes(previous, current)
    assert not breaks, (
        "These changes break mini-programs still running the previous release (docs/releases.md):\n"
        + "\n".join(breaks)
    )


def _doc() -> dict:
    """A previous release: one customer route with a request body, a query parameter and a response."""
    return {
        "paths": {
            "/app/vouchers/{voucher_id}/cancel": {"post": {
                "parameters": [
                    {"in": "path", "name": "voucher_id", "required": True, "schema": {"type": "integer"}},
                    {"in": "query", "name": "reason", "required": False,
                     "schema": {"oneOf": [{"$ref": "#/components/schemas/Reason"}, {"type": "null"}]}},
                ],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/CancelRequest"}}}},
                "responses": {"200": {"content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Voucher"}}}}},
            }},
            "/app/points": {"get": {"responses": {"200": {"content": {"application/json": {
                "schema": {"type": "object", "properties": {"balance": {"type": "integer"}},
                           "required": ["balance"]}}}}}}},
            "/admin/things": {"get": {"responses": {"200": {"content": {"application/json": {
                "schema": {"type": "object", "properties": {"n": {"type": "integer"}}}}}}}}},
        },
        "components": {"schemas": {
            "Reason": {"type": "string", "enum": ["changed_mind", "moved"]},
            "CancelRequest": {"type": "object", "required": ["note"], "properties": {
                "note": {"type": "string"}, "branch_id": {"type": "integer"}}},
            "Voucher": {"type": "object", "required": ["id", "status", "lines"], "properties": {
                "id": {"type": "integer"},
                "status": {"type": "string", "enum": ["issued", "cancelled"]},
                "valid_until": {"type": "string"},
                "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
            }},
            "Line": {"type": "object", "properties": {"amount_fen": {"type": "integer"}, "title": {"type": "string"}}},
        }},
    }


def changed(edit) -> list[str]:
    before = _doc()
    after = copy.deepcopy(before)
    edit(after)
    return breaking_changes(before, after)


def test_an_unchanged_document_and_additions_pass():
    assert breaking_changes(_doc(), _doc()) == []

    def add(doc):
        doc["components"]["schemas"]["Voucher"]["properties"]["code"] = {"type": "string"}  # new response field
        doc["components"]["schemas"]["CancelRequest"]["properties"]["channel"] = {"type": "string"}  # optional
        doc["components"]["schemas"]["Reason"]["enum"].append("other")  # a wider request enum
        doc["paths"]["/app/new"] = {"get": {"responses": {}}}
        del doc["paths"]["/admin/things"]  # not /app
    assert changed(add) == []


def test_a_removed_route_is_breaking_unless_it_was_deprecated_in_the_previous_release():
    breaks = changed(lambda d: d["paths"].pop("/app/points"))
    assert breaks == ["GET /app/points: route removed (deprecate it for a release first)"]
    before = _doc()
    before["paths"]["/app/points"]["get"]["deprecated"] = True
    after = copy.deepcopy(before)
    del after["paths"]["/app/points"]
    assert breaking_changes(before, after) == []
    # Marking it deprecated in the same release as removing it is not a deprecation period.
    assert breaking_changes(_doc(), after)


def test_a_renamed_path_parameter_is_the_same_route():
    def rename(doc):
        doc["paths"]["/app/vouchers/{id}/cancel"] = doc["paths"].pop("/app/vouchers/{voucher_id}/cancel")
    assert changed(rename) == []


def test_a_removed_or_renamed_response_field_is_breaking_unless_deprecated_first():
    def rename(doc):
        props = doc["components"]["schemas"]["Voucher"]["properties"]
        props["state"] = props.pop("status")
    assert changed(rename) == ["POST /app/vouchers/{voucher_id}/cancel response 200.status: removed from the response"]

    def nested(doc):
        del doc["components"]["schemas"]["Line"]["properties"]["amount_fen"]
    assert changed(nested) == [
        "POST /app/vouchers/{voucher_id}/cancel response 200.lines[].amount_fen: removed from the response"]

    before = _doc()
    before["components"]["schemas"]["Voucher"]["properties"]["status"]["deprecated"] = True
    after = copy.deepcopy(before)
    del after["components"]["schemas"]["Voucher"]["properties"]["status"]
    assert breaking_changes(before, after) == []


def test_a_response_field_that_may_now_be_absent_is_breaking():
    def optional(doc):
        doc["components"]["schemas"]["Voucher"]["required"].remove("status")
    assert changed(optional) == [
        "POST /app/vouchers/{voucher_id}/cancel response 200.status: no longer always present"]


def test_a_response_type_change_or_a_field_becoming_nullable_is_breaking():
    def to_string(doc):
        doc["paths"]["/app/points"]["get"]["responses"]["200"]["content"]["application/json"]["schema"][
            "properties"]["balance"] = {"type": "string"}
    assert changed(to_string) == ["GET /app/points response 200.balance: type ['integer'] became ['string']"]

    def nullable(doc):
        doc["components"]["schemas"]["Voucher"]["properties"]["valid_until"] = {
            "oneOf": [{"type": "string"}, {"type": "null"}]}
    assert changed(nullable) == [
        "POST /app/vouchers/{voucher_id}/cancel response 200.valid_until: type ['string'] became ['null', 'string']"]


def test_a_new_required_request_field_or_parameter_is_breaking():
    def required_field(doc):
        doc["components"]["schemas"]["CancelRequest"]["properties"]["channel"] = {"type": "string"}
        doc["components"]["schemas"]["CancelRequest"]["required"].append("channel")
    assert changed(required_field) == ["POST /app/vouchers/{voucher_id}/cancel request.channel: new required field"]

    def required_param(doc):
        doc["paths"]["/app/vouchers/{voucher_id}/cancel"]["post"]["parameters"][1]["required"] = True
    assert changed(required_param) == [
        "POST /app/vouchers/{voucher_id}/cancel query parameter reason: new required parameter"]

    def new_body(doc):
        doc["paths"]["/app/points"]["get"]["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": {"type": "object"}}}}
    assert changed(new_body) == ["GET /app/points request body: now required"]


def test_a_removed_request_field_a_narrowed_type_or_enum_is_breaking():
    def removed(doc):
        del doc["components"]["schemas"]["CancelRequest"]["properties"]["branch_id"]
    assert changed(removed) == [
        "POST /app/vouchers/{voucher_id}/cancel request.branch_id: removed (the previous client still sends it)"]

    def narrowed_enum(doc):
        doc["components"]["schemas"]["Reason"]["enum"] = ["changed_mind"]
    assert changed(narrowed_enum) == [
        "POST /app/vouchers/{voucher_id}/cancel query parameter reason: enum values removed ['moved']"]

    def narrowed_type(doc):
        doc["components"]["schemas"]["CancelRequest"]["properties"]["note"] = {"type": "integer"}
    assert changed(narrowed_type) == [
        "POST /app/vouchers/{voucher_id}/cancel request.note: accepts ['integer'], the previous release sent ['string']"]
