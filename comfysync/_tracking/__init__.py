"""Prompt tracking: from registration before POST /prompt to the outcome."""
