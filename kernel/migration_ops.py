"""Migration operations that move a model between Tortoise apps while its table stays where it is.

Tortoise keys a model's migration state by (app, name). When a room's models move to an app of their
own, the old app forgets them and the new app learns them, in state only: the table, its rows and
its keys are untouched, so an upgraded database keeps every row and a fresh one (which runs the same
migrations from the start) ends with the same schema.
"""

from __future__ import annotations

from tortoise.migrations.operations import CreateModel, DeleteModel, TortoiseOperation


class AdoptModel(CreateModel):
    """The model's table already exists (created by the app that owned it before): learn it, create nothing."""

    def describe(self) -> str:
        return f"Adopt model {self.name} (table kept)"

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        return None

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        return None


class HandOverModel(TortoiseOperation):
    """Another app adopts the model: forget it here, drop nothing.

    Not a DeleteModel (it only borrows its state change), so nothing that guards against dropped tables,
    such as the migration pre-flight (kernel/migration_preflight.py), mistakes it for one.
    """

    state_forward = DeleteModel.state_forward

    def __init__(self, name: str) -> None:
        self.name = name

    def describe(self) -> str:
        return f"Hand over model {self.name} (table kept)"

    async def database_forward(self, app_label, old_state, new_state, state_editor=None) -> None:
        return None

    async def database_backward(self, app_label, old_state, new_state, state_editor=None) -> None:
        return None
