"""The CRM room's service functions, re-exported from their modules (take a connection, never commit)."""

from crm.acquisition import create_channel, get_channel, record_at_first_login, update_channel
from crm.outreach import (
    cancel as cancel_outreach,
    create_outreach,
    get_outreach,
    marketing_state,
    record_acceptances,
    schedule as schedule_outreach,
    set_opt_out,
)
from crm.occasions import coupon_rules, set_coupon_rule
from crm.rfm import get_rules as get_rfm_rules, update_rules as update_rfm_rules
from crm.segments import count as count_members, create_segment, delete_segment, get_segment, update_segment
from crm.segments import validate as validate_rule
from crm.tags import (
    create_tag,
    delete_tag,
    get_tag,
    import_skin_csv,
    put_manual_tag,
    record_skin_analysis,
    take_off_manual_tag,
    update_tag,
)

__all__ = [
    "cancel_outreach", "count_members", "coupon_rules", "create_channel", "create_outreach", "create_segment",
    "create_tag",
    "delete_segment", "delete_tag", "get_channel", "get_outreach", "get_rfm_rules", "get_segment", "get_tag",
    "import_skin_csv", "marketing_state", "put_manual_tag", "record_acceptances", "record_at_first_login",
    "record_skin_analysis", "schedule_outreach", "set_coupon_rule", "set_opt_out", "take_off_manual_tag",
    "update_channel",
    "update_rfm_rules", "update_segment", "update_tag", "validate_rule",
]
