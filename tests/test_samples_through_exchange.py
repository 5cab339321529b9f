"""Every public sample file goes through `/1c/exchange` as 1C would send it, with the
catalog counts each file must leave in the database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tentorium_hub.node import NodeContext

from hubtest import RawExchange, add_commerceml_branch

# (folder, file) -> table -> expected rows for that branch after the file, where known.
EXPECTED: dict[tuple[str, str], dict[str, int]] = {
    ("dobromyslov__commerceml-parser", "import0_1.xml"): {"products": 36, "deleted": 1},
    ("dobromyslov__commerceml-parser", "offers0_1.xml"): {"offers": 44, "stock": 132},
    ("gillbeits__commerceml", "import___b815e2db-7a65-4265-9241-5f0c4f0565a7.xml"): {
        "product_groups": 97,
        "products": 0,
    },
    ("gillbeits__commerceml", "offers___7f304edc-2527-4d3d-b058-6e4ee53de2e0.xml"): {"offers": 978},
    ("gillbeits__commerceml", "prices___d66a6b51-ce9c-4e7a-8c7c-25079721107f.xml"): {"prices": 978},
    ("gillbeits__commerceml", "rests___1af6e7b8-a026-4690-9752-1c9d64cb914d.xml"): {"offers": 978},
    ("irpsv__commerceml", "import.xml"): {"products": 4},
    ("ArgentCrusade__commerceml", "group-example.xml"): {"product_groups": 12},
    ("ArgentCrusade__commerceml", "products-example.xml"): {"products": 1},
    ("ArgentCrusade__commerceml", "remainders-example.xml"): {"stock": 14},
}
QUERIES = {
    "products": "SELECT count(*) FROM products WHERE branch_code = $1",
    "deleted": "SELECT count(*) FROM products WHERE branch_code = $1 AND deleted",
    "offers": "SELECT count(*) FROM offers WHERE branch_code = $1",
    "stock": "SELECT count(*) FROM stock WHERE branch_code = $1",
    "prices": "SELECT count(*) FROM prices WHERE branch_code = $1",
    "product_groups": "SELECT count(*) FROM product_groups WHERE branch_code = $1",
}


def _sample_files(samples: Path) -> list[Path]:
    order = ("import", "group", "products", "offers", "prices", "rests", "remainders")

    def rank(path: Path) -> tuple[str, int, str]:
        name = path.name.lower()
        first = next((i for i, p in enumerate(order) if name.startswith(p)), len(order))
        return str(path.parent), first, name

    return sorted(samples.glob("commerceml/*/*.xml"), key=rank)


async def _count(node: NodeContext, table: str, branch: str) -> int:
    return int(await node.db.run(lambda c: c.fetchval(QUERIES[table], branch)))


async def test_every_sample_file_imports(node: NodeContext, samples_dir: Path) -> None:
    files = _sample_files(samples_dir)
    assert files, f"no CommerceML samples under {samples_dir}"
    branches: dict[str, tuple[str, str]] = {}
    checked = 0
    for path in files:
        folder = path.parent.name
        if folder not in branches:
            code = f"S{len(branches) + 1:02d}"
            branches[folder] = (code, await add_commerceml_branch(node, code, file_limit=64 * 1024))
        code, login = branches[folder]
        client = RawExchange(node, login)
        await client.login_and_init()
        await client.upload(path.name, path.read_bytes(), 64 * 1024)
        result = await client.import_until_done(path.name)
        await client.aclose()
        assert result[0] == "success", (path.name, result)
        for table, expected in EXPECTED.get((folder, path.name), {}).items():
            assert await _count(node, table, code) == expected, (path.name, table)
            checked += 1
    assert checked == sum(len(v) for v in EXPECTED.values())


async def test_sample_zip_imports(node: NodeContext, samples_dir: Path) -> None:
    archive = samples_dir / "commerceml" / "_assembled" / "v8_style_catalog_2.07.zip"
    if not archive.is_file():
        pytest.skip(f"{archive} is absent")
    login = await add_commerceml_branch(node, "ZIP01", zip_enabled=True, file_limit=4096)
    client = RawExchange(node, login)
    await client.login_and_init()
    await client.upload("v8_1065_3a.zip", archive.read_bytes(), 4096)
    first = await client.import_until_done("import0_1.xml")
    second = await client.import_until_done("offers0_1.xml")
    await client.aclose()
    assert first[0] == "success", first
    assert second[0] == "success", second
    assert await _count(node, "products", "ZIP01") == 36
    assert await _count(node, "offers", "ZIP01") == 44
