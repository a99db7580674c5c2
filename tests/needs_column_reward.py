"""A reward that reads a dataset column the GRPO examples do not carry (the column check's test)."""


def by_subject(completions, subject_name=None, **kwargs):
    return [float(subject_name is not None)] * len(completions)
