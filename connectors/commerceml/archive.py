"""Guarded extraction of the zip archives 1C uploads when the hub replies `zip=yes` to init."""

from __future__ import annotations

import lzma
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tentorium_hub.errors import CommerceMLError

from .paths import sanitize_filename

__all__ = ["is_zip", "safe_extract_zip"]

# Local file header, and the end-of-central-directory record that starts an empty archive.
_ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")

_CHUNK_BYTES = 64 * 1024

# Bit 0 of the general purpose flags marks an encrypted member (APPNOTE 4.4.4).
_ENCRYPTED_FLAG = 0x1

# Errors the stdlib raises while reading a damaged archive (bad headers, bad deflate or
# LZMA stream, truncated data, unsupported compression method).
_ARCHIVE_ERRORS = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, NotImplementedError)


@dataclass(frozen=True, slots=True)
class _Member:
    info: zipfile.ZipInfo
    path: PurePosixPath


@dataclass(slots=True)
class _Budget:
    """Byte limits shared by the header check and the streaming check."""

    max_total_bytes: int
    max_ratio: int
    written_bytes: int = 0


def is_zip(path: Path) -> bool:
    """Tell whether the file starts with a zip signature (the name 1C gives it is a temp name)."""
    with path.open("rb") as stream:
        head = stream.read(4)
    return head in _ZIP_SIGNATURES


def safe_extract_zip(
    archive: Path, dest: Path, *, max_total_bytes: int, max_ratio: int
) -> list[PurePosixPath]:
    """Extract `archive` into `dest` and return the relative paths of the files written.

    Every member name must be relative (no `..`, no leading slash, no drive letter) and
    pass `sanitize_filename`. Symlinks, special files, encrypted members and duplicate
    names are rejected. The total uncompressed size and each member's compression ratio
    (uncompressed / compressed) are checked from the headers before anything is written,
    and again while streaming in case the headers lie.
    Nothing reaches `dest` when a check fails: members are extracted into a temporary
    folder beside `dest` (same file system) and renamed into `dest` only after all of them
    were written. Files already in `dest` with the same names are replaced.
    Raises CommerceMLError for a corrupt archive and for every rejected member.
    """
    if max_total_bytes <= 0 or max_ratio <= 0:
        raise ValueError(
            f"max_total_bytes and max_ratio must be positive, got {max_total_bytes}, {max_ratio}"
        )

    budget = _Budget(max_total_bytes=max_total_bytes, max_ratio=max_ratio)
    dest.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unzip-", dir=dest.parent))
    try:
        members = _extract_to_staging(archive, staging, budget)
        _check_destination(archive, dest, members)
        _move_into(staging, dest, members)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [member.path for member in members]


def _extract_to_staging(archive: Path, staging: Path, budget: _Budget) -> list[_Member]:
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = _plan_members(archive, zipped.infolist(), budget)
            for member in members:
                _write_member(archive, zipped, member, staging / member.path, budget)
    except _ARCHIVE_ERRORS as exc:
        raise _corrupt(archive, exc) from exc
    return members


def _plan_members(archive: Path, infos: list[zipfile.ZipInfo], budget: _Budget) -> list[_Member]:
    members: list[_Member] = []
    seen: set[PurePosixPath] = set()
    declared_bytes = 0

    for info in infos:
        path = _member_path(archive, info)
        if info.is_dir():
            continue
        if path in seen:
            raise _rejected(archive, info.filename, "the name occurs twice", "имя повторяется")

        _check_member_header(archive, info, budget)
        declared_bytes += info.file_size
        if declared_bytes > budget.max_total_bytes:
            raise _too_big(archive, budget.max_total_bytes)

        seen.add(path)
        members.append(_Member(info=info, path=path))
    return members


def _member_path(archive: Path, info: zipfile.ZipInfo) -> PurePosixPath:
    # Zip-slip guard: unlike the `filename` query parameter, a member name has no reason to
    # be absolute, so a leading slash or a drive letter is rejected instead of stripped.
    raw = info.filename
    if raw.startswith(("/", "\\")) or (len(raw) >= 2 and raw[1] == ":" and raw[0].isalpha()):
        raise _rejected(archive, raw, "the path is absolute", "путь абсолютный")
    try:
        return sanitize_filename(raw)
    except CommerceMLError as exc:
        raise _rejected(archive, raw, str(exc), exc.message_ru) from exc


