"""Hugging Face Jobs: ship the project (`shipping`), build a job specification from the submit options and the
recipe with its launch command (`options`, `spec`, `launch`), submit and follow it (`submit`), and what runs inside a
job beside the entry script (`in_job`: fetch the last Hub checkpoint to resume, a split manifest, publish eval
results). `cli` is scripts/submit_job.py.

The project reaches the job as a read-only bucket volume (`HfApi.sync_job_volume`: the shipped files are synced to a
folder of the private `NAMESPACE/jobs-artifacts` bucket named after their content hash). The job copies it to a
writable folder, `pip install`s it (the image already has torch) and runs the same entry script a user runs locally,
with the same config plus the overrides that make a job push to the Hub and log to a trackio Space.

Building a specification (`--dry-run`) touches no network and imports no torch except to read a training recipe.
"""
