"""Test support shared by tests/ and bench/: local fake servers standing in for the providers (Twilio, Telegram,
an S3-free media host). Nothing in the product imports it."""
