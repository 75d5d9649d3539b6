"""``make demo``: the platform's main path on the local stack, end to end."""
