-- Branches, their 1C connection settings and exchange health.
CREATE TABLE branches (
    code                  text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9_-]{1,32}$'),
    name                  text NOT NULL,
    kind                  text NOT NULL CHECK (kind IN ('commerceml', 'odata')),
    time_zone             text NOT NULL,
    currency              text NOT NULL DEFAULT 'RUB',
    active                boolean NOT NULL DEFAULT true,
    paused                boolean NOT NULL DEFAULT false,
    -- CommerceML: 1C logs in with HTTP Basic; only a scrypt hash of the password is kept.
    exchange_login        text UNIQUE,
    exchange_password_hash text,
    zip_enabled           boolean NOT NULL DEFAULT true,
    file_limit_bytes      integer NOT NULL DEFAULT 4194304 CHECK (file_limit_bytes >= 1024),
    price_type            text,          -- name or Ид of the selling price type; NULL = the first one
    old_price_type        text,          -- name or Ид of the strikethrough price type
    -- A full catalog snapshot (СодержитТолькоИзменения=false) hides goods it does not list.
    deactivate_missing    boolean NOT NULL DEFAULT true,
    -- OData: the hub polls and writes the branch's standard.odata.
    odata_url             text,
    odata_username        text,
    odata_password        text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE branch_health (
    branch_code           text PRIMARY KEY REFERENCES branches(code) ON DELETE CASCADE,
    last_success_at       timestamptz,
    last_attempt_at       timestamptz,
    consecutive_failures  integer NOT NULL DEFAULT 0,
    last_error            text
);

-- Several hub nodes on one database share the branches: a node runs a branch's actor
-- only while it holds an unexpired lease on it.
CREATE TABLE branch_leases (
    branch_code           text PRIMARY KEY REFERENCES branches(code) ON DELETE CASCADE,
    node_id               text NOT NULL,
    expires_at            timestamptz NOT NULL
);

-- Every running node renews its row; the live ones share the branches evenly.
CREATE TABLE hub_nodes (
    node_id               text PRIMARY KEY,
    seen_at               timestamptz NOT NULL DEFAULT now()
);

-- Catalog, per branch: every branch runs its own 1C base with its own ids.
CREATE TABLE product_groups (
    branch_code           text NOT NULL REFERENCES branches(code) ON DELETE CASCADE,
    external_id           text NOT NULL,
    name                  text NOT NULL,
    parent_id             text,
    deleted               boolean NOT NULL DEFAULT false,
    PRIMARY KEY (branch_code, external_id)
);

CREATE TABLE products (
    id                    bigserial PRIMARY KEY,
    branch_code           text NOT NULL REFERENCES branches(code) ON DELETE CASCADE,
    external_id           text NOT NULL,
    sku                   text,
    name                  text NOT NULL,
    group_id              text,
    unit                  text,
    description           text,
    barcode               text,
    deleted               boolean NOT NULL DEFAULT false,
    properties            jsonb NOT NULL DEFAULT '{}',
    pictures              jsonb NOT NULL DEFAULT '[]',
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (branch_code, external_id)
);

CREATE TABLE price_types (
    branch_code           text NOT NULL REFERENCES branches(code) ON DELETE CASCADE,
    external_id           text NOT NULL,
    name                  text NOT NULL,
    currency              text,
    PRIMARY KEY (branch_code, external_id)
);

CREATE TABLE warehouses (
    branch_code           text NOT NULL REFERENCES branches(code) ON DELETE CASCADE,
    external_id           text NOT NULL,
    name                  text NOT NULL,
    PRIMARY KEY (branch_code, external_id)
);

CREATE TABLE offers (
    id                    bigserial PRIMARY KEY,
    branch_code           text NOT NULL REFERENCES branches(code) ON DELETE CASCADE,
    external_id           text NOT NULL,
    product_id            text NOT NULL,
    characteristic_id     text,
    name                  text,
    characteristics       jsonb NOT NULL DEFAULT '{}',
    stock_total           numeric,
    deleted               boolean NOT NULL DEFAULT false,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (branch_code, external_id)
);
CREATE INDEX offers_product_idx ON offers (branch_code, product_id);

CREATE TABLE prices (
    branch_code           text NOT NULL REFERENCES branches(code) ON DELETE CASCADE,
    offer_id              text NOT NULL,
    price_type_id         text NOT NULL,
    amount                numeric(18, 2) NOT NULL CHECK (amount >= 0),
    currency              text,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (branch_code, offer_id, price_type_id)
);

CREATE TABLE stock (
    branch_code           text NOT NULL REFERENCES branches(code) ON DELETE CASCADE,
    offer_id              text NOT NULL,
    warehouse_id          text NOT NULL,
    quantity              numeric NOT NULL,
    updated_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (branch_code, offer_id, warehouse_id)
);

-- API clients authenticate with bearer tokens; only a SHA-256 of each token is stored.
CREATE TABLE api_tokens (
    id                    bigserial PRIMARY KEY,
    name                  text NOT NULL,
    token_hash            bytea NOT NULL UNIQUE,
    scopes                text[] NOT NULL,
    created_at            timestamptz NOT NULL DEFAULT now(),
    revoked_at            timestamptz
);

