"""Errors of the CRM room, each with its HTTP status and a stable code."""

from __future__ import annotations

from kernel.errors import Conflict, NotFound, ValidationFailed


class TagNotFound(NotFound):
    code = "tag_not_found"
    default_message = "Tag not found."


class TagCodeTaken(Conflict):
    code = "tag_code_taken"
    default_message = "A tag with that code already exists."


class TagInUse(Conflict):
    code = "tag_in_use"
    default_message = "A segment's rule names this tag; change the segment first."


class TagNotManual(Conflict):
    code = "tag_not_manual"
    default_message = "Only manual tags are put on or taken off by staff; rule and skin tags are computed."


class SegmentNotFound(NotFound):
    code = "segment_not_found"
    default_message = "Segment not found."


class InvalidSegmentRule(ValidationFailed):
    code = "invalid_segment_rule"
    default_message = "The segment's rule is not valid."


class DeletedTagInRule(ValidationFailed):
    code = "segment_rule_deleted_tag"
    default_message = "The rule names a tag that does not exist or was deleted."


class OutreachNotFound(NotFound):
    code = "outreach_not_found"
    default_message = "Outreach not found."


class OutreachState(Conflict):
    code = "outreach_state"
    default_message = "The outreach is not in a state that allows this."


class InvalidOutreach(ValidationFailed):
    code = "invalid_outreach"
    default_message = "The outreach is not consistent."


class SkinImportRejected(ValidationFailed):
    """A skin-analysis CSV with bad rows: every bad row is listed with its line number; nothing was applied."""

    code = "skin_import_rejected"
    default_message = "The file has invalid rows; nothing was imported."


class ChannelNotFound(NotFound):
    code = "acquisition_channel_not_found"
    default_message = "Acquisition channel not found."


class ChannelCodeTaken(Conflict):
    code = "acquisition_channel_code_taken"
    default_message = "That code or scene is already used by another channel."


class UnknownMessageTemplate(ValidationFailed):
    """A subscribe-message template the clinic did not configure (`CRM_OUTREACH_TEMPLATE_IDS`)."""

    code = "unknown_message_template"
    default_message = "The clinic sends no subscribe message with this template."


class InvalidCouponRule(ValidationFailed):
    code = "invalid_coupon_rule"
    default_message = "The coupon rule is not consistent."