def _check_member_header(archive: Path, info: zipfile.ZipInfo, budget: _Budget) -> None:
    file_type = stat.S_IFMT(info.external_attr >> 16)
    if file_type == stat.S_IFLNK:
        raise _rejected(archive, info.filename, "it is a symbolic link", "это символическая ссылка")
    if file_type not in (0, stat.S_IFREG):
        raise _rejected(archive, info.filename, "it is not a regular file", "это не обычный файл")
    if info.flag_bits & _ENCRYPTED_FLAG:
        raise _rejected(archive, info.filename, "it is encrypted", "он зашифрован")
    if info.file_size > budget.max_ratio * max(info.compress_size, 1):
        raise _ratio_exceeded(archive, info.filename, budget.max_ratio)


def _write_member(
    archive: Path,
    zipped: zipfile.ZipFile,
    member: _Member,
    target: Path,
    budget: _Budget,
) -> None:
    info = member.info
    ratio_limit = budget.max_ratio * max(info.compress_size, 1)
    member_bytes = 0

    target.parent.mkdir(parents=True, exist_ok=True)
    with zipped.open(info) as source, target.open("wb") as sink:
        # Fixed-size chunks, so a bomb is caught before it fills the disk.
        for chunk in iter(lambda: source.read(_CHUNK_BYTES), b""):
            member_bytes += len(chunk)
            budget.written_bytes += len(chunk)
            if member_bytes > info.file_size or member_bytes > ratio_limit:
                raise _ratio_exceeded(archive, info.filename, budget.max_ratio)
            if budget.written_bytes > budget.max_total_bytes:
                raise _too_big(archive, budget.max_total_bytes)
            sink.write(chunk)


def _check_destination(archive: Path, dest: Path, members: list[_Member]) -> None:
    # Checked before the first rename so a conflict leaves `dest` untouched.
    for member in members:
        target = dest / member.path
        if target.is_dir() or target.is_symlink():
            raise _rejected(
                archive,
                member.info.filename,
                "a folder or link of that name exists",
                "в папке обмена уже есть папка или ссылка с таким именем",
            )
        for parent in member.path.parents:
            folder = dest / parent
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                raise _rejected(
                    archive,
                    member.info.filename,
                    f"{parent} exists and is not a folder",
                    f"«{parent}» в папке обмена не является папкой",
                )


def _move_into(staging: Path, dest: Path, members: list[_Member]) -> None:
    for member in members:
        target = dest / member.path
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / member.path, target)


def _corrupt(archive: Path, exc: BaseException) -> CommerceMLError:
    return CommerceMLError(
        f"corrupt zip archive {archive.name!r}: {exc}",
        message_ru=(
            f"Архив {archive.name} повреждён или не является zip-архивом ({exc}). "
            "Выгрузите данные заново."
        ),
        filename=archive.name,
    )


def _rejected(archive: Path, member: str, reason: str, reason_ru: str) -> CommerceMLError:
    return CommerceMLError(
        f"zip archive {archive.name!r}: member {member!r} rejected: {reason}",
        message_ru=(
            f"Архив {archive.name}: файл {member!r} отклонён: {reason_ru}. "
            "Выгрузите данные заново стандартным модулем обмена 1С."
        ),
        filename=archive.name,
    )


def _ratio_exceeded(archive: Path, member: str, max_ratio: int) -> CommerceMLError:
    return CommerceMLError(
        f"zip archive {archive.name!r}: member {member!r} expands more than {max_ratio} times",
        message_ru=(
            f"Архив {archive.name}: файл {member!r} распаковывается более чем в {max_ratio} раз "
            "(похоже на zip-бомбу). Выгрузите данные заново или отключите сжатие в обмене."
        ),
        filename=archive.name,
    )


def _too_big(archive: Path, max_total_bytes: int) -> CommerceMLError:
    return CommerceMLError(
        f"zip archive {archive.name!r} expands to more than {max_total_bytes} bytes",
        message_ru=(
            f"Архив {archive.name} после распаковки больше {max_total_bytes} байт. "
            "Выгружайте данные частями (меньше товаров или картинок за один обмен)."
        ),
        filename=archive.name,
    )
