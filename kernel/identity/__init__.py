"""Who is calling: customers (mini-program users), staff members with roles, and the audit log."""
