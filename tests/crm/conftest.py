"""What every CRM test shares: the clinic's subscribe-message templates (`CRM_OUTREACH_TEMPLATE_IDS`) are the
ones these tests' outreach and consent reports name."""

from __future__ import annotations

import pytest

from crm.settings import override

CLINIC_TEMPLATES = ("tmpl-spring-offer", "tmpl-lift", "tmpl-a", "tmpl-b", "tmpl-news", "tmpl-promo")


@pytest.fixture(autouse=True)
def clinic_message_templates():
    with override(outreach_template_ids=CLINIC_TEMPLATES):
        yield
