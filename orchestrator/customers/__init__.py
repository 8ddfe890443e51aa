"""Customers: identity (find, create, lock, traits, addresses), the consent ledger, and the
customer timeline support and ops read first."""
