"""CRM rules clinics tune from the environment (README, "Configure"); tests change them with `override(...)`.

RFM thresholds are not here: staff edit them (`crm_rfm_rules`, /admin/crm/rfm-rules).
"""

from __future__ import annotations

import msgspec

from kernel.settings import RoomSettings, env_int, env_list, env_text, listing_refusals
from kernel.wechat.miniprogram import TEMPLATE_ID_MAX_CHARS


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


# Each range is what a clinic could want; a value outside it stops the start naming the variable and the range
# (kernel.settings.env_int, read at start-up by rooms.install), because the code that reads it did something
# nobody chose, said beside each range (README, "Configure", lists the ranges).
# At least 1: with 0 every consent report would be taken and no outreach ever sent. The cap is what keeps a client
# replaying its consent report from banking credits without end (see `subscription_credits_max`): with no upper
# bound a huge cap was no cap, and outreach counted on sends WeChat refuses (43101) for every credit it never
# gave. One marketing message a day at most (the frequency cap's least) spends 50 in seven weeks.
SUBSCRIPTION_CREDITS_MAX = (1, 50)
# Hours of the day. An end of 24 or more, or below 0, made `quiet_until` build an impossible time, so the outreach
# job failed every time it ran in the quiet hours; a start of 24 or more was never reached, so messages went out
# until midnight. Equal start and end mean no quiet hours (`quiet_until` reads [h, h) as empty).
QUIET_HOURS = (0, 23)
# 0 or less took away the frequency cap (invariant 10); a cap longer than a year is no marketing at all.
MARKETING_CAP_DAYS = (1, 365)
# One chunk is one transaction that locks its recipients' marketing profiles and consents (their consent reports
# wait on it) and a crash after its commit loses its claimed messages (at most once): ten times the default at
# most. 0 handled nobody and left the outreach running for ever; below 0 failed the job.
OUTREACH_CHUNK = (1, 2000)
# The nightly scoring's chunk is one aggregate query and one transaction rewriting those customers' scores:
# ten times the default at most. 0 scored nobody, silently, every night; below 0 failed the job.
SCORING_CHUNK = (1, 50_000)
# 0 or less issued the birthday voucher already expired (valid until today's midnight, or before).
BIRTHDAY_VOUCHER_VALID_DAYS = (1, 365)
# The voucher's title column keeps 128 characters (a longer title was cut short, silently).
VOUCHER_TITLE_MAX_CHARS = 128
# 0 or less made a 咨询回访 task for a visit completed hours before the daily job, before the customer could
# come back and pay for the treatment, and the visit's marker kept that decision (-30 or less: no task ever).
# Past three months it is no longer a consultation's follow-up.
CONSULTATION_FOLLOW_UP_DAYS = (1, 90)
# Basis points of the spend: below 0 recorded negative rewards; 0 is a program that pays nothing (the source
# is still recorded, rewards are cancelled at release). At most 30%: any staff bonus a clinic pays is below
# it, and an extra zero on the default (5000 for 500) is refused rather than paid; 20000 paid twice the spend.
STAFF_REWARD_BP = (0, 3000)
# 0 or less rewarded nothing (no consumption is within 0 days of arrival) without a word. At most three
# years: the hourly scan reads every consumption of the customers staff brought within it.
STAFF_REWARD_VALID_DAYS = (1, 1095)
# The hold is the refund window before a reward is handed to finance, and a staff payout is never clawed back
# after a refund: 0 or less handed rewards over within the hour of the sale. 90 is the referral programs' limit.
STAFF_REWARD_HOLD_DAYS = (1, 90)


def load_crm_settings() -> CrmSettings:
    d = CrmSettings()

    with listing_refusals():
        return CrmSettings(
            marketing_cap_days=env_int("CRM_MARKETING_CAP_DAYS", d.marketing_cap_days, within=MARKETING_CAP_DAYS),
            quiet_start_hour=env_int("CRM_QUIET_START_HOUR", d.quiet_start_hour, within=QUIET_HOURS),
            quiet_end_hour=env_int("CRM_QUIET_END_HOUR", d.quiet_end_hour, within=QUIET_HOURS),
            outreach_chunk=env_int("CRM_OUTREACH_CHUNK", d.outreach_chunk, within=OUTREACH_CHUNK),
            subscription_credits_max=env_int("CRM_SUBSCRIPTION_CREDITS_MAX", d.subscription_credits_max, within=SUBSCRIPTION_CREDITS_MAX),
            # At least one: with none, every consent report and every outreach with a message is refused.
            outreach_template_ids=env_list("CRM_OUTREACH_TEMPLATE_IDS", d.outreach_template_ids,
                                           most_chars=TEMPLATE_ID_MAX_CHARS),
            birthday_voucher_title=env_text("CRM_BIRTHDAY_VOUCHER_TITLE", d.birthday_voucher_title,
                                            most_chars=VOUCHER_TITLE_MAX_CHARS),
            birthday_voucher_valid_days=env_int("CRM_BIRTHDAY_VOUCHER_VALID_DAYS", d.birthday_voucher_valid_days, within=BIRTHDAY_VOUCHER_VALID_DAYS),
            consultation_follow_up_days=env_int("CRM_CONSULTATION_FOLLOW_UP_DAYS", d.consultation_follow_up_days, within=CONSULTATION_FOLLOW_UP_DAYS),
            staff_reward_bp=env_int("CRM_STAFF_REWARD_BP", d.staff_reward_bp, within=STAFF_REWARD_BP),
            staff_reward_valid_days=env_int("CRM_STAFF_REWARD_VALID_DAYS", d.staff_reward_valid_days, within=STAFF_REWARD_VALID_DAYS),
            staff_reward_hold_days=env_int("CRM_STAFF_REWARD_HOLD_DAYS", d.staff_reward_hold_days, within=STAFF_REWARD_HOLD_DAYS),
            scoring_chunk=env_int("CRM_SCORING_CHUNK", d.scoring_chunk, within=SCORING_CHUNK),
        )


_SETTINGS = RoomSettings(load_crm_settings)
get_crm_settings = _SETTINGS.get
# Run a block with some rules changed (tests; the app itself never calls this).
override = _SETTINGS.override