CREATE SEQUENCE order_number_seq;

CREATE TABLE orders (
    id                    uuid PRIMARY KEY,
    number                text NOT NULL UNIQUE,
    branch_code           text NOT NULL REFERENCES branches(code),
    client_token_id       bigint REFERENCES api_tokens(id),
    idempotency_key       text NOT NULL,
    request_hash          bytea NOT NULL,
    status                text NOT NULL,
    currency              text NOT NULL,
    total                 numeric(18, 2) NOT NULL,
    delivery_cost         numeric(18, 2) NOT NULL DEFAULT 0,
    customer              jsonb NOT NULL,
    comment               text,
    number_1c             text,
    date_1c               timestamptz,
    status_1c             text,
    exported_at           timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    UNIQUE (client_token_id, idempotency_key)
);
CREATE INDEX orders_branch_idx ON orders (branch_code, created_at);
CREATE INDEX orders_status_idx ON orders (status);

CREATE TABLE order_lines (
    order_id              uuid NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    line_no               integer NOT NULL,
    offer_id              text NOT NULL,
    product_id            text NOT NULL,
    characteristic_id     text,
    name                  text NOT NULL,
    quantity              numeric NOT NULL CHECK (quantity > 0),
    price                 numeric(18, 2) NOT NULL CHECK (price >= 0),
    amount                numeric(18, 2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);

CREATE TABLE order_status_history (
    id                    bigserial PRIMARY KEY,
    order_id              uuid NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
    status                text NOT NULL,
    source                text NOT NULL,
    note                  text,
    raw                   jsonb,
    at                    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX order_status_history_order_idx ON order_status_history (order_id, id);

-- Transactional outbox: a row per delivery the hub owes a branch.  Written in the same
-- transaction as the order; a branch actor claims rows with FOR UPDATE SKIP LOCKED.
CREATE TABLE outbox (
    id                    bigserial PRIMARY KEY,
    branch_code           text NOT NULL REFERENCES branches(code),
    order_id              uuid NOT NULL REFERENCES orders(id),
    state                 text NOT NULL DEFAULT 'pending'
                          CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts              integer NOT NULL DEFAULT 0,
    next_attempt_at       timestamptz NOT NULL DEFAULT now(),
    offered_in_session    uuid,
    claimed_by            text,
    claimed_until         timestamptz,
    last_error            text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    delivered_at          timestamptz
);
CREATE INDEX outbox_pending_idx ON outbox (branch_code, id) WHERE state = 'pending';

-- CommerceML exchange sessions (one per checkauth) and background imports.
CREATE TABLE exchange_sessions (
    id                    uuid PRIMARY KEY,
    branch_code           text NOT NULL REFERENCES branches(code) ON DELETE CASCADE,
    exchange_type         text NOT NULL,
    token_hash            bytea NOT NULL UNIQUE,
    protocol_version      text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    last_seen_at          timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE import_jobs (
    id                    bigserial PRIMARY KEY,
    branch_code           text NOT NULL REFERENCES branches(code) ON DELETE CASCADE,
    session_id            uuid NOT NULL,
    filename              text NOT NULL,
    state                 text NOT NULL CHECK (state IN ('running', 'success', 'failure')),
    message               text,
    counts                jsonb NOT NULL DEFAULT '{}',
    node_id               text,
    size_bytes            bigint,
    started_at            timestamptz NOT NULL DEFAULT now(),
    finished_at           timestamptz,
    UNIQUE (session_id, filename)
);

-- Parsed items of an import in progress.  An import streams here in batches and is
-- merged into the live tables in one transaction at the end, so a failed file leaves the
-- previous catalog intact.  UNLOGGED: after a crash these rows are worthless anyway.
CREATE UNLOGGED TABLE import_stage (
    job_id                bigint NOT NULL,
    seq                   bigint NOT NULL,
    kind                  text NOT NULL,
    external_id           text NOT NULL,
    payload               jsonb NOT NULL
);
CREATE INDEX import_stage_job_idx ON import_stage (job_id, kind);

-- One row per exchange step worth showing to operators.
CREATE TABLE exchange_log (
    id                    bigserial PRIMARY KEY,
    branch_code           text NOT NULL REFERENCES branches(code) ON DELETE CASCADE,
    direction             text NOT NULL,
    step                  text NOT NULL,
    filename              text,
    size_bytes            bigint,
    duration_s            double precision,
    result                text NOT NULL,
    error                 text,
    counts                jsonb,
    at                    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX exchange_log_branch_idx ON exchange_log (branch_code, id DESC);

-- Notifications are written here first and sent by the notification actor.
CREATE TABLE notifications (
    id                    bigserial PRIMARY KEY,
    channel               text NOT NULL,
    event                 text NOT NULL,
    payload               jsonb NOT NULL,
    state                 text NOT NULL DEFAULT 'pending'
                          CHECK (state IN ('pending', 'sent', 'failed')),
    attempts              integer NOT NULL DEFAULT 0,
    next_attempt_at       timestamptz NOT NULL DEFAULT now(),
    last_error            text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    sent_at               timestamptz
);
CREATE INDEX notifications_pending_idx ON notifications (id) WHERE state = 'pending';
