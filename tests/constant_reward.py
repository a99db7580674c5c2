"""A reward with no variance for the reward-health-guard test, imported as constant_reward.always_one."""


def always_one(completions, **kwargs):
    return [1.0] * len(completions)
