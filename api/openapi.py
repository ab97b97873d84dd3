"""Makes the OpenAPI document say what the error handler does: every 4xx/5xx body is an ErrorBody."""

from __future__ import annotations

from litestar import Litestar
from litestar.openapi.spec import Components, OpenAPIMediaType, OpenAPIResponse, Reference, Schema
from litestar.openapi.spec.enums import OpenAPIType

ERROR_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["code", "message", "detail"],
    properties={
        "code": Schema(type=OpenAPIType.STRING, description="stable machine-readable code, e.g. group_full"),
        "message": Schema(type=OpenAPIType.STRING, description="human-readable explanation"),
        "detail": Schema(
            type=OpenAPIType.OBJECT,
            description="context; `field` names the offending field of a validation error",
        ),
    },
    description="The one error body of this API.",
)

# WeChat Pay's notification callbacks answer in WeChat's own format, which its servers read.
WECHAT_ACK_SCHEMA = Schema(
    type=OpenAPIType.OBJECT,
    required=["code", "message"],
    properties={"code": Schema(type=OpenAPIType.STRING), "message": Schema(type=OpenAPIType.STRING)},
    description="WeChat Pay's callback answer: any non-2xx makes WeChat deliver the notification again.",
)
_WECHAT_CALLBACK_PREFIX = "/payments/wechat/"

_DESCRIPTIONS = {
    "4XX": "Refused: bad input, missing or wrong token, missing role, not found, conflict, rate limited.",
    "5XX": "Server or dependency failure (503 database_unavailable, 502 wechat_unavailable).",
}


def document_errors(app: Litestar) -> None:
    schema = app.openapi_schema
    if schema.components is None:
        schema.components = Components()
    if schema.components.schemas is None:
        schema.components.schemas = {}
    schema.components.schemas["ErrorBody"] = ERROR_SCHEMA
    schema.components.schemas["WeChatPayAck"] = WECHAT_ACK_SCHEMA
    for path, path_item in (schema.paths or {}).items():
        name = "WeChatPayAck" if path.startswith(_WECHAT_CALLBACK_PREFIX) else "ErrorBody"
        ref = Reference(ref=f"#/components/schemas/{name}")
        for method in ("get", "post", "put", "patch", "delete"):
            operation = getattr(path_item, method, None)
            if operation is None:
                continue
            responses = operation.responses or {}
            for status in list(responses):
                if status[0] in "45":
                    del responses[status]
            for status, description in _DESCRIPTIONS.items():
                responses[status] = OpenAPIResponse(
                    description=description, content={"application/json": OpenAPIMediaType(schema=ref)}
                )
            operation.responses = responses
