-- The OData entity names each branch publishes, probed from its service document, so a
-- restarted node does not probe ~1,100 branches again. The profile is re-probed on an
-- operator's resync and when 1C answers "entity type not found" (code 8) for an entity.
CREATE TABLE branch_odata_profile (
    branch_code           text PRIMARY KEY REFERENCES branches(code) ON DELETE CASCADE,
    profile               jsonb NOT NULL,
    probed_at             timestamptz NOT NULL,
    -- UTC lower bound of the order document dates the last status poll read; the request
    -- renders it in the branch's local time. NULL until a poll had orders to look for.
    orders_watermark      timestamptz
);
