"""Rewards for the reward-hacking guard test, imported by dotted path: one component is earned for the first
FADE_AFTER calls and then never again while another rises, so the total holds while a component is gamed away."""

FADE_AFTER = 3
calls = {"fading": 0, "rising": 0}


def fading(completions, **kwargs):
    calls["fading"] += 1
    return [1.0 if calls["fading"] <= FADE_AFTER else 0.0] * len(completions)


def rising(completions, **kwargs):
    calls["rising"] += 1
    return [0.0 if calls["rising"] <= FADE_AFTER else 1.0] * len(completions)


def varied(completions, **kwargs):
    """Gives every group reward variance, so only the gamed component can trip the guard."""
    return [float(i % 2) for i in range(len(completions))]
