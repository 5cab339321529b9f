"""Sanitising of the file names 1C sends in `mode=file&filename=...` and inside zip archives."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from tentorium_hub.errors import CommerceMLError

__all__ = ["MAX_SEGMENT_BYTES", "sanitize_filename"]

# The common file-name limit of Linux file systems (ext4, xfs, btrfs): 255 bytes per name.
MAX_SEGMENT_BYTES = 255

# A Windows drive prefix such as `C:`; 1C on Windows was seen sending `filename=C:\v8_8789_c.xml`.
_DRIVE = re.compile(r"^[A-Za-z]:")

# C0 controls, DEL and C1 controls: never part of a name 1C produces.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def sanitize_filename(raw: str) -> PurePosixPath:
    """Turn the `filename` 1C sends into a safe path relative to the session folder.

    Backslashes become `/`, a drive letter and leading slashes are dropped
    (`C:\\v8_8789_c.xml` -> `v8_8789_c.xml`), empty and `.` segments are dropped, and
    sub-folders are kept (`import_files/5c/x.jpg`) because `<Картинка>` refers to them.
    Raises CommerceMLError for `..` segments, control characters, an empty result and a
    segment longer than 255 bytes in UTF-8.
    """
    if _CONTROL.search(raw):
        raise _invalid(raw, "it contains a control character", "содержит управляющий символ")

    path = _DRIVE.sub("", raw.replace("\\", "/"), count=1)
    segments = [segment for segment in path.split("/") if segment not in ("", ".")]
    if not segments:
        raise _invalid(raw, "it is empty", "пустое")
    if ".." in segments:
        raise _invalid(raw, "it contains a '..' segment", "содержит переход «..»")

    for segment in segments:
        if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
            raise _invalid(
                raw,
                f"the segment {segment[:40]!r}... is longer than {MAX_SEGMENT_BYTES} bytes",
                f"часть имени длиннее {MAX_SEGMENT_BYTES} байт",
            )

    return PurePosixPath(*segments)


def _invalid(raw: str, reason: str, reason_ru: str) -> CommerceMLError:
    return CommerceMLError(
        f"invalid file name {raw!r}: {reason}",
        message_ru=(
            f"Недопустимое имя файла {raw!r}: {reason_ru}. Имя должно быть относительным "
            "путём без «..» и служебных символов. Повторите обмен; если ошибка повторится, "
            "сообщите администратору хаба."
        ),
        filename=raw,
    )
