"""Backup, restore and check: orchestrate the stages and report by events."""
