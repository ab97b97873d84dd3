"""Adapters for WeChat: the mini-program server API (login, phone, subscribe messages, QR codes)."""
