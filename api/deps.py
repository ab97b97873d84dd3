"""Dependencies shared by controllers: the app-wide clients kept in app.state, and paging."""

from __future__ import annotations

from typing import Annotated

from arq.connections import ArqRedis
from litestar.datastructures import State
from litestar.params import Parameter

from kernel.wechat.miniprogram import MiniProgram


def miniprogram(state: State) -> MiniProgram:
    return state.miniprogram


def redis(state: State) -> ArqRedis:
    return state.redis


Limit = Annotated[int, Parameter(ge=1, le=200, default=20, description="Page size")]
Offset = Annotated[int, Parameter(ge=0, le=1_000_000, default=0, description="Rows to skip")]
