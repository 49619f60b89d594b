"""Large imports and generations in the background, with progress and a downloadable report.

A web request has a time limit; a load of hundreds of thousands of codes does not fit
in it. Above a size threshold the admin starts a LoadJob instead: the job row (the
load's settings, never a code) is committed, an import's file is kept in a private
directory (VOUCHER_UPLOAD_DIR, owner-only, deleted once read), and a Celery task gets
the job's id after commit. The task runs the same import or generation service as a
small load, counting progress in the cache (the service's own transaction hides
database writes until it ends) and storing the outcome on the job. On the embedded
default Celery runs tasks eagerly, so the job has finished when the page loads.

The task is safe to run twice: it claims the job with a conditional UPDATE from
`queued` to `running`; a second delivery finds it taken and returns. A job whose
worker died stays `running` (the redelivered task finds it taken), so a beat task
marks a running job failed once it has shown no progress for VOUCHER_LOAD_JOB_STALL_SECONDS
(`fail_stalled_jobs`): the load's own transaction rolled back with its worker, so
nothing of it was stored, and the merchant can start it again.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from vouchers.codeformat import CodeFormat
from vouchers.exceptions import ImportRejected, InvalidBatchSettings
from vouchers.importfile import UnreadableFile, count_data_rows, format_from_filename
from vouchers.models import LoadJob, Product
from vouchers.services.generation import generate_batch
from vouchers.services.imports import import_codes

logger = logging.getLogger(__name__)

REPORT_LIMIT = 10_000  # report rows kept on the job (the import reports its first rows)
PROGRESS_TTL = 24 * 3600


def upload_dir() -> Path:
    return Path(getattr(settings, "VOUCHER_UPLOAD_DIR", Path(settings.BASE_DIR) / ".local" / "uploads"))


def background_generate_above() -> int:
    """Generations of more codes than this run in the background."""
    return int(getattr(settings, "VOUCHER_BACKGROUND_GENERATE_ABOVE", 20_000))


def background_import_above_bytes() -> int:
    """Imported files larger than this run in the background (about 20,000 codes a MB)."""
    return int(getattr(settings, "VOUCHER_BACKGROUND_IMPORT_ABOVE_BYTES", 1_000_000))


def stall_seconds() -> int:
    """A running job without progress for this long is taken for dead (its worker ended)."""
    return int(getattr(settings, "VOUCHER_LOAD_JOB_STALL_SECONDS", 30 * 60))


STALLED_ERROR = "The load stopped without finishing (its worker ended); nothing was stored. Start it again."


def _progress_key(job_id) -> str:
    return f"vouchers:loadjob:{job_id}:processed"


def _heartbeat_key(job_id) -> str:
    return f"vouchers:loadjob:{job_id}:heartbeat"


def processed(job: LoadJob) -> int:
    """Rows or codes done so far: the cache while running, the row once finished."""
    if job.finished:
        return job.processed
    return int(cache.get(_progress_key(job.pk)) or 0)


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _keep_upload(uploaded) -> str:
    """Copy an upload into the private directory; returns its file name there (owner-only)."""
    directory = upload_dir()
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    name = f"{uuid.uuid4().hex}.upload"
    fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        for chunk in uploaded.chunks():
            handle.write(chunk)
    return name


def _enqueue(job: LoadJob) -> None:
    from vouchers.tasks import run_load_job  # tasks import services

    job_id = str(job.pk)
    transaction.on_commit(lambda: run_load_job.delay(job_id=job_id))


def start_import_job(
    *, product: Product, uploaded, created_by, encoding: str | None, file_format: str | None,
    skip_invalid: bool, case_sensitive: bool, valid_from: datetime | None, valid_until: datetime | None,
    allow_weak_codes: bool, reference: str,
) -> LoadJob:
    """Keep the uploaded file and queue its import; returns the job (its task runs after commit)."""
    stored = _keep_upload(uploaded)
    try:
        with transaction.atomic():
            job = LoadJob.objects.create(
                kind=LoadJob.Kind.IMPORT, product=product, created_by=created_by,
                filename=uploaded.name[:255], stored_file=stored,
                params={
                    "encoding": encoding, "file_format": file_format, "skip_invalid": skip_invalid,
                    "case_sensitive": case_sensitive, "valid_from": _when(valid_from),
                    "valid_until": _when(valid_until), "allow_weak_codes": allow_weak_codes,
                    "reference": reference,
                },
            )
            _enqueue(job)
    except BaseException:
        (upload_dir() / stored).unlink(missing_ok=True)
        raise
    return job


def start_generation_job(
    *, product: Product, count: int, fmt: CodeFormat, created_by, valid_from: datetime | None,
    valid_until: datetime | None, reference: str,
) -> LoadJob:
    """Queue a generation; returns the job (its task runs after commit)."""
    with transaction.atomic():
        job = LoadJob.objects.create(
            kind=LoadJob.Kind.GENERATE, product=product, created_by=created_by, total=count,
            params={
                "count": count, "format": fmt.as_json(), "valid_from": _when(valid_from),
                "valid_until": _when(valid_until), "reference": reference,
            },
        )
        _enqueue(job)
    return job


def run_load_job(*, job_id) -> LoadJob | None:
    """Run a queued job to its end (the task's body). Returns None if another run has it.

    Never raises for a refused load: the outcome (done, or failed with the report or
    the reason) is stored on the job. The uploaded file is deleted in every case.
    """
    claimed = LoadJob.objects.filter(pk=job_id, status=LoadJob.Status.QUEUED).update(
        status=LoadJob.Status.RUNNING, started_at=timezone.now()
    )
    if claimed != 1:
        return None
    job = LoadJob.objects.select_related("product", "created_by").get(pk=job_id)
    key, heartbeat = _progress_key(job.pk), _heartbeat_key(job.pk)
    cache.set(key, 0, PROGRESS_TTL)
    cache.set(heartbeat, time.time(), PROGRESS_TTL)
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        cache.set(key, done, PROGRESS_TTL)
        cache.set(heartbeat, time.time(), PROGRESS_TTL)

    params = job.params
    outcome: dict = {"status": LoadJob.Status.DONE}
    try:
        if job.kind == LoadJob.Kind.GENERATE:
            batch = generate_batch(
                product=job.product, count=params["count"], fmt=CodeFormat(**params["format"]),
                valid_from=_parse(params["valid_from"]), valid_until=_parse(params["valid_until"]),
                created_by=job.created_by, reference=params["reference"], progress=progress,
            )
            outcome.update(batch=batch, imported=batch.size)
        else:
            path = upload_dir() / job.stored_file
            with open(path, "rb") as stream:
                _count_rows(job, stream)
                result = import_codes(
                    product=job.product, file=stream, filename=job.filename,
                    encoding=params["encoding"], file_format=params["file_format"],
                    skip_invalid=params["skip_invalid"], case_sensitive=params["case_sensitive"],
                    valid_from=_parse(params["valid_from"]), valid_until=_parse(params["valid_until"]),
                    created_by=job.created_by, allow_weak_codes=params["allow_weak_codes"],
                    reference=params["reference"], progress=progress,
                )
            outcome.update(batch=result.batch, imported=result.imported, skipped=result.skipped,
                           report=[list(row) for row in result.report[:REPORT_LIMIT]])
    except ImportRejected as exc:
        outcome = {"status": LoadJob.Status.FAILED, "error": str(exc.detail)[:500], "bad_rows": exc.bad_rows,
                   "report": [list(row) for row in exc.report[:REPORT_LIMIT]]}
    except InvalidBatchSettings as exc:
        outcome = {"status": LoadJob.Status.FAILED, "error": str(exc.detail)[:500]}
    except Exception:
        logger.exception("load job %s failed", job.pk)
        outcome = {"status": LoadJob.Status.FAILED,
                   "error": "The load failed unexpectedly; nothing was stored."}
    finally:
        if job.stored_file:
            (upload_dir() / job.stored_file).unlink(missing_ok=True)
    LoadJob.objects.filter(pk=job.pk).update(
        processed=done, finished_at=timezone.now(), stored_file="", **outcome
    )
    cache.delete_many([key, heartbeat])
    job.refresh_from_db()
    logger.info("load job %s: %s, batch %s", job.pk, job.status, job.batch_id)
    return job


def fail_stalled_jobs(*, now: datetime | None = None) -> list[LoadJob]:
    """Mark failed every running job that has shown no progress for `stall_seconds()`.

    A job counts as alive while its start or its last progress (a heartbeat in the
    cache, beside the progress count) is more recent than the limit. Each job is marked
    with a conditional UPDATE (still running), so a run racing its own end leaves the
    outcome it stored. If a worker thought dead was only slow, its final outcome
    replaces the mark when it ends. Returns the jobs marked.
    """
    now = now or timezone.now()
    limit = stall_seconds()
    cutoff = now - timedelta(seconds=limit)
    marked = []
    running = LoadJob.objects.filter(status=LoadJob.Status.RUNNING, started_at__lt=cutoff)
    for job in running.order_by("started_at"):
        beat = cache.get(_heartbeat_key(job.pk))
        if beat is not None and float(beat) > now.timestamp() - limit:
            continue
        stopped = LoadJob.objects.filter(pk=job.pk, status=LoadJob.Status.RUNNING).update(
            status=LoadJob.Status.FAILED, error=STALLED_ERROR, finished_at=now, stored_file="",
            processed=processed(job),
        )
        if not stopped:
            continue
        if job.stored_file:
            (upload_dir() / job.stored_file).unlink(missing_ok=True)
        cache.delete_many([_progress_key(job.pk), _heartbeat_key(job.pk)])
        logger.warning("load job %s: no progress since %s, marked failed", job.pk, job.started_at)
        job.refresh_from_db()
        marked.append(job)
    return marked


def _count_rows(job: LoadJob, stream) -> None:
    """Store the file's data rows as the job's total (for the page's percentage), if readable."""
    try:
        total = count_data_rows(
            stream, file_format=job.params["file_format"] or format_from_filename(job.filename),
            encoding=job.params["encoding"],
        )
    except (UnreadableFile, ValueError, OSError):
        return  # the import reports what is wrong with the file
    LoadJob.objects.filter(pk=job.pk).update(total=total)


def _parse(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None
