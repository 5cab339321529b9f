-- Per-line discounts, so the lines of a document sum exactly to its total, and the
-- per-branch profile of the order documents the hub writes for 1C.
ALTER TABLE orders ADD COLUMN discount numeric(18, 2) NOT NULL DEFAULT 0;
ALTER TABLE order_lines ADD COLUMN discount numeric(18, 2) NOT NULL DEFAULT 0;
ALTER TABLE branches
    ADD COLUMN export_schema_version text NOT NULL DEFAULT '2.05',
    ADD COLUMN export_encoding text NOT NULL DEFAULT 'utf-8'
        CHECK (export_encoding IN ('utf-8', 'windows-1251')),
    -- Set by `branches resync`; the node running the branch polls at once and clears it.
    ADD COLUMN resync_requested_at timestamptz;
