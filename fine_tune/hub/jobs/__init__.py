"""Hugging Face Jobs: ship the project (`shipping`), build a job specification from the submit options and the
recipe with its launch command (`options`, `spec`, `launch`), submit and follow it (`submit`); which flavor a
recipe needs (`hardware`: the flavor and device table, `memory`: the peak-memory planner). `cli` is
scripts/submit_job.py. Inside a job, the entry scripts resume from the last pushed checkpoint
(`fine_tune.train.checkpoints`), eval fetches split manifests (`fine_tune.evaluate.split_check`) and results are
published (`fine_tune.hub.publish`).

The project reaches the job as a read-only bucket volume (`HfApi.sync_job_volume`: the shipped files are synced to a
folder of the private `NAMESPACE/jobs-artifacts` bucket named after their content hash). The job copies it to a
writable folder, `pip install`s it (the image already has torch) and runs the same entry script a user runs locally,
with the same config plus the overrides that make a job push to the Hub and log to a trackio Space.

Building a specification (`--dry-run`) touches no network and imports no torch except to read a training recipe.
"""
