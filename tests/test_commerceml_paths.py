"""File names 1C sends in `filename=`: normalised to safe relative paths or rejected."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from connectors.commerceml.paths import sanitize_filename
from tentorium_hub.errors import CommerceMLError


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param("import0_1.xml", "import0_1.xml", id="plain"),
        pytest.param("C:\\v8_8789_c.xml", "v8_8789_c.xml", id="drive-backslash"),
        pytest.param("c:/v8_8789_c.xml", "v8_8789_c.xml", id="drive-slash"),
        pytest.param("import_files/5c/x.jpg", "import_files/5c/x.jpg", id="subfolders"),
        pytest.param("import_files\\5c\\x.jpg", "import_files/5c/x.jpg", id="backslashes"),
        pytest.param("/import_files/5c/x.jpg", "import_files/5c/x.jpg", id="leading-slash"),
        pytest.param("//x.xml", "x.xml", id="double-leading-slash"),
        pytest.param("import_files//5c/./x.jpg", "import_files/5c/x.jpg", id="empty-and-dot"),
        pytest.param("offers___7f30-4e.xml", "offers___7f30-4e.xml", id="package-name"),
        pytest.param("Картинки/фото 1.jpg", "Картинки/фото 1.jpg", id="cyrillic-and-space"),
    ],
)
def test_sanitize_filename_normalises(raw: str, expected: str) -> None:
    assert sanitize_filename(raw) == PurePosixPath(expected)


def test_sanitize_filename_returns_relative() -> None:
    assert not sanitize_filename("C:\\temp\\x.xml").is_absolute()


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("../x.xml", id="parent"),
        pytest.param("import_files/../../etc/passwd", id="nested-parent"),
        pytest.param("..\\..\\x.xml", id="parent-backslash"),
        pytest.param("C:\\..\\x.xml", id="drive-parent"),
        pytest.param("", id="empty"),
        pytest.param("/", id="root-only"),
        pytest.param("C:", id="drive-only"),
        pytest.param("./.", id="dots-only"),
        pytest.param("x\x00.xml", id="nul"),
        pytest.param("x\n.xml", id="newline"),
        pytest.param("x\x1b.xml", id="escape"),
        pytest.param("x\x85.xml", id="c1-control"),
        pytest.param("a" * 256, id="segment-256-bytes"),
        pytest.param("import_files/" + "я" * 128, id="segment-256-utf8-bytes"),
    ],
)
def test_sanitize_filename_rejects(raw: str) -> None:
    with pytest.raises(CommerceMLError):
        sanitize_filename(raw)


def test_sanitize_filename_accepts_255_bytes() -> None:
    assert sanitize_filename("a" * 255) == PurePosixPath("a" * 255)


def test_sanitize_filename_error_names_value() -> None:
    with pytest.raises(CommerceMLError) as caught:
        sanitize_filename("../secret.xml")
    assert "'../secret.xml'" in caught.value.message_ru


def test_sanitize_filename_error_says_what_to_do() -> None:
    with pytest.raises(CommerceMLError) as caught:
        sanitize_filename("../secret.xml")
    assert "Повторите обмен" in caught.value.message_ru


def test_sanitize_filename_error_keeps_raw_name() -> None:
    with pytest.raises(CommerceMLError) as caught:
        sanitize_filename("x\x00.xml")
    assert caught.value.filename == "x\x00.xml"
