"""cflogs: CloudFront access logs in, privacy-safe web analytics out."""

__version__ = "0.1.0"
