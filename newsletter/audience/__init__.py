"""Audience: the subscriber lifecycle, subscriber imports and SES events."""
