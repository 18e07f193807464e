"""Refuse oversized training files while they stream in, before they are read into memory.

Django writes uploads above FILE_UPLOAD_MAX_MEMORY_SIZE to a temporary file; this handler,
put first, stops the upload as soon as more than the limit has arrived (for bodies that
do not announce their size with Content-Length, which the view checks first).
"""
from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

DEFAULT_MAX_UPLOAD_BYTES = 300 * 1024 * 1024


def max_upload_bytes() -> int:
    return int(getattr(settings, "FINETUNE_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD_BYTES))


class MaxSizeUploadHandler(FileUploadHandler):
    def __init__(self, request=None) -> None:
        super().__init__(request)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int):
        self.received += len(raw_data)
        if self.received > max_upload_bytes():
            # The view sees this flag and answers 413; the rest of the body is not read.
            self.request.finetune_upload_too_large = True
            raise StopUpload(connection_reset=True)
        return raw_data  # passed on to the next handler (memory or temporary file)

    def file_complete(self, file_size: int):
        return None
