-- The rest of a branch's order export profile: how flags, delivery and discounts are
-- written in the documents 1C reads (see connectors/commerceml/writer.py ExportProfile).
ALTER TABLE branches
    ADD COLUMN export_style text NOT NULL DEFAULT 'requisites'
        CHECK (export_style IN ('requisites', 'elements')),
    ADD COLUMN export_delivery text NOT NULL DEFAULT 'line'
        CHECK (export_delivery IN ('line', 'requisite')),
    ADD COLUMN export_delivery_id text NOT NULL DEFAULT 'ORDER_DELIVERY'
        CHECK (btrim(export_delivery_id) <> ''),
    ADD COLUMN export_discounts text NOT NULL DEFAULT 'lines'
        CHECK (export_discounts IN ('lines', 'document'));

-- Versions from 2.09 on carry ПометкаУдаления as an element, so they default to that style.
UPDATE branches SET export_style = 'elements'
 WHERE export_schema_version IN ('2.09', '2.10', '3.1');
