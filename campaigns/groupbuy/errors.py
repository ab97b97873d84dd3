"""Errors of group buys, each with its HTTP status and stable code."""

from __future__ import annotations

from kernel.errors import Conflict, Forbidden, NotFound


class CampaignNotFound(NotFound):
    code = "campaign_not_found"
    default_message = "No such campaign."


class SkuNotFound(NotFound):
    code = "sku_not_found"
    default_message = "No such item in this campaign."


class GroupNotFound(NotFound):
    code = "group_not_found"
    default_message = "No such group."


class CampaignNotLive(Conflict):
    code = "campaign_not_live"
    default_message = "This campaign is not running."


class CampaignStateConflict(Conflict):
    code = "campaign_state_conflict"
    default_message = "The campaign cannot make this change in its current state."


class LiveCampaignChange(Conflict):
    code = "live_campaign_change_refused"
    default_message = "A live campaign cannot change this."


class EditedMeanwhile(Conflict):
    """A staff save made from a copy older than what is stored: someone else changed the campaign or one of
    its items since the editor loaded it. Nothing is changed; the client reloads and edits again."""

    code = "edited_meanwhile"
    default_message = "Someone else changed this campaign since you opened it; reload it and make your change again."


class WrongCampaignKind(Conflict):
    code = "wrong_campaign_kind"
    default_message = "This campaign does not work that way."


class SoldOut(Conflict):
    code = "sold_out"
    default_message = "This item is sold out."


class GroupFull(Conflict):
    code = "group_full"
    default_message = "This group is full."


class GroupNotJoinable(Conflict):
    code = "group_not_joinable"
    default_message = "This group can no longer be joined."


class AlreadyInGroup(Conflict):
    code = "already_in_group"
    default_message = "You are already in this group."


class AlreadyLeadingGroup(Conflict):
    code = "already_leading_group"
    default_message = "You already have an open group in this campaign."


class LimitReached(Conflict):
    code = "customer_limit_reached"
    default_message = "You have reached this campaign's limit."


class NewCustomersOnly(Forbidden):
    code = "new_customers_only"
    default_message = "This offer is for new customers only."
