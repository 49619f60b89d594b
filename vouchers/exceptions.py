"""Domain errors. Each carries the stable machine-readable code of API.md."""

from __future__ import annotations


class DomainError(Exception):
    code = "domain_error"
    status = 400
    title = "Request refused"

    def __init__(self, detail: str = "", **extra) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra


class InvalidBatchSettings(DomainError):
    code = "invalid_batch_settings"
    title = "Batch settings refused"


class ImportRejected(DomainError):
    """An import file had bad rows; `report` lists (line, reason). Nothing was stored."""

    code = "import_rejected"
    title = "Import rejected"

    def __init__(self, detail: str, *, report: list[tuple[int, str]], bad_rows: int) -> None:
        super().__init__(detail)
        self.report = report
        self.bad_rows = bad_rows
