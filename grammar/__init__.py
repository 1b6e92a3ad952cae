"""The .arch grammar (Lark), shipped as package data."""
