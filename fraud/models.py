"""Fraud rules, decisions and events live here (fraud issue)."""
