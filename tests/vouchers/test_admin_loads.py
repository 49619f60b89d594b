"""Large imports and generations from the admin run as a background job with progress and a report."""

from __future__ import annotations

import csv
import io
import time
from datetime import timedelta
from unittest import mock

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from tests.factories import ProductFactory, StaffFactory, grant_app_permissions
from tests.vouchers.test_admin_batches import generate_data
from tests.vouchers.test_admin_import import IMPORT, form_data, fresh_codes, plaintexts, stored, upload
from vouchers.models import Batch, LoadJob
from vouchers.services import load_jobs


@pytest.fixture(autouse=True)
def eager_tasks():
    """The load task runs in-process after commit, as on the embedded default, also where a
    broker is configured (PostgreSQL + Redis runs)."""
    from config.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture(autouse=True)
def small_thresholds(settings, tmp_path):
    settings.VOUCHER_UPLOAD_DIR = tmp_path / "uploads"
    settings.VOUCHER_BACKGROUND_IMPORT_ABOVE_BYTES = 50
    settings.VOUCHER_BACKGROUND_GENERATE_ABOVE = 10


def job_page(job: LoadJob) -> str:
    return reverse("admin:vouchers_batch_load_job", args=[job.pk])


def test_a_large_import_runs_in_the_background_and_its_page_shows_it_done(
    staff_client, staff, product, settings, django_capture_on_commit_callbacks,
):
    # given a file above the threshold
    codes = fresh_codes(5)
    file = upload("big.csv", ["code", *codes])
    # when it is imported (the task runs after commit, eagerly as on the embedded default)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = staff_client.post(reverse(IMPORT), form_data(product, file))
    # then the page goes to the job, which loaded every code and deleted the upload
    job = LoadJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == job_page(job)
    assert len(callbacks) == 1
    assert (job.kind, job.status, job.imported, job.skipped, job.total, job.processed) == (
        "import", "done", 5, 0, 5, 5)
    assert plaintexts(job.batch) == codes
    assert job.batch.created_by_id == staff.pk
    assert list((settings.VOUCHER_UPLOAD_DIR).iterdir()) == []
    page = staff_client.get(job_page(job)).content.decode()
    assert 'data-status="done"' in page
    batch_url = reverse("admin:vouchers_batch_change", args=[job.batch_id])
    assert f'5 codes loaded into <a href="{batch_url}">batch {job.batch_id}</a>' in page
    assert 'http-equiv="refresh"' not in page
    assert [c for c in codes if c in page] == []
    # and the job row holds no code
    stored_job = " ".join(str(v) for v in LoadJob.objects.values().get().values())
    assert [c for c in codes if c in stored_job] == []


def test_the_task_gets_the_jobs_id_only(staff_client, product, django_capture_on_commit_callbacks,
                                        monkeypatch):
    # given
    from vouchers import tasks

    sent = []
    monkeypatch.setattr(tasks.run_load_job, "delay", lambda **kwargs: sent.append(kwargs))
    codes = fresh_codes(5)
    # when
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(reverse(IMPORT), form_data(product, upload("big.csv", ["code", *codes])))
    # then the message is the job's id, and nothing was loaded yet
    job = LoadJob.objects.get()
    assert sent == [{"job_id": str(job.pk)}]
    assert job.status == "queued"
    assert stored() == (0, 0, 0)


def test_a_rejected_large_import_stores_nothing_and_offers_its_report(
    staff_client, product, settings, django_capture_on_commit_callbacks,
):
    # given a file with two bad rows
    codes = fresh_codes(4)
    file = upload("bad.csv", ["code", codes[0], "x", codes[1], codes[0], codes[2]])
    # when
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(reverse(IMPORT), form_data(product, file))
    # then
    job = LoadJob.objects.get()
    assert (job.status, job.bad_rows, job.batch_id) == ("failed", 2, None)
    assert stored() == (0, 0, 0)
    assert list(settings.VOUCHER_UPLOAD_DIR.iterdir()) == []
    page = staff_client.get(job_page(job)).content.decode()
    assert 'data-status="failed"' in page
    report = staff_client.get(reverse("admin:vouchers_batch_load_job_report", args=[job.pk]))
    assert report["Content-Type"] == "text/csv; charset=utf-8"
    rows = list(csv.reader(io.StringIO(report.content.decode())))
    assert rows[0] == ["line", "reason"]
    assert [row[0] for row in rows[1:]] == ["3", "5"]
    assert [c for c in codes if c in report.content.decode()] == []


def test_a_large_generation_runs_in_the_background(staff_client, product, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("admin:vouchers_batch_generate"), generate_data(product))
    job = LoadJob.objects.get()
    assert response["Location"] == job_page(job)
    assert (job.kind, job.status, job.imported, job.total, job.processed) == ("generate", "done", 25, 25, 25)
    assert Batch.objects.get().size == 25


