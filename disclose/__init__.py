"""Disclosure (issue 18): redacted derived recordings and stills, never touching an original."""
