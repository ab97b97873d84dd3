"""CRM rules clinics tune from the environment (README, "Configure"); tests change them with `override(...)`.

RFM thresholds are not here: staff edit them (`crm_rfm_rules`, /admin/crm/rfm-rules).
"""

from __future__ import annotations

import msgspec

from kernel.settings import RoomSettings, env, env_int


class CrmSettings(msgspec.Struct, frozen=True):
    # Frequency cap: no marketing message to a customer within this many days of the last one.
    marketing_cap_days: int = 7
    # Quiet hours in the clinic's time zone: no marketing message is sent from `quiet_start_hour`
    # (inclusive) to `quiet_end_hour` (exclusive); a run that meets them waits for the morning.
    quiet_start_hour: int = 21
    quiet_end_hour: int = 9
    # Customers handled per outreach transaction (one chunk = one commit; a killed worker redoes one chunk).
    outreach_chunk: int = 200
    # Most sends one customer can bank per subscribe-message template. WeChat's one-time subscription allows one
    # send per "allow" and keeps no count we can read; ours comes from what the mini-program reports, so a client
    # replaying its report would bank without end. More than a few are never spent (one marketing message a
    # week at most), and an under-count only skips a message WeChat would have taken.
    subscription_credits_max: int = 5
    # The WeChat subscribe-message templates the clinic's outreach sends (as configured in its mini-program
    # account). A consent report is taken for these only and an outreach names one of them: a made-up id could
    # never be sent, and would only fill `crm_message_consent` with rows a client invents without end.
    outreach_template_ids: tuple[str, ...] = ("outreach-offer",)
    # Birthday gift: the voucher's title and how long it stays valid after issue.
    birthday_voucher_title: str = "生日礼 Birthday gift"
    birthday_voucher_valid_days: int = 30
    # A triage or consultation not followed by a paid treatment within this many days gets a 咨询回访 task.
    consultation_follow_up_days: int = 7
    # Staff referral program (员工推荐): share of the net spend of the customers a staff member brought,
    # in basis points, for consumptions within `staff_reward_valid_days` of the customer's arrival.
    staff_reward_bp: int = 500
    staff_reward_valid_days: int = 365
    staff_reward_hold_days: int = 7
    # Customers scored per RFM / rule-tag transaction.
    scoring_chunk: int = 5000


def load_crm_settings() -> CrmSettings:
    d = CrmSettings()
    return CrmSettings(
        marketing_cap_days=env_int("CRM_MARKETING_CAP_DAYS", d.marketing_cap_days),
        quiet_start_hour=env_int("CRM_QUIET_START_HOUR", d.quiet_start_hour),
        quiet_end_hour=env_int("CRM_QUIET_END_HOUR", d.quiet_end_hour),
        outreach_chunk=env_int("CRM_OUTREACH_CHUNK", d.outreach_chunk),
        # At least 1: with 0 every consent report would be taken and no outreach ever sent.
        subscription_credits_max=env_int("CRM_SUBSCRIPTION_CREDITS_MAX", d.subscription_credits_max, least=1),
        outreach_template_ids=tuple(t.strip() for t in env(
            "CRM_OUTREACH_TEMPLATE_IDS", ",".join(d.outreach_template_ids)).split(",") if t.strip()),
        birthday_voucher_title=env("CRM_BIRTHDAY_VOUCHER_TITLE", d.birthday_voucher_title),
        birthday_voucher_valid_days=env_int("CRM_BIRTHDAY_VOUCHER_VALID_DAYS", d.birthday_voucher_valid_days),
        consultation_follow_up_days=env_int("CRM_CONSULTATION_FOLLOW_UP_DAYS", d.consultation_follow_up_days),
        staff_reward_bp=env_int("CRM_STAFF_REWARD_BP", d.staff_reward_bp),
        staff_reward_valid_days=env_int("CRM_STAFF_REWARD_VALID_DAYS", d.staff_reward_valid_days),
        staff_reward_hold_days=env_int("CRM_STAFF_REWARD_HOLD_DAYS", d.staff_reward_hold_days),
        scoring_chunk=env_int("CRM_SCORING_CHUNK", d.scoring_chunk),
    )


_SETTINGS = RoomSettings(load_crm_settings)
get_crm_settings = _SETTINGS.get
# Run a block with some rules changed (tests; the app itself never calls this).
override = _SETTINGS.override
