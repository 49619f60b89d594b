"""Large loads in the admin: start a background job above the size threshold, show its progress.

The generate and import pages call `start_generation_if_large` / `start_import_if_large`
first; below the threshold they return None and the page loads the codes in the request
as before. The job's page refreshes itself every two seconds until the job finishes,
then links the batch and offers the per-line report as CSV.
"""

from __future__ import annotations

import csv

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _

from config.admin_console import render_page
from config.tenancy import scope_queryset
from vouchers.admin.views import change_url
from vouchers.models import LoadJob, Product
from vouchers.services import load_jobs

REPORT_ROWS_SHOWN = 100


def job_url(job: LoadJob) -> str:
    return reverse("admin:vouchers_batch_load_job", args=[job.pk])


def start_generation_if_large(model_admin, request: HttpRequest, data: dict) -> HttpResponse | None:
    if data["count"] <= load_jobs.background_generate_above():
        return None
    job = load_jobs.start_generation_job(
        product=data["product"], count=data["count"], fmt=data["fmt"], created_by=request.user,
        valid_from=data.get("valid_from"), valid_until=data.get("valid_until"),
        reference=data.get("reference") or "",
    )
    messages.info(request, _("Generating %(p0)s codes in the background.") % {"p0": f"{data['count']:,}"})
    return HttpResponseRedirect(job_url(job))


def start_import_if_large(model_admin, request: HttpRequest, data: dict) -> HttpResponse | None:
    uploaded = data["file"]
    if uploaded.size <= load_jobs.background_import_above_bytes():
        return None
    job = load_jobs.start_import_job(
        product=data["product"], uploaded=uploaded, created_by=request.user,
        encoding=data.get("encoding") or None, file_format=data.get("file_format") or None,
        skip_invalid=data["skip_invalid"], case_sensitive=data["case_sensitive"],
        valid_from=data.get("valid_from"), valid_until=data.get("valid_until"),
        allow_weak_codes=data["allow_weak_codes"], reference=data.get("reference") or uploaded.name,
    )
    messages.info(request, _("Importing %(p0)s in the background.") % {"p0": uploaded.name})
    return HttpResponseRedirect(job_url(job))


def _job(model_admin, request: HttpRequest, job_id) -> LoadJob:
    if not model_admin.has_load_permission(request):
        raise PermissionDenied
    products = scope_queryset(Product.objects.all(), request)
    job = (
        LoadJob.objects.select_related("product", "batch")
        .filter(pk=job_id, product__in=products).first()
    )
    if job is None:
        raise Http404("No such load.")
    return job


def load_job_view(model_admin, request: HttpRequest, job_id) -> HttpResponse:
    job = _job(model_admin, request, job_id)
    done = load_jobs.processed(job)
    percent = min(100, done * 100 // job.total) if job.total else None
    report = job.report[:REPORT_ROWS_SHOWN]
    return render_page(
        model_admin, request, "admin/vouchers/batch/load_job.html",
        title=_("%(p0)s of %(p1)s: %(p2)s") % {
            "p0": job.get_kind_display().capitalize(), "p1": job.product.sku, "p2": job.status},
        job=job, processed=done, percent=percent, report=report,
        more=max(len(job.report) - len(report), 0),
        batch_url=change_url(job.batch) if job.batch_id else None,
        report_url=reverse("admin:vouchers_batch_load_job_report", args=[job.pk]),
    )


def load_job_report_view(model_admin, request: HttpRequest, job_id) -> HttpResponse:
    """The job's per-line report as CSV (line, reason); reasons never hold a code."""
    job = _job(model_admin, request, job_id)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="load-{job.pk}-report.csv"'
    writer = csv.writer(response)
    writer.writerow(["line", "reason"])
    writer.writerows(job.report)
    return response
