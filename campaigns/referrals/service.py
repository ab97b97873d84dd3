"""The referral room's service functions, re-exported from their modules (take a connection, never commit)."""

from campaigns.referrals.binding import bind_at_login, referee_has_history, would_loop
from campaigns.referrals.programs import active_program, create_program, get_program, update_program
from campaigns.referrals.payouts import approve_held, get_reward, record_refund, release_due_chunk, void_held
from campaigns.referrals.rewards import record_qualifying_consumption
from campaigns.referrals.settlement import (
    add_staff_payout,
    approve_batch,
    cancel_batch,
    create_batch,
    get_batch,
    mark_paid,
    payee_lines,
)

__all__ = [
    "add_staff_payout",
    "active_program",
    "approve_batch",
    "approve_held",
    "bind_at_login",
    "cancel_batch",
    "create_batch",
    "create_program",
    "get_batch",
    "get_program",
    "get_reward",
    "mark_paid",
    "payee_lines",
    "record_qualifying_consumption",
    "record_refund",
    "referee_has_history",
    "release_due_chunk",
    "update_program",
    "void_held",
    "would_loop",
]
