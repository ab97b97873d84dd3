"""Booking with pre-triage (预检分诊): departments, services, schedules, slots, bookings, follow-ups."""
