"""The merchant console: the admin's dashboard, its daily roll-ups, and the stock and expiry alerts.

An app of its own (label `dashboard`) so that its tables, templates and translations
stay apart from the voucher models that the storefront's hot path writes.
"""
