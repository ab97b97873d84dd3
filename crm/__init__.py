"""CRM: customer 360, tags, RFM, segments, outreach with consent, birthday gifts, acquisition sources."""
