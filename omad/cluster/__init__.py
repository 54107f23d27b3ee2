"""Beyond one box: stage attempts as Celery tasks over Redis, run by ``omad worker`` processes.

The daemon stays the journal's only writer and the only task producer. The
broker carries descriptions, never files and never the truth: a task's
files sit in the job's work folder on storage both machines mount, and each
attempt writes into a folder of its own. Delivery is at-least-once; a result
is taken exactly once because

- task ids are deterministic (job, stage, attempt), so a restarted daemon finds
  what it sent and a re-sent task is the same task;
- the *fence* (``dispatch/<stage>.json`` in the job folder, written by the
  daemon) names the one task that may commit; a worker checks it before it
  starts and before it commits, so a redelivered or late copy does nothing;
- a copy commits by creating ``result.json`` in its attempt folder, which only
  one copy can do; a second copy of the same task finds it and answers it;
- a running task sends heartbeats; one not heard of for ``lease_seconds`` is
  revoked, its fence moved, and the next attempt dispatched.

    task.py      the serialisable stage description, the fence and result files (no Celery)
    app.py       the Celery app and its settings, the one task
    worker.py    what a worker's pool child runs: the stage, residency, heartbeats, the commit
    service.py   a worker's main process: the Celery worker, /metrics, its record in Redis, idle exit
    s3.py        files through an S3-compatible store instead of a shared folder (executor.files: s3)

The daemon's side (dispatch, wait, lease, reconcile after a restart) is
``omad.executors.celery``, beside the local executor; both run an attempt
through ``omad.executors.attempt`` and lay out the job folder as
``omad.executors.layout`` says.
"""
