"""Shapes every room's schemas share: the pagination envelope and the row-id type."""

from __future__ import annotations

from typing import Annotated

import msgspec

# A row id as the API accepts it: positive and within BIGINT, so a huge number is a 400, not a 500.
Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


class Page(msgspec.Struct):
    """Offset pagination envelope shared by list routes."""

    total: int
    limit: int
    offset: int
