"""Errors of the reports room, each with its HTTP status and stable code."""

from __future__ import annotations

from kernel.errors import Conflict, Forbidden, NotFound, ValidationFailed


class InvalidRange(ValidationFailed):
    code = "invalid_date_range"
    default_message = "The date range is invalid: 'from' must not be after 'to', and it spans at most 3 years."


class BranchNotApplicable(ValidationFailed):
    code = "branch_not_applicable"
    default_message = "This report covers the whole organisation; it takes no branch."


class BranchForbidden(Forbidden):
    code = "branch_forbidden"
    default_message = "Front-desk staff see the reports of their own branch only."


class StaffBranchNotAssigned(Conflict):
    code = "staff_branch_not_assigned"
    default_message = "No branch is assigned to this front-desk account; an admin assigns one."


class UnknownBranch(NotFound):
    code = "branch_not_found"
    default_message = "No such branch."


class UnknownStaff(NotFound):
    code = "staff_not_found"
    default_message = "No such staff member."
