"""Test data and token minting helpers for the JWT tests."""
