"""OpenAPI links of the main flows, so a client (or a stateful fuzzer) can follow one answer into the next call."""

from __future__ import annotations

from typing import Any

from litestar.openapi.spec import Link, OpenAPIResponse

# (from path, method, status) -> [(name, to path, method, parameters, request body)]
# Runtime expressions (`$response.body#/...`) are OpenAPI's; paths are written as in the document.
_FLOWS: dict[tuple[str, str, str], list[tuple[str, str, str, dict[str, str], Any]]] = {
    # login -> book -> cancel
    ("/app/auth/login", "post", "200"): [
        ("MyBookings", "/app/bookings", "get", {}, None),
        ("Me", "/app/me", "get", {}, None),
    ],
    ("/app/booking/departments", "get", "200"): [
        ("Slots", "/app/booking/slots", "get", {"department_id": "$response.body#/items/0/id"}, None),
    ],
    ("/app/booking/slots", "get", "200"): [
        ("BookFirstSlot", "/app/bookings", "post", {}, {"slot_id": "$response.body#/items/0/id"}),
    ],
    ("/app/bookings", "get", "200"): [
        ("CancelFirstBooking", "/app/bookings/{booking_id}/cancel", "post",
         {"booking_id": "$response.body#/items/0/id"}, None),
    ],
    ("/app/bookings", "post", "201"): [
        ("Booking", "/app/bookings/{booking_id}", "get", {"booking_id": "$response.body#/id"}, None),
        ("CancelBooking", "/app/bookings/{booking_id}/cancel", "post", {"booking_id": "$response.body#/id"}, None),
    ],
    ("/app/bookings/{booking_id}/cancel", "post", "200"): [
        ("Booking", "/app/bookings/{booking_id}", "get", {"booking_id": "$response.body#/id"}, None),
    ],
    # purchase -> pay -> order
    ("/app/campaigns", "get", "200"): [
        ("Purchase", "/app/campaigns/{campaign_id}/purchases", "post", {"campaign_id": "$response.body#/0/id"},
         {"sku_id": "$response.body#/0/skus/0/id"}),
        ("OpenGroup", "/app/groups", "post", {},
         {"campaign_id": "$response.body#/0/id", "sku_id": "$response.body#/0/skus/0/id"}),
    ],
    ("/app/campaigns/{campaign_id}/purchases", "post", "201"): [
        ("PayOrder", "/app/orders/{order_id}/pay", "post", {"order_id": "$response.body#/order_id"}, None),
        ("Order", "/app/orders/{order_id}", "get", {"order_id": "$response.body#/order_id"}, None),
    ],
    ("/app/orders/{order_id}/pay", "post", "200"): [
        ("Order", "/app/orders/{order_id}", "get", {"order_id": "$request.path.order_id"}, None),
    ],
    # open group -> join
    ("/app/groups", "post", "201"): [
        ("Group", "/app/groups/{group_id}", "get", {"group_id": "$response.body#/group_id"}, None),
        ("JoinGroup", "/app/groups/{group_id}/join", "post", {"group_id": "$response.body#/group_id"}, None),
        ("PayOrder", "/app/orders/{order_id}/pay", "post", {"order_id": "$response.body#/order_id"}, None),
    ],
    ("/app/groups/{group_id}/join", "post", "201"): [
        ("Group", "/app/groups/{group_id}", "get", {"group_id": "$request.path.group_id"}, None),
        ("PayOrder", "/app/orders/{order_id}/pay", "post", {"order_id": "$response.body#/order_id"}, None),
    ],
    # redeem -> voucher
    ("/app/mall/items", "get", "200"): [
        ("Redeem", "/app/mall/redemptions", "post", {}, {"item_id": "$response.body#/0/id"}),
    ],
    ("/app/mall/redemptions", "post", "201"): [
        ("CancelVoucher", "/app/vouchers/{voucher_id}/cancel", "post",
         {"voucher_id": "$response.body#/vouchers/0/id"}, None),
        ("VoucherAtDesk", "/admin/vouchers/{code}", "get", {"code": "$response.body#/vouchers/0/code"}, None),
        ("RedeemVoucherAtDesk", "/admin/vouchers/{code}/redeem", "post",
         {"code": "$response.body#/vouchers/0/code"}, None),
    ],
    ("/admin/vouchers/{code}", "get", "200"): [
        ("RedeemVoucherAtDesk", "/admin/vouchers/{code}/redeem", "post", {"code": "$request.path.code"}, None),
    ],
}


def add_links(schema: Any) -> None:
    """Attach the flows' links to the responses they start from; a flow whose route is absent is skipped."""
    paths = schema.paths or {}

    def operation(path: str, method: str) -> Any:
        item = paths.get(path)
        return getattr(item, method, None) if item is not None else None

    for (path, method, status), targets in _FLOWS.items():
        source = operation(path, method)
        response = (source.responses or {}).get(status) if source is not None else None
        if not isinstance(response, OpenAPIResponse):
            continue
        links = dict(response.links or {})
        for name, to_path, to_method, parameters, body in targets:
            target = operation(to_path, to_method)
            if target is None or not target.operation_id:
                continue
            links[name] = Link(operation_id=target.operation_id, parameters=parameters or None, request_body=body)
        response.links = links or None
