"""Errors of the referral room, each with its HTTP status and a stable code."""

from __future__ import annotations

from kernel.errors import Conflict, Forbidden, NotFound, ValidationFailed


class ProgramNotFound(NotFound):
    code = "referral_program_not_found"
    default_message = "Referral program not found."


class InvalidProgram(ValidationFailed):
    code = "invalid_referral_program"
    default_message = "The referral program's rules are not consistent."


class RewardNotFound(NotFound):
    code = "referral_reward_not_found"
    default_message = "Referral reward not found."


class RewardNotHeld(Conflict):
    code = "referral_reward_not_held"
    default_message = "Only a held reward can be approved or voided."


class BatchNotFound(NotFound):
    code = "settlement_batch_not_found"
    default_message = "Settlement batch not found."


class NothingToSettle(Conflict):
    code = "nothing_to_settle"
    default_message = "No payable reward (or adjustment) up to that date."


class SettlementDateTooFar(ValidationFailed):
    code = "settlement_date_too_far"
    default_message = "A batch settles rewards due by a date at most a year ahead."


class BatchStateConflict(Conflict):
    code = "settlement_batch_state"
    default_message = "The batch is not in a state that allows this."


class SameFinanceUser(Forbidden):
    """Maker-checker: the finance user who created a batch cannot approve it nor record its payment."""

    code = "maker_checker"
    default_message = ("A batch must be approved and marked paid by a finance user other than the one who "
                       "created it.")


class ExternalRefTaken(Conflict):
    code = "external_ref_taken"
    default_message = "That payment reference was already used for another batch."
