"""Temporal waits in waitgate: an order that ships only once a person approves it."""