def test_a_small_load_still_runs_in_the_request(staff_client, product, settings):
    settings.VOUCHER_BACKGROUND_GENERATE_ABOVE = 100
    response = staff_client.post(reverse("admin:vouchers_batch_generate"), generate_data(product))
    assert response["Location"] == reverse("admin:vouchers_batch_change", args=[Batch.objects.get().pk])
    assert LoadJob.objects.count() == 0


def test_a_running_job_shows_its_progress_and_refreshes(staff_client, product):
    # given a job the worker is running, 40 of 160 rows done
    job = LoadJob.objects.create(kind="import", product=product, status="running", total=160,
                                 filename="big.csv")
    cache.set(f"vouchers:loadjob:{job.pk}:processed", 40)
    # when
    page = staff_client.get(job_page(job)).content.decode()
    # then
    assert "Running: 40 of 160 (25%) rows." in page
    assert '<meta http-equiv="refresh" content="2">' in page


def test_a_job_runs_once_even_if_delivered_twice(staff_client, product, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(reverse(IMPORT), form_data(product, upload("big.csv", ["code", *fresh_codes(5)])))
    job = LoadJob.objects.get()
    before = stored()
    assert load_jobs.run_load_job(job_id=job.pk) is None
    assert stored() == before
    assert LoadJob.objects.get().status == "done"


def test_another_merchants_staff_cannot_see_a_job(client, product):
    job = LoadJob.objects.create(kind="generate", product=product, status="done", total=1)
    other = StaffFactory(merchant=ProductFactory().merchant)
    grant_app_permissions(other.user, "vouchers")
    client.force_login(other.user)
    assert client.get(job_page(job)).status_code == 404
    assert client.get(reverse("admin:vouchers_batch_load_job_report", args=[job.pk])).status_code == 404


def test_a_job_whose_worker_died_is_marked_failed_by_the_beat_task(
    staff_client, product, django_capture_on_commit_callbacks
):
    from vouchers import tasks

    # given a large import whose worker dies after 2 rows (no outcome is ever stored)
    with django_capture_on_commit_callbacks(execute=False):
        staff_client.post(reverse(IMPORT), form_data(product, upload("big.csv", ["code", *fresh_codes(5)])))
    job = LoadJob.objects.get()

    def dies(**kwargs):
        kwargs["progress"](2)
        raise SystemExit("worker killed")

    with mock.patch.object(load_jobs, "import_codes", side_effect=dies), pytest.raises(SystemExit):
        load_jobs.run_load_job(job_id=job.pk)
    assert LoadJob.objects.get().status == "running"
    # a minute later it is still taken for alive
    assert load_jobs.fail_stalled_jobs(now=timezone.now() + timedelta(minutes=1)) == []
    # when the beat task runs after the stall limit
    later = timezone.now() + timedelta(seconds=load_jobs.stall_seconds() + 60)
    with mock.patch("django.utils.timezone.now", return_value=later):
        assert tasks.fail_stalled_load_jobs() == 1
    # then the job is failed, says why, and stored nothing; its page stops refreshing
    job.refresh_from_db()
    assert (job.status, job.error, job.finished_at, job.processed) == (
        "failed", load_jobs.STALLED_ERROR, later, 2)
    assert stored() == (0, 0, 0)
    page = staff_client.get(job_page(job)).content.decode()
    assert load_jobs.STALLED_ERROR in page and 'http-equiv="refresh"' not in page
    # a redelivered task and a second beat run change nothing
    assert load_jobs.run_load_job(job_id=job.pk) is None
    assert load_jobs.fail_stalled_jobs(now=later) == []
    assert LoadJob.objects.get().status == "failed"


def test_a_long_job_that_still_reports_progress_is_left_running(product):
    started = timezone.now() - timedelta(hours=2)
    alive = LoadJob.objects.create(kind="generate", product=product, status="running", total=10)
    dead = LoadJob.objects.create(kind="generate", product=product, status="running", total=10)
    LoadJob.objects.filter(pk__in=[alive.pk, dead.pk]).update(started_at=started)
    cache.set(f"vouchers:loadjob:{alive.pk}:heartbeat", time.time())
    cache.set(f"vouchers:loadjob:{dead.pk}:heartbeat", time.time() - load_jobs.stall_seconds() - 1)
    # when
    marked = load_jobs.fail_stalled_jobs()
    # then
    assert [job.pk for job in marked] == [dead.pk]
    assert dict(LoadJob.objects.values_list("pk", "status")) == {alive.pk: "running", dead.pk: "failed"}
