"""Guarded zip extraction: zip-slip, bombs, links and corrupt archives are rejected."""

from __future__ import annotations

import random
import stat
import zipfile
from pathlib import Path, PurePosixPath

import pytest

from connectors.commerceml.archive import is_zip, safe_extract_zip
from tentorium_hub.errors import CommerceMLError

LIMIT_BYTES = 10 * 1024 * 1024
RATIO = 100


def _write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _extract(archive: Path, dest: Path) -> list[PurePosixPath]:
    return safe_extract_zip(archive, dest, max_total_bytes=LIMIT_BYTES, max_ratio=RATIO)


def _listing(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*"))


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    return tmp_path / "session" / "upload"


def test_safe_extract_zip_writes_members(tmp_path: Path, dest: Path) -> None:
    archive = _write_zip(
        tmp_path / "v8_1065_3a.zip",
        {"import0_1.xml": b"<x/>", "import_files/5c/a.jpg": b"\xff\xd8jpeg"},
    )

    written = _extract(archive, dest)

    assert written == [PurePosixPath("import0_1.xml"), PurePosixPath("import_files/5c/a.jpg")]
    assert (dest / "import0_1.xml").read_bytes() == b"<x/>"
    assert (dest / "import_files" / "5c" / "a.jpg").read_bytes() == b"\xff\xd8jpeg"


def test_safe_extract_zip_replaces_existing_file(tmp_path: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    (dest / "offers0_1.xml").write_bytes(b"old")
    archive = _write_zip(tmp_path / "a.zip", {"offers0_1.xml": b"new"})

    _extract(archive, dest)

    assert (dest / "offers0_1.xml").read_bytes() == b"new"


def test_safe_extract_zip_leaves_no_staging_folder(tmp_path: Path, dest: Path) -> None:
    archive = _write_zip(tmp_path / "a.zip", {"import.xml": b"<x/>"})

    _extract(archive, dest)

    assert sorted(path.name for path in dest.parent.iterdir()) == ["upload"]


def test_safe_extract_zip_skips_folder_entries(tmp_path: Path, dest: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("import_files/", b"")
        zipped.writestr("import_files/a.jpg", b"jpg")

    assert _extract(archive, dest) == [PurePosixPath("import_files/a.jpg")]


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("../evil.xml", id="parent"),
        pytest.param("import_files/../../evil.xml", id="nested-parent"),
        pytest.param("/etc/evil.xml", id="absolute"),
        pytest.param("C:/evil.xml", id="drive"),
        pytest.param("..\\evil.xml", id="parent-backslash"),
    ],
)
def test_safe_extract_zip_rejects_zip_slip(tmp_path: Path, dest: Path, name: str) -> None:
    archive = _write_zip(tmp_path / "slip.zip", {"ok.xml": b"<x/>", name: b"owned"})

    with pytest.raises(CommerceMLError, match="rejected"):
        _extract(archive, dest)
    assert _listing(dest) == []
    assert not (tmp_path / "evil.xml").exists()


def test_safe_extract_zip_rejects_symlink(tmp_path: Path, dest: Path) -> None:
    archive = tmp_path / "link.zip"
    link = zipfile.ZipInfo("import_files/passwd")
    link.create_system = 3
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("import.xml", b"<x/>")
        zipped.writestr(link, "/etc/passwd")

    with pytest.raises(CommerceMLError, match="symbolic link"):
        _extract(archive, dest)
    assert _listing(dest) == []


def test_safe_extract_zip_rejects_ratio_bomb(tmp_path: Path, dest: Path) -> None:
    archive = _write_zip(tmp_path / "bomb.zip", {"import.xml": b"\0" * (5 * 1024 * 1024)})

    with pytest.raises(CommerceMLError, match="expands more than 100 times"):
        _extract(archive, dest)
    assert _listing(dest) == []


def test_safe_extract_zip_rejects_total_size(tmp_path: Path, dest: Path) -> None:
    archive = _write_zip(tmp_path / "big.zip", {"a.bin": b"a" * 600, "b.bin": b"b" * 600})

    with pytest.raises(CommerceMLError, match="more than 1000 bytes"):
        safe_extract_zip(archive, dest, max_total_bytes=1000, max_ratio=1000)
    assert _listing(dest) == []


def test_safe_extract_zip_rejects_lying_header(tmp_path: Path, dest: Path) -> None:
    # The central directory claims 1 KiB; the stream inflates to 400 KiB.
    payload = b"\0" * (400 * 1024)
    archive = _write_zip(tmp_path / "liar.zip", {"import.xml": payload})
    data = bytearray(archive.read_bytes())
    _patch_declared_size(data, len(payload), 1024)
    archive.write_bytes(bytes(data))

    with pytest.raises(CommerceMLError):
        safe_extract_zip(archive, dest, max_total_bytes=LIMIT_BYTES, max_ratio=1000)
    assert _listing(dest) == []


def _patch_declared_size(data: bytearray, real: int, fake: int) -> None:
    """Overwrite the uncompressed size in the local header and the central directory."""
    real_bytes = real.to_bytes(4, "little")
    fake_bytes = fake.to_bytes(4, "little")
    local = data.index(b"PK\x03\x04")
    assert data[local + 22 : local + 26] == real_bytes
    data[local + 22 : local + 26] = fake_bytes
    central = data.index(b"PK\x01\x02")
    assert data[central + 24 : central + 28] == real_bytes
    data[central + 24 : central + 28] = fake_bytes


def test_safe_extract_zip_rejects_corrupt_archive(tmp_path: Path, dest: Path) -> None:
    archive = tmp_path / "broken.zip"
    archive.write_bytes(b"PK\x03\x04 this is not really a zip archive")

    with pytest.raises(CommerceMLError, match="corrupt zip"):
        _extract(archive, dest)


def test_safe_extract_zip_rejects_damaged_member(tmp_path: Path, dest: Path) -> None:
    noise = random.Random(7).randbytes(4096)  # incompressible, so the ratio check stays quiet
    archive = _write_zip(tmp_path / "crc.zip", {"import.bin": noise})
    data = bytearray(archive.read_bytes())
    data[60] ^= 0xFF  # inside the deflate stream of the only member
    archive.write_bytes(bytes(data))

    with pytest.raises(CommerceMLError, match="corrupt zip"):
        _extract(archive, dest)
    assert _listing(dest) == []


def test_safe_extract_zip_error_names_archive_in_russian(tmp_path: Path, dest: Path) -> None:
    archive = tmp_path / "v8_1065_3a.zip"
    archive.write_bytes(b"garbage")

    with pytest.raises(CommerceMLError) as caught:
        _extract(archive, dest)
    assert "v8_1065_3a.zip" in caught.value.message_ru
    assert "Выгрузите данные заново" in caught.value.message_ru


def test_safe_extract_zip_rejects_duplicate_names(tmp_path: Path, dest: Path) -> None:
    archive = tmp_path / "dup.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("import.xml", b"one")
        zipped.writestr("./import.xml", b"two")

    with pytest.raises(CommerceMLError, match="occurs twice"):
        _extract(archive, dest)


def test_safe_extract_zip_rejects_folder_conflict(tmp_path: Path, dest: Path) -> None:
    (dest / "import.xml").mkdir(parents=True)
    archive = _write_zip(tmp_path / "a.zip", {"other.xml": b"<x/>", "import.xml": b"<x/>"})

    with pytest.raises(CommerceMLError, match="folder or link"):
        _extract(archive, dest)
    assert not (dest / "other.xml").exists()


def test_safe_extract_zip_rejects_invalid_limits(tmp_path: Path, dest: Path) -> None:
    archive = _write_zip(tmp_path / "a.zip", {"import.xml": b"<x/>"})

    with pytest.raises(ValueError, match="must be positive"):
        safe_extract_zip(archive, dest, max_total_bytes=0, max_ratio=RATIO)


def test_is_zip_detects_archive(tmp_path: Path) -> None:
    assert is_zip(_write_zip(tmp_path / "v8_1065_3a.tmp", {"a.xml": b"<x/>"}))


def test_is_zip_detects_empty_archive(tmp_path: Path) -> None:
    path = tmp_path / "empty.zip"
    with zipfile.ZipFile(path, "w"):
        pass

    assert is_zip(path)


def test_is_zip_rejects_xml(tmp_path: Path) -> None:
    path = tmp_path / "import.zip"
    path.write_bytes(b'\xef\xbb\xbf<?xml version="1.0"?><a/>')

    assert not is_zip(path)


def test_is_zip_rejects_short_file(tmp_path: Path) -> None:
    path = tmp_path / "short"
    path.write_bytes(b"PK")

    assert not is_zip(path)
