"""Benchmarks of mailproto against aiosmtpd and Dovecot: ``python -m bench [--quick]``."""
